//! RFC 3161 signed timestamps: proof from a timestamp authority of the trust root that a
//! signature existed at a time. Rekor v2 entries carry no integrated time, so a bundle
//! logged there is dated by these alone.
//!
//! The verification is `sigstore-tsa`'s (the imprint is the hash of *this* signature, the
//! signed attributes bind the TSTInfo, the CMS signer is the authority's signing certificate
//! chaining to its root, the time lies inside the authority's window); signet only tries the
//! trust root's authorities in turn.

use sigstore_tsa::{TsaAuthority, verify_timestamp_for_authority};
use sigstore_types::{DerCertificate, SignatureBytes, TimeRange, TimestampToken};
use time::OffsetDateTime;

use super::trust::{CertificateAuthority, TrustRoot};

#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    #[error("the trust root has no timestamp authority")]
    NoAuthority,
    #[error("no timestamp authority of the trust root signed this timestamp: {0}")]
    Untrusted(String),
}

/// Verifies one DER TimeStampResp (or bare token) over `signature` and returns the time it
/// attests: the first of the trust root's authorities it verifies against.
pub fn verify_timestamp(der: &[u8], signature: &[u8], trust: &TrustRoot) -> Result<OffsetDateTime, TimestampError> {
    let token = TimestampToken::new(der.to_vec());
    let signature = SignatureBytes::new(signature.to_vec());
    let mut reasons = Vec::new();
    for authority in trust.timestamp_authorities.iter().filter_map(tsa_authority) {
        match verify_timestamp_for_authority(&token, &signature, &authority) {
            Ok(time) => {
                return OffsetDateTime::from_unix_timestamp(time.as_second())
                    .map_err(|e| TimestampError::Untrusted(e.to_string()));
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if reasons.is_empty() {
        return Err(TimestampError::NoAuthority);
    }
    reasons.dedup();
    Err(TimestampError::Untrusted(reasons.join("; ")))
}

/// The crate's view of one authority: signing certificate first, root last (one certificate
/// is both), with its validity window.
fn tsa_authority(authority: &CertificateAuthority) -> Option<TsaAuthority> {
    let certificate = |der: &Vec<u8>| DerCertificate::new(der.clone());
    let (leaf, intermediates, root) = match authority.chain_der.as_slice() {
        [] => return None,
        [only] => (only, &[][..], only),
        [leaf, intermediates @ .., root] => (leaf, intermediates, root),
    };
    let valid_for = authority.valid_from.and_then(|start| {
        Some(TimeRange {
            start: jiff_time(start)?,
            end: authority.valid_until.and_then(jiff_time),
        })
    });
    Some(TsaAuthority::new(
        certificate(leaf),
        intermediates.iter().map(certificate).collect(),
        certificate(root),
        valid_for,
    ))
}

fn jiff_time(time: OffsetDateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(time.unix_timestamp()).ok()
}
