//! policy-controller's own policies and TrustRoots, read from the shared fixtures (never copied
//! into the repo): the ones it accepts must decode and validate here, the ones it rejects must
//! be rejected naming the same fields.

use std::path::{Path, PathBuf};

use signet::api::{ClusterImagePolicy, Document, TrustRoot, parse_documents};
use signet::policy::validate::{validate_policy, validate_trust_root};

/// `$SIGNET_FIXTURES/policy-controller`, else `../shared/fixtures/policy-controller`. `None`
/// (with a note) when absent, unless `CI=true`, where missing fixtures must fail the build.
fn fixture_dir() -> Option<PathBuf> {
    let root = std::env::var_os("SIGNET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let dir = root.join("policy-controller");
    if dir.is_dir() {
        return Some(dir);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!in_ci, "fixtures not found at {} (CI=true)", dir.display());
    eprintln!("skipping: fixtures not found at {}", dir.display());
    None
}

/// The fixture files whose names start with `prefix`, sorted, with their text.
fn fixtures(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix) && name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no {prefix}* fixtures in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            (name, text)
        })
        .collect()
}

fn policies(name: &str, text: &str) -> Vec<ClusterImagePolicy> {
    let docs = parse_documents(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let policies: Vec<_> = docs
        .into_iter()
        .filter_map(|doc| match doc {
            Document::Policy(policy) => Some(policy),
            _ => None,
        })
        .collect();
    assert!(!policies.is_empty(), "{name}: no ClusterImagePolicy");
    policies
}

fn trust_roots(name: &str, text: &str) -> Vec<TrustRoot> {
    let docs = parse_documents(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let roots: Vec<_> = docs
        .into_iter()
        .filter_map(|doc| match doc {
            Document::TrustRoot(root) => Some(root),
            _ => None,
        })
        .collect();
    assert!(!roots.is_empty(), "{name}: no TrustRoot");
    roots
}

#[test]
fn accepted_policies_decode_and_validate() {
    let Some(dir) = fixture_dir() else { return };
    let mut failures = Vec::new();
    for prefix in ["valid__", "e2e__", "examples__", "tester__"] {
        for (name, text) in fixtures(&dir, prefix) {
            for policy in policies(&name, &text) {
                if let Err(e) = validate_policy(&policy.spec) {
                    failures.push(format!("{name}:\n{e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "rejected valid policies:\n{}",
        failures.join("\n\n")
    );
}

/// What a fixture's `# ERROR:` line says policy-controller answers: the message and the
/// field paths, e.g. `validation failed: invalid value: [: spec.images[0].glob`.
fn expected_error(name: &str, text: &str) -> (String, Vec<String>) {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("# ERROR:"))
        .unwrap_or_else(|| panic!("{name}: no `# ERROR:` line"));
    let line = line.trim();
    let line = line.strip_prefix("validation failed:").unwrap_or(line).trim();
    let (message, paths) = line
        .split_once(": spec.")
        .unwrap_or_else(|| panic!("{name}: cannot read `# ERROR:{line}`"));
    let paths = format!("spec.{paths}");
    let paths = paths.split(", ").map(|p| p.trim().to_string()).collect();
    (message.to_string(), paths)
}

#[test]
fn rejected_policies_fail_naming_the_same_fields() {
    let Some(dir) = fixture_dir() else { return };
    for (name, text) in fixtures(&dir, "invalid__") {
        let (message, paths) = expected_error(&name, &text);
        for policy in policies(&name, &text) {
            let err = validate_policy(&policy.spec)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted, expected `{message}`"));
            let shown = err.to_string();
            assert!(
                shown.contains(&format!("{message}: ")),
                "{name}: want `{message}`, got:\n{shown}"
            );
            for path in &paths {
                assert!(err.has_path(path), "{name}: no error at {path}, got:\n{shown}");
            }
        }
    }
}

#[test]
fn valid_trust_roots_decode_and_validate() {
    let Some(dir) = fixture_dir() else { return };
    for (name, text) in fixtures(&dir, "trustroot-valid__") {
        for root in trust_roots(&name, &text) {
            if let Err(e) = validate_trust_root(&root.spec) {
                panic!("{name}: rejected:\n{e}");
            }
        }
    }
}

/// These hold CI placeholders (ROOT_JSON, TSA_URL...) instead of real bytes: decode only.
#[test]
fn e2e_trust_roots_decode() {
    let Some(dir) = fixture_dir() else { return };
    for (name, text) in fixtures(&dir, "trustroot-e2e__") {
        let roots = trust_roots(&name, &text);
        let spec = &roots[0].spec;
        let sources = [
            spec.remote.is_some(),
            spec.repository.is_some(),
            spec.sigstore_keys.is_some(),
        ];
        assert_eq!(sources.iter().filter(|s| **s).count(), 1, "{name}");
    }
}

#[test]
fn error_lines_are_read_with_or_without_prefix() {
    let text = "# ERROR: validation failed: expected exactly one, got both: spec.a.data, spec.a.kms\n";
    let (message, paths) = expected_error("t", text);
    assert_eq!(message, "expected exactly one, got both");
    assert_eq!(paths, ["spec.a.data", "spec.a.kms"]);
    let (message, paths) = expected_error("t", "# ERROR:invalid value: [: spec.images[0].glob");
    assert_eq!(
        (message.as_str(), paths),
        ("invalid value: [", vec!["spec.images[0].glob".to_string()])
    );
}
