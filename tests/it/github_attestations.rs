//! GitHub artifact attestations through `signet verify-bundle`: every case of
//! `github-attestations/cases.json` (real bundles from GitHub's own Sigstore instance, which
//! has timestamp authorities and no transparency log, and from the public-good instance),
//! with each `gh attestation verify` option mapped to signet's flag of the same meaning.

use crate::support;

use std::process::Command;

use serde_json::Value;

/// `gh` refuses bundles older than v0.2 as a policy of its own (before any cryptography);
/// sigstore-conformance expects v0.1 bundles to verify, and signet follows conformance.
const DIFFERS_FROM_GH: &[(&str, &str)] = &[(
    "public-good-sigstore-js-bundle-v0.1",
    "gh's minimum bundle version; the v0.1 bundle's signature and log entry are genuine",
)];

/// `gh attestation verify` options (as cases.json names them) and signet's flags for them.
const GH_FLAGS: &[(&str, &str)] = &[
    ("san", "--certificate-identity"),
    ("san_regexp", "--certificate-identity-regexp"),
    ("issuer", "--certificate-oidc-issuer"),
    ("owner", "--owner"),
    ("repo", "--repo"),
    ("signer_repo", "--signer-repo"),
    ("signer_workflow", "--signer-workflow"),
    ("hostname", "--hostname"),
];

/// Identity fields of cases.json that are Fulcio extensions but no `gh` option: checked too,
/// through `--certificate-extension`.
const EXTENSION_FIELDS: &[(&str, &str)] = &[
    ("source_repository_uri", "sourceRepositoryURI"),
    ("build_config_uri", "buildConfigURI"),
];

fn run_case(case: &Value, dir: &std::path::Path, scratch: &std::path::Path) -> (bool, String) {
    let field = |name: &str| case[name].as_str().unwrap_or_default();
    let mut command = Command::new(env!("CARGO_BIN_EXE_signet"));
    command
        .arg("verify-bundle")
        .arg("--bundle")
        .arg(dir.join(field("bundle")))
        .arg("--trusted-root")
        .arg(dir.join(field("trusted_root")));
    let mut names_signer = false;
    if let Some(identity) = case["identity"].as_object() {
        for (name, value) in identity {
            let Some(value) = value.as_str() else { continue };
            if let Some((_, flag)) = GH_FLAGS.iter().find(|(gh, _)| gh == name) {
                command.arg(flag).arg(value);
                names_signer |= *flag != "--certificate-oidc-issuer" && *flag != "--hostname";
            } else if let Some((_, extension)) = EXTENSION_FIELDS.iter().find(|(field, _)| field == name) {
                command
                    .arg("--certificate-extension")
                    .arg(format!("{extension}={value}"));
            }
        }
    }
    if !names_signer {
        // The case names no signer (it is about the bundle or the artifact): accept anyone.
        command.args([
            "--certificate-identity-regexp",
            ".*",
            "--certificate-oidc-issuer-regexp",
            ".*",
        ]);
    }
    let artifact = &case["artifact"];
    if let Some(file) = artifact["file"].as_str() {
        command.arg(dir.join(file));
    } else if let Some(text) = artifact["inline_utf8"].as_str() {
        let path = scratch.join(format!("{}.artifact", field("id")));
        std::fs::write(&path, text).unwrap();
        command.arg(path);
    } else {
        let digest = artifact["sha256"].as_str().unwrap_or(&"0".repeat(64)).to_string();
        command.arg(format!("sha256:{digest}"));
    }
    let output = command.output().expect("signet runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_case_is_decided_as_gh_decides_it() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let dir = fixtures.join("github-attestations");
    let cases: Value = serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().expect("cases.json has cases");
    assert!(cases.len() >= 30, "cases.json shrank to {}", cases.len());
    let scratch = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let (passed, output) = run_case(case, &dir, scratch.path());
        let expected = case["expect"] == "pass";
        let differs = DIFFERS_FROM_GH.iter().any(|(known, _)| *known == id);
        if (passed == expected) == differs {
            wrong.push(format!(
                "{id}: expected {}, differs from gh: {differs}\n{output}",
                case["expect"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases decided wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// A mismatch names what was expected and what the certificate says, as `gh` does.
#[test]
fn a_wrong_repository_is_named_with_the_one_found() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let dir = fixtures.join("github-attestations");
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["verify-bundle", "--bundle"])
        .arg(dir.join("cli__sigstore-js-2.1.0-bundle.json"))
        .arg("--trusted-root")
        .arg(dir.join("root-signing__trusted_root.json"))
        .args(["--repo", "sigstore/fakerepo", "--deny-self-hosted-runners"])
        .arg(dir.join("cli__sigstore-js-2.1.0.tgz"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("sourceRepositoryURI \"https://github.com/sigstore/fakerepo\"")
            && text.contains("sourceRepositoryURI \"https://github.com/sigstore/sigstore-js\"")
            && text.contains("runnerEnvironment \"github-hosted\""),
        "{text}"
    );

    // The same bundle with the right repository, ref and a GitHub-hosted runner verifies.
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["verify-bundle", "--bundle"])
        .arg(dir.join("cli__sigstore-js-2.1.0-bundle.json"))
        .arg("--trusted-root")
        .arg(dir.join("root-signing__trusted_root.json"))
        .args(["--repo", "sigstore/sigstore-js", "--source-ref", "refs/heads/main"])
        .args(["--deny-self-hosted-runners"])
        .arg(dir.join("cli__sigstore-js-2.1.0.tgz"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
}
