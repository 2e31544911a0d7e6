//! The judgement of one key or keyless authority over the evidence gathered for it: cosign's
//! `.sig` layers, Sigstore bundles attached as referrers, `.att` attestations. The evidence
//! layer (`crate::evidence`) fetches and caches; everything here is pure, so each authority
//! rule is table-tested with fed data and no registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;

use crate::api::cip::{Authority, Identity};
use crate::policy::failure::AuthorityFailure;
use crate::policy::program::{AuthorityMatch, PolicySignature};
use crate::policy::rego::Verdict;
use crate::policy::snapshot::CompiledAuthority;
use crate::verify::bundle::{self, AttachedBundle, Timestamps};
use crate::verify::cosign::{SignatureLayer, parse_payload};
use crate::verify::dsse;
use crate::verify::keyless::{CertificateIdentity, KeylessRequirements};
use crate::verify::keys::{HashAlgorithm, PublicKey};
use crate::verify::trust::TrustRoot;

/// The predicate type of cosign v3's image signatures (a DSSE statement about the digest).
const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// How an authority checks a signature, with its keys, CAs and trust roots resolved.
pub enum Checker {
    Key {
        key: PublicKey,
        hash: HashAlgorithm,
        /// With `ctlog`: the trust root whose logs must hold the signature.
        ctlog: Option<Arc<TrustRoot>>,
        /// signet's own trust root, for bundles of a key authority without `ctlog`.
        trust: Arc<TrustRoot>,
        /// With `rfc3161timestamp`: required (the roots above carry its authorities).
        timestamps: Timestamps,
    },
    Keyless(KeylessChecker),
}

/// A keyless authority's identities, and the trust root to verify against (with the
/// policy's `ca-cert` as its certificate authorities when it has one).
pub struct KeylessChecker {
    pub trust: Arc<TrustRoot>,
    pub identities: Vec<Identity>,
    pub ignore_sct: bool,
    /// With `rfc3161timestamp`: required (`trust` carries its authorities).
    pub timestamps: Timestamps,
}

impl KeylessChecker {
    fn requirements(&self) -> KeylessRequirements<'_> {
        KeylessRequirements {
            identities: &self.identities,
            ignore_sct: self.ignore_sct,
        }
    }
}

/// A verified signature: what to say about it, and how `spec.policy` sees it.
pub type Found = (String, PolicySignature);

/// The verified signatures of one place: what to say about the first, and every one as
/// `spec.policy` sees them (policy-controller passes all that verify, so a policy can count
/// them).
pub type Matched = (String, Vec<PolicySignature>);

/// A verified in-toto statement, parsed, as JSON (what attestation policies read) and as
/// signed (the `payload` a `spec.policy` sees, as in policy-controller).
pub struct VerifiedStatement {
    statement: dsse::Statement,
    json: serde_json::Value,
    payload: Vec<u8>,
    detail: String,
    signature: PolicySignature,
}

/// Which signature formats an authority accepts (`signatureFormat`): cosign's `.sig`
/// layout, Sigstore bundles attached as referrers, or both (legacy first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureFormats {
    pub legacy: bool,
    pub bundles: bool,
}

/// What looking in places for a signature found so far: the reasons each place gave, and
/// whether any place had a signature at all (to tell "unsigned" from "signed wrongly").
#[derive(Debug, Default)]
pub struct Misses {
    reasons: Vec<String>,
    found_any: bool,
}

impl Misses {
    fn nothing(reason: String) -> Self {
        Misses {
            reasons: vec![reason],
            found_any: false,
        }
    }

    pub fn add(&mut self, other: Misses) {
        self.reasons.extend(other.reasons);
        self.found_any |= other.found_any;
    }

    pub fn into_failure(self) -> AuthorityFailure {
        if self.found_any {
            AuthorityFailure::Rejected { reasons: self.reasons }
        } else {
            AuthorityFailure::Unsigned { reasons: self.reasons }
        }
    }
}

/// One authority judged for one image digest.
pub struct Judge<'a> {
    pub authority: &'a CompiledAuthority,
    pub checker: &'a Checker,
    pub digest: &'a str,
}

impl Judge<'_> {
    fn spec(&self) -> &Authority {
        &self.authority.spec
    }

    /// An authority that names attestations is satisfied by them (signed by it, judged by
    /// their policies), not by signatures, as in policy-controller.
    pub fn wants_attestations(&self) -> bool {
        !self.authority.attestations.is_empty()
    }

    pub fn formats(&self) -> SignatureFormats {
        let format = self.spec().signature_format.as_deref().unwrap_or_default();
        SignatureFormats {
            legacy: format != "bundle",
            bundles: format != "simplesigning",
        }
    }

    /// cosign's `.sig` layers at one place (`place` describes it): every good one.
    pub fn signature_layers(&self, place: &str, layers: &[SignatureLayer]) -> Result<Matched, Misses> {
        if layers.is_empty() {
            return Err(Misses::nothing(format!("no signatures found at {place}")));
        }
        let mut reasons = Vec::new();
        let mut matched: Option<Matched> = None;
        for (index, layer) in layers.iter().enumerate() {
            match self.check_layer(layer) {
                Ok((detail, signature)) => {
                    let (_, signatures) = matched.get_or_insert_with(|| {
                        (
                            format!("signature {} at {place}: {detail}", layer.layer_digest),
                            Vec::new(),
                        )
                    });
                    signatures.push(signature);
                }
                Err(why) => reasons.push(format!("signature {} of {}: {why}", index + 1, layers.len())),
            }
        }
        matched.ok_or(Misses {
            reasons,
            found_any: true,
        })
    }

    /// Sigstore bundles referring to the image at one place: every good one.
    pub fn attached_bundles(&self, place: &str, bundles: &[AttachedBundle]) -> Result<Matched, Misses> {
        if bundles.is_empty() {
            return Err(Misses::nothing(format!("no Sigstore bundles found in {place}")));
        }
        let mut reasons = Vec::new();
        let mut matched: Option<Matched> = None;
        for attached in bundles {
            match self.check_bundle(&attached.json) {
                Ok(verified) => {
                    let signature = policy_signature(&attached.manifest_digest, verified.identity.as_ref());
                    let (_, signatures) = matched.get_or_insert_with(|| {
                        let detail = verified.describe();
                        (
                            format!("bundle {} in {place}: {detail}", attached.manifest_digest),
                            Vec::new(),
                        )
                    });
                    signatures.push(signature);
                }
                Err(why) => reasons.push(format!("bundle {}: {why}", attached.manifest_digest)),
            }
        }
        matched.ok_or(Misses {
            reasons,
            found_any: true,
        })
    }

    /// The in-toto statements about this digest that the authority verifiably signed, from
    /// cosign's `.att` layers and from attached bundles; and why the others failed.
    pub fn statements(
        &self,
        layers: &[SignatureLayer],
        bundles: &[AttachedBundle],
    ) -> (Vec<VerifiedStatement>, Vec<String>) {
        let parsed = layers
            .iter()
            .map(|layer| {
                (
                    layer.layer_digest.as_str(),
                    bundle::Bundle::from_attestation_layer(layer),
                )
            })
            .chain(
                bundles
                    .iter()
                    .map(|b| (b.manifest_digest.as_str(), bundle::Bundle::from_json(&b.json))),
            );
        let mut verified = Vec::new();
        let mut failures = Vec::new();
        for (source, parsed) in parsed {
            let outcome = parsed
                .map_err(|e| e.to_string())
                .and_then(|bundle| self.verify_statement(source, &bundle));
            match outcome {
                Ok(statement) => verified.push(statement),
                Err(why) => failures.push(format!("{source}: {why}")),
            }
        }
        (verified, failures)
    }

    /// Every `attestations[]` entry needs a verified statement of its predicate type that
    /// its policy (if any) accepts. `failures` says why other attestations did not verify.
    pub async fn attestations(
        &self,
        verified: &[VerifiedStatement],
        failures: &[String],
    ) -> Result<(String, AuthorityMatch), AuthorityFailure> {
        let mut passed = Vec::new();
        let mut matched = BTreeMap::new();
        for wanted in &self.authority.attestations {
            let candidates = verified
                .iter()
                .filter(|v| v.statement.predicate_type == wanted.predicate_type);
            let mut denials = Vec::new();
            let mut accepted = None;
            for candidate in candidates {
                match wanted.evaluate(candidate.json.clone()).await {
                    Verdict::Allow { warning } => {
                        accepted = Some((candidate, warning));
                        break;
                    }
                    Verdict::Deny { error, .. } => denials.push(error),
                }
            }
            let Some((candidate, warning)) = accepted else {
                return Err(if denials.is_empty() {
                    AuthorityFailure::AttestationMissing {
                        name: wanted.name.clone(),
                        predicate_type: wanted.predicate_type.clone(),
                        failures: failures.to_vec(),
                    }
                } else {
                    AuthorityFailure::AttestationDenied {
                        name: wanted.name.clone(),
                        denials,
                    }
                });
            };
            let warning = warning.map(|w| format!(", warning: {w}")).unwrap_or_default();
            passed.push(format!("attestation {:?} ({}{warning})", wanted.name, candidate.detail));
            matched.insert(wanted.name.clone(), vec![candidate.as_policy_entry()]);
        }
        Ok((passed.join("; "), AuthorityMatch::Attestations(matched)))
    }

    /// One signature layer: the cryptographic check of the authority's kind, then the claims
    /// every signature must make (this digest, the required annotations).
    fn check_layer(&self, layer: &SignatureLayer) -> Result<Found, String> {
        let signature = layer
            .signature
            .as_deref()
            .ok_or("the layer has no valid dev.cosignproject.cosign/signature annotation")?;
        let (detail, identity) = match self.checker {
            Checker::Key {
                key,
                hash,
                ctlog,
                trust,
                timestamps,
            } => {
                key.verify(&layer.payload, signature, *hash)
                    .map_err(|_| format!("not signed by key {} ({hash:?})", key.fingerprint()))?;
                let logged = match (ctlog, timestamps) {
                    (Some(trust), _) => format!(", {}", logged_with_key(layer, key, trust, *timestamps)?),
                    (None, Timestamps::Required) => {
                        let signer = bundle::Signer::Key {
                            key,
                            require_log: false,
                        };
                        format!(", {}", verify_signature_layer(layer, &signer, trust, *timestamps)?.log)
                    }
                    (None, Timestamps::Optional) => String::new(),
                };
                let detail = format!("verified with {} key {}{logged}", key.kind_name(), key.fingerprint());
                (detail, None)
            }
            Checker::Keyless(keyless) => {
                if layer.certificate_pem.is_none() {
                    return Err(
                        "the signature has no certificate (dev.sigstore.cosign/certificate); is it keyless?"
                            .to_string(),
                    );
                }
                if layer.bundle_json.is_none() && layer.timestamp_json.is_none() {
                    return Err(
                        "keyless signatures need a transparency log entry or a signed timestamp, and this one has neither"
                            .to_string(),
                    );
                }
                let verified = verify_signature_layer(
                    layer,
                    &bundle::Signer::Keyless(keyless.requirements()),
                    &keyless.trust,
                    keyless.timestamps,
                )?;
                (verified.describe(), verified.identity)
            }
        };
        check_claims(layer, self.digest, self.spec())?;
        Ok((detail, policy_signature(&layer.layer_digest, identity.as_ref())))
    }

    /// One attached bundle: a DSSE envelope whose in-toto statement is cosign's signature
    /// statement about this digest, verified for the authority's key or identities.
    fn check_bundle(&self, json: &[u8]) -> Result<bundle::Verified, String> {
        if !self.spec().require_annotations.is_empty() {
            return Err("requireAnnotations is checked on cosign's .sig signatures only".to_string());
        }
        let bundle = bundle::Bundle::from_json(json).map_err(|e| e.to_string())?;
        let Some(envelope) = bundle.envelope() else {
            return Err("a message-signature bundle cannot sign an image; expected a DSSE envelope".to_string());
        };
        let statement = envelope.statement().map_err(|e| e.to_string())?;
        if statement.predicate_type != COSIGN_SIGN_PREDICATE {
            return Err(format!(
                "the bundle is an attestation ({}), not a signature",
                statement.predicate_type
            ));
        }
        self.verify_bundle(&bundle)
    }

    /// Verifies one DSSE bundle for the authority and returns its statement.
    fn verify_statement(&self, source: &str, bundle: &bundle::Bundle) -> Result<VerifiedStatement, String> {
        let Some(envelope) = bundle.envelope() else {
            return Err("not a DSSE envelope".to_string());
        };
        let verified = self.verify_bundle(bundle)?;
        let statement = envelope.statement().map_err(|e| e.to_string())?;
        let json = serde_json::from_slice(&envelope.payload).map_err(|e| format!("the statement: {e}"))?;
        Ok(VerifiedStatement {
            statement,
            json,
            payload: envelope.payload.clone(),
            detail: format!("{source}: {}", verified.describe()),
            signature: policy_signature(source, verified.identity.as_ref()),
        })
    }

    /// Verifies `bundle` for this image digest, signed as the authority requires.
    fn verify_bundle(&self, bundle: &bundle::Bundle) -> Result<bundle::Verified, String> {
        let digest = bundle::sha256_digest_bytes(self.digest)
            .ok_or_else(|| format!("{} is not a sha256 digest", self.digest))?;
        let artifact = bundle::Artifact::Sha256(digest);
        match self.checker {
            Checker::Key {
                key,
                ctlog,
                trust,
                timestamps,
                ..
            } => {
                let signer = bundle::Signer::Key {
                    key,
                    require_log: ctlog.is_some(),
                };
                bundle::verify(bundle, &artifact, &signer, ctlog.as_ref().unwrap_or(trust), *timestamps)
            }
            Checker::Keyless(keyless) => {
                let signer = bundle::Signer::Keyless(keyless.requirements());
                bundle::verify(bundle, &artifact, &signer, &keyless.trust, keyless.timestamps)
            }
        }
        .map_err(|e| e.to_string())
    }
}

impl VerifiedStatement {
    /// How `spec.policy` sees an accepted attestation: the signature plus its predicate type
    /// and signed payload.
    fn as_policy_entry(&self) -> serde_json::Value {
        let mut entry = serde_json::to_value(&self.signature).unwrap_or_default();
        entry["predicateType"] = self.statement.predicate_type.clone().into();
        entry["payload"] = base64::engine::general_purpose::STANDARD.encode(&self.payload).into();
        entry
    }
}

/// With `ctlog`, a keyed signature must be in the transparency log, under this key.
fn logged_with_key(
    layer: &SignatureLayer,
    key: &PublicKey,
    trust: &TrustRoot,
    timestamps: Timestamps,
) -> Result<String, String> {
    if layer.bundle_json.is_none() {
        return Err(
            "the policy requires a transparency log entry (ctlog) but the signature has no Rekor bundle".to_string(),
        );
    }
    let signer = bundle::Signer::Key { key, require_log: true };
    Ok(verify_signature_layer(layer, &signer, trust, timestamps)?.log)
}

/// A `.sig` layer verified as the v0.1 bundle it amounts to, over its payload.
fn verify_signature_layer(
    layer: &SignatureLayer,
    signer: &bundle::Signer,
    trust: &TrustRoot,
    timestamps: Timestamps,
) -> Result<bundle::Verified, String> {
    let bundle = bundle::Bundle::from_signature_layer(layer).map_err(|e| e.to_string())?;
    bundle::verify(
        &bundle,
        &bundle::Artifact::Bytes(&layer.payload),
        signer,
        trust,
        timestamps,
    )
    .map_err(|e| e.to_string())
}

/// policy-controller's view of a verified signature: its id (the layer or referrer digest)
/// and, for certificates, the first subject, the issuer and the GitHub workflow extensions.
fn policy_signature(id: &str, identity: Option<&CertificateIdentity>) -> PolicySignature {
    PolicySignature {
        id: id.trim_start_matches("sha256:").to_string(),
        subject: identity.and_then(|i| i.subjects.first().cloned()).unwrap_or_default(),
        issuer: identity.map(|i| i.issuer.clone()).unwrap_or_default(),
        github: identity.map(|i| i.github.clone()).unwrap_or_default(),
    }
}

/// The payload must be about `digest` and carry the annotations the policy requires.
fn check_claims(layer: &SignatureLayer, digest: &str, authority: &Authority) -> Result<(), String> {
    let claims = parse_payload(&layer.payload)?;
    if claims.docker_manifest_digest != digest {
        return Err(format!(
            "the signed payload is for {}, not {digest}",
            claims.docker_manifest_digest
        ));
    }
    for (name, value) in &authority.require_annotations {
        match claims.annotations.get(name) {
            Some(found) if found == value => {}
            Some(found) => {
                return Err(format!(
                    "annotation {name:?} is {found:?}, the policy requires {value:?}"
                ));
            }
            None => {
                return Err(format!("annotation {name:?} is missing, the policy requires {value:?}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Every rule of a key authority, judged over fed `.sig` layers, bundles and attestations:
    //! no registry, no signing tools. Signatures are made here with a fixed P-256 key.
    use super::*;
    use crate::policy::snapshot::PolicySnapshot;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const PLACE: &str = "registry.example/app:sha256-1111.sig";

    fn signing_key(seed: u8) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn public_pem(seed: u8) -> String {
        let der = signing_key(seed).verifying_key().to_public_key_der().unwrap();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_bytes().to_vec()))
    }

    fn sign(seed: u8, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = signing_key(seed)
            .sign_prehash(&<sha2::Sha256 as sha2::Digest>::digest(message))
            .unwrap();
        signature.to_der().as_bytes().to_vec()
    }

    fn payload(digest: &str, annotations: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"registry.example/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{{annotations}}}}}"#
        )
        .into_bytes()
    }

    /// A `.sig` layer over `payload`, signed by the key of `seed` (none: no signature).
    fn layer(seed: Option<u8>, payload: Vec<u8>) -> SignatureLayer {
        let signature = seed.map(|seed| sign(seed, &payload));
        SignatureLayer {
            layer_digest: "sha256:aaaa".into(),
            payload,
            signature_b64: String::new(),
            signature,
            certificate_pem: None,
            chain_pem: None,
            bundle_json: None,
            timestamp_json: None,
        }
    }

    /// A `cosign attest` layer: a DSSE envelope over an in-toto statement about `digest`.
    fn attestation(seed: u8, predicate_type: &str, predicate: &str) -> SignatureLayer {
        use base64::engine::general_purpose::STANDARD;
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"app","digest":{{"sha256":"{}"}}}}],"predicateType":"{predicate_type}","predicate":{predicate}}}"#,
            &DIGEST[7..]
        );
        let envelope = dsse::Envelope {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: statement.into_bytes(),
            signatures: Vec::new(),
        };
        let signature = sign(seed, &envelope.pae());
        let json = serde_json::json!({
            "payloadType": envelope.payload_type,
            "payload": STANDARD.encode(&envelope.payload),
            "signatures": [{"sig": STANDARD.encode(signature)}],
        });
        SignatureLayer {
            layer_digest: "sha256:bbbb".into(),
            payload: json.to_string().into_bytes(),
            signature: None,
            signature_b64: String::new(),
            certificate_pem: None,
            chain_pem: None,
            bundle_json: None,
            timestamp_json: None,
        }
    }

    /// The first authority of a policy with `authority` (YAML lines under `authorities:`).
    fn authority(extra: &str) -> CompiledAuthority {
        let key = public_pem(1).replace('\n', "\n          ");
        let yaml = format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: p\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - name: a\n    key:\n      data: |\n          {key}\n{extra}"
        );
        PolicySnapshot::from_yaml(&[&yaml]).policies[0].authorities[0].clone()
    }

    fn key_checker(ctlog: bool, timestamps: Timestamps) -> Checker {
        let trust = Arc::new(TrustRoot::public_good().unwrap());
        Checker::Key {
            key: PublicKey::from_pem(&public_pem(1)).unwrap(),
            hash: HashAlgorithm::Sha256,
            ctlog: ctlog.then(|| trust.clone()),
            trust,
            timestamps,
        }
    }

    fn judge_layers(extra: &str, layers: &[SignatureLayer]) -> Result<Matched, AuthorityFailure> {
        let authority = authority(extra);
        let timestamps = if extra.contains("rfc3161timestamp") {
            Timestamps::Required
        } else {
            Timestamps::Optional
        };
        let checker = key_checker(extra.contains("ctlog"), timestamps);
        let judge = Judge {
            authority: &authority,
            checker: &checker,
            digest: DIGEST,
        };
        judge.signature_layers(PLACE, layers).map_err(Misses::into_failure)
    }

    #[test]
    fn sig_layers_of_a_key_authority() {
        let annotated = "    requireAnnotations:\n      env: prod\n";
        let ctlog = "    ctlog:\n      url: https://rekor.sigstore.dev\n";
        // (case, authority lines, layers, expected: Ok(detail part) or Err((label, message part)))
        type Expected<'a> = Result<&'a str, (&'a str, &'a str)>;
        let cases: Vec<(&str, &str, Vec<SignatureLayer>, Expected)> = vec![
            (
                "signed by the key",
                "",
                vec![layer(Some(1), payload(DIGEST, ""))],
                Ok("verified with ECDSA P-256 key"),
            ),
            (
                "no layers",
                "",
                vec![],
                Err(("unsigned", "no signatures found at registry.example/app")),
            ),
            (
                "another key",
                "",
                vec![layer(Some(2), payload(DIGEST, ""))],
                Err(("signature_rejected", "signature 1 of 1: not signed by key")),
            ),
            (
                "no signature annotation",
                "",
                vec![layer(None, payload(DIGEST, ""))],
                Err(("signature_rejected", "no valid dev.cosignproject.cosign/signature")),
            ),
            (
                "payload about another digest",
                "",
                vec![layer(Some(1), payload(OTHER_DIGEST, ""))],
                Err((
                    "signature_rejected",
                    &*format!("the signed payload is for {OTHER_DIGEST}, not {DIGEST}").leak(),
                )),
            ),
            (
                "not a cosign payload",
                "",
                vec![layer(Some(1), b"{}".to_vec())],
                Err(("signature_rejected", "payload has no \"critical\" section")),
            ),
            (
                "rfc3161timestamp and no timestamp",
                "    rfc3161timestamp: {}\n",
                vec![layer(Some(1), payload(DIGEST, ""))],
                Err((
                    "signature_rejected",
                    "requires an RFC 3161 timestamp (rfc3161timestamp)",
                )),
            ),
            (
                "annotation present",
                annotated,
                vec![layer(Some(1), payload(DIGEST, r#""env":"prod""#))],
                Ok("verified with"),
            ),
            (
                "annotation missing",
                annotated,
                vec![layer(Some(1), payload(DIGEST, ""))],
                Err((
                    "signature_rejected",
                    "annotation \"env\" is missing, the policy requires \"prod\"",
                )),
            ),
            (
                "annotation differs",
                annotated,
                vec![layer(Some(1), payload(DIGEST, r#""env":"dev""#))],
                Err((
                    "signature_rejected",
                    "annotation \"env\" is \"dev\", the policy requires \"prod\"",
                )),
            ),
            (
                "ctlog without a Rekor bundle",
                ctlog,
                vec![layer(Some(1), payload(DIGEST, ""))],
                Err(("signature_rejected", "requires a transparency log entry (ctlog)")),
            ),
            (
                "second layer good",
                "",
                vec![layer(Some(2), payload(DIGEST, "")), layer(Some(1), payload(DIGEST, ""))],
                Ok("verified with ECDSA P-256 key"),
            ),
        ];
        for (case, extra, layers, expected) in cases {
            let judged = judge_layers(extra, &layers);
            match (judged, expected) {
                (Ok((detail, signatures)), Ok(part)) => {
                    assert!(detail.contains(part), "{case}: {detail}");
                    assert!(detail.contains(PLACE), "{case}: {detail}");
                    assert_eq!(signatures[0].id, "aaaa", "{case}");
                }
                (Err(failure), Err((label, part))) => {
                    assert_eq!(failure.metric_label(), label, "{case}: {failure}");
                    assert!(failure.to_string().contains(part), "{case}: {failure}");
                    assert!(failure.is_definitive(), "{case}");
                }
                (judged, expected) => panic!("{case}: got {judged:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn signature_formats() {
        let authority_of = |format: &str| authority(&format!("    signatureFormat: {format}\n"));
        let checker = key_checker(false, Timestamps::Optional);
        for (format, legacy, bundles) in [("simplesigning", true, false), ("bundle", false, true)] {
            let authority = authority_of(format);
            let judge = Judge {
                authority: &authority,
                checker: &checker,
                digest: DIGEST,
            };
            assert_eq!(judge.formats(), SignatureFormats { legacy, bundles }, "{format}");
        }
        let authority = authority("");
        let judge = Judge {
            authority: &authority,
            checker: &checker,
            digest: DIGEST,
        };
        let both = SignatureFormats {
            legacy: true,
            bundles: true,
        };
        assert_eq!(judge.formats(), both);
    }

    #[test]
    fn attached_bundles_are_judged_one_by_one() {
        let authority = authority("");
        let checker = key_checker(false, Timestamps::Optional);
        let judge = Judge {
            authority: &authority,
            checker: &checker,
            digest: DIGEST,
        };
        let unsigned = judge
            .attached_bundles("r/app referrers", &[])
            .unwrap_err()
            .into_failure();
        assert_eq!(unsigned.to_string(), "no Sigstore bundles found in r/app referrers");
        let garbage = AttachedBundle {
            manifest_digest: "sha256:cccc".into(),
            json: b"not json".to_vec(),
        };
        let rejected = judge
            .attached_bundles("r/app referrers", &[garbage])
            .unwrap_err()
            .into_failure();
        assert_eq!(rejected.metric_label(), "signature_rejected");
        assert!(rejected.to_string().starts_with("bundle sha256:cccc: "), "{rejected}");
    }

    #[test]
    fn unsigned_only_when_no_place_had_a_signature() {
        let mut misses = Misses::nothing("no signatures found at a".into());
        misses.add(Misses::nothing("no Sigstore bundles found in a".into()));
        let mut both = Misses::nothing("no signatures found at b".into());
        both.add(Misses {
            reasons: vec!["signature 1 of 1: not signed by key".into()],
            found_any: true,
        });
        assert_eq!(misses.into_failure().metric_label(), "unsigned");
        let rejected = both.into_failure();
        assert_eq!(rejected.metric_label(), "signature_rejected");
        assert_eq!(
            rejected.to_string(),
            "no signatures found at b; signature 1 of 1: not signed by key"
        );
    }

    #[tokio::test]
    async fn attestations_by_predicate_type_and_policy() {
        let wanted = "    attestations:\n    - name: vuln\n      predicateType: vuln\n      policy:\n        type: rego\n        data: |\n          package sigstore\n          default isCompliant = false\n          isCompliant { input.predicate.scanner == \"trivy\" }\n";
        let authority = authority(wanted);
        let checker = key_checker(false, Timestamps::Optional);
        let judge = Judge {
            authority: &authority,
            checker: &checker,
            digest: DIGEST,
        };
        assert!(judge.wants_attestations());
        let vuln = "https://cosign.sigstore.dev/attestation/vuln/v1";
        let cases: Vec<(&str, Vec<SignatureLayer>, Result<&str, &str>)> = vec![
            (
                "accepted",
                vec![attestation(1, vuln, r#"{"scanner":"trivy"}"#)],
                Ok("attestation \"vuln\" (sha256:bbbb: key"),
            ),
            (
                "denied by its policy",
                vec![attestation(1, vuln, r#"{"scanner":"other"}"#)],
                Err("attestation_denied"),
            ),
            (
                "another predicate type",
                vec![attestation(1, "https://slsa.dev/provenance/v1", "{}")],
                Err("attestation_missing"),
            ),
            (
                "signed by another key",
                vec![attestation(2, vuln, r#"{"scanner":"trivy"}"#)],
                Err("attestation_missing"),
            ),
            (
                "one denied, one accepted",
                vec![
                    attestation(1, vuln, r#"{"scanner":"other"}"#),
                    attestation(1, vuln, r#"{"scanner":"trivy"}"#),
                ],
                Ok("attestation \"vuln\""),
            ),
            ("none", vec![], Err("attestation_missing")),
        ];
        for (case, layers, expected) in cases {
            let (verified, failures) = judge.statements(&layers, &[]);
            let judged = judge.attestations(&verified, &failures).await;
            match (judged, expected) {
                (Ok((detail, AuthorityMatch::Attestations(matched))), Ok(part)) => {
                    assert!(detail.contains(part), "{case}: {detail}");
                    assert_eq!(matched["vuln"][0]["predicateType"], vuln, "{case}");
                }
                (Err(failure), Err(label)) => assert_eq!(failure.metric_label(), label, "{case}: {failure}"),
                (judged, expected) => panic!("{case}: got {judged:?}, expected {expected:?}"),
            }
        }
        let (verified, failures) = judge.statements(&[attestation(2, vuln, "{}")], &[]);
        let failure = judge.attestations(&verified, &failures).await.unwrap_err();
        assert!(
            failure.to_string().contains("(sha256:bbbb: the bundle does not verify"),
            "why the attestation did not count is kept: {failure}"
        );
    }
}
