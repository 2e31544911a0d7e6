//! RFC 3161 signed timestamps: proof from a timestamp authority of the trust root that a
//! signature existed at a time. Rekor v2 entries carry no integrated time, so a bundle
//! logged there is dated by these alone.
//!
//! Parsing uses RustCrypto's `cms` and `x509-tsp`; the checks are signet's: the imprint is
//! the hash of *this* signature, the signed attributes bind the TSTInfo, the signer is a
//! timestamp authority of the trust root (embedded certificates must chain to it), and the
//! time lies inside that authority's validity window and its certificates' lifetimes.

use cms::cert::x509::der::{Decode, Encode, oid::ObjectIdentifier};
use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData, SignerInfo};
use sha2::Digest;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_tsp::{TimeStampResp, TstInfo};

use super::keys::{HashAlgorithm, PublicKey};
use super::trust::{CertificateAuthority, TrustRoot};

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const CONTENT_TYPE_ATTR: &str = "1.2.840.113549.1.9.3";
const MESSAGE_DIGEST_ATTR: &str = "1.2.840.113549.1.9.4";

#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    #[error("the signed timestamp is malformed: {0}")]
    Malformed(String),
    #[error("the signed timestamp is not for this signature (message imprint differs)")]
    WrongImprint,
    #[error("the signed timestamp does not verify: {0}")]
    Invalid(String),
    #[error("no timestamp authority of the trust root signed this timestamp: {0}")]
    Untrusted(String),
}

/// Verifies one DER TimeStampResp over `signature` and returns the time it attests.
pub fn verify_timestamp(der: &[u8], signature: &[u8], trust: &TrustRoot) -> Result<OffsetDateTime, TimestampError> {
    let malformed = |e: &dyn std::fmt::Display| TimestampError::Malformed(e.to_string());
    let response = TimeStampResp::from_der(der).map_err(|e| malformed(&e))?;
    let status = response.status.status as u8;
    if status > 1 {
        return Err(TimestampError::Malformed(format!("the TSA answered status {status}")));
    }
    let token: ContentInfo = response
        .time_stamp_token
        .ok_or_else(|| TimestampError::Malformed("no timestamp token".into()))?;
    if token.content_type != oid(SIGNED_DATA)? {
        return Err(TimestampError::Malformed("the token is not CMS SignedData".into()));
    }
    let signed: SignedData = token.content.decode_as().map_err(|e| malformed(&e))?;
    if signed.encap_content_info.econtent_type != oid(TST_INFO)? {
        return Err(TimestampError::Malformed("the token does not hold a TSTInfo".into()));
    }
    let tst_der = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TimestampError::Malformed("the TSTInfo is missing".into()))?
        .value()
        .to_vec();
    let tst = TstInfo::from_der(&tst_der).map_err(|e| malformed(&e))?;
    check_imprint(&tst, signature)?;
    let gen_time = OffsetDateTime::from_unix_timestamp(tst.gen_time.to_unix_duration().as_secs() as i64)
        .map_err(|e| malformed(&e))?;
    let [signer] = signed.signer_infos.0.as_slice() else {
        return Err(TimestampError::Malformed("expected exactly one signer".into()));
    };
    let signed_attributes = check_signed_attributes(signer, &tst_der)?;
    let embedded = embedded_certificates(signed.certificates.as_ref())?;
    let mut failures = Vec::new();
    for authority in &trust.timestamp_authorities {
        match verify_with_authority(authority, &embedded, signer, &signed_attributes, gen_time) {
            Ok(()) => return Ok(gen_time),
            Err(e) => failures.push(format!("{}: {e}", authority.uri)),
        }
    }
    if failures.is_empty() {
        failures.push("the trust root has no timestamp authorities".into());
    }
    Err(TimestampError::Untrusted(failures.join("; ")))
}

fn oid(text: &str) -> Result<ObjectIdentifier, TimestampError> {
    ObjectIdentifier::new(text).map_err(|e| TimestampError::Malformed(e.to_string()))
}

fn hash_for(algorithm: &ObjectIdentifier) -> Option<HashAlgorithm> {
    match algorithm.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Some(HashAlgorithm::Sha256),
        "2.16.840.1.101.3.4.2.2" => Some(HashAlgorithm::Sha384),
        "2.16.840.1.101.3.4.2.3" => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

fn digest(hash: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    match hash {
        HashAlgorithm::Sha224 => sha2::Sha224::digest(data).to_vec(),
        HashAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        HashAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
        HashAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

/// The TSA timestamped a hash of the signature; it must be this signature's.
fn check_imprint(tst: &TstInfo, signature: &[u8]) -> Result<(), TimestampError> {
    let imprint = &tst.message_imprint;
    let hash = hash_for(&imprint.hash_algorithm.oid)
        .ok_or_else(|| TimestampError::Malformed(format!("imprint hash {}", imprint.hash_algorithm.oid)))?;
    if digest(hash, signature) == imprint.hashed_message.as_bytes() {
        Ok(())
    } else {
        Err(TimestampError::WrongImprint)
    }
}

/// The signer signs its attributes, which must name the TSTInfo content and its digest.
/// Returns the DER of the attributes as signed (a SET OF).
fn check_signed_attributes(signer: &SignerInfo, tst_der: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let attributes = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TimestampError::Malformed("the signer has no signed attributes".into()))?;
    let hash = hash_for(&signer.digest_alg.oid)
        .ok_or_else(|| TimestampError::Malformed(format!("digest algorithm {}", signer.digest_alg.oid)))?;
    let attribute = |name: &str| -> Result<Vec<u8>, TimestampError> {
        let wanted = oid(name)?;
        let found = attributes
            .iter()
            .find(|a| a.oid == wanted)
            .and_then(|a| a.values.iter().next())
            .ok_or_else(|| TimestampError::Malformed(format!("signed attribute {name} is missing")))?;
        Ok(found.value().to_vec())
    };
    if attribute(CONTENT_TYPE_ATTR)? != oid(TST_INFO)?.as_bytes() {
        return Err(TimestampError::Invalid("the signed content type is not TSTInfo".into()));
    }
    if attribute(MESSAGE_DIGEST_ATTR)? != digest(hash, tst_der) {
        return Err(TimestampError::Invalid(
            "the signed digest does not match the TSTInfo".into(),
        ));
    }
    attributes
        .to_der()
        .map_err(|e| TimestampError::Malformed(e.to_string()))
}

fn embedded_certificates(set: Option<&CertificateSet>) -> Result<Vec<Vec<u8>>, TimestampError> {
    let Some(set) = set else { return Ok(Vec::new()) };
    set.0
        .iter()
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(cert) => Some(cert),
            cms::cert::CertificateChoices::Other(_) => None,
        })
        .map(|cert| cert.to_der().map_err(|e| TimestampError::Malformed(e.to_string())))
        .collect()
}

/// The signer's certificate is the authority's own signing certificate, or an embedded one
/// issued by a certificate of the authority's chain; its key must verify the attributes and
/// the time must fall inside the window and every lifetime involved.
fn verify_with_authority(
    authority: &CertificateAuthority,
    embedded: &[Vec<u8>],
    signer: &SignerInfo,
    signed_attributes: &[u8],
    at: OffsetDateTime,
) -> Result<(), String> {
    if !authority.valid_at(at) {
        return Err(format!(
            "the timestamp ({at}) is outside the authority's validity window"
        ));
    }
    let chain = parse_all(&authority.chain_der)?;
    let candidates = parse_all(embedded)?;
    let issued_by_chain = |cert: &X509Certificate| {
        chain
            .iter()
            .any(|parent| parent.subject() == cert.issuer() && cert.verify_signature(Some(parent.public_key())).is_ok())
    };
    let signers = chain
        .iter()
        .take(1)
        .chain(candidates.iter().filter(|c| issued_by_chain(c)));
    let hash = signature_hash(signer)?;
    let mut last = "no signing certificate".to_string();
    for cert in signers {
        let key = PublicKey::from_spki_der(cert.public_key().raw).map_err(|e| e.to_string())?;
        if key
            .verify(signed_attributes, signer.signature.as_bytes(), hash)
            .is_err()
        {
            last = format!("the signature does not verify with {}", cert.subject());
            continue;
        }
        for certificate in std::iter::once(cert).chain(chain.iter()) {
            let validity = certificate.validity();
            let seconds = at.unix_timestamp();
            if seconds < validity.not_before.timestamp() || seconds > validity.not_after.timestamp() {
                return Err(format!("{} was not valid at {at}", certificate.subject()));
            }
        }
        return Ok(());
    }
    Err(last)
}

fn parse_all(ders: &[Vec<u8>]) -> Result<Vec<X509Certificate<'_>>, String> {
    ders.iter()
        .map(|der| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| format!("certificate: {e}"))
        })
        .collect()
}

/// The hash behind the signer's signature algorithm (ECDSA with SHA-2, or RSA PKCS#1).
fn signature_hash(signer: &SignerInfo) -> Result<HashAlgorithm, String> {
    let algorithm = signer.signature_algorithm.oid.to_string();
    let hash = match algorithm.as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => HashAlgorithm::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => HashAlgorithm::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => HashAlgorithm::Sha512,
        // Plain rsaEncryption/ecPublicKey: the digest algorithm names the hash.
        _ => hash_for(&signer.digest_alg.oid).ok_or(format!("signature algorithm {algorithm}"))?,
    };
    Ok(hash)
}
