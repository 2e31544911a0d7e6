//! `signet verify-blob`: the `cosign verify-blob` flow for files (release binaries), with a
//! key or keyless, offline. Keyless needs the Rekor entry that proves when the short-lived
//! certificate was used, so it takes cosign's `--bundle` (from `cosign sign-blob --bundle`).

use base64::Engine as _;
use serde::Deserialize;

use super::bundle::{Artifact, Bundle, Signer, Timestamps, verify};
use super::cosign::SignatureLayer;
use super::keyless::KeylessRequirements;
use super::keys::{HashAlgorithm, PublicKey};
use super::trust::TrustRoot;
use crate::api::cip::Identity;

/// What to check a blob against.
pub enum BlobAuthority {
    Key(PublicKey),
    Keyless { identity: Identity, ignore_sct: bool },
}

/// The signature material of a blob, from files.
#[derive(Default)]
pub struct BlobSignature {
    /// base64 signature (`--signature`), unless the bundle carries it.
    pub signature_b64: Option<String>,
    /// PEM certificate, or base64 of one (`--certificate`), unless the bundle carries it.
    pub certificate: Option<String>,
    /// cosign's bundle JSON (`--bundle`).
    pub bundle: Option<String>,
}

/// cosign's `sign-blob --bundle` file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CosignBlobBundle {
    base64_signature: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    rekor_bundle: Option<serde_json::Value>,
}

/// Verifies `blob`; `Ok` says what was verified.
pub fn verify_blob(
    blob: &[u8],
    material: BlobSignature,
    authority: &BlobAuthority,
    trust: &TrustRoot,
) -> Result<String, String> {
    if let Some(text) = material.bundle.as_deref().filter(|t| is_sigstore_bundle(t)) {
        return verify_sigstore_bundle(text.as_bytes(), &Artifact::Bytes(blob), authority, trust);
    }
    let bundle = material
        .bundle
        .as_deref()
        .map(|text| {
            serde_json::from_str::<CosignBlobBundle>(text)
                .map_err(|e| format!("the bundle is neither a Sigstore bundle nor a cosign blob bundle: {e}"))
        })
        .transpose()?;
    let signature_b64 = bundle
        .as_ref()
        .map(|b| b.base64_signature.clone())
        .or(material.signature_b64)
        .ok_or("no signature: give --signature or --bundle")?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    match authority {
        BlobAuthority::Key(key) => {
            key.verify(blob, &signature, HashAlgorithm::Sha256)
                .map_err(|_| format!("the signature does not verify with key {}", key.fingerprint()))?;
            Ok(format!(
                "signature verified with {} key {}",
                key.kind_name(),
                key.fingerprint()
            ))
        }
        BlobAuthority::Keyless { identity, ignore_sct } => {
            let certificate = bundle
                .as_ref()
                .and_then(|b| b.cert.clone())
                .or(material.certificate)
                .ok_or("keyless verification needs the signing certificate (--certificate or --bundle)")?;
            let rekor_bundle = bundle
                .and_then(|b| b.rekor_bundle)
                .ok_or("keyless verification offline needs the Rekor entry: give cosign's --bundle")?;
            let layer = SignatureLayer {
                layer_digest: String::new(),
                payload: blob.to_vec(),
                signature: Some(signature),
                signature_b64,
                certificate_pem: Some(certificate_pem(&certificate)?),
                chain_pem: None,
                bundle_json: Some(rekor_bundle.to_string()),
                timestamp_json: None,
            };
            let signer = Signer::Keyless(KeylessRequirements {
                identities: std::slice::from_ref(identity),
                ignore_sct: *ignore_sct,
            });
            let bundle = Bundle::from_signature_layer(&layer).map_err(|e| e.to_string())?;
            let verified = verify(&bundle, &Artifact::Bytes(blob), &signer, trust, Timestamps::Optional)
                .map_err(|e| e.to_string())?;
            Ok(verified.describe())
        }
    }
}

/// Sigstore bundles name their format in `mediaType`; cosign's older blob bundles do not.
fn is_sigstore_bundle(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
        .is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle"))
}

/// Verifies a Sigstore bundle (`cosign sign-blob --new-bundle-format`, cosign v3, other
/// Sigstore clients) for `artifact`; `Ok` says what was verified.
pub fn verify_sigstore_bundle(
    bundle_json: &[u8],
    artifact: &Artifact,
    authority: &BlobAuthority,
    trust: &TrustRoot,
) -> Result<String, String> {
    let bundle = Bundle::from_json(bundle_json).map_err(|e| e.to_string())?;
    let signer = match authority {
        BlobAuthority::Key(key) => Signer::Key { key, require_log: true },
        BlobAuthority::Keyless { identity, ignore_sct } => Signer::Keyless(KeylessRequirements {
            identities: std::slice::from_ref(identity),
            ignore_sct: *ignore_sct,
        }),
    };
    let verified = verify(&bundle, artifact, &signer, trust, Timestamps::Optional).map_err(|e| e.to_string())?;
    Ok(verified.describe())
}

/// cosign writes certificates as PEM, or base64 of PEM in bundles; accept both.
fn certificate_pem(text: &str) -> Result<String, String> {
    if text.contains("-----BEGIN") {
        return Ok(text.to_string());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the certificate is neither PEM nor base64 PEM: {e}"))?;
    String::from_utf8(decoded).map_err(|_| "the certificate is not PEM text".to_string())
}
