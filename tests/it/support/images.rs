//! Test images: built with umoci in an OCI layout, pushed with skopeo.

use std::path::Path;
use std::process::Command;

use super::env::{python, run, run_in, shared_tool};
use super::registry::Registry;

/// Builds a one-file image (`/hello.txt` = `content`, linux/amd64) and pushes it as an OCI
/// manifest to `reg/repo:tag`. Returns the pushed manifest digest.
pub fn build_image(reg: &Registry, repo: &str, tag: &str, content: &str) -> String {
    push_single(reg, repo, tag, content, None)
}

/// Same image, pushed as a Docker v2 schema 2 manifest (skopeo converts it).
pub fn build_docker_v2s2_image(reg: &Registry, repo: &str, tag: &str, content: &str) -> String {
    push_single(reg, repo, tag, content, Some("v2s2"))
}

/// Pushes an OCI index for linux/amd64 and linux/arm64 to `reg/repo:tag`.
/// Returns (index digest, [amd64 digest, arm64 digest]).
pub fn build_multiarch_index(reg: &Registry, repo: &str, tag: &str) -> (String, Vec<String>) {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    run_in(dir, "umoci", &["init", "--layout", "oci"]);
    let amd64 = make_image(dir, "amd64", &format!("{repo}:{tag} amd64"), "amd64");
    let arm64 = make_image(dir, "arm64", &format!("{repo}:{tag} arm64"), "arm64");
    let mkindex = shared_tool("mkindex.py").unwrap_or_else(|| panic!("mkindex.py is needed for multi-arch images"));
    let printed = run(Command::new(python())
        .arg(&mkindex)
        .args(["oci", "amd64", "arm64", "multi"])
        .current_dir(dir));
    let index = printed.trim().to_string();
    let pushed = skopeo_copy(reg, dir, "multi", repo, tag, &["--all"]);
    assert_eq!(pushed, index, "skopeo pushed a different index than mkindex.py wrote");
    (index, vec![amd64, arm64])
}

fn push_single(reg: &Registry, repo: &str, tag: &str, content: &str, format: Option<&str>) -> String {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    run_in(dir, "umoci", &["init", "--layout", "oci"]);
    make_image(dir, "img", content, "amd64");
    let format_args: Vec<&str> = match format {
        Some(f) => vec!["--format", f],
        None => Vec::new(),
    };
    skopeo_copy(reg, dir, "img", repo, tag, &format_args)
}

/// Adds image `name` with `/hello.txt` = `content` to the layout `dir/oci`; returns the
/// manifest digest in the layout.
fn make_image(dir: &Path, name: &str, content: &str, arch: &str) -> String {
    let image = format!("oci:{name}");
    let bundle = dir.join(format!("bundle-{name}"));
    let bundle_s = bundle.to_string_lossy().into_owned();
    run_in(dir, "umoci", &["new", "--image", &image]);
    // --rootless lets the same helper work for non-root developers and root CI.
    run_in(dir, "umoci", &["unpack", "--rootless", "--image", &image, &bundle_s]);
    std::fs::write(bundle.join("rootfs/hello.txt"), content).expect("write hello.txt");
    run_in(dir, "umoci", &["repack", "--image", &image, &bundle_s]);
    run_in(
        dir,
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.cmd",
            "/hello",
            "--architecture",
            arch,
            "--os",
            "linux",
        ],
    );
    layout_digest(dir, name)
}

fn layout_digest(dir: &Path, name: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci/index.json")).expect("read index.json"))
            .expect("parse index.json");
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .and_then(|m| m["digest"].as_str())
        .unwrap_or_else(|| panic!("{name} not in layout index"))
        .to_string()
}

/// `skopeo copy oci:oci:<name> docker://reg/repo:tag` with the registry's TLS/auth options;
/// returns the digest skopeo pushed (its --digestfile).
fn skopeo_copy(reg: &Registry, dir: &Path, name: &str, repo: &str, tag: &str, extra: &[&str]) -> String {
    let digest_file = dir.join(format!("{name}.digest"));
    let mut cmd = Command::new("skopeo");
    // The insecure policy only skips signature policy checks for this local push.
    cmd.current_dir(dir)
        .args(["--insecure-policy", "copy", "-q"])
        .args(extra)
        .arg("--digestfile")
        .arg(&digest_file);
    if reg.is_tls() {
        cmd.arg("--dest-cert-dir").arg(reg.cert_dir());
    } else {
        cmd.arg("--dest-tls-verify=false");
    }
    if let Some((user, pass)) = reg.creds() {
        cmd.arg("--dest-creds").arg(format!("{user}:{pass}"));
    }
    cmd.arg(format!("oci:oci:{name}"))
        .arg(format!("docker://{}/{repo}:{tag}", reg.host()));
    run(&mut cmd);
    std::fs::read_to_string(&digest_file)
        .expect("read skopeo digest file")
        .trim()
        .to_string()
}
