//! `ClusterImagePolicy` (`policy.sigstore.dev`), field for field as policy-controller defines it.
//!
//! policy-controller serves `v1alpha1` and `v1beta1` with the same schema, so the spec is
//! written once and [`cluster_image_policy_version!`] stamps out one thin module per version
//! (kube's derive makes exactly one CRD version per Rust type). Everything else in signet works
//! on the `v1beta1` (storage) types, re-exported here as [`ClusterImagePolicy`] and
//! [`ClusterImagePolicySpec`].
//!
//! Every field is optional or defaulted, as in policy-controller's CRD (which has no `required`
//! lists): the API server accepts anything shaped right and `crate::policy::validate` reports
//! what is missing with a field path, the way policy-controller's webhook does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, SecretReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group shared by every signet / policy-controller resource.
pub const GROUP: &str = "policy.sigstore.dev";
/// The kind name, as it appears in manifests.
pub const KIND: &str = "ClusterImagePolicy";

/// One image pattern the policy applies to.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePattern {
    /// Glob defines a globbing pattern.
    #[serde(default)]
    pub glob: String,
}

/// The authorities block defines the rules for discovering and validating signatures.
/// Signatures are cryptographically verified using one of the "key" or "keyless" fields.
/// When multiple authorities are specified, any of them may be used to source the valid
/// signature we are looking for to admit an image.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// Name is the name for this authority. Used by the CIP Policy validator to be able to
    /// reference matching signature or attestation verifications. If not specified, the name
    /// will be authority-<index in array>
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key defines the type of key to validate the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyRef>,
    /// Keyless sets the configuration to verify the authority against a Fulcio instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessRef>,
    /// Static specifies that signatures / attestations are not validated but instead a static
    /// policy is applied against matching images.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_: Option<StaticRef>,
    /// Sources sets the configuration to specify the sources from where to consume the
    /// signatures.
    #[serde(default, rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// CTLog sets the configuration to verify the authority against a Rekor instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<TLog>,
    /// Attestations is a list of individual attestations for this authority, once the
    /// signature for this authority has been verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// RFC3161Timestamp sets the configuration to verify the signature timestamp against a
    /// RFC3161 time-stamping instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc3161timestamp: Option<Rfc3161Timestamp>,
    /// SignatureFormat specifies the format the authority expects. Supported formats are
    /// "simplesigning" and "bundle". If not specified, the default is "simplesigning"
    /// (cosign's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
    /// signet extension: annotations a signature must carry in its payload (`cosign sign
    /// -a key=value`), all of them with exactly these values. Ignored by policy-controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub require_annotations: BTreeMap<String, String>,
}

/// A public verification key: inline, in a Secret, or in a KMS. Exactly one of them.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// SecretRef sets a reference to a secret with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Data contains the inline public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// KMS contains the KMS url of the public key Supported formats differ based on the KMS
    /// system used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    /// HashAlgorithm always defaults to sha256 if the algorithm hasn't been explicitly set
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
}

/// A policy applied to matching images without looking at any signature.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticRef {
    /// Action defines how to handle a matching policy.
    #[serde(default)]
    pub action: String,
    /// For fail actions, emit an optional custom message
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where to look for signatures when they are not stored next to the image.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// OCI defines the registry from where to pull the signature / attestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// SignaturePullSecrets is an optional list of references to secrets in the same namespace
    /// as the deploying resource for pulling any of the signatures used by this Source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_pull_secrets: Vec<LocalObjectReference>,
    /// TagPrefix is an optional prefix that signature and attestations have. This is the 'tag
    /// based discovery' and in the future once references are fully supported that should
    /// likely be the preferred way to handle these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
}

/// The transparency log (Rekor) holding the signature and public key information.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TLog {
    /// URL sets the url to the rekor instance (by default the public rekor.sigstore.dev)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Use the Public Key from the referred TrustRoot.TLog
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

/// Where the RFC 3161 timestamp authority's certificate chain comes from.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rfc3161Timestamp {
    /// Use the Certificate Chain from the referred TrustRoot.TimeStampAuthorities
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

/// Keyless (Fulcio certificate) verification: where the CA comes from and which identities
/// are accepted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessRef {
    /// URL defines a url to the keyless instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Identities sets a list of identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<Identity>,
    /// CACert sets a reference to CA certificate
    #[serde(default, rename = "ca-cert", skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<KeyRef>,
    /// Use the Certificate Chain from the referred TrustRoot.CertificateAuthorities and
    /// TrustRoot.CTLog
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
    /// InsecureIgnoreSCT omits verifying if a certificate contains an embedded SCT
    #[serde(default, rename = "insecureIgnoreSCT", skip_serializing_if = "Option::is_none")]
    pub insecure_ignore_sct: Option<bool>,
}

/// An accepted signer identity. Issuer/Subject use a strict match, while IssuerRegExp and
/// SubjectRegExp apply a regexp for matching.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Issuer defines the issuer for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Subject defines the subject for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// IssuerRegExp specifies a regular expression to match the issuer for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// SubjectRegExp specifies a regular expression to match the subject for this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
    /// signet extension (policy-controller ignores it): Fulcio certificate extensions that
    /// must equal these values, by name (`sourceRepositoryURI`, `sourceRepositoryRef`,
    /// `runnerEnvironment`, `buildSignerURI`, ...). A certificate without the extension fails.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificate_extensions: BTreeMap<String, String>,
    /// signet extension (policy-controller ignores it): Fulcio certificate extensions that
    /// must match these regular expressions (unanchored, like subjectRegExp), by name.
    #[serde(
        default,
        rename = "certificateExtensionsRegExp",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub certificate_extensions_reg_exp: BTreeMap<String, String>,
}

/// An attestation type to verify and, optionally, a policy its predicate must satisfy.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Name of the attestation. These can then be referenced at the CIP level policy.
    #[serde(default)]
    pub name: String,
    /// PredicateType defines which predicate type to verify. Matches cosign
    /// verify-attestation options.
    #[serde(default)]
    pub predicate_type: String,
    /// Policy defines all of the matching signatures, and all of the matching attestations
    /// (whose attestations are verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// A CUE or Rego policy, applied to an attestation or (at `spec.policy`) to the results of
/// all authorities. Exactly one of data, remote or configMapRef gives its source.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Which kind of policy this is, currently only rego or cue are supported. Furthermore,
    /// only cue is tested :)
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Data contains the policy definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Remote defines the url to a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemotePolicy>,
    /// ConfigMapRef defines the reference to a configMap with the policy definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapReference>,
    /// FetchConfigFile controls whether ConfigFile will be fetched and made available for CIP
    /// level policy evaluation. Note that this only gets evaluated (and hence fetched) iff at
    /// least one authority matches. The ConfigFile will then be available in this format:
    /// https://github.com/opencontainers/image-spec/blob/main/config.md
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_config_file: Option<bool>,
    /// IncludeSpec controls whether resource `Spec` will be included and made available for
    /// CIP level policy evaluation. Note that this only gets evaluated iff at least one
    /// authority matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_spec: Option<bool>,
    /// IncludeObjectMeta controls whether the ObjectMeta will be included and made available
    /// for CIP level policy evalutation. Note that this only gets evaluated iff at least one
    /// authority matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_object_meta: Option<bool>,
    /// IncludeTypeMeta controls whether the TypeMeta will be included and made available for
    /// CIP level policy evalutation. Note that this only gets evaluated iff at least one
    /// authority matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_type_meta: Option<bool>,
}

/// A policy fetched over HTTPS, pinned by the digest of the response body.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemotePolicy {
    /// URL to the policy data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Sha256sum defines the exact sha256sum computed out of the 'body' of the http response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256sum: Option<String>,
}

/// A key inside a ConfigMap that holds a policy.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReference {
    /// Name is unique within a namespace to reference a configmap resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace defines the space within which the configmap name must be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key defines the key to pull from the configmap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Restricts the policy to some workload kinds and, optionally, to objects with some labels.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchResource {
    /// API group of the resource ("" for the core group, "apps", "batch").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version of the resource, e.g. "v1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Plural resource name, e.g. "pods" or "deployments".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only objects whose labels match this selector are checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Stamps out one served version of the CRD around the shared spec fields, because kube's
/// derive attaches exactly one version to a Rust type.
macro_rules! cluster_image_policy_version {
    ($module:ident, $version:tt) => {
        #[doc = concat!("`policy.sigstore.dev/", $version, "` ClusterImagePolicy.")]
        pub mod $module {
            use super::{Authority, ImagePattern, MatchResource, Policy};
            use kube::CustomResource;
            use schemars::JsonSchema;
            use serde::{Deserialize, Serialize};

            /// ClusterImagePolicySpec defines a list of images that should be verified
            #[derive(
                CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema,
            )]
            #[kube(
                group = "policy.sigstore.dev",
                version = $version,
                kind = "ClusterImagePolicy",
                plural = "clusterimagepolicies",
                singular = "clusterimagepolicy",
                shortname = "cip",
                category = "all",
                category = "sigstore",
                status = "crate::api::ResourceStatus",
                derive = "PartialEq",
                doc = "ClusterImagePolicy defines the images that go through verification and the authorities used for verification",
                printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
                printcolumn(
                    name = "Ready",
                    type_ = "string",
                    json_path = ".status.conditions[?(@.type==\"Ready\")].status"
                ),
                printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
            )]
            #[serde(rename_all = "camelCase")]
            pub struct ClusterImagePolicySpec {
                /// Images defines the patterns of image names that should be subject to this
                /// policy.
                #[serde(default)]
                pub images: Vec<ImagePattern>,
                /// Authorities defines the rules for discovering and validating signatures.
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                pub authorities: Vec<Authority>,
                /// Policy is an optional policy that can be applied against all the
                /// successfully validated Authorities. If no authorities pass, this does not
                /// even get evaluated, as the Policy is considered failed.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub policy: Option<Policy>,
                /// Mode controls whether a failing policy will be rejected (not admitted), or
                /// if errors are converted to Warnings. enforce - Reject (default) warn - allow
                /// but warn
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub mode: Option<String>,
                /// Match allows selecting resources based on their properties.
                #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
                pub match_: Vec<MatchResource>,
            }
        }
    };
}

cluster_image_policy_version!(v1alpha1, "v1alpha1");
cluster_image_policy_version!(v1beta1, "v1beta1");

/// The storage version; what the rest of signet works with.
pub type ClusterImagePolicy = v1beta1::ClusterImagePolicy;
/// The storage version's spec.
pub type ClusterImagePolicySpec = v1beta1::ClusterImagePolicySpec;

/// The two versions have the same schema, so conversion only relabels the object (the CRD
/// uses conversion strategy `None` for the same reason).
impl From<v1alpha1::ClusterImagePolicy> for v1beta1::ClusterImagePolicy {
    fn from(old: v1alpha1::ClusterImagePolicy) -> Self {
        let spec = old.spec;
        v1beta1::ClusterImagePolicy {
            metadata: old.metadata,
            spec: v1beta1::ClusterImagePolicySpec {
                images: spec.images,
                authorities: spec.authorities,
                policy: spec.policy,
                mode: spec.mode,
                match_: spec.match_,
            },
            status: old.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use kube::Resource;

    const FULL: &str = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: full
spec:
  mode: warn
  images:
  - glob: "ghcr.io/example/**"
  match:
  - group: apps
    version: v1
    resource: deployments
    selector:
      matchLabels:
        team: a
  authorities:
  - name: keyed
    signatureFormat: bundle
    key:
      kms: gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k
      hashAlgorithm: sha384
      secretRef:
        name: s
        namespace: ns
    source:
    - oci: registry.example.com/sigs
      tagPrefix: pre
      signaturePullSecrets:
      - name: pull
    ctlog:
      url: https://rekor.example.com
      trustRootRef: tr
    rfc3161timestamp:
      trustRootRef: tsa
    attestations:
    - name: sbom
      predicateType: spdxjson
      policy:
        type: rego
        remote:
          url: https://example.com/p.rego
          sha256sum: 291534e501184200a3933969277403acf50582fbe73509571a5b73017e49a957
  - keyless:
      url: https://fulcio.example.com
      trustRootRef: tr
      insecureIgnoreSCT: true
      ca-cert:
        data: pem
      identities:
      - issuer: https://issuer
        subjectRegExp: ".*"
  - static:
      action: fail
      message: nope
  policy:
    type: cue
    fetchConfigFile: true
    includeSpec: true
    includeObjectMeta: true
    includeTypeMeta: true
    configMapRef:
      name: cm
      namespace: ns
      key: policy
"#;

    #[test]
    fn every_policy_controller_field_decodes() -> Result<(), serde_saphyr::Error> {
        let cip: ClusterImagePolicy = serde_saphyr::from_str(FULL)?;
        let spec = &cip.spec;
        assert_eq!(spec.mode.as_deref(), Some("warn"));
        assert_eq!(spec.match_[0].resource.as_deref(), Some("deployments"));
        let keyed = &spec.authorities[0];
        assert_eq!(keyed.signature_format.as_deref(), Some("bundle"));
        let key = keyed.key.as_ref().map(|k| k.hash_algorithm.as_deref());
        assert_eq!(key, Some(Some("sha384")));
        assert_eq!(keyed.sources[0].tag_prefix.as_deref(), Some("pre"));
        assert_eq!(keyed.sources[0].signature_pull_secrets[0].name, "pull");
        let tsa = keyed.rfc3161timestamp.as_ref();
        assert_eq!(tsa.and_then(|t| t.trust_root_ref.as_deref()), Some("tsa"));
        let policy = keyed.attestations[0].policy.as_ref();
        let sum = policy.and_then(|p| p.remote.as_ref()?.sha256sum.as_deref());
        assert_eq!(sum.map(str::len), Some(64));
        let keyless = spec.authorities[1].keyless.as_ref();
        assert_eq!(keyless.and_then(|k| k.insecure_ignore_sct), Some(true));
        assert!(keyless.and_then(|k| k.ca_cert.as_ref()).is_some());
        let fixed = spec.authorities[2].static_.as_ref();
        assert_eq!(fixed.and_then(|s| s.message.as_deref()), Some("nope"));
        let top = spec.policy.as_ref();
        assert_eq!(top.and_then(|p| p.include_type_meta), Some(true));
        let cm = top.and_then(|p| p.config_map_ref.as_ref());
        assert_eq!(cm.and_then(|c| c.key.as_deref()), Some("policy"));
        Ok(())
    }

    #[test]
    fn round_trips_with_the_odd_field_names() -> Result<(), Box<dyn std::error::Error>> {
        let cip: ClusterImagePolicy = serde_saphyr::from_str(FULL)?;
        let json = serde_json::to_value(&cip)?;
        let authority = &json["spec"]["authorities"];
        assert!(authority[0]["source"].is_array());
        assert!(authority[0]["rfc3161timestamp"].is_object());
        assert!(authority[1]["keyless"]["ca-cert"].is_object());
        assert_eq!(authority[1]["keyless"]["insecureIgnoreSCT"], true);
        assert!(authority[2]["static"].is_object());
        assert!(json["spec"]["match"].is_array());
        assert_eq!(json["apiVersion"], "policy.sigstore.dev/v1beta1");
        let again: ClusterImagePolicy = serde_json::from_value(json)?;
        assert_eq!(again, cip);
        Ok(())
    }

    #[test]
    fn unknown_fields_are_ignored() -> Result<(), serde_saphyr::Error> {
        let yaml = "metadata: {name: x}\nspec:\n  images: [{glob: '*', future: 1}]\n  novel: true\n";
        let cip: ClusterImagePolicy = serde_saphyr::from_str(yaml)?;
        assert_eq!(cip.spec.images[0].glob, "*");
        Ok(())
    }

    #[test]
    fn optional_fields_are_not_serialised() -> Result<(), serde_json::Error> {
        let cip = ClusterImagePolicy::new("p", ClusterImagePolicySpec::default());
        let json = serde_json::to_value(&cip)?;
        assert_eq!(json["spec"], serde_json::json!({"images": []}));
        Ok(())
    }

    #[test]
    fn both_versions_are_cluster_scoped_with_short_name() {
        for crd in [v1alpha1::ClusterImagePolicy::crd(), ClusterImagePolicy::crd()] {
            assert_eq!(crd.spec.scope, "Cluster");
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.names.kind, KIND);
            assert_eq!(crd.spec.names.short_names, Some(vec!["cip".to_string()]));
        }
        assert_eq!(v1alpha1::ClusterImagePolicy::version(&()), "v1alpha1");
        assert_eq!(ClusterImagePolicy::version(&()), "v1beta1");
    }

    #[test]
    fn v1alpha1_converts_unchanged() -> Result<(), serde_saphyr::Error> {
        let old: v1alpha1::ClusterImagePolicy = serde_saphyr::from_str(FULL)?;
        let new: ClusterImagePolicy = old.into();
        let direct: ClusterImagePolicy = serde_saphyr::from_str(FULL)?;
        assert_eq!(new, direct);
        Ok(())
    }
}
