//! `TrustRoot` (`policy.sigstore.dev/v1alpha1`): where keyless verification gets its Fulcio,
//! Rekor, CT log and TSA material when the public-good Sigstore root is not the one to trust.
//!
//! Byte fields are kept as the base64 strings they are on the wire (Go `[]byte` in
//! policy-controller) so that manifests round-trip untouched and placeholders in templates still
//! parse; [`decode_base64`] turns them into bytes the way Go's decoder does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind name, as it appears in manifests.
pub const KIND: &str = "TrustRoot";

/// Spec is the definition for a trust root. This is either a TUF root and remote or local
/// repository. You can also bring your own keys/certs here.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.sigstore.dev",
    version = "v1alpha1",
    kind = "TrustRoot",
    plural = "trustroots",
    singular = "trustroot",
    category = "all",
    category = "sigstore",
    status = "crate::api::ResourceStatus",
    derive = "PartialEq",
    doc = "TrustRoot defines the keys and certificates that are trusted for validating against.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootSpec {
    /// Remote specifies initial root of trust & remote mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
    /// Repository contains the serialized TUF remote repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    /// SigstoreKeys contains the serialized keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore_keys: Option<SigstoreKeys>,
}

/// A TUF repository reached over the network, bootstrapped from a trusted root.json.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    /// Root is the base64 encoded, json trusted initial root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Mirror is the remote mirror, for example: https://tuf-repo-cdn.sigstore.dev
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Targets is where the targets live off of the root of the Remote If not specified
    /// 'targets' is defaulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// TrustedRootTarget is the name of the target containing the JSON trusted root. If not
    /// specified, `trusted_root.json` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_target: Option<String>,
}

/// A TUF repository shipped inside the resource, for air-gapped clusters.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// Root is the base64 encoded, json trusted initial root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// MirrorFS is the base64 tarred, gzipped, and base64 encoded remote repository that can
    /// be used for example in air-gap environments. Will not make outbound network
    /// connections, and must then be kept up to date in some other manner. The repository
    /// must contain metadata as well as targets.
    #[serde(default, rename = "mirrorFS", skip_serializing_if = "Option::is_none")]
    pub mirror_fs: Option<String>,
    /// Targets is where the targets live off of the root of the Repository above. If not
    /// specified 'targets' is defaulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// TrustedRootTarget is the name of the target containing the JSON trusted root. If not
    /// specified, `trusted_root.json` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_target: Option<String>,
}

/// Bring-your-own Sigstore keys and certificates, without TUF.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreKeys {
    /// Trusted certificate authorities (e.g Fulcio).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Rekor log specifications
    #[serde(default, rename = "tLogs", skip_serializing_if = "Vec::is_empty")]
    pub t_logs: Vec<TransparencyLogInstance>,
    /// Certificate Transparency Log
    #[serde(default, rename = "ctLogs", skip_serializing_if = "Vec::is_empty")]
    pub ct_logs: Vec<TransparencyLogInstance>,
    /// Trusted timestamping authorities
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

/// A certificate authority (Fulcio) or timestamp authority and its chain.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    /// The root certificate MUST be self-signed, and so the subject and issuer are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<DistinguishedName>,
    /// The URI at which the CA can be accessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The certificate chain for this CA in PEM format, base64 encoded. Last entry in this
    /// chain is the Root certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain: Option<String>,
}

/// Subject of a CA's root certificate.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistinguishedName {
    /// Organization (O) of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Common name (CN) of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

/// A transparency log (Rekor) or certificate transparency log and its key.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLogInstance {
    /// The base URL which can be used for URLs for clients.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The hash algorithm used for the Merkle Tree
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
    /// PEM encoded public key, base64 encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The log's ID; derived from the public key when not set.
    #[serde(default, rename = "logID", skip_serializing_if = "Option::is_none")]
    pub log_id: Option<String>,
}

/// Decodes a byte field as Go's `encoding/json` does for `[]byte`: standard alphabet with
/// padding, line breaks ignored (YAML block scalars often wrap long base64).
pub fn decode_base64(field: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = field.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    STANDARD.decode(compact.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    const KEYS: &str = r#"
apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata:
  name: keys
spec:
  sigstoreKeys:
    certificateAuthorities:
    - subject: {organization: o, commonName: cn}
      uri: https://fulcio.example.com
      certChain: Y2VydA==
    tLogs:
    - baseURL: https://rekor.example.com
      hashAlgorithm: sha-256
      publicKey: a2V5
      logID: aWQ=
    ctLogs:
    - baseURL: https://ctfe.example.com
      hashAlgorithm: sha-256
      publicKey: a2V5
    timestampAuthorities:
    - subject: {organization: t, commonName: tsa}
      uri: https://tsa.example.com
      certChain: Y2VydA==
"#;

    #[test]
    fn sigstore_keys_decode_with_odd_names() -> Result<(), Box<dyn std::error::Error>> {
        let root: TrustRoot = serde_saphyr::from_str(KEYS)?;
        let keys = root.spec.sigstore_keys.as_ref().ok_or("no sigstoreKeys")?;
        assert_eq!(keys.t_logs[0].base_url.as_deref(), Some("https://rekor.example.com"));
        assert_eq!(keys.t_logs[0].log_id.as_deref(), Some("aWQ="));
        assert_eq!(keys.ct_logs.len(), 1);
        let subject = keys.timestamp_authorities[0].subject.as_ref();
        assert_eq!(subject.and_then(|s| s.common_name.as_deref()), Some("tsa"));
        let json = serde_json::to_value(&root)?;
        let keys_json = &json["spec"]["sigstoreKeys"];
        assert_eq!(keys_json["tLogs"][0]["baseURL"], "https://rekor.example.com");
        assert_eq!(keys_json["ctLogs"][0]["publicKey"], "a2V5");
        Ok(())
    }

    #[test]
    fn repository_uses_mirror_fs_name() -> Result<(), Box<dyn std::error::Error>> {
        let yaml = "metadata: {name: r}\nspec:\n  repository:\n    root: cm9vdA==\n    mirrorFS: eA==\n    targets: t\n    trustedRootTarget: tr.json\n";
        let root: TrustRoot = serde_saphyr::from_str(yaml)?;
        let repo = root.spec.repository.as_ref().ok_or("no repository")?;
        assert_eq!(repo.mirror_fs.as_deref(), Some("eA=="));
        let json = serde_json::to_value(&root)?;
        assert_eq!(json["spec"]["repository"]["mirrorFS"], "eA==");
        assert_eq!(json["spec"]["repository"]["trustedRootTarget"], "tr.json");
        Ok(())
    }

    #[test]
    fn base64_ignores_line_breaks_like_go() -> Result<(), base64::DecodeError> {
        assert_eq!(decode_base64("aGVs\nbG8=\n")?, b"hello");
        assert!(decode_base64("ROOT_JSON").is_err());
        Ok(())
    }

    #[test]
    fn crd_is_cluster_scoped_v1alpha1() {
        let crd = TrustRoot::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert!(crd.spec.versions[0].subresources.is_some());
    }
}
