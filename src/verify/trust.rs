//! Trust roots in Sigstore's `trusted_root.json` format: which transparency-log keys (and
//! later CAs, CT logs and TSAs) signet trusts, and for which time windows.
//!
//! The Sigstore public-good root is embedded (it is public key material, taken from the
//! Sigstore Python client's bundled TUF store), so signet starts and verifies without any
//! network; `--trust-root FILE` replaces it.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use sigstore_verify::Verifier;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::keys::PublicKey;
use crate::api::trustroot::{TrustRootSpec, decode_base64};

/// The Sigstore public-good instance's trust root, shipped inside the binary.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &str = include_str!("../../trust/public-good-trusted_root.json");

#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    #[error("trusted_root.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("trusted_root.json: {what} is not valid: {detail}")]
    Invalid { what: String, detail: String },
}

/// A transparency log (Rekor) or certificate transparency log, by its key.
#[derive(Debug, Clone)]
pub struct LogKey {
    pub base_url: String,
    /// hex(sha256(SubjectPublicKeyInfo DER)): Rekor's `logID`.
    pub log_id: String,
    pub key: PublicKey,
    pub valid_from: Option<OffsetDateTime>,
    pub valid_until: Option<OffsetDateTime>,
}

impl LogKey {
    /// Whether the key was valid at `time`.
    pub fn valid_at(&self, time: OffsetDateTime) -> bool {
        within(self.valid_from, self.valid_until, time)
    }
}

/// Whether `time` lies in the window (open ends are unbounded).
fn within(from: Option<OffsetDateTime>, until: Option<OffsetDateTime>, time: OffsetDateTime) -> bool {
    from.is_none_or(|start| time >= start) && until.is_none_or(|end| time <= end)
}

/// A certificate authority (Fulcio): its chain, issuing certificate first and root last.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub uri: String,
    pub chain_der: Vec<Vec<u8>>,
    pub valid_from: Option<OffsetDateTime>,
    pub valid_until: Option<OffsetDateTime>,
}

impl CertificateAuthority {
    pub fn valid_at(&self, time: OffsetDateTime) -> bool {
        within(self.valid_from, self.valid_until, time)
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustRoot {
    /// The same root as `sigstore-verify` takes it, built on first use.
    verifier: VerifierCell,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// RFC 3161 timestamp authorities: their chains (signing certificate first, root last).
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    #[serde(default)]
    tlogs: Vec<LogJson>,
    #[serde(default)]
    ctlogs: Vec<LogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    timestamp_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    #[serde(default)]
    uri: String,
    cert_chain: CertChainJson,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
struct CertChainJson {
    certificates: Vec<RawBytesJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesJson {
    raw_bytes: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    #[serde(default)]
    base_url: String,
    public_key: PublicKeyJson,
    /// Rekor v2 logs are named by a key id that is not the hash of their key.
    #[serde(default)]
    log_id: Option<LogIdJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyJson {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
struct ValidForJson {
    start: Option<String>,
    end: Option<String>,
}

impl TrustRoot {
    /// A `TrustRoot` resource's `sigstoreKeys` (bring your own CAs and logs). TUF-based
    /// roots (`repository`, `remote`) are resolved by `super::tuf::TrustRootStore`.
    pub fn from_spec(name: &str, spec: &TrustRootSpec) -> Result<Self, String> {
        let Some(keys) = &spec.sigstore_keys else {
            return Err(format!(
                "TrustRoot {name:?} has no sigstoreKeys; its TUF repository or remote is resolved separately"
            ));
        };
        let pem_text = |field: &Option<String>, what: &str| -> Result<String, String> {
            let encoded = field
                .as_deref()
                .ok_or_else(|| format!("TrustRoot {name:?}: {what} is missing"))?;
            let bytes = decode_base64(encoded).map_err(|e| format!("TrustRoot {name:?}: {what} is not base64: {e}"))?;
            String::from_utf8(bytes).map_err(|_| format!("TrustRoot {name:?}: {what} is not PEM text"))
        };
        let log = |log: &crate::api::trustroot::TransparencyLogInstance, what: &str| -> Result<LogKey, String> {
            let pem_key = pem_text(&log.public_key, &format!("{what}.publicKey"))?;
            let key =
                PublicKey::from_pem(&pem_key).map_err(|e| format!("TrustRoot {name:?}: {what}.publicKey: {e}"))?;
            Ok(LogKey {
                base_url: log.base_url.clone().unwrap_or_default(),
                log_id: format!("{:x}", sha2::Sha256::digest(key.spki_der())),
                key,
                valid_from: None,
                valid_until: None,
            })
        };
        let logs = |list: &[crate::api::trustroot::TransparencyLogInstance], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, l)| log(l, &format!("{what}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        // Fulcio CAs and timestamp authorities: a PEM chain each, root last.
        let authorities = |list: &[crate::api::trustroot::CertificateAuthority], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, ca)| {
                    let chain = pem_text(&ca.cert_chain, &format!("{what}[{i}].certChain"))?;
                    let mut authority = super::keyless::authority_from_pem(&chain)
                        .map_err(|e| format!("TrustRoot {name:?}: {what}[{i}]: {e}"))?;
                    authority.uri = ca.uri.clone().unwrap_or_default();
                    Ok(authority)
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let certificate_authorities = authorities(&keys.certificate_authorities, "certificateAuthorities")?;
        let timestamp_authorities = authorities(&keys.timestamp_authorities, "timestampAuthorities")?;
        Ok(TrustRoot {
            verifier: VerifierCell::default(),
            tlogs: logs(&keys.t_logs, "tLogs")?,
            ctlogs: logs(&keys.ct_logs, "ctLogs")?,
            certificate_authorities,
            timestamp_authorities,
        })
    }

    pub fn public_good() -> Result<Self, TrustRootError> {
        Self::from_json(PUBLIC_GOOD_TRUSTED_ROOT.as_bytes())
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, TrustRootError> {
        let parsed: TrustedRootJson = serde_json::from_slice(bytes)?;
        let logs = |entries: Vec<LogJson>, kind: &str| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, log)| log_key(log, &format!("{kind}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let certificate_authorities = parsed
            .certificate_authorities
            .into_iter()
            .enumerate()
            .map(|(i, ca)| certificate_authority(ca, &format!("certificateAuthorities[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let timestamp_authorities = parsed
            .timestamp_authorities
            .into_iter()
            .enumerate()
            .map(|(i, ca)| certificate_authority(ca, &format!("timestampAuthorities[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustRoot {
            verifier: VerifierCell::default(),
            tlogs: logs(parsed.tlogs, "tlogs")?,
            ctlogs: logs(parsed.ctlogs, "ctlogs")?,
            certificate_authorities,
            timestamp_authorities,
        })
    }

    /// When the first part of this root still in use stops being valid: a CA certificate's
    /// notAfter or a log key's validFor end. Operators need to know before it bites.
    pub fn earliest_expiry(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        use x509_parser::prelude::FromDer;
        let certificate_ends = self
            .certificate_authorities
            .iter()
            .filter(|ca| ca.valid_until.is_none_or(|end| end > now))
            .flat_map(|ca| ca.chain_der.iter())
            .filter_map(|der| x509_parser::certificate::X509Certificate::from_der(der).ok())
            .filter_map(|(_, cert)| OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok());
        let key_ends = self
            .certificate_authorities
            .iter()
            .filter_map(|ca| ca.valid_until)
            .chain(self.tlogs.iter().chain(&self.ctlogs).filter_map(|log| log.valid_until));
        certificate_ends.chain(key_ends).filter(|end| *end > now).min()
    }

    /// The certificate transparency log whose id (sha256 of its key) is `log_id`.
    pub fn ctlog(&self, log_id: &[u8]) -> Option<&LogKey> {
        let id = hex::encode(log_id);
        self.ctlogs.iter().find(|log| log.log_id == id)
    }

    /// The transparency log whose `logID` is `log_id` (hex).
    pub fn tlog(&self, log_id: &str) -> Option<&LogKey> {
        self.tlogs.iter().find(|log| log.log_id.eq_ignore_ascii_case(log_id))
    }
}

/// A lazily built `sigstore-verify` verifier; a new root (or a changed copy) starts empty.
#[derive(Clone, Default)]
struct VerifierCell(Arc<OnceLock<Result<Arc<Verifier>, String>>>);

impl std::fmt::Debug for VerifierCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "VerifierCell(built)"
        } else {
            "VerifierCell(empty)"
        })
    }
}

impl TrustRoot {
    /// This root with other certificate authorities (a keyless authority's `ca-cert`).
    pub fn with_certificate_authorities(&self, certificate_authorities: Vec<CertificateAuthority>) -> TrustRoot {
        TrustRoot {
            verifier: VerifierCell::default(),
            certificate_authorities,
            ..self.clone()
        }
    }

    /// This root with the timestamp authorities of `tsa` (an authority's `rfc3161timestamp`
    /// root) instead of its own; the same root when `tsa` is this one.
    pub fn with_timestamp_authorities_of(self: &Arc<Self>, tsa: &Arc<TrustRoot>) -> Arc<TrustRoot> {
        if Arc::ptr_eq(self, tsa) {
            return self.clone();
        }
        Arc::new(TrustRoot {
            verifier: VerifierCell::default(),
            timestamp_authorities: tsa.timestamp_authorities.clone(),
            ..TrustRoot::clone(self)
        })
    }

    /// The `sigstore-verify` verifier for this root, built once and shared by clones.
    pub fn verifier(&self) -> Result<Arc<Verifier>, String> {
        self.verifier
            .0
            .get_or_init(|| {
                let root: sigstore_verify::trust_root::TrustedRoot =
                    serde_json::from_value(self.to_trusted_root_json())
                        .map_err(|e| format!("the trust root cannot be used for verification: {e}"))?;
                Verifier::new(&root)
                    .map(Arc::new)
                    .map_err(|e| format!("the trust root cannot be used for verification: {e}"))
            })
            .clone()
    }

    /// This root in Sigstore's `trusted_root.json` form, as `sigstore-verify` reads it.
    fn to_trusted_root_json(&self) -> Value {
        let window = |from: Option<OffsetDateTime>, until: Option<OffsetDateTime>| {
            let text = |t: OffsetDateTime| t.format(&Rfc3339).ok();
            match (from, until) {
                (None, None) => Value::Null,
                (from, until) => json!({
                    "start": text(from.unwrap_or(OffsetDateTime::UNIX_EPOCH)),
                    "end": until.and_then(text),
                }),
            }
        };
        let log = |log: &LogKey| {
            let key_id = hex::decode(&log.log_id).unwrap_or_default();
            json!({
                "baseUrl": log.base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(log.key.spki_der()),
                    "keyDetails": log.key.kind_name(),
                    "validFor": window(log.valid_from, log.valid_until),
                },
                "logId": {"keyId": b64(&key_id)},
            })
        };
        let authority = |ca: &CertificateAuthority| {
            json!({
                "subject": {},
                "uri": ca.uri,
                "certChain": {"certificates": ca.chain_der.iter().map(|der| json!({"rawBytes": b64(der)})).collect::<Vec<_>>()},
                "validFor": window(ca.valid_from, ca.valid_until),
            })
        };
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": self.tlogs.iter().map(log).collect::<Vec<_>>(),
            "ctlogs": self.ctlogs.iter().map(log).collect::<Vec<_>>(),
            "certificateAuthorities": self.certificate_authorities.iter().map(authority).collect::<Vec<_>>(),
            "timestampAuthorities": self.timestamp_authorities.iter().map(authority).collect::<Vec<_>>(),
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn parse_time(text: Option<String>, what: &str) -> Result<Option<OffsetDateTime>, TrustRootError> {
    text.map(|t| {
        OffsetDateTime::parse(&t, &Rfc3339).map_err(|e| TrustRootError::Invalid {
            what: what.to_string(),
            detail: format!("validFor {t:?}: {e}"),
        })
    })
    .transpose()
}

fn certificate_authority(ca: CaJson, what: &str) -> Result<CertificateAuthority, TrustRootError> {
    let chain_der = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c.raw_bytes.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustRootError::Invalid {
            what: what.to_string(),
            detail: format!("certChain: {e}"),
        })?;
    if chain_der.is_empty() {
        return Err(TrustRootError::Invalid {
            what: what.to_string(),
            detail: "certChain has no certificates".to_string(),
        });
    }
    let (valid_from, valid_until) = validity_window(ca.valid_for, what)?;
    Ok(CertificateAuthority {
        uri: ca.uri,
        chain_der,
        valid_from,
        valid_until,
    })
}

fn log_key(log: LogJson, what: &str) -> Result<LogKey, TrustRootError> {
    let invalid = |detail: String| TrustRootError::Invalid {
        what: what.to_string(),
        detail,
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(log.public_key.raw_bytes.trim())
        .map_err(|e| invalid(format!("publicKey.rawBytes: {e}")))?;
    // Older Sigstore roots carry RSA CT log keys as bare PKCS#1, not SubjectPublicKeyInfo.
    let key = if log.public_key.key_details.starts_with("PKCS1_RSA") {
        PublicKey::from_pkcs1_rsa_der(&der)
    } else {
        PublicKey::from_spki_der(&der)
    }
    .map_err(|e| invalid(format!("publicKey: {e}")))?;
    let log_id = match log.log_id {
        Some(id) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(id.key_id.trim())
                .map_err(|e| invalid(format!("logId.keyId: {e}")))?;
            hex::encode(raw)
        }
        None => format!("{:x}", sha2::Sha256::digest(key.spki_der())),
    };
    let (valid_from, valid_until) = validity_window(log.public_key.valid_for, what)?;
    Ok(LogKey {
        base_url: log.base_url,
        log_id,
        key,
        valid_from,
        valid_until,
    })
}

/// A `validFor` window. Its start is required: a window with only an end would otherwise
/// read as "trusted since forever", which is not what the root's author wrote.
type Window = (Option<OffsetDateTime>, Option<OffsetDateTime>);

fn validity_window(valid_for: Option<ValidForJson>, what: &str) -> Result<Window, TrustRootError> {
    let Some(window) = valid_for else {
        return Ok((None, None));
    };
    if window.start.is_none() {
        return Err(TrustRootError::Invalid {
            what: what.to_string(),
            detail: "validFor has no start".to_string(),
        });
    }
    Ok((parse_time(window.start, what)?, parse_time(window.end, what)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_root_loads() {
        let root = TrustRoot::public_good().unwrap();
        let rekor = root
            .tlog("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
            .expect("rekor.sigstore.dev's log id");
        assert_eq!(rekor.base_url, "https://rekor.sigstore.dev");
        assert!(rekor.valid_at(OffsetDateTime::now_utc()));
        assert!(!rekor.valid_at(OffsetDateTime::UNIX_EPOCH));
        assert!(!root.ctlogs.is_empty());
        assert!(
            root.certificate_authorities
                .iter()
                .any(|ca| ca.uri == "https://fulcio.sigstore.dev")
        );
    }

    #[test]
    fn sigstore_keys_timestamp_authorities_are_kept() {
        use base64::Engine as _;
        let root = rcgen::generate_simple_self_signed(vec!["tsa.example".to_string()]).unwrap();
        let chain = base64::engine::general_purpose::STANDARD.encode(root.cert.pem());
        let authority = crate::api::trustroot::CertificateAuthority {
            uri: Some("https://tsa.example".into()),
            cert_chain: Some(chain),
            ..Default::default()
        };
        let spec = TrustRootSpec {
            sigstore_keys: Some(crate::api::trustroot::SigstoreKeys {
                timestamp_authorities: vec![authority],
                ..Default::default()
            }),
            ..Default::default()
        };
        let trust = TrustRoot::from_spec("tsa-only", &spec).unwrap();
        assert_eq!(trust.timestamp_authorities.len(), 1);
        assert_eq!(trust.timestamp_authorities[0].uri, "https://tsa.example");
        assert!(trust.tlogs.is_empty() && trust.certificate_authorities.is_empty());
    }

    #[test]
    fn bad_roots_are_errors() {
        assert!(TrustRoot::from_json(b"{").is_err());
        let bad_key = br#"{"tlogs":[{"baseUrl":"x","publicKey":{"rawBytes":"AAAA"}}]}"#;
        let err = TrustRoot::from_json(bad_key).unwrap_err().to_string();
        assert!(err.contains("tlogs[0]"), "{err}");
    }
}
