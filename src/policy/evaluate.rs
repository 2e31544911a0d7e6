//! Admission decisions: which policies apply to each image, what their authorities say, and
//! what the answer is. Every matching policy must pass (AND); inside a policy one passing
//! authority is enough (OR). All I/O goes through the [`Verifier`] trait, so this module is
//! table-tested without a network.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use futures::future::{BoxFuture, join_all};
use futures::stream::{self, StreamExt};

use super::failure::AuthorityFailure;
use super::program::{AuthorityMatch, cip_policy_input};
use super::reference::ImageRef;
use super::rego::Verdict;
use super::snapshot::{AuthorityKind, CompiledAuthority, CompiledPolicy, Mode, PolicySnapshot};
use crate::api::trustroot::TrustRootSpec;
use crate::policy::image::ContainerImage;

/// What to do with an image no policy matches (`--no-match-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoMatchPolicy {
    Allow,
    #[default]
    Deny,
    Warn,
}

/// Who asks, for credentials and messages.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    pub image_pull_secrets: Vec<String>,
}

/// The resource under review, for `spec.match`.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub labels: BTreeMap<String, String>,
    /// The object under review, for a `spec.policy` with `includeSpec`, `includeObjectMeta`
    /// or `includeTypeMeta`.
    pub object: Option<Arc<serde_json::Value>>,
}

/// One authority of one policy to check against one image digest.
pub struct AuthorityCheck<'a> {
    /// The snapshot's `TrustRoot` resources, for `trustRootRef`.
    pub trust_roots: &'a BTreeMap<String, TrustRootSpec>,
    pub image: &'a ImageRef,
    pub digest: &'a str,
    pub policy: &'a CompiledPolicy,
    pub authority: &'a CompiledAuthority,
    pub context: &'a RequestContext,
}

/// The I/O side of admission: registries and signature verification.
pub trait Verifier: Send + Sync {
    /// The digest a tag points to now; `Err` says why it cannot be known.
    fn resolve_digest<'a>(
        &'a self,
        image: &'a ImageRef,
        context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<String, String>>;

    /// Checks a key or keyless authority: `Ok` says what was verified, and how a CIP-level
    /// `spec.policy` sees it (`authorityMatches.NAME`: its signatures, or its attestations by
    /// name); `Err` says why not.
    fn verify<'a>(
        &'a self,
        check: AuthorityCheck<'a>,
    ) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>>;

    /// The config files of image `digest` by platform (`linux/amd64`: the OCI config), for a
    /// `spec.policy` with `fetchConfigFile`.
    fn config_files<'a>(
        &'a self,
        image: &'a ImageRef,
        _digest: &'a str,
        _context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move { Err(format!("the config files of {image} cannot be read here")) })
    }
}

/// One authority's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityResult {
    pub authority: String,
    pub outcome: Result<String, AuthorityFailure>,
    /// True for key/keyless authorities, whose pass means the digest was verified.
    pub verifying: bool,
    /// What a passing key/keyless authority verified, for `spec.policy`.
    pub matched: Option<AuthorityMatch>,
}

/// One policy's result for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult {
    pub policy: String,
    pub mode: Mode,
    pub authorities: Vec<AuthorityResult>,
    /// Why the policy-level `spec.policy` did not pass, when it did not.
    pub policy_error: Option<String>,
    /// The `spec.policy`'s own warning, when it gave one.
    pub policy_warning: Option<String>,
}

impl PolicyResult {
    pub fn passed(&self) -> bool {
        self.policy_error.is_none() && self.authorities.iter().any(|a| a.outcome.is_ok())
    }

    /// A metric label for why the policy failed (`None` when it passed): its `spec.policy`,
    /// else the reason of its first failing authority.
    pub fn failure_label(&self) -> Option<&'static str> {
        if self.passed() {
            return None;
        }
        if self.policy_error.is_some() {
            return Some("spec_policy");
        }
        self.authorities
            .iter()
            .find_map(|a| a.outcome.as_ref().err())
            .map(AuthorityFailure::metric_label)
    }

    fn verified_digest(&self) -> bool {
        self.authorities.iter().any(|a| a.verifying && a.outcome.is_ok())
    }
}

/// What was decided for one distinct image string of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVerdict {
    Invalid(String),
    NoPolicy {
        normalised: String,
    },
    Checked {
        image: ImageRef,
        digest: Option<String>,
        /// Why the digest could not be resolved, when it could not.
        resolve_error: Option<String>,
        policies: Vec<PolicyResult>,
    },
}

/// A pinned image: the JSON pointer of an `image` field and its new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub path: String,
    /// The image as written, so the patch can `test` that it still applies.
    pub original: String,
    pub image: String,
}

/// The outcome of a whole request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub allowed: bool,
    pub denials: Vec<String>,
    pub warnings: Vec<String>,
    pub pins: Vec<Pin>,
    pub verdicts: BTreeMap<String, ImageVerdict>,
}

/// Default of `--review-concurrency`: distinct images of one request evaluated at once.
pub const DEFAULT_IMAGES_AT_ONCE: usize = 8;

/// Evaluates every image of a request against the snapshot, at most `images_at_once`
/// distinct images at a time: a pod with thousands of images is worked through a few at a
/// time instead of starting thousands of registry round trips together.
pub async fn evaluate(
    snapshot: &PolicySnapshot,
    images: &[ContainerImage],
    resource: &ResourceInfo,
    context: &RequestContext,
    verifier: &dyn Verifier,
    no_match: NoMatchPolicy,
    images_at_once: usize,
) -> Evaluation {
    let mut distinct: Vec<&str> = images.iter().map(|i| i.image.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    // Futures are inert until polled, so building them all first starts no work; collecting
    // them also keeps the closure's lifetimes out of the stream's type (which must be Send).
    let pending: Vec<_> = distinct
        .iter()
        .map(|raw| evaluate_image(snapshot, raw, resource, context, verifier))
        .collect();
    let verdicts: Vec<ImageVerdict> = stream::iter(pending).buffered(images_at_once.max(1)).collect().await;
    let verdicts: HashMap<&str, ImageVerdict> = distinct.into_iter().zip(verdicts).collect();
    decide(images, verdicts, no_match)
}

async fn evaluate_image(
    snapshot: &PolicySnapshot,
    raw: &str,
    resource: &ResourceInfo,
    context: &RequestContext,
    verifier: &dyn Verifier,
) -> ImageVerdict {
    let image = match ImageRef::parse(raw) {
        Ok(image) => image,
        Err(e) => return ImageVerdict::Invalid(e.to_string()),
    };
    let matched: Vec<&CompiledPolicy> = snapshot
        .policies
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.applies_to(&image, resource))
        .collect();
    if matched.is_empty() {
        return ImageVerdict::NoPolicy {
            normalised: image.to_string(),
        };
    }
    let needs_digest = matched
        .iter()
        .any(|p| p.has_verifying_authority() || p.wants_config_files());
    let (digest, resolve_error) = match (image.digest(), needs_digest) {
        (Some(digest), _) => (Some(digest.to_string()), None),
        (None, false) => (None, None),
        (None, true) => match verifier.resolve_digest(&image, context).await {
            Ok(digest) => (Some(digest), None),
            Err(e) => (None, Some(e)),
        },
    };
    let policies = join_all(matched.iter().map(|policy| async {
        let result = evaluate_policy(
            snapshot,
            policy,
            &image,
            digest.as_deref(),
            resolve_error.as_deref(),
            context,
            verifier,
        )
        .await;
        let config_files = async {
            match digest.as_deref() {
                Some(digest) => verifier.config_files(&image, digest, context).await,
                None => Err(format!(
                    "the digest of {image} is unknown: {}",
                    resolve_error.as_deref().unwrap_or("not resolved")
                )),
            }
        };
        check_spec_policy(policy, result, resource, config_files).await
    }))
    .await;
    ImageVerdict::Checked {
        image,
        digest,
        resolve_error,
        policies,
    }
}

async fn evaluate_policy(
    snapshot: &PolicySnapshot,
    policy: &CompiledPolicy,
    image: &ImageRef,
    digest: Option<&str>,
    resolve_error: Option<&str>,
    context: &RequestContext,
    verifier: &dyn Verifier,
) -> PolicyResult {
    let authorities = join_all(policy.authorities.iter().map(|authority| async move {
        let outcome = match (&authority.kind, digest) {
            (AuthorityKind::Static { pass: true, .. }, _) => Ok(("static pass".to_string(), AuthorityMatch::Static)),
            (AuthorityKind::Static { pass: false, message }, _) => {
                Err(AuthorityFailure::Static(message.clone().unwrap_or_else(|| {
                    "the policy's static authority fails every image".into()
                })))
            }
            (_, None) => Err(AuthorityFailure::DigestUnknown {
                image: image.to_string(),
                why: resolve_error.unwrap_or("not resolved").to_string(),
            }),
            (_, Some(digest)) => {
                let check = AuthorityCheck {
                    trust_roots: &snapshot.trust_roots,
                    image,
                    digest,
                    policy,
                    authority,
                    context,
                };
                verifier.verify(check).await
            }
        };
        let (outcome, matched) = match outcome {
            Ok((summary, matched)) => (Ok(summary), Some(matched)),
            Err(why) => (Err(why), None),
        };
        AuthorityResult {
            authority: authority.name.clone(),
            verifying: authority.is_verifying(),
            outcome,
            matched,
        }
    }))
    .await;
    PolicyResult {
        policy: policy.name.clone(),
        mode: policy.mode,
        authorities,
        policy_error: None,
        policy_warning: None,
    }
}

/// Evaluates the policy's `spec.policy` over its passing authorities, as policy-controller
/// does: only when one authority passed (otherwise the policy fails anyway). `config_files`
/// is awaited only when the policy asks for them (`fetchConfigFile`).
async fn check_spec_policy(
    policy: &CompiledPolicy,
    mut result: PolicyResult,
    resource: &ResourceInfo,
    config_files: impl Future<Output = Result<serde_json::Value, String>>,
) -> PolicyResult {
    let (Some(program), Some(spec_policy)) = (&policy.program, &policy.spec.policy) else {
        return result;
    };
    if !result.authorities.iter().any(|a| a.outcome.is_ok()) {
        return result;
    }
    let config = if policy.wants_config_files() {
        match config_files.await {
            Ok(config) => Some(config),
            Err(why) => {
                result.policy_error = Some(format!("spec.policy.fetchConfigFile: {why}"));
                return result;
            }
        }
    } else {
        None
    };
    let matches = authority_matches(policy, &result.authorities);
    let input = cip_policy_input(spec_policy, &matches, resource.object.as_deref(), config);
    match program.evaluate(input).await {
        Verdict::Allow { warning } => result.policy_warning = warning,
        Verdict::Deny { error, warning } => {
            tracing::info!(policy = %policy.name, %error, "spec.policy denied");
            result.policy_error = Some(format!("spec.policy: {error}"));
            result.policy_warning = warning;
        }
    }
    result
}

/// `authorityMatches`: the passing authorities by name, as policy-controller lists them.
fn authority_matches(policy: &CompiledPolicy, results: &[AuthorityResult]) -> BTreeMap<String, AuthorityMatch> {
    policy
        .authorities
        .iter()
        .zip(results)
        .filter_map(|(authority, result)| {
            let matched = result.matched.clone().filter(|_| result.outcome.is_ok())?;
            Some((authority.name.clone(), matched))
        })
        .collect()
}

/// Turns per-image verdicts into the answer: denials, warnings and pins, per container.
pub fn decide(images: &[ContainerImage], verdicts: HashMap<&str, ImageVerdict>, no_match: NoMatchPolicy) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let mut pins = Vec::new();
    for container in images {
        let Some(verdict) = verdicts.get(container.image.as_str()) else {
            continue;
        };
        let subject = format!(
            "{} {:?} image {:?}",
            container.source.noun(),
            container.name,
            container.image
        );
        match verdict {
            ImageVerdict::Invalid(reason) => evaluation.denials.push(format!("{subject}: {reason}")),
            ImageVerdict::NoPolicy { normalised } => {
                let message = format!("{subject}: no ClusterImagePolicy matches {normalised}");
                match no_match {
                    NoMatchPolicy::Allow => {}
                    NoMatchPolicy::Deny => evaluation.denials.push(message),
                    NoMatchPolicy::Warn => evaluation.warnings.push(message),
                }
            }
            ImageVerdict::Checked {
                image,
                digest,
                policies,
                ..
            } => {
                let subject = match digest {
                    Some(digest) => format!("{subject} ({digest})"),
                    None => subject,
                };
                for policy in policies.iter().filter(|p| !p.passed()) {
                    let message = format!("{subject}: {}", describe_failure(policy));
                    match policy.mode {
                        Mode::Enforce => evaluation.denials.push(message),
                        Mode::Warn => evaluation.warnings.push(message),
                    }
                }
                for policy in policies {
                    if let Some(warning) = &policy.policy_warning {
                        let name = &policy.policy;
                        evaluation
                            .warnings
                            .push(format!("{subject}: policy {name:?}: spec.policy: {warning}"));
                    }
                }
                let verified = policies.iter().any(PolicyResult::verified_digest);
                if let (Some(digest), None, true) = (digest, image.digest(), verified) {
                    pins.push(Pin {
                        path: container.path.clone(),
                        original: container.image.clone(),
                        image: image.pinned(digest),
                    });
                }
            }
        }
    }
    dedup_in_order(&mut evaluation.denials);
    dedup_in_order(&mut evaluation.warnings);
    evaluation.allowed = evaluation.denials.is_empty();
    if evaluation.allowed {
        evaluation.pins = pins;
    }
    evaluation.verdicts = verdicts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    evaluation
}

/// `policy "p" failed: authority "a": why; authority "b": why`
fn describe_failure(policy: &PolicyResult) -> String {
    let mut out = format!("policy {:?} failed:", policy.policy);
    if let Some(error) = &policy.policy_error {
        let _ = write!(out, " {error};");
    }
    for (i, authority) in policy.authorities.iter().enumerate() {
        let separator = if i == 0 { " " } else { "; " };
        let _ = match &authority.outcome {
            Ok(_) => write!(out, "{separator}authority {:?}: passed", authority.authority),
            Err(why) => write!(out, "{separator}authority {:?}: {why}", authority.authority),
        };
    }
    out
}

fn dedup_in_order(messages: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    messages.retain(|m| seen.insert(m.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::program::PolicySignature;

    /// A verifier without I/O: digests and verdicts come from tables.
    struct TableVerifier {
        digests: HashMap<String, Result<String, String>>,
        /// authority name → outcome
        verdicts: HashMap<String, Result<String, String>>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl Verifier for TableVerifier {
        fn resolve_digest<'a>(
            &'a self,
            image: &'a ImageRef,
            _: &'a RequestContext,
        ) -> BoxFuture<'a, Result<String, String>> {
            self.calls.lock().unwrap().push(format!("resolve {image}"));
            let answer = self
                .digests
                .get(image.raw())
                .cloned()
                .unwrap_or(Err("unknown tag".into()));
            Box::pin(async move { answer })
        }

        fn verify<'a>(
            &'a self,
            check: AuthorityCheck<'a>,
        ) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("verify {} {}", check.authority.name, check.digest));
            let answer = self
                .verdicts
                .get(&check.authority.name)
                .cloned()
                .unwrap_or(Err("no signature".into()))
                .map(|summary| (summary, AuthorityMatch::Signatures(vec![PolicySignature::default()])))
                .map_err(|why| AuthorityFailure::Rejected { reasons: vec![why] });
            Box::pin(async move { answer })
        }
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn policy(name: &str, glob: &str, mode: &str, authorities: &str) -> String {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  mode: {mode}\n  images:\n  - glob: \"{glob}\"\n  authorities:\n{authorities}"
        )
    }

    const KEY: &str = "  - name: signed\n    key:\n      data: |\n        -----BEGIN PUBLIC KEY-----\n        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI\n        FNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==\n        -----END PUBLIC KEY-----\n";
    const PASS: &str = "  - name: ok\n    static:\n      action: pass\n";
    const FAIL: &str = "  - name: no\n    static:\n      action: fail\n      message: nope\n";

    fn snapshot(documents: &[String]) -> PolicySnapshot {
        let manifests: Vec<&str> = documents.iter().map(String::as_str).collect();
        PolicySnapshot::from_yaml(&manifests)
    }

    fn containers(images: &[&str]) -> Vec<ContainerImage> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| ContainerImage {
                path: format!("/spec/containers/{i}/image"),
                name: format!("c{i}"),
                source: crate::policy::image::ImageSource::Container,
                image: image.to_string(),
            })
            .collect()
    }

    fn verifier(signed: Result<&str, &str>) -> TableVerifier {
        TableVerifier {
            digests: HashMap::from([
                ("ghcr.io/org/app:v1".to_string(), Ok(D1.to_string())),
                ("ghcr.io/org/gone:v1".to_string(), Err("not found (404)".to_string())),
            ]),
            verdicts: HashMap::from([("signed".to_string(), signed.map(str::to_string).map_err(str::to_string))]),
            calls: Default::default(),
        }
    }

    async fn run(
        documents: &[String],
        images: &[&str],
        verifier: &TableVerifier,
        no_match: NoMatchPolicy,
    ) -> Evaluation {
        let resource = ResourceInfo {
            resource: "pods".into(),
            version: "v1".into(),
            ..Default::default()
        };
        evaluate(
            &snapshot(documents),
            &containers(images),
            &resource,
            &RequestContext::default(),
            verifier,
            no_match,
            DEFAULT_IMAGES_AT_ONCE,
        )
        .await
    }

    #[tokio::test]
    async fn decision_table() {
        struct Row {
            name: &'static str,
            policies: Vec<String>,
            image: &'static str,
            signed: Result<&'static str, &'static str>,
            no_match: NoMatchPolicy,
            allowed: bool,
            warnings: usize,
            pinned: Option<String>,
            message: &'static str,
        }
        let row = |name, policies, image, signed, allowed| Row {
            name,
            policies,
            image,
            signed,
            no_match: NoMatchPolicy::Deny,
            allowed,
            warnings: 0,
            pinned: None,
            message: "",
        };
        let rows = vec![
            Row {
                pinned: Some(format!("ghcr.io/org/app:v1@{D1}")),
                ..row(
                    "verified tag is pinned",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "ghcr.io/org/app:v1",
                    Ok("good"),
                    true,
                )
            },
            Row {
                message: "authority \"signed\": bad key",
                ..row(
                    "failed verification denies",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "ghcr.io/org/app:v1",
                    Err("bad key"),
                    false,
                )
            },
            Row {
                warnings: 1,
                ..row(
                    "warn mode admits",
                    vec![policy("p", "ghcr.io/**", "warn", KEY)],
                    "ghcr.io/org/app:v1",
                    Err("bad key"),
                    true,
                )
            },
            row(
                "static pass pins nothing",
                vec![policy("p", "ghcr.io/**", "enforce", PASS)],
                "ghcr.io/org/app:v1",
                Err("unused"),
                true,
            ),
            Row {
                pinned: Some(format!("ghcr.io/org/app:v1@{D1}")),
                ..row(
                    "OR: one authority is enough",
                    vec![policy("p", "ghcr.io/**", "enforce", &format!("{FAIL}{KEY}"))],
                    "ghcr.io/org/app:v1",
                    Ok("good"),
                    true,
                )
            },
            Row {
                message: "policy \"q\" failed",
                ..row(
                    "AND: every policy must pass",
                    vec![
                        policy("p", "ghcr.io/**", "enforce", KEY),
                        policy("q", "ghcr.io/org/*", "enforce", FAIL),
                    ],
                    "ghcr.io/org/app:v1",
                    Ok("good"),
                    false,
                )
            },
            Row {
                message: "no ClusterImagePolicy matches quay.io/x:latest",
                ..row(
                    "no match denies by default",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "quay.io/x",
                    Ok("good"),
                    false,
                )
            },
            Row {
                no_match: NoMatchPolicy::Allow,
                ..row(
                    "no match allowed",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "quay.io/x",
                    Ok("good"),
                    true,
                )
            },
            Row {
                no_match: NoMatchPolicy::Warn,
                warnings: 1,
                ..row(
                    "no match warned",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "quay.io/x",
                    Ok("good"),
                    true,
                )
            },
            Row {
                message: "the digest of ghcr.io/org/gone:v1 is unknown: not found (404)",
                ..row(
                    "unresolvable tag denies with the reason",
                    vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                    "ghcr.io/org/gone:v1",
                    Ok("good"),
                    false,
                )
            },
            row(
                "digest references need no pin",
                vec![policy("p", "ghcr.io/**", "enforce", KEY)],
                "ghcr.io/org/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                Ok("good"),
                true,
            ),
            Row {
                message: "is invalid",
                ..row(
                    "invalid references deny",
                    vec![policy("p", "**", "enforce", PASS)],
                    "ghcr.io/Org/App",
                    Ok("good"),
                    false,
                )
            },
            Row {
                message: "spec.policy: rego policy is not compliant: needs a second signature",
                ..row(
                    "spec.policy denies with its own error",
                    vec![format!(
                        "{}  policy:\n    type: rego\n    data: |\n      package sigstore\n      isCompliant[r] {{ r := {{\"result\": count(input.authorityMatches) > 1, \"error\": \"needs a second signature\"}} }}\n",
                        policy("p", "ghcr.io/**", "enforce", KEY)
                    )],
                    "ghcr.io/org/app:v1",
                    Ok("good"),
                    false,
                )
            },
            Row {
                pinned: Some(format!("ghcr.io/org/app:v1@{D1}")),
                warnings: 1,
                ..row(
                    "spec.policy sees the passing authorities and may warn",
                    vec![format!(
                        "{}  policy:\n    type: rego\n    data: |\n      package sigstore\n      isCompliant[r] {{ count(input.authorityMatches.signed.signatures) == 1; not input.authorityMatches.no; r := {{\"result\": true, \"warning\": \"w\"}} }}\n",
                        policy("p", "ghcr.io/**", "enforce", &format!("{FAIL}{KEY}"))
                    )],
                    "ghcr.io/org/app:v1",
                    Ok("good"),
                    true,
                )
            },
            Row {
                message: "authority \"signed\": bad key",
                ..row(
                    "spec.policy is not evaluated when no authority passed",
                    vec![format!(
                        "{}  policy:\n    type: rego\n    data: |\n      package sigstore\n      isCompliant = true\n",
                        policy("p", "ghcr.io/**", "enforce", KEY)
                    )],
                    "ghcr.io/org/app:v1",
                    Err("bad key"),
                    false,
                )
            },
        ];
        for row in rows {
            let verifier = verifier(row.signed);
            let evaluation = run(&row.policies, &[row.image], &verifier, row.no_match).await;
            assert_eq!(evaluation.allowed, row.allowed, "{}: {evaluation:?}", row.name);
            assert_eq!(
                evaluation.warnings.len(),
                row.warnings,
                "{}: {:?}",
                row.name,
                evaluation.warnings
            );
            assert_eq!(
                evaluation.pins.first().map(|p| p.image.clone()),
                row.pinned,
                "{}",
                row.name
            );
            let text = evaluation.denials.join("\n");
            assert!(
                text.contains(row.message),
                "{}: {text:?} lacks {:?}",
                row.name,
                row.message
            );
        }
    }

    #[tokio::test]
    async fn unmatched_and_static_images_cost_no_calls_and_repeats_are_checked_once() {
        let verifier = verifier(Ok("good"));
        let policies = [
            policy("p", "ghcr.io/**", "enforce", KEY),
            policy("s", "quay.io/**", "enforce", PASS),
        ];
        let evaluation = run(
            &policies,
            &["ghcr.io/org/app:v1", "ghcr.io/org/app:v1", "quay.io/a/b", "docker.io/x"],
            &verifier,
            NoMatchPolicy::Allow,
        )
        .await;
        assert!(evaluation.allowed);
        assert_eq!(
            evaluation.pins.len(),
            2,
            "both containers of the verified image are pinned"
        );
        let calls = verifier.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec!["resolve ghcr.io/org/app:v1".to_string(), format!("verify signed {D1}")]
        );
    }

    /// Counts resolutions in flight; each takes a little while, so overlaps are real.
    struct SlowCounter {
        now: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }

    impl Verifier for SlowCounter {
        fn resolve_digest<'a>(
            &'a self,
            _: &'a ImageRef,
            _: &'a RequestContext,
        ) -> BoxFuture<'a, Result<String, String>> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let now = self.now.fetch_add(1, SeqCst) + 1;
                self.peak.fetch_max(now, SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                self.now.fetch_sub(1, SeqCst);
                Ok(D1.to_string())
            })
        }

        fn verify<'a>(
            &'a self,
            _: AuthorityCheck<'a>,
        ) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>> {
            Box::pin(async {
                Err(AuthorityFailure::Unsigned {
                    reasons: vec!["unsigned".into()],
                })
            })
        }
    }

    #[tokio::test]
    async fn images_of_one_request_are_worked_through_a_few_at_a_time() {
        let names: Vec<String> = (0..200).map(|i| format!("registry.example/app{i}:v1")).collect();
        let images: Vec<&str> = names.iter().map(String::as_str).collect();
        let snapshot = snapshot(&[policy("all", "**", "enforce", KEY)]);
        for at_once in [1, 4, 16] {
            let counter = SlowCounter {
                now: 0.into(),
                peak: 0.into(),
            };
            let evaluation = evaluate(
                &snapshot,
                &containers(&images),
                &ResourceInfo::default(),
                &RequestContext::default(),
                &counter,
                NoMatchPolicy::Deny,
                at_once,
            )
            .await;
            assert_eq!(evaluation.verdicts.len(), 200, "every image still gets a verdict");
            assert!(!evaluation.allowed);
            let peak = counter.peak.load(std::sync::atomic::Ordering::SeqCst);
            assert!(peak <= at_once, "{peak} in flight with a bound of {at_once}");
            assert!(peak > 0);
        }
    }
}
