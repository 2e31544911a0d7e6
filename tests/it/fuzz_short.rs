//! The short fuzzing run: `scripts/fuzz.sh` (every cargo-fuzz target in fuzz/ for
//! `FUZZ_SECONDS`, 20 s by default) when `SIGNET_FUZZ=1`; skipped otherwise, because the
//! first build of the instrumented targets takes several minutes.

use std::path::Path;
use std::process::Command;

#[test]
fn short_fuzz_run_finds_no_crash() {
    if std::env::var("SIGNET_FUZZ").as_deref() != Ok("1") {
        println!("skipping: set SIGNET_FUZZ=1 to run scripts/fuzz.sh (the short fuzzing run)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fuzz.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run scripts/fuzz.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let tail = |text: &str, lines: usize| {
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    };
    assert!(
        output.status.success(),
        "scripts/fuzz.sh failed ({}):\n--- stderr (tail) ---\n{}\n--- stdout ---\n{}",
        output.status,
        tail(&stderr, 120),
        tail(&stdout, 40)
    );
}
