//! The sigstore-conformance bundle verification suite, run against `signet verify-bundle`
//! through its command-line protocol: real bundles from Sigstore's production and staging
//! instances, and crafted failures. Each case runs twice, with the artifact's path and with
//! its `sha256:` digest; `_fail` cases must fail, the others must pass.

use crate::support;

use std::path::Path;
use std::process::Command;

use sha2::Digest;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Cases signet cannot pass yet, with the reason. A listed case must still give the wrong
/// answer (so fixing one forces its removal here); every other case must be right.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

struct Outcome {
    name: String,
    mode: &'static str,
    ok: bool,
    output: String,
}

fn run_case(case: &Path, shared: &Path, use_digest: bool) -> Outcome {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let read = |file: &str| {
        std::fs::read_to_string(case.join(file))
            .ok()
            .map(|t| t.trim().to_string())
    };
    let artifact = if case.join("artifact").is_file() {
        case.join("artifact")
    } else {
        shared.join("bundle-verify/a.txt")
    };
    let trusted_root = if case.join("trusted_root.json").is_file() {
        case.join("trusted_root.json")
    } else {
        shared.join("trusted_root.production.json")
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_signet"));
    command
        .arg("verify-bundle")
        .arg("--bundle")
        .arg(case.join("bundle.sigstore.json"));
    if case.join("key.pub").is_file() {
        command.arg("--key").arg(case.join("key.pub"));
    } else {
        command
            .arg("--certificate-identity")
            .arg(read("identity").unwrap_or_else(|| DEFAULT_IDENTITY.to_string()))
            .arg("--certificate-oidc-issuer")
            .arg(read("issuer").unwrap_or_else(|| DEFAULT_ISSUER.to_string()));
    }
    command.arg("--trusted-root").arg(&trusted_root);
    if use_digest {
        let bytes = std::fs::read(&artifact).unwrap();
        command.arg(format!("sha256:{:x}", sha2::Sha256::digest(&bytes)));
    } else {
        command.arg(&artifact);
    }
    let output = command.output().expect("run signet verify-bundle");
    Outcome {
        name,
        mode: if use_digest { "digest" } else { "path" },
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[test]
fn sigstore_conformance_bundle_verification() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let shared = fixtures.join("sigstore-conformance");
    let mut cases: Vec<_> = std::fs::read_dir(shared.join("bundle-verify"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 70,
        "expected the whole suite, found {} cases",
        cases.len()
    );

    let mut wrong = Vec::new();
    let mut right = 0;
    for case in &cases {
        for use_digest in [false, true] {
            let outcome = run_case(case, &shared, use_digest);
            let expected_ok = !outcome.name.ends_with("_fail");
            let known = KNOWN_FAILURES.iter().find(|(name, _)| *name == outcome.name);
            match (outcome.ok == expected_ok, known) {
                (true, None) => right += 1,
                (false, Some(_)) => {}
                (true, Some((name, _))) => wrong.push(format!("{name} now passes: remove it from KNOWN_FAILURES")),
                (false, None) => wrong.push(format!(
                    "{} ({}): expected {}, got:\n{}",
                    outcome.name,
                    outcome.mode,
                    if expected_ok { "success" } else { "failure" },
                    outcome.output.trim()
                )),
            }
            // A failure must say why; a success must say so.
            if outcome.ok {
                assert!(
                    outcome.output.contains("Verified OK"),
                    "{}: {}",
                    outcome.name,
                    outcome.output
                );
            } else {
                assert!(
                    outcome.output.contains("error:"),
                    "{}: {}",
                    outcome.name,
                    outcome.output
                );
            }
        }
    }
    eprintln!(
        "sigstore-conformance: {right} of {} runs right ({} cases, {} known failures)",
        cases.len() * 2,
        cases.len(),
        KNOWN_FAILURES.len()
    );
    assert!(wrong.is_empty(), "{} wrong:\n\n{}", wrong.len(), wrong.join("\n\n"));
}
