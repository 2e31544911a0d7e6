//! Admission-time validation of ClusterImagePolicy and TrustRoot specs.
//!
//! The CRD schema accepts anything shaped right (like policy-controller's, it has no required
//! fields), so this is where a policy that could never verify anything is refused. Messages and
//! field paths copy policy-controller's (knative `apis.FieldError`) wording, e.g.
//! `invalid value: shaINVALID: spec.authorities[0].key.hashAlgorithm`, so that existing docs,
//! tests and muscle memory keep working; every error is reported, not just the first.

use std::fmt;

use crate::api::cip::{
    Attestation, Authority, ClusterImagePolicySpec, Identity, KeyRef, KeylessRef, MatchResource, Policy, Source,
    StaticRef,
};
use crate::api::trustroot::{
    CertificateAuthority, Remote, Repository, SigstoreKeys, TransparencyLogInstance, TrustRootSpec, decode_base64,
};
use crate::policy::glob::{Glob, GlobError};
use crate::verify::keyless::FULCIO_EXTENSIONS;

const MISSING: &str = "missing field(s)";
const BOTH: &str = "expected exactly one, got both";
const NEITHER: &str = "expected exactly one, got neither";
const DISALLOWED: &str = "must not set the field(s)";

const HASH_ALGORITHMS: [&str; 4] = ["sha224", "sha256", "sha384", "sha512"];
/// The `key.kms` schemes policy-controller knows.
pub const KMS_SCHEMES: [&str; 4] = ["awskms://", "gcpkms://", "azurekms://", "hashivault://"];
const MODES: [&str; 3] = ["", "enforce", "warn"];
const STATIC_ACTIONS: [&str; 2] = ["pass", "fail"];
const POLICY_TYPES: [&str; 2] = ["cue", "rego"];
const SIGNATURE_FORMATS: [&str; 2] = ["simplesigning", "bundle"];
const LOG_HASH_ALGORITHMS: [&str; 5] = ["sha-256", "sha-384", "sha-512", "sha3-256", "sha3-384"];

/// One problem at one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Full JSON path, e.g. `spec.authorities[0].key.hashAlgorithm`.
    pub path: String,
    /// policy-controller's message, e.g. `invalid value: shaINVALID`.
    pub message: String,
    /// Why, when the message alone does not say (e.g. the regex parser's complaint).
    pub detail: Option<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.path)?;
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

/// Every problem found in a spec. Displayed like knative: errors with the same message are
/// merged into one line listing all their paths (`expected exactly one, got both: a, b`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.errors))]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// Whether some error is about exactly this path.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }
}

fn render(errors: &[FieldError]) -> String {
    let mut groups: Vec<(&str, &Option<String>, Vec<&str>)> = Vec::new();
    for e in errors {
        match groups.iter_mut().find(|(m, d, _)| *m == e.message && *d == &e.detail) {
            Some(group) => group.2.push(&e.path),
            None => groups.push((&e.message, &e.detail, vec![&e.path])),
        }
    }
    let lines: Vec<String> = groups
        .into_iter()
        .map(|(message, detail, paths)| {
            let line = format!("{message}: {}", paths.join(", "));
            match detail {
                Some(detail) => format!("{line} ({detail})"),
                None => line,
            }
        })
        .collect();
    lines.join("\n")
}

/// Collects errors while walking a spec.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: String, message: impl Into<String>, detail: Option<String>) {
        self.0.push(FieldError {
            path,
            message: message.into(),
            detail,
        });
    }

    fn missing(&mut self, path: String) {
        self.add(path, MISSING, None);
    }

    fn invalid(&mut self, path: String, value: &str, detail: impl Into<Option<String>>) {
        self.add(path, format!("invalid value: {value}"), detail.into());
    }

    /// One error per field, as knative's `ErrMultipleOneOf` / `ErrMissingOneOf` list them all.
    fn one_of(&mut self, base: &str, fields: &[(&str, bool)]) -> bool {
        let set = fields.iter().filter(|(_, present)| *present).count();
        let message = match set {
            1 => return true,
            0 => NEITHER,
            _ => BOTH,
        };
        for (field, _) in fields {
            self.add(format!("{base}.{field}"), message, None);
        }
        false
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors { errors: self.0 })
        }
    }
}

/// An optional string that is really there: Go's `omitempty` treats `""` as absent.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Validates a ClusterImagePolicy spec (either served version; they share the type).
pub fn validate_policy(spec: &ClusterImagePolicySpec) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if spec.images.is_empty() {
        errs.missing("spec.images".into());
    }
    for (i, image) in spec.images.iter().enumerate() {
        check_glob(&image.glob, format!("spec.images[{i}].glob"), &mut errs);
    }
    if spec.authorities.is_empty() {
        errs.missing("spec.authorities".into());
    }
    for (i, authority) in spec.authorities.iter().enumerate() {
        check_authority(authority, &format!("spec.authorities[{i}]"), &mut errs);
    }
    if let Some(mode) = spec.mode.as_deref().filter(|m| !MODES.contains(m)) {
        errs.invalid("spec.mode".into(), mode, None);
    }
    for (i, m) in spec.match_.iter().enumerate() {
        check_match(m, &format!("spec.match[{i}]"), &mut errs);
    }
    if let Some(policy) = &spec.policy {
        check_policy(policy, "spec.policy", PolicyLevel::Spec, &mut errs);
    }
    errs.finish()
}

fn check_glob(glob: &str, path: String, errs: &mut Errors) {
    match Glob::compile(glob) {
        Ok(_) => {}
        Err(GlobError::Empty) => errs.missing(path),
        Err(e) => errs.invalid(path, glob, e.to_string()),
    }
}

fn check_authority(a: &Authority, base: &str, errs: &mut Errors) {
    let kinds = [
        ("key", a.key.is_some()),
        ("keyless", a.keyless.is_some()),
        ("static", a.static_.is_some()),
    ];
    // Like policy-controller, stop here: the sub-field errors of an authority whose kind is
    // unclear would only bury the one that matters.
    if !errs.one_of(base, &kinds) {
        return;
    }
    if let Some(key) = &a.key {
        check_key(key, &format!("{base}.key"), PemKind::PublicKey, errs);
    }
    if let Some(keyless) = &a.keyless {
        check_keyless(keyless, &format!("{base}.keyless"), errs);
    }
    if let Some(fixed) = &a.static_ {
        check_static(fixed, a, base, errs);
    }
    for (i, source) in a.sources.iter().enumerate() {
        check_source(source, &format!("{base}.source[{i}]"), errs);
    }
    for (i, attestation) in a.attestations.iter().enumerate() {
        check_attestation(attestation, &format!("{base}.attestations[{i}]"), errs);
    }
    if let Some(url) = a.ctlog.as_ref().and_then(|c| set(&c.url)) {
        check_url(url, format!("{base}.ctlog.url"), errs);
    }
    if let Some(format) = set(&a.signature_format)
        && !SIGNATURE_FORMATS.contains(&format)
    {
        errs.invalid(format!("{base}.signatureFormat"), format, None);
    }
}

/// What an inline `data` PEM must hold: a key for `key`, a certificate chain for `ca-cert`.
#[derive(Clone, Copy)]
enum PemKind {
    PublicKey,
    Certificate,
}

fn check_key(key: &KeyRef, base: &str, pem: PemKind, errs: &mut Errors) {
    let (data, kms) = (set(&key.data), set(&key.kms));
    // policy-controller spells the path `secretref` here; kept so messages match.
    let sources = [
        ("data", data.is_some()),
        ("kms", kms.is_some()),
        ("secretref", key.secret_ref.is_some()),
    ];
    errs.one_of(base, &sources);
    if let Some(algorithm) = set(&key.hash_algorithm)
        && !HASH_ALGORITHMS.contains(&algorithm)
    {
        errs.invalid(format!("{base}.hashAlgorithm"), algorithm, None);
    }
    if let Some(data) = data
        && !pem_holds(data, pem)
    {
        errs.invalid(format!("{base}.data"), data, pem_expectation(pem));
    }
    if let Some(kms) = kms
        && let Err(why) = check_kms(kms)
    {
        errs.invalid(format!("{base}.kms"), kms, why);
    }
    let secret_name = key.secret_ref.as_ref().map(|s| set(&s.name));
    if secret_name == Some(None) {
        errs.missing(format!("{base}.secretRef.name"));
    }
}

fn pem_expectation(pem: PemKind) -> String {
    match pem {
        PemKind::PublicKey => "expected a PEM-encoded public key".into(),
        PemKind::Certificate => "expected PEM-encoded certificates".into(),
    }
}

fn pem_holds(text: &str, pem: PemKind) -> bool {
    let Some(blocks) = pem_blocks(text) else {
        return false;
    };
    let labels: &[&str] = match pem {
        PemKind::PublicKey => &["PUBLIC KEY", "RSA PUBLIC KEY"],
        PemKind::Certificate => &["CERTIFICATE"],
    };
    // DER of both SubjectPublicKeyInfo and Certificate is a SEQUENCE (0x30).
    let good = |(label, der): &(String, Vec<u8>)| labels.contains(&label.as_str()) && der.first() == Some(&0x30);
    match pem {
        PemKind::PublicKey => blocks.first().is_some_and(good),
        PemKind::Certificate => !blocks.is_empty() && blocks.iter().all(good),
    }
}

/// The PEM blocks in `text` as (label, DER); `None` if a block is unterminated or not base64.
fn pem_blocks(text: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some((label, body)) = open.as_mut() {
            if let Some(end) = pem_marker(line, "END") {
                if end != label.as_str() {
                    return None;
                }
                blocks.push((end.to_string(), decode_base64(body).ok()?));
                open = None;
            } else if !line.contains(':') {
                body.push_str(line);
            }
        } else if let Some(begin) = pem_marker(line, "BEGIN") {
            open = Some((begin.to_string(), String::new()));
        }
    }
    open.is_none().then_some(blocks)
}

fn pem_marker<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_prefix(which)?
        .strip_prefix(' ')?
        .strip_suffix("-----")
}

fn check_kms(kms: &str) -> Result<(), String> {
    if !KMS_SCHEMES.iter().any(|scheme| kms.starts_with(scheme)) {
        return Err(format!("kms must start with one of {}", KMS_SCHEMES.join(", ")));
    }
    if kms.starts_with("awskms://") {
        return check_aws_kms(kms);
    }
    Ok(())
}

/// `awskms://[ENDPOINT]/KEY-OR-ALIAS-ARN`, as policy-controller checks it: other AWS forms
/// need environment configuration the webhook does not have.
fn check_aws_kms(kms: &str) -> Result<(), String> {
    let parts: Vec<&str> = kms.split('/').collect();
    let malformed = "malformed AWS KMS format, should be: 'awskms://$ENDPOINT/$KEYID'";
    let (Some(endpoint), Some(key_id)) = (parts.get(2), parts.get(3)) else {
        return Err(malformed.into());
    };
    if !endpoint.is_empty() && !is_host_port(endpoint) {
        return Err(format!("malformed endpoint {endpoint:?}, expected host:port"));
    }
    let sections: Vec<&str> = key_id.splitn(6, ':').collect();
    if sections.len() != 6 || sections[0] != "arn" {
        return Err(format!("failed to parse either key or alias arn from {key_id:?}"));
    }
    match sections[5] {
        "key" | "alias" => Ok(()),
        other => Err(format!("ARN resource must be key or alias, got {other:?}")),
    }
}

fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
}

fn check_keyless(k: &KeylessRef, base: &str, errs: &mut Errors) {
    if let Some(url) = set(&k.url) {
        check_fulcio_url(url, format!("{base}.url"), errs);
    }
    let (has_url, has_ca) = (set(&k.url).is_some(), k.ca_cert.is_some());
    let has_trust_root = set(&k.trust_root_ref).is_some();
    if has_url && has_ca {
        errs.one_of(base, &[("url", true), ("ca-cert", true)]);
    }
    if has_ca && has_trust_root {
        errs.one_of(base, &[("ca-cert", true), ("trustRootRef", true)]);
    }
    if let Some(ca) = &k.ca_cert {
        check_key(ca, &format!("{base}.ca-cert"), PemKind::Certificate, errs);
    }
    if k.identities.is_empty() {
        errs.missing(format!("{base}.identities"));
    }
    for (i, identity) in k.identities.iter().enumerate() {
        check_identity(identity, &format!("{base}.identities[{i}]"), errs);
    }
}

fn check_identity(id: &Identity, base: &str, errs: &mut Errors) {
    let pairs = [
        ("issuer", &id.issuer, "issuerRegExp", &id.issuer_reg_exp),
        ("subject", &id.subject, "subjectRegExp", &id.subject_reg_exp),
    ];
    for (exact_name, exact, regex_name, regex) in pairs {
        match (set(exact), set(regex)) {
            (Some(_), Some(_)) => {
                errs.one_of(base, &[(exact_name, true), (regex_name, true)]);
            }
            (None, None) => {
                errs.missing(format!("{base}.{exact_name}"));
                errs.missing(format!("{base}.{regex_name}"));
            }
            _ => {}
        }
        if let Some(pattern) = set(regex) {
            check_regex(pattern, format!("{base}.{regex_name}"), errs);
        }
    }
    let known = |name: &str| FULCIO_EXTENSIONS.iter().any(|(_, known)| *known == name);
    let unknown = || {
        format!(
            "not a Fulcio extension; one of {}",
            FULCIO_EXTENSIONS.map(|(_, n)| n).join(", ")
        )
    };
    for name in id.certificate_extensions.keys().filter(|n| !known(n)) {
        errs.invalid(format!("{base}.certificateExtensions"), name, unknown());
    }
    for (name, pattern) in &id.certificate_extensions_reg_exp {
        let path = format!("{base}.certificateExtensionsRegExp.{name}");
        if known(name) {
            check_regex(pattern, path, errs);
        } else {
            errs.invalid(format!("{base}.certificateExtensionsRegExp"), name, unknown());
        }
    }
}

fn check_regex(pattern: &str, path: String, errs: &mut Errors) {
    if let Err(e) = regex::Regex::new(pattern) {
        // The parser's message is a multi-line diagram; its last line says what is wrong.
        let text = e.to_string();
        let why = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let why = why.trim().trim_start_matches("error: ");
        errs.invalid(path, pattern, format!("regex is invalid: {why}"));
    }
}

fn check_static(fixed: &StaticRef, a: &Authority, base: &str, errs: &mut Errors) {
    if fixed.action.is_empty() {
        errs.missing(format!("{base}.static.action"));
    } else if !STATIC_ACTIONS.contains(&fixed.action.as_str()) {
        errs.invalid(format!("{base}.static.action"), &fixed.action, None);
    }
    // Nothing is fetched for a static authority, so these could only mislead.
    let unused = [
        ("attestations", !a.attestations.is_empty()),
        ("source", !a.sources.is_empty()),
        ("ctlog", a.ctlog.is_some()),
        ("rfc3161timestamp", a.rfc3161timestamp.is_some()),
    ];
    for (field, _) in unused.iter().filter(|(_, present)| *present) {
        errs.one_of(base, &[("static", true), (field, true)]);
    }
}

fn check_source(source: &Source, base: &str, errs: &mut Errors) {
    if let Some(oci) = set(&source.oci)
        && let Err(why) = check_repository(oci)
    {
        errs.invalid(format!("{base}.oci"), oci, why);
    }
    for (i, secret) in source.signature_pull_secrets.iter().enumerate() {
        if secret.name.is_empty() {
            errs.missing(format!("{base}.signaturePullSecrets[{i}].name"));
        }
    }
}

/// `[registry[:port]/]path`: where signatures are stored, so a tag or digest makes no sense.
fn check_repository(oci: &str) -> Result<(), String> {
    if oci.contains('@') {
        return Err("a repository must not name a digest".into());
    }
    let components: Vec<&str> = oci.split('/').collect();
    let first = components.first().copied().unwrap_or_default();
    let has_registry = components.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    let path = if has_registry {
        &components[1..]
    } else {
        &components[..]
    };
    if has_registry && first.contains(':') && !is_host_port(first) {
        return Err(format!("invalid registry {first:?}"));
    }
    if let Some(bad) = path.iter().find(|c| !is_path_component(c)) {
        if bad.contains(':') {
            return Err("a repository must not name a tag".into());
        }
        return Err(format!("invalid repository path component {bad:?}"));
    }
    Ok(())
}

/// A distribution path component: `[a-z0-9]+` joined by `.`, `_`, `__` or `-`+.
fn is_path_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let separator = |s: &str| s == "." || s == "_" || s == "__" || s.chars().all(|c| c == '-');
    let mut rest = component;
    loop {
        let word = rest.len() - rest.trim_start_matches(alnum).len();
        if word == 0 {
            return false;
        }
        rest = &rest[word..];
        if rest.is_empty() {
            return true;
        }
        let sep = rest.len() - rest.trim_start_matches(['.', '_', '-']).len();
        if !separator(&rest[..sep]) {
            return false;
        }
        rest = &rest[sep..];
    }
}

fn check_attestation(a: &Attestation, base: &str, errs: &mut Errors) {
    if a.name.is_empty() {
        errs.missing(format!("{base}.name"));
    }
    if a.predicate_type.is_empty() {
        errs.missing(format!("{base}.predicateType"));
    }
    if let Some(policy) = &a.policy {
        check_policy(policy, &format!("{base}.policy"), PolicyLevel::Attestation, errs);
    }
}

/// Where a policy sits: only the spec-level one sees the admitted object and config file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyLevel {
    Spec,
    Attestation,
}

fn check_policy(p: &Policy, base: &str, level: PolicyLevel, errs: &mut Errors) {
    if p.type_.is_empty() {
        errs.missing(format!("{base}.type"));
    } else if !POLICY_TYPES.contains(&p.type_.as_str()) {
        errs.invalid(
            format!("{base}.type"),
            &p.type_,
            "only [cue,rego] are supported".to_string(),
        );
    }
    let sources = [
        ("data", set(&p.data).is_some()),
        ("remote", p.remote.is_some()),
        ("configMapRef", p.config_map_ref.is_some()),
    ];
    errs.one_of(base, &sources);
    if let Some(remote) = &p.remote {
        check_remote_policy(remote, &format!("{base}.remote"), errs);
    }
    if let Some(cm) = &p.config_map_ref {
        for (field, value) in [("name", &cm.name), ("key", &cm.key)] {
            if set(value).is_none() {
                errs.missing(format!("{base}.configMapRef.{field}"));
            }
        }
    }
    if level == PolicyLevel::Attestation {
        let spec_only = [
            ("fetchConfigFile", p.fetch_config_file),
            ("includeSpec", p.include_spec),
            ("includeObjectMeta", p.include_object_meta),
            ("includeTypeMeta", p.include_type_meta),
        ];
        for (field, _) in spec_only.iter().filter(|(_, v)| v.is_some()) {
            errs.add(format!("{base}.{field}"), DISALLOWED, None);
        }
    }
}

fn check_remote_policy(remote: &crate::api::cip::RemotePolicy, base: &str, errs: &mut Errors) {
    match set(&remote.url) {
        Some(url) => check_url(url, format!("{base}.url"), errs),
        None => errs.missing(format!("{base}.url")),
    }
    match set(&remote.sha256sum) {
        Some(sum) if sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()) => {}
        Some(sum) => errs.invalid(
            format!("{base}.sha256sum"),
            sum,
            "expected 64 hexadecimal digits".to_string(),
        ),
        None => errs.missing(format!("{base}.sha256sum")),
    }
}

/// The API group and versions each supported resource is served at; `*` and absent mean any.
fn expected_group_versions(resource: &str) -> Option<(&'static str, &'static [&'static str])> {
    match resource {
        "pods" | "replicationcontrollers" => Some(("", &["v1"])),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" => Some(("apps", &["v1"])),
        "jobs" => Some(("batch", &["v1"])),
        "cronjobs" => Some(("batch", &["v1", "v1beta1"])),
        "services" | "configurations" | "revisions" => Some(("serving.knative.dev", &["v1"])),
        _ => None,
    }
}

fn check_match(m: &MatchResource, base: &str, errs: &mut Errors) {
    let (group, version, resource) = (set(&m.group), set(&m.version), set(&m.resource));
    if let Some(resource) = resource {
        match expected_group_versions(resource) {
            None => errs.invalid(format!("{base}.resource"), resource, None),
            Some((want_group, want_versions)) => {
                if let Some(g) = group.filter(|g| *g != "*" && *g != want_group) {
                    let why = format!("{resource} are in group {want_group:?}");
                    errs.invalid(format!("{base}.group"), g, why);
                }
                if let Some(v) = version.filter(|v| *v != "*" && !want_versions.contains(v)) {
                    let why = format!("{resource} are served at {}", want_versions.join(", "));
                    errs.invalid(format!("{base}.version"), v, why);
                }
            }
        }
    }
    if m.selector.is_some() && group.is_none() && version.is_none() && resource.is_none() {
        let why = "selector requires a resource type to match the labels".to_string();
        errs.add(format!("{base}.resource"), MISSING, Some(why));
    }
}

/// `keyless.url` names the Fulcio instance; signet never contacts it (certificates are checked
/// against the trust root), so it accepts what policy-controller (Go's URL parser) accepts,
/// such as the catalog's templates with `https://<sigstore-hostname-instance>`: an http(s)
/// URL with a host and no whitespace.
fn check_fulcio_url(url: &str, path: String, errs: &mut Errors) {
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .filter(|host| !host.is_empty());
    if host.is_none() || url.chars().any(char::is_whitespace) {
        errs.invalid(path, url, "expected an http(s) URL".to_string());
    }
}

fn check_url(url: &str, path: String, errs: &mut Errors) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => errs.invalid(path, url, "expected an http(s) URL".to_string()),
        Err(e) => errs.invalid(path, url, e.to_string()),
    }
}

/// Validates a TrustRoot spec: exactly one source of trust, and every byte field decodes.
pub fn validate_trust_root(spec: &TrustRootSpec) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    let sources = [
        ("repository", spec.repository.is_some()),
        ("remote", spec.remote.is_some()),
        ("sigstoreKeys", spec.sigstore_keys.is_some()),
    ];
    if errs.one_of("spec", &sources) {
        if let Some(remote) = &spec.remote {
            check_tuf_remote(remote, "spec.remote", &mut errs);
        }
        if let Some(repository) = &spec.repository {
            check_tuf_repository(repository, "spec.repository", &mut errs);
        }
        if let Some(keys) = &spec.sigstore_keys {
            check_sigstore_keys(keys, "spec.sigstoreKeys", &mut errs);
        }
    }
    errs.finish()
}

fn check_tuf_remote(remote: &Remote, base: &str, errs: &mut Errors) {
    match set(&remote.mirror) {
        Some(mirror) => check_url(mirror, format!("{base}.mirror"), errs),
        None => errs.missing(format!("{base}.mirror")),
    }
    check_tuf_root(&remote.root, base, errs);
}

fn check_tuf_repository(repository: &Repository, base: &str, errs: &mut Errors) {
    check_tuf_root(&repository.root, base, errs);
    match set(&repository.mirror_fs) {
        Some(fs) if decode_base64(fs).is_ok() => {}
        Some(_) => errs.invalid(format!("{base}.mirrorFS"), "not valid base64", None),
        None => errs.missing(format!("{base}.mirrorFS")),
    }
}

/// The initial `root.json`: base64 of a signed TUF document.
fn check_tuf_root(root: &Option<String>, base: &str, errs: &mut Errors) {
    let path = format!("{base}.root");
    let Some(root) = set(root) else {
        return errs.missing(path);
    };
    let Ok(bytes) = decode_base64(root) else {
        return errs.invalid(path, "not valid base64", None);
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(json) if json.get("signatures").is_some() => {}
        Ok(_) => errs.invalid(path, "missing signatures in root.json", None),
        Err(e) => errs.invalid(path, "failed to unmarshal", e.to_string()),
    }
}

fn check_sigstore_keys(keys: &SigstoreKeys, base: &str, errs: &mut Errors) {
    if keys.certificate_authorities.is_empty() && keys.timestamp_authorities.is_empty() {
        let wanted = [("certificateAuthorities", false), ("timestampAuthorities", false)];
        errs.one_of(base, &wanted);
    }
    let authorities = [
        ("certificateAuthorities", &keys.certificate_authorities),
        ("timestampAuthorities", &keys.timestamp_authorities),
    ];
    for (field, list) in authorities {
        for (i, ca) in list.iter().enumerate() {
            check_certificate_authority(ca, &format!("{base}.{field}[{i}]"), errs);
        }
    }
    for (field, list) in [("tLogs", &keys.t_logs), ("ctLogs", &keys.ct_logs)] {
        for (i, log) in list.iter().enumerate() {
            check_log(log, &format!("{base}.{field}[{i}]"), errs);
        }
    }
}

fn check_certificate_authority(ca: &CertificateAuthority, base: &str, errs: &mut Errors) {
    let subject = ca.subject.as_ref();
    let fields = [
        ("organization", subject.and_then(|s| set(&s.organization))),
        ("commonName", subject.and_then(|s| set(&s.common_name))),
    ];
    for (field, value) in fields {
        if value.is_none() {
            errs.missing(format!("{base}.subject.{field}"));
        }
    }
    match set(&ca.uri) {
        Some(uri) => check_url(uri, format!("{base}.uri"), errs),
        None => errs.missing(format!("{base}.uri")),
    }
    check_encoded_pem(&ca.cert_chain, format!("{base}.certChain"), PemKind::Certificate, errs);
}

fn check_log(log: &TransparencyLogInstance, base: &str, errs: &mut Errors) {
    match set(&log.base_url) {
        Some(url) => check_url(url, format!("{base}.baseURL"), errs),
        None => errs.missing(format!("{base}.baseURL")),
    }
    match set(&log.hash_algorithm) {
        Some(a) if LOG_HASH_ALGORITHMS.contains(&a.to_ascii_lowercase().as_str()) => {}
        Some(a) => errs.invalid(format!("{base}.hashAlgorithm"), a, None),
        None => errs.missing(format!("{base}.hashAlgorithm")),
    }
    check_encoded_pem(&log.public_key, format!("{base}.publicKey"), PemKind::PublicKey, errs);
}

/// A required base64 field whose bytes are PEM.
fn check_encoded_pem(value: &Option<String>, path: String, pem: PemKind, errs: &mut Errors) {
    let Some(value) = set(value) else {
        return errs.missing(path);
    };
    match decode_base64(value) {
        Err(e) => errs.invalid(path, "not valid base64", e.to_string()),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if !pem_holds(&text, pem) {
                errs.invalid(path, "not PEM", pem_expectation(pem));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cip::{ImagePattern, RemotePolicy, TLog};
    use crate::api::trustroot::DistinguishedName;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI\nFNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==\n-----END PUBLIC KEY-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    fn keyed() -> Authority {
        Authority {
            key: Some(KeyRef {
                data: Some(KEY.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec_with(authority: Authority) -> ClusterImagePolicySpec {
        ClusterImagePolicySpec {
            images: vec![ImagePattern { glob: "**".into() }],
            authorities: vec![authority],
            ..Default::default()
        }
    }

    fn errors(spec: &ClusterImagePolicySpec) -> ValidationErrors {
        validate_policy(spec)
            .err()
            .unwrap_or(ValidationErrors { errors: vec![] })
    }

    fn identity(issuer: &str, subject_re: &str) -> Identity {
        Identity {
            issuer: Some(issuer.into()),
            subject_reg_exp: Some(subject_re.into()),
            ..Default::default()
        }
    }

    fn keyless(identities: Vec<Identity>) -> Authority {
        Authority {
            keyless: Some(KeylessRef {
                identities,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_keyed_policy_is_valid() {
        assert_eq!(validate_policy(&spec_with(keyed())), Ok(()));
    }

    #[test]
    fn empty_spec_lists_images_and_authorities() {
        let e = errors(&ClusterImagePolicySpec::default());
        assert_eq!(e.to_string(), "missing field(s): spec.images, spec.authorities");
    }

    #[test]
    fn bad_glob_mode_and_hash_use_policy_controller_wording() {
        let mut spec = spec_with(keyed());
        spec.images[0].glob = "[".into();
        spec.mode = Some("garbage".into());
        if let Some(key) = spec.authorities[0].key.as_mut() {
            key.hash_algorithm = Some("shaINVALID".into());
        }
        let text = errors(&spec).to_string();
        assert!(text.contains("invalid value: [: spec.images[0].glob"), "{text}");
        assert!(text.contains("invalid value: garbage: spec.mode"), "{text}");
        let hash = "invalid value: shaINVALID: spec.authorities[0].key.hashAlgorithm";
        assert!(text.contains(hash), "{text}");
    }

    #[test]
    fn key_needs_exactly_one_source() {
        let mut authority = keyed();
        if let Some(key) = authority.key.as_mut() {
            key.kms = Some("hashivault://x".into());
        }
        let text = errors(&spec_with(authority)).to_string();
        let want = "expected exactly one, got both: spec.authorities[0].key.data, spec.authorities[0].key.kms, spec.authorities[0].key.secretref";
        assert_eq!(text, want);
        let empty = Authority {
            key: Some(KeyRef::default()),
            ..Default::default()
        };
        let text = errors(&spec_with(empty)).to_string();
        assert!(text.starts_with("expected exactly one, got neither: "), "{text}");
    }

    #[test]
    fn key_data_must_be_a_public_key_and_kms_a_known_scheme() {
        let mut authority = keyed();
        if let Some(key) = authority.key.as_mut() {
            key.data = Some(CERT.into());
        }
        let e = errors(&spec_with(authority));
        assert!(e.has_path("spec.authorities[0].key.data"));
        let kms = |uri: &str| {
            spec_with(Authority {
                key: Some(KeyRef {
                    kms: Some(uri.into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        for good in [
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
            "azurekms://vault.example.com/key",
            "awskms:///arn:aws:kms:us-east-2:111122223333:key/1234",
            "awskms://localhost:4566/arn:aws:kms:us-east-2:111122223333:alias/Ex",
        ] {
            assert_eq!(validate_policy(&kms(good)), Ok(()), "{good}");
        }
        for bad in [
            "file:///key.pub",
            "awskms://host/arn:aws:kms:r:a:key/1",
            "awskms:///nope",
        ] {
            assert!(errors(&kms(bad)).has_path("spec.authorities[0].key.kms"), "{bad}");
        }
    }

    #[test]
    fn authority_kind_is_exactly_one() {
        let mut both = keyed();
        both.static_ = Some(StaticRef {
            action: "pass".into(),
            message: None,
        });
        let text = errors(&spec_with(both)).to_string();
        assert!(text.starts_with("expected exactly one, got both: spec.authorities[0].key"));
        let none = errors(&spec_with(Authority::default()));
        assert!(none.has_path("spec.authorities[0].static"));
        assert_eq!(none.errors.len(), 3);
    }

    #[test]
    fn certificate_extensions_are_known_fulcio_names_with_valid_regexps() {
        let mut identity = identity(
            "https://token.actions.githubusercontent.com",
            "^https://github.com/org/",
        );
        identity
            .certificate_extensions
            .insert("sourceRepositoryURI".into(), "https://github.com/org/app".into());
        identity.certificate_extensions.insert("sourceRepo".into(), "x".into());
        identity
            .certificate_extensions_reg_exp
            .insert("sourceRepositoryRef".into(), "^refs/(heads/main|tags/".into());
        let text = errors(&spec_with(keyless(vec![identity]))).to_string();
        let base = "spec.authorities[0].keyless.identities[0]";
        assert!(
            text.contains(&format!("invalid value: sourceRepo: {base}.certificateExtensions")),
            "{text}"
        );
        assert!(text.contains("not a Fulcio extension; one of buildSignerURI"), "{text}");
        assert!(
            text.contains(&format!("{base}.certificateExtensionsRegExp.sourceRepositoryRef")),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2, "the known, valid extension passes: {text}");
    }

    #[test]
    fn identities_need_issuer_and_subject() {
        let missing_issuer = Identity {
            subject: Some("s".into()),
            ..Default::default()
        };
        let text = errors(&spec_with(keyless(vec![missing_issuer]))).to_string();
        let base = "spec.authorities[0].keyless.identities[0]";
        assert_eq!(text, format!("missing field(s): {base}.issuer, {base}.issuerRegExp"));
        let no_identities = errors(&spec_with(keyless(vec![])));
        assert!(no_identities.has_path("spec.authorities[0].keyless.identities"));
    }

    #[test]
    fn bad_regexps_are_reported_with_the_reason() {
        let e = errors(&spec_with(keyless(vec![identity("i", "****")])));
        let path = "spec.authorities[0].keyless.identities[0].subjectRegExp";
        assert!(e.has_path(path));
        let text = e.to_string();
        assert!(text.starts_with(&format!("invalid value: ****: {path} (regex is invalid: ")));
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(validate_policy(&spec_with(keyless(vec![identity("i", ".*")]))), Ok(()));
    }

    #[test]
    fn keyless_url_and_ca_cert() {
        let mut authority = keyless(vec![identity("i", ".*")]);
        if let Some(k) = authority.keyless.as_mut() {
            k.url = Some("not a url".into());
        }
        assert!(errors(&spec_with(authority.clone())).has_path("spec.authorities[0].keyless.url"));
        // A placeholder host, as in the policy catalog's templates, is what Go's parser takes.
        if let Some(k) = authority.keyless.as_mut() {
            k.url = Some("https://<sigstore-hostname-instance>".into());
        }
        assert_eq!(validate_policy(&spec_with(authority.clone())), Ok(()));
        if let Some(k) = authority.keyless.as_mut() {
            k.url = None;
            k.ca_cert = Some(KeyRef {
                data: Some(CERT.into()),
                ..Default::default()
            });
        }
        assert_eq!(validate_policy(&spec_with(authority.clone())), Ok(()));
        if let Some(k) = authority.keyless.as_mut() {
            k.url = Some("https://fulcio.example.com".into());
        }
        let text = errors(&spec_with(authority)).to_string();
        assert!(text.contains("got both: spec.authorities[0].keyless.url, spec.authorities[0].keyless.ca-cert"));
    }

    #[test]
    fn static_actions_and_their_exclusions() {
        let fixed = |action: &str| Authority {
            static_: Some(StaticRef {
                action: action.into(),
                message: None,
            }),
            ..Default::default()
        };
        assert_eq!(validate_policy(&spec_with(fixed("fail"))), Ok(()));
        let e = errors(&spec_with(fixed("maybe")));
        assert_eq!(e.to_string(), "invalid value: maybe: spec.authorities[0].static.action");
        let mut with_log = fixed("pass");
        with_log.ctlog = Some(TLog::default());
        let text = errors(&spec_with(with_log)).to_string();
        assert!(text.contains("got both: spec.authorities[0].static, spec.authorities[0].ctlog"));
    }

    #[test]
    fn sources_are_repositories_without_tag_or_digest() {
        for (oci, ok) in [
            ("registry.local:5000/policy-controller/demo", true),
            ("ghcr.io/org/sigs", true),
            ("library/ubuntu", true),
            ("ubuntu", true),
            ("ghcr.io/org/sigs:v1", false),
            ("ghcr.io/org/sigs@sha256:abc", false),
            ("ghcr.io/Org/sigs", false),
            ("host:port/x", false),
        ] {
            let source = Source {
                oci: Some(oci.into()),
                ..Default::default()
            };
            let mut authority = keyed();
            authority.sources = vec![source];
            let result = validate_policy(&spec_with(authority));
            assert_eq!(result.is_ok(), ok, "{oci}: {result:?}");
        }
    }

    #[test]
    fn match_resources_and_versions() {
        let matching = |group: Option<&str>, version: &str, resource: &str| {
            let mut spec = spec_with(keyed());
            spec.match_ = vec![MatchResource {
                group: group.map(Into::into),
                version: Some(version.into()),
                resource: Some(resource.into()),
                selector: None,
            }];
            validate_policy(&spec)
        };
        assert_eq!(matching(Some("apps"), "v1", "deployments"), Ok(()));
        assert_eq!(matching(None, "*", "pods"), Ok(()));
        assert_eq!(matching(Some("batch"), "v1", "cronjobs"), Ok(()));
        let apple = matching(Some("apps"), "v1", "apple").err().map(|e| e.to_string());
        assert_eq!(apple.as_deref(), Some("invalid value: apple: spec.match[0].resource"));
        let wrong_group = matching(Some("apps"), "v1", "jobs").err();
        assert!(wrong_group.is_some_and(|e| e.has_path("spec.match[0].group")));
        let wrong_version = matching(None, "v2", "pods").err();
        assert!(wrong_version.is_some_and(|e| e.has_path("spec.match[0].version")));
    }

    #[test]
    fn policies_need_a_type_and_one_source() {
        let mut spec = spec_with(keyed());
        spec.policy = Some(Policy {
            type_: "opa".into(),
            data: Some("x".into()),
            remote: Some(RemotePolicy {
                url: Some("https://example.com/p".into()),
                sha256sum: Some("abc".into()),
            }),
            ..Default::default()
        });
        let e = errors(&spec);
        for path in [
            "spec.policy.type",
            "spec.policy.data",
            "spec.policy.remote",
            "spec.policy.remote.sha256sum",
        ] {
            assert!(e.has_path(path), "{path}: {e}");
        }
    }

    #[test]
    fn attestation_policies_cannot_ask_for_the_object() {
        let mut authority = keyed();
        authority.attestations = vec![Attestation {
            name: String::new(),
            predicate_type: "spdxjson".into(),
            policy: Some(Policy {
                type_: "cue".into(),
                data: Some("x".into()),
                include_spec: Some(true),
                ..Default::default()
            }),
        }];
        let e = errors(&spec_with(authority));
        let base = "spec.authorities[0].attestations[0]";
        assert!(e.has_path(&format!("{base}.name")));
        let text = e.to_string();
        assert!(text.contains(&format!("must not set the field(s): {base}.policy.includeSpec")));
    }

    #[test]
    fn signature_format_is_simplesigning_or_bundle() {
        let mut authority = keyed();
        authority.signature_format = Some("bundle".into());
        assert_eq!(validate_policy(&spec_with(authority.clone())), Ok(()));
        authority.signature_format = Some("dsse".into());
        let e = errors(&spec_with(authority));
        assert!(e.has_path("spec.authorities[0].signatureFormat"));
    }

    #[test]
    fn path_components_follow_distribution() {
        for good in ["a", "a.b", "a__b", "a---b", "a_b.c-d9"] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in ["", "A", "a.", ".a", "a..b", "a___b", "a:b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    fn keys_root() -> TrustRootSpec {
        let ca = CertificateAuthority {
            subject: Some(DistinguishedName {
                organization: Some("o".into()),
                common_name: Some("cn".into()),
            }),
            uri: Some("https://fulcio.example.com".into()),
            cert_chain: Some(b64(CERT)),
        };
        let log = TransparencyLogInstance {
            base_url: Some("https://rekor.example.com".into()),
            hash_algorithm: Some("sha-256".into()),
            public_key: Some(b64(KEY)),
            log_id: None,
        };
        TrustRootSpec {
            sigstore_keys: Some(SigstoreKeys {
                certificate_authorities: vec![ca],
                t_logs: vec![log.clone()],
                ct_logs: vec![log],
                timestamp_authorities: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn trust_root_with_keys_is_valid() {
        assert_eq!(validate_trust_root(&keys_root()), Ok(()));
    }

    #[test]
    fn trust_root_needs_exactly_one_source() {
        let e = validate_trust_root(&TrustRootSpec::default()).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            text,
            "expected exactly one, got neither: spec.repository, spec.remote, spec.sigstoreKeys"
        );
        let mut both = keys_root();
        both.remote = Some(Remote::default());
        let text = validate_trust_root(&both).err().map(|e| e.to_string());
        assert!(text.is_some_and(|t| t.starts_with("expected exactly one, got both")));
    }

    #[test]
    fn trust_root_byte_fields_must_decode() {
        let mut spec = keys_root();
        if let Some(keys) = spec.sigstore_keys.as_mut() {
            keys.t_logs[0].public_key = Some("REKOR_PUBLIC_KEY".into());
            keys.certificate_authorities[0].cert_chain = Some(b64("not pem"));
        }
        let e = validate_trust_root(&spec).err();
        let paths = [
            "spec.sigstoreKeys.tLogs[0].publicKey",
            "spec.sigstoreKeys.certificateAuthorities[0].certChain",
        ];
        for path in paths {
            assert!(e.as_ref().is_some_and(|e| e.has_path(path)), "{path}: {e:?}");
        }
    }

    #[test]
    fn tuf_roots_must_be_signed_json() {
        let remote = |root: &str| TrustRootSpec {
            remote: Some(Remote {
                mirror: Some("https://tuf.example.com".into()),
                root: Some(root.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(validate_trust_root(&remote(&b64(r#"{"signatures":[]}"#))), Ok(()));
        for bad in ["ROOT_JSON".to_string(), b64("{}"), b64("[")] {
            let e = validate_trust_root(&remote(&bad)).err();
            assert!(e.is_some_and(|e| e.has_path("spec.remote.root")), "{bad}");
        }
        let repository = TrustRootSpec {
            repository: Some(Repository {
                root: Some(b64(r#"{"signatures":[]}"#)),
                mirror_fs: Some("REPOSITORY".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = validate_trust_root(&repository).err();
        assert!(e.is_some_and(|e| e.has_path("spec.repository.mirrorFS")));
    }
}
