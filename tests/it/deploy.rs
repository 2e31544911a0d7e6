//! The install path as a test: `scripts/check-deploy.sh` lints and renders the Helm chart for
//! every values variant, validates the manifests against Kubernetes schemas, checks that
//! `deploy/signet.yaml` matches the chart, lints the Dockerfile, builds the static binary and
//! a FROM-scratch image with buildah, and runs `signet --version` inside it.
//!
//! It takes minutes (a release build), so it runs only with `SIGNET_DEPLOY_CHECKS=1`, which CI
//! sets; otherwise it says it is skipped.

use std::path::Path;
use std::process::Command;

#[test]
fn chart_manifests_dockerfile_and_image_check_out() {
    if std::env::var("SIGNET_DEPLOY_CHECKS").as_deref() != Ok("1") {
        eprintln!(
            "skipping: deploy checks (chart, manifests, image) run only with SIGNET_DEPLOY_CHECKS=1; \
             run scripts/check-deploy.sh directly for them"
        );
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(repo.join("scripts/check-deploy.sh"))
        .current_dir(repo)
        .output()
        .expect("cannot start bash scripts/check-deploy.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "scripts/check-deploy.sh failed ({}):\n{text}",
        output.status
    );
    eprintln!("{text}");
}
