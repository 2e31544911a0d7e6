//! Keyless (Fulcio) signatures: the signature must be made by the certificate's key, the
//! certificate must chain to a trusted CA *at the time the transparency log recorded it*, be
//! a code-signing leaf, carry a valid SCT (unless the policy waives it), and name one of the
//! policy's identities. The Rekor entry must be about this signature and this certificate —
//! checks the `sigstore` crate skips on this path.

use std::collections::BTreeMap;

use regex::Regex;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::FromDer;

use super::cosign::SignatureLayer;
use super::keys::{HashAlgorithm, PublicKey};
use super::rekor::{EntryExpectation, verify_bundle};
use super::sct::verify_embedded_sct;
use super::trust::{CertificateAuthority, TrustRoot};
use crate::api::cip::Identity;

/// Fulcio's issuer extensions: `.1.8` holds a DER UTF8String, the older `.1.1` raw bytes.
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's (deprecated, raw-bytes) GitHub workflow extensions, by the field name
/// policy-controller gives them in a `spec.policy`'s input.
const GITHUB_EXTENSIONS: [(&str, &str); 5] = [
    ("1.3.6.1.4.1.57264.1.2", "githubWorkflowTrigger"),
    ("1.3.6.1.4.1.57264.1.3", "githubWorkflowSha"),
    ("1.3.6.1.4.1.57264.1.4", "githubWorkflowName"),
    ("1.3.6.1.4.1.57264.1.5", "githubWorkflowRepo"),
    ("1.3.6.1.4.1.57264.1.6", "githubWorkflowRef"),
];
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// Longest chain walked from leaf to root; Fulcio's is two.
const MAX_CHAIN: usize = 5;

/// What a keyless authority requires of a signature.
pub struct KeylessRequirements<'a> {
    pub identities: &'a [Identity],
    pub ignore_sct: bool,
    /// The CAs to chain to: the trust root's, or the policy's `ca-cert`.
    pub authorities: &'a [CertificateAuthority],
    pub trust: &'a TrustRoot,
}

/// What a verified keyless signature was.
#[derive(Debug)]
pub struct KeylessSignature {
    pub identity: CertificateIdentity,
    pub logged: String,
}

/// Who a certificate names: the OIDC issuer, the subjects (SANs), and the GitHub workflow
/// extensions (by policy-controller's field name) when Fulcio wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub issuer: String,
    pub subjects: Vec<String>,
    pub github: BTreeMap<String, String>,
}

impl CertificateIdentity {
    pub fn describe(&self) -> String {
        format!(
            "certificate for {} issued by {:?}",
            self.subjects.join(", "),
            self.issuer
        )
    }
}

impl KeylessRequirements<'_> {
    /// Checks one signature layer whose payload the caller has already bound to the digest.
    pub fn check(&self, layer: &SignatureLayer, signature: &[u8]) -> Result<KeylessSignature, String> {
        let leaf_pem = layer
            .certificate_pem
            .as_deref()
            .ok_or("the signature has no certificate (dev.sigstore.cosign/certificate); is it keyless?")?;
        let leaf_der = pem_certificates(leaf_pem)?
            .into_iter()
            .next()
            .ok_or("the certificate annotation holds no certificate")?;
        let (_, leaf) =
            X509Certificate::from_der(&leaf_der).map_err(|e| format!("the certificate does not parse: {e}"))?;
        let leaf_key =
            PublicKey::from_spki_der(leaf.public_key().raw).map_err(|e| format!("the certificate's key: {e}"))?;
        leaf_key
            .verify(&layer.payload, signature, HashAlgorithm::Sha256)
            .map_err(|_| "the signature was not made by the certificate's key".to_string())?;

        let bundle = layer
            .bundle_json
            .as_deref()
            .ok_or("keyless signatures need a transparency log entry, and this one has no Rekor bundle")?;
        let entry = verify_bundle(
            bundle,
            self.trust,
            &EntryExpectation {
                payload: &layer.payload,
                signature,
            },
        )?;
        let logged_der = pem_certificates(&entry.public_key_pem)?.into_iter().next();
        if logged_der.as_deref() != Some(leaf_der.as_slice()) {
            return Err("the Rekor entry records a different certificate".to_string());
        }
        let signed_at = entry.integrated_time;
        let chain_extra = layer
            .chain_pem
            .as_deref()
            .map(pem_certificates)
            .transpose()?
            .unwrap_or_default();
        let identity = self.check_certificate(&leaf, &chain_extra, &[signed_at])?;
        Ok(KeylessSignature {
            identity,
            logged: format!("logged in {} at index {} ({signed_at})", entry.log_url, entry.log_index),
        })
    }

    /// The certificate checks shared by every keyless format, once the signature is known to
    /// be the certificate's: a code-signing leaf chaining to a trusted CA at each verified
    /// time, an SCT (unless waived) and a policy identity. Returns who the certificate names.
    pub fn check_certificate(
        &self,
        leaf: &X509Certificate,
        chain_extra: &[Vec<u8>],
        verified_times: &[OffsetDateTime],
    ) -> Result<CertificateIdentity, String> {
        check_leaf(leaf)?;
        let mut issuer_spki = None;
        for at in verified_times {
            issuer_spki = Some(self.verify_chain(leaf, chain_extra, *at)?);
        }
        let issuer_spki = issuer_spki.ok_or("no verified time to check the certificate at")?;
        if !self.ignore_sct {
            verify_embedded_sct(leaf, &issuer_spki, self.trust)?;
        }
        let found = identity_of(leaf)?;
        self.match_identity(&found)?;
        Ok(found)
    }

    /// Walks from the leaf to a trusted root, every certificate valid at `at`; returns the
    /// SubjectPublicKeyInfo of the leaf's issuer (the SCT signs over its hash).
    fn verify_chain(&self, leaf: &X509Certificate, extra: &[Vec<u8>], at: OffsetDateTime) -> Result<Vec<u8>, String> {
        check_validity(leaf, at, "the signing certificate")?;
        let mut last_error = "no certificate authority in the trust root".to_string();
        for authority in self.authorities {
            if !authority.valid_at(at) {
                last_error = format!("the certificate authority {} was not valid at {at}", authority.uri);
                continue;
            }
            match walk_to_root(leaf, authority, extra, at) {
                Ok(issuer_spki) => return Ok(issuer_spki),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn match_identity(&self, found: &CertificateIdentity) -> Result<(), String> {
        for identity in self.identities {
            if matches(
                identity.issuer.as_deref(),
                identity.issuer_reg_exp.as_deref(),
                std::slice::from_ref(&found.issuer),
            )? && matches(
                identity.subject.as_deref(),
                identity.subject_reg_exp.as_deref(),
                &found.subjects,
            )? {
                return Ok(());
            }
        }
        let expected: Vec<String> = self.identities.iter().map(describe_identity).collect();
        Err(format!(
            "certificate identity mismatch: expected {}; found issuer {:?}, subject {}",
            expected.join(" or "),
            found.issuer,
            found
                .subjects
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn describe_identity(identity: &Identity) -> String {
    let part = |exact: &Option<String>, regexp: &Option<String>| match (exact, regexp) {
        (Some(exact), _) if !exact.is_empty() => format!("{exact:?}"),
        (_, Some(regexp)) => format!("/{regexp}/"),
        _ => "any".to_string(),
    };
    format!(
        "issuer {} subject {}",
        part(&identity.issuer, &identity.issuer_reg_exp),
        part(&identity.subject, &identity.subject_reg_exp)
    )
}

/// Exact when given, else the regexp (unanchored, as cosign's `--certificate-identity-regexp`;
/// policies that mean a whole match write `^…$`).
fn matches(exact: Option<&str>, regexp: Option<&str>, values: &[String]) -> Result<bool, String> {
    if let Some(exact) = exact.filter(|e| !e.is_empty()) {
        return Ok(values.iter().any(|v| v == exact));
    }
    match regexp.filter(|r| !r.is_empty()) {
        Some(pattern) => {
            let regex = Regex::new(pattern).map_err(|e| format!("identity regexp {pattern:?}: {e}"))?;
            Ok(values.iter().any(|v| regex.is_match(v)))
        }
        // Validation requires one of them; a policy without either matches nothing.
        None => Ok(false),
    }
}

fn identity_of(leaf: &X509Certificate) -> Result<CertificateIdentity, String> {
    let mut subjects = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(email) => subjects.push(email.to_string()),
                GeneralName::URI(uri) => subjects.push(uri.to_string()),
                GeneralName::DNSName(dns) => subjects.push(dns.to_string()),
                GeneralName::OtherName(_, value) => {
                    if let Some(text) = der_utf8_string(value) {
                        subjects.push(text);
                    }
                }
                _ => {}
            }
        }
    }
    if subjects.is_empty() {
        return Err("the certificate has no subject alternative name to match".to_string());
    }
    Ok(CertificateIdentity {
        issuer: issuer_of(leaf)
            .ok_or("the certificate has no Fulcio issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1)")?,
        subjects,
        github: github_extensions(leaf),
    })
}

/// The GitHub workflow extensions present, as text; a value that is not UTF-8 is left out.
fn github_extensions(leaf: &X509Certificate) -> BTreeMap<String, String> {
    GITHUB_EXTENSIONS
        .iter()
        .filter_map(|(oid, field)| {
            let value = String::from_utf8(extension_value(leaf, oid)?.to_vec()).ok()?;
            Some((field.to_string(), value))
        })
        .collect()
}

/// The value bytes of the leaf's extension `oid`, if it has one.
fn extension_value<'a>(leaf: &'a X509Certificate, oid: &str) -> Option<&'a [u8]> {
    let oid: Oid = oid.parse().ok()?;
    leaf.iter_extensions().find(|e| e.oid == oid).map(|e| e.value)
}

fn issuer_of(leaf: &X509Certificate) -> Option<String> {
    if let Some(value) = extension_value(leaf, ISSUER_V2) {
        return der_utf8_string(value);
    }
    extension_value(leaf, ISSUER_V1).and_then(|raw| String::from_utf8(raw.to_vec()).ok())
}

/// The text of a DER UTF8String, possibly inside an explicit `[0]` (as in otherName).
fn der_utf8_string(mut bytes: &[u8]) -> Option<String> {
    for _ in 0..2 {
        let (&tag, rest) = bytes.split_first()?;
        let (&length, rest) = rest.split_first()?;
        let (length, rest) = if length < 0x80 {
            (usize::from(length), rest)
        } else {
            let count = usize::from(length & 0x7f);
            let length = rest
                .get(..count)?
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, rest.get(count..)?)
        };
        let content = rest.get(..length)?;
        match tag {
            0x0c => return String::from_utf8(content.to_vec()).ok(),
            0xa0 => bytes = content,
            _ => return None,
        }
    }
    None
}

/// A Fulcio leaf: code signing, not a CA.
fn check_leaf(leaf: &X509Certificate) -> Result<(), String> {
    if leaf.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
        return Err("the signing certificate is a CA certificate, not a leaf".to_string());
    }
    let code_signing: Oid = CODE_SIGNING.parse().map_err(|_| "code-signing OID".to_string())?;
    let has_code_signing = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.code_signing || eku.value.other.contains(&code_signing));
    if !has_code_signing {
        return Err("the signing certificate lacks the code-signing extended key usage".to_string());
    }
    Ok(())
}

fn check_validity(cert: &X509Certificate, at: OffsetDateTime, what: &str) -> Result<(), String> {
    let validity = cert.validity();
    let (from, until) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let at_seconds = at.unix_timestamp();
    if at_seconds < from || at_seconds > until {
        return Err(format!(
            "{what} was not valid at the signature's verified time ({at}; valid {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    Ok(())
}

fn walk_to_root(
    leaf: &X509Certificate,
    authority: &CertificateAuthority,
    extra: &[Vec<u8>],
    at: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let Some(root_der) = authority.chain_der.last() else {
        return Err("the certificate authority has no root".to_string());
    };
    let pool: Vec<&Vec<u8>> = authority.chain_der.iter().chain(extra.iter()).collect();
    let mut current_der = leaf.as_ref().to_vec();
    let mut issuer_of_leaf: Option<Vec<u8>> = None;
    for _ in 0..MAX_CHAIN {
        let (_, current) = X509Certificate::from_der(&current_der).map_err(|e| format!("chain certificate: {e}"))?;
        if current.subject() == current.issuer() && issuer_of_leaf.is_some() {
            return Err(format!(
                "the certificate chain does not lead to the trusted root of {}: it ends at the untrusted root {}",
                authority.uri,
                current.subject()
            ));
        }
        let issuer = pool
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| (*der, c)))
            .find(|(_, candidate)| {
                candidate.subject() == current.issuer()
                    && is_ca(candidate)
                    && current.verify_signature(Some(candidate.public_key())).is_ok()
            });
        let Some((issuer_der, issuer)) = issuer else {
            return Err(format!(
                "the certificate chain does not lead to the trusted root of {} (no issuer for {})",
                authority.uri,
                current.issuer()
            ));
        };
        check_validity(&issuer, at, "a certificate of the chain")?;
        if issuer_of_leaf.is_none() {
            issuer_of_leaf = Some(issuer.public_key().raw.to_vec());
        }
        if issuer_der == root_der {
            return issuer_of_leaf.ok_or_else(|| "empty chain".to_string());
        }
        current_der = issuer_der.clone();
    }
    Err(format!(
        "the certificate chain to {} is longer than {MAX_CHAIN}",
        authority.uri
    ))
}

fn is_ca(cert: &X509Certificate) -> bool {
    cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca)
}

/// Every CERTIFICATE block of a PEM text, as DER.
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("certificate PEM: {e}"))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

/// A `ca-cert` (PEM chain) as a certificate authority: the self-signed certificate is the
/// root; the others are intermediates.
pub fn authority_from_pem(text: &str) -> Result<CertificateAuthority, String> {
    let mut certificates = pem_certificates(text)?;
    if certificates.is_empty() {
        return Err("ca-cert holds no certificate".to_string());
    }
    let is_self_signed = |der: &Vec<u8>| {
        X509Certificate::from_der(der).is_ok_and(|(_, c)| c.subject() == c.issuer() && c.verify_signature(None).is_ok())
    };
    let root_index = certificates
        .iter()
        .position(is_self_signed)
        .ok_or("ca-cert has no self-signed root certificate")?;
    let root = certificates.remove(root_index);
    certificates.push(root);
    Ok(CertificateAuthority {
        uri: "ca-cert".to_string(),
        chain_der: certificates,
        valid_from: None,
        valid_until: None,
    })
}
