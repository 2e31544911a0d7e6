//! Keyless (Fulcio) identities: who a certificate names, and policy-controller's rules for
//! matching it (exact values or unanchored regexps, any of several identities). The chain,
//! validity, SCT and log checks are `sigstore-verify`'s (`super::bundle`); its own identity
//! matcher has no regexps, no OR and no Fulcio extensions, so this part stays signet's.

use std::collections::BTreeMap;

use regex::Regex;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::FromDer;

use super::trust::CertificateAuthority;
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
/// Fulcio's certificate extensions (DER UTF8String values), by the name `certificateExtensions`
/// and `--certificate-extension` give them (Fulcio's OID documentation, in camelCase).
pub const FULCIO_EXTENSIONS: [(&str, &str); 14] = [
    ("1.3.6.1.4.1.57264.1.9", "buildSignerURI"),
    ("1.3.6.1.4.1.57264.1.10", "buildSignerDigest"),
    ("1.3.6.1.4.1.57264.1.11", "runnerEnvironment"),
    ("1.3.6.1.4.1.57264.1.12", "sourceRepositoryURI"),
    ("1.3.6.1.4.1.57264.1.13", "sourceRepositoryDigest"),
    ("1.3.6.1.4.1.57264.1.14", "sourceRepositoryRef"),
    ("1.3.6.1.4.1.57264.1.15", "sourceRepositoryIdentifier"),
    ("1.3.6.1.4.1.57264.1.16", "sourceRepositoryOwnerURI"),
    ("1.3.6.1.4.1.57264.1.17", "sourceRepositoryOwnerIdentifier"),
    ("1.3.6.1.4.1.57264.1.18", "buildConfigURI"),
    ("1.3.6.1.4.1.57264.1.19", "buildConfigDigest"),
    ("1.3.6.1.4.1.57264.1.20", "buildTrigger"),
    ("1.3.6.1.4.1.57264.1.21", "runInvocationURI"),
    ("1.3.6.1.4.1.57264.1.22", "sourceRepositoryVisibilityAtSigning"),
];

/// What a keyless authority requires of a signature beyond what `sigstore-verify` checks
/// (chain, validity at the verified times, code signing, SCT): one of its identities.
pub struct KeylessRequirements<'a> {
    pub identities: &'a [Identity],
    pub ignore_sct: bool,
}

/// Who a certificate names: the OIDC issuer (empty when the certificate has none, as
/// GitHub's release attestations), the subjects (SANs), the deprecated GitHub workflow
/// extensions (by policy-controller's field name) and Fulcio's other extensions (by
/// [`FULCIO_EXTENSIONS`] name) when Fulcio wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub issuer: String,
    pub subjects: Vec<String>,
    pub github: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, String>,
}

impl CertificateIdentity {
    pub fn describe(&self) -> String {
        let issuer = if self.issuer.is_empty() {
            "with no OIDC issuer".to_string()
        } else {
            format!("issued by {:?}", self.issuer)
        };
        format!("certificate for {} {issuer}", self.subjects.join(", "))
    }
}

impl KeylessRequirements<'_> {
    /// policy-controller's rule: the certificate matches if any identity matches it.
    pub fn match_identity(&self, found: &CertificateIdentity) -> Result<(), String> {
        for identity in self.identities {
            if matches(
                identity.issuer.as_deref(),
                identity.issuer_reg_exp.as_deref(),
                std::slice::from_ref(&found.issuer),
            )? && matches(
                identity.subject.as_deref(),
                identity.subject_reg_exp.as_deref(),
                &found.subjects,
            )? && extensions_match(identity, found)?
            {
                return Ok(());
            }
        }
        let expected: Vec<String> = self.identities.iter().map(describe_identity).collect();
        let named: std::collections::BTreeSet<&String> = self
            .identities
            .iter()
            .flat_map(|i| {
                i.certificate_extensions
                    .keys()
                    .chain(i.certificate_extensions_reg_exp.keys())
            })
            .collect();
        let found_extensions: String = named
            .into_iter()
            .map(|name| match found.extensions.get(name) {
                Some(value) => format!(", {name} {value:?}"),
                None => format!(", no {name}"),
            })
            .collect();
        Err(format!(
            "certificate identity mismatch: expected {}; found issuer {:?}, subject {}{found_extensions}",
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

/// Every extension the identity names must be in the certificate, equal to or matching it.
fn extensions_match(identity: &Identity, found: &CertificateIdentity) -> Result<bool, String> {
    for (name, expected) in &identity.certificate_extensions {
        if found.extensions.get(name) != Some(expected) {
            return Ok(false);
        }
    }
    for (name, pattern) in &identity.certificate_extensions_reg_exp {
        let Some(value) = found.extensions.get(name) else {
            return Ok(false);
        };
        if !matches(None, Some(pattern), std::slice::from_ref(value))? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn describe_identity(identity: &Identity) -> String {
    let part = |exact: &Option<String>, regexp: &Option<String>| match (exact, regexp) {
        (Some(exact), _) if !exact.is_empty() => format!("{exact:?}"),
        (_, Some(regexp)) => format!("/{regexp}/"),
        _ => "any".to_string(),
    };
    let exact = identity
        .certificate_extensions
        .iter()
        .map(|(name, value)| format!(" {name} {value:?}"));
    let regexps = identity
        .certificate_extensions_reg_exp
        .iter()
        .map(|(name, pattern)| format!(" {name} /{pattern}/"));
    format!(
        "issuer {} subject {}{}",
        part(&identity.issuer, &identity.issuer_reg_exp),
        part(&identity.subject, &identity.subject_reg_exp),
        exact.chain(regexps).collect::<String>()
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

/// Who the DER certificate `der` names.
pub fn identity_of_der(der: &[u8]) -> Result<CertificateIdentity, String> {
    let (_, leaf) = X509Certificate::from_der(der).map_err(|e| format!("the certificate does not parse: {e}"))?;
    identity_of(&leaf)
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
        issuer: issuer_of(leaf)?,
        subjects,
        github: github_extensions(leaf),
        extensions: FULCIO_EXTENSIONS
            .iter()
            .filter_map(|(oid, name)| Some((name.to_string(), der_utf8_string(extension_value(leaf, oid)?)?)))
            .collect(),
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

/// The OIDC issuer: `.1.8`, else `.1.1`; empty when the certificate has neither (GitHub's
/// release attestations). An extension that is there but unreadable is an error, never
/// "no issuer": that would match a policy that asks for none.
fn issuer_of(leaf: &X509Certificate) -> Result<String, String> {
    if let Some(value) = extension_value(leaf, ISSUER_V2) {
        return der_utf8_string(value)
            .ok_or_else(|| format!("the certificate's OIDC issuer extension ({ISSUER_V2}) is not a UTF8String"));
    }
    match extension_value(leaf, ISSUER_V1) {
        Some(raw) => String::from_utf8(raw.to_vec())
            .map_err(|_| format!("the certificate's OIDC issuer extension ({ISSUER_V1}) is not UTF-8")),
        None => Ok(String::new()),
    }
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
    let root_index = certificates
        .iter()
        .position(|der| is_self_signed(der))
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

/// Whether `der` is a self-signed certificate (a root): named by itself and signed by its own key.
pub fn is_self_signed(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.subject() == c.issuer() && c.verify_signature(None).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate with a URI SAN and these extensions (OID arcs, content).
    fn certificate(extensions: &[(&[u64], Vec<u8>)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI("https://github.com/org/repo".try_into().unwrap())];
        for (oid, content) in extensions {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(oid, content.clone()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    const V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
    const V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];

    #[test]
    fn issuers_are_read_or_refused() {
        let utf8 = |text: &str| [vec![0x0c, text.len() as u8], text.as_bytes().to_vec()].concat();
        let issuer = |extensions: &[(&[u64], Vec<u8>)]| identity_of_der(&certificate(extensions)).map(|i| i.issuer);
        assert_eq!(
            issuer(&[(V2, utf8("https://token.example"))]).unwrap(),
            "https://token.example"
        );
        assert_eq!(
            issuer(&[(V1, b"https://old.example".to_vec())]).unwrap(),
            "https://old.example"
        );
        assert_eq!(issuer(&[]).unwrap(), "", "no issuer at all");
        // Present but unreadable: refused, not taken for "no issuer".
        let broken = issuer(&[(V2, vec![0x04, 0x01, 0x41]), (V1, b"https://old.example".to_vec())]);
        assert!(broken.unwrap_err().contains("is not a UTF8String"));
        assert!(issuer(&[(V1, vec![0xff, 0xfe])]).unwrap_err().contains("is not UTF-8"));
    }
}
