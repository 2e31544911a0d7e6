//! Where tools and fixtures are, and the skip-unless-CI rule.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Command-line tools the registry tests need.
pub const REGISTRY_TOOLS: &[&str] = &["docker-registry", "skopeo", "umoci", "openssl", "htpasswd"];

/// True when running under CI, where a missing tool or fixture is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Under CI: panic with `why`. Elsewhere: print "skipping: <why>" and return false, so the
/// caller can `return` early.
pub fn skip_or_fail(why: &str) -> bool {
    if in_ci() {
        panic!("{why} (CI=true, so this is a failure; run scripts/install-test-deps.sh)");
    }
    eprintln!("skipping: {why}");
    false
}

/// Whether `name` is an executable on PATH.
pub fn have_tool(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
}

/// True when every registry tool is installed; otherwise skips (or fails under CI).
/// Use as `if !support::require_tools() { return; }`.
pub fn require_tools() -> bool {
    let missing: Vec<&str> = REGISTRY_TOOLS.iter().copied().filter(|t| !have_tool(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(&format!("missing tools: {}", missing.join(", ")))
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$SIGNET_FIXTURES`, else `../shared/fixtures` next to the crate; None (after printing
/// why) when absent, a panic under CI.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = env_path("SIGNET_FIXTURES").unwrap_or_else(|| manifest_dir().join("../shared/fixtures"));
    if dir.is_dir() {
        return Some(dir);
    }
    skip_or_fail(&format!("fixtures not found at {}", dir.display()));
    None
}

/// `$SIGNET_SHARED_TOOLS`, else `../shared/tools` next to the crate (mkindex.py,
/// cosign_sign.py, gen_cosign_key.py, ...). Not checked for existence.
pub fn shared_tools_dir() -> PathBuf {
    env_path("SIGNET_SHARED_TOOLS").unwrap_or_else(|| manifest_dir().join("../shared/tools"))
}

/// One tool script from [`shared_tools_dir`], or None (skip / CI failure) when missing.
pub fn shared_tool(name: &str) -> Option<PathBuf> {
    let path = shared_tools_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    skip_or_fail(&format!("shared tool {} not found", path.display()));
    None
}

/// The Python with pynacl + cryptography: `$SIGNET_PYTHON`, else the venv that
/// install-test-deps.sh makes, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = env_path("SIGNET_PYTHON") {
        return p;
    }
    let tools = env_path("SIGNET_TOOLS").or_else(|| env_path("HOME").map(|h| h.join(".cache/signet-tools")));
    tools
        .map(|t| t.join("venv/bin/python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell-free command in `dir`.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    run(Command::new(program).args(args).current_dir(dir))
}
