//! `signet verify-blob`: the `cosign verify-blob` flow for release binaries, keyed and keyless
//! (with cosign's `--bundle`), offline, printing `Verified OK`.

use crate::support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use support::{LeafOptions, PrivateCa, TestKey, require_tools};

fn verify_blob(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .arg("verify-blob")
        .args(args)
        .output()
        .expect("run signet verify-blob");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn keyed_blob_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate();
    let blob = b"kubectl release binary".to_vec();
    let file = write(dir.path(), "kubectl", &blob);
    let signature = write(
        dir.path(),
        "kubectl.sig",
        base64::engine::general_purpose::STANDARD.encode(key.sign(&blob)),
    );
    let public = write(dir.path(), "cosign.pub", key.public_pem());

    let (ok, output) = verify_blob(&[&file, "--key", &public, "--signature", &signature]);
    assert!(ok, "{output}");
    assert!(output.contains("Verified OK"), "{output}");

    let tampered = write(dir.path(), "kubectl-tampered", b"kubectl release binary!");
    let (ok, output) = verify_blob(&[&tampered, "--key", &public, "--signature", &signature]);
    assert!(!ok && !output.contains("Verified OK"), "{output}");
    assert!(output.contains("does not verify with key"), "{output}");
}

#[test]
fn keyless_blob_signatures_with_a_cosign_bundle() {
    if !require_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new(dir.path());
    let leaf = ca.issue(LeafOptions::email("krel@example.com", "https://accounts.example.com"));
    let signer = TestKey::from_pkcs8_pem(&std::fs::read_to_string(&leaf.key_path).unwrap());
    let rekor = TestKey::generate();
    let blob = b"release artifact".to_vec();
    let signature_b64 = base64::engine::general_purpose::STANDARD.encode(signer.sign(&blob));
    let rekor_bundle: serde_json::Value =
        serde_json::from_str(&support::rekor_bundle(&rekor, &blob, &signature_b64, &leaf.cert_pem)).unwrap();
    let bundle = serde_json::json!({
        "base64Signature": signature_b64,
        "cert": base64::engine::general_purpose::STANDARD.encode(&leaf.cert_pem),
        "rekorBundle": rekor_bundle,
    });
    let file = write(dir.path(), "artifact", &blob);
    let bundle_path = write(dir.path(), "artifact.bundle", bundle.to_string());
    let trust_root = write(
        dir.path(),
        "trusted_root.json",
        ca.trusted_root_json(&rekor.spki_der(), None),
    );
    let common = [
        "--bundle",
        &bundle_path,
        "--trust-root",
        &trust_root,
        "--insecure-ignore-sct",
    ];

    let (ok, output) = verify_blob(
        &[
            &[file.as_str()][..],
            &common,
            &[
                "--certificate-identity",
                "krel@example.com",
                "--certificate-oidc-issuer",
                "https://accounts.example.com",
            ],
        ]
        .concat(),
    );
    assert!(ok, "{output}");
    assert!(output.contains("Verified OK"), "{output}");

    let (ok, output) = verify_blob(
        &[
            &[file.as_str()][..],
            &common,
            &[
                "--certificate-identity",
                "someone@example.com",
                "--certificate-oidc-issuer",
                "https://accounts.example.com",
            ],
        ]
        .concat(),
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("found issuer \"https://accounts.example.com\", subject \"krel@example.com\""),
        "{output}"
    );

    let other = write(dir.path(), "other", b"another artifact");
    let (ok, output) = verify_blob(
        &[
            &[other.as_str()][..],
            &common,
            &[
                "--certificate-identity",
                "krel@example.com",
                "--certificate-oidc-issuer",
                "https://accounts.example.com",
            ],
        ]
        .concat(),
    );
    assert!(!ok, "{output}");
    assert!(output.contains("invalid signature"), "{output}");

    // No issuer flag accepts any issuer (GitHub's release certificates carry none); keyless
    // verification still needs the Rekor entry.
    let (ok, output) = verify_blob(&[&file, "--certificate-identity", "krel@example.com"]);
    assert!(!ok && output.contains("give --signature or --bundle"), "{output}");
    let (ok, output) = verify_blob(&[&file]);
    assert!(!ok && output.contains("--certificate-identity"), "{output}");
}
