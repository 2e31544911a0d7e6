//! Golden output of the operator commands: what `signet verify --explain` and `signet review`
//! print for the README's examples. A change to these texts is a change users see.

use std::process::Command;

fn signet(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--log-level", "error"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run signet");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn verify_explain_shows_why_no_policy_matched() {
    let (code, output) = signet(&["verify", "nginx:1.27", "--policy", "deploy/examples", "--explain"]);
    assert_eq!(code, 1);
    let expected = r#"explain: nginx:1.27 is matched as index.docker.io/library/nginx:1.27, nginx:1.27, index.docker.io/library/nginx
  policy "allow-system-images": no glob matches; globs "quay.io/jetstack/cert-manager-*" (/^quay\.io/jetstack/cert\-manager\-[^/]*$/), "quay.io/prometheus/**" (/^quay\.io/prometheus/.*$/), "quay.io/prometheus-operator/**" (/^quay\.io/prometheus\-operator/.*$/), "docker.io/calico/*" (/^index\.docker\.io/calico/[^/]*$/)
  policy "kubernetes-release-images": no glob matches; globs "registry.k8s.io/**" (/^registry\.k8s\.io/.*$/)
  policy "signed-by-github-actions": no glob matches; globs "ghcr.io/my-org/**" (/^ghcr\.io/my\-org/.*$/)
  policy "team-a-signed-with-cosign-key": no glob matches; globs "registry.example.com/team-a/**" (/^registry\.example\.com/team\-a/.*$/)
image: nginx:1.27
  normalised: index.docker.io/library/nginx:1.27
  no ClusterImagePolicy matches this image
denied: container "verify" image "nginx:1.27": no ClusterImagePolicy matches index.docker.io/library/nginx:1.27
result: denied
"#;
    assert_eq!(output, expected);
}

#[test]
fn verify_explain_shows_the_matching_glob() {
    let (code, output) = signet(&[
        "verify",
        "quay.io/prometheus/node-exporter:v1.8.0",
        "--policy",
        "deploy/examples",
        "--explain",
    ]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("policy \"allow-system-images\": glob \"quay.io/prometheus/**\" matches"),
        "{output}"
    );
    assert!(
        output.contains("authority \"system-images\" passed: static pass"),
        "{output}"
    );
    assert!(output.ends_with("result: allowed\n"), "{output}");
}

#[test]
fn review_prints_the_answer_and_decodes_the_patch() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: deny-busybox\nspec:\n  images:\n  - glob: \"index.docker.io/library/busybox*\"\n  authorities:\n  - static:\n      action: fail\n      message: busybox is not allowed here\n";
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    let policy_path = dir.path().to_str().unwrap();
    let (code, output) = signet(&[
        "review",
        "deploy/examples/requests/pod.json",
        "--policy",
        policy_path,
        "--no-match-policy",
        "allow",
    ]);
    assert_eq!(code, 1);
    let expected = r#"{
  "apiVersion": "admission.k8s.io/v1",
  "kind": "AdmissionReview",
  "response": {
    "allowed": false,
    "status": {
      "code": 403,
      "message": "container \"setup\" image \"docker.io/library/busybox:1.36\": policy \"deny-busybox\" failed: authority \"authority-0\": busybox is not allowed here",
      "reason": "Forbidden"
    },
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002"
  }
}
"#;
    assert_eq!(output, expected);
}

use crate::support;

#[tokio::test]
async fn tree_lists_signatures_attestations_and_referrers() {
    use support::{Registry, SignOptions, TestKey, build_image, push_blob, put_manifest, require_tools, sign_image};
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let host = registry.host();
    let digest = build_image(&registry, "tree/app", "v1", "tree");
    let key = TestKey::generate();
    sign_image(&registry, "tree/app", &digest, &key, &SignOptions::default()).await;
    sign_image(
        &registry,
        "tree/app",
        &digest,
        &TestKey::generate(),
        &SignOptions {
            append: true,
            ..SignOptions::default()
        },
    )
    .await;
    // A referrer recorded through the tag schema, as registries without the API keep them.
    let config = push_blob(&registry, "tree/app", b"{}").await;
    let artifact = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": config},
        "layers": [], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1}
    })
    .to_string();
    let artifact_digest = put_manifest(
        &registry,
        "tree/app",
        "bundle",
        "application/vnd.oci.image.manifest.v1+json",
        artifact.as_bytes(),
    )
    .await;
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": artifact_digest, "size": artifact.len(), "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]
    })
    .to_string();
    put_manifest(
        &registry,
        "tree/app",
        &digest.replacen(':', "-", 1),
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
    )
    .await;

    let (code, output) = signet(&["tree", &format!("{host}/tree/app:v1"), "--insecure-registry", &host]);
    assert_eq!(code, 0, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0], format!("📦 {host}/tree/app@{digest}"));
    assert_eq!(
        lines[1],
        format!("└── signatures ({host}/tree/app:{}.sig)", digest.replacen(':', "-", 1))
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("application/vnd.dev.cosign.simplesigning.v1+json"))
            .count(),
        2,
        "{output}"
    );
    assert!(output.contains("└── attestations: none"), "{output}");
    assert!(output.contains("└── SBOMs: none"), "{output}");
    assert!(output.contains("└── referrers (referrers tag schema)"), "{output}");
    assert!(
        output.contains(&format!(
            "    └── {artifact_digest} application/vnd.dev.sigstore.bundle.v0.3+json"
        )),
        "{output}"
    );
}

#[test]
fn every_serve_flag_is_documented_in_the_readme() {
    let (_, help) = signet(&["serve", "--help"]);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([',', ':', '.']))
        .filter(|w| !["--help", "--version"].contains(w))
        .collect();
    assert!(flags.len() > 15, "{help}");
    let missing: Vec<&&str> = flags.iter().filter(|f| !readme.contains(&format!("`{f}`"))).collect();
    assert!(missing.is_empty(), "README settings lack {missing:?}");
}
