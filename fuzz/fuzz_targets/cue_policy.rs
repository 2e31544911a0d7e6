//! cue-lite (`type: cue` policies): arbitrary policy text compiled, and every policy that
//! compiles evaluated on a JSON input under tight limits, as signet evaluates an attestation
//! or `spec.policy` CUE policy.
//!
//! Input: the policy text (UTF-8, lossily), a NUL byte, then the input JSON. Without a NUL
//! the whole input is the policy and the JSON input is `{}`; when the part after the NUL is
//! not JSON, the policy before it and the whole input (NUL included) are each tried on `{}`.
//!
//! Invariants: nothing panics, overflows its stack or runs past the limits (libFuzzer's
//! -timeout and -rss_limit_mb catch the last); results are ignored.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Far below signet's (`signet::policy::cue::LIMITS`), so that a runaway evaluation ends
/// quickly and libFuzzer keeps its pace.
const LIMITS: cue_lite::Limits = cue_lite::Limits {
    steps: 200_000,
    time: Duration::from_millis(500),
    vertices: 100_000,
    disjuncts: 256,
};

fn compile_and_evaluate(policy: &str, input: &Value) {
    if let Ok(policy) = cue_lite::Policy::compile(policy) {
        let _ = policy.evaluate(input, LIMITS);
    }
}

fuzz_target!(|data: &[u8]| {
    let empty = Value::Object(serde_json::Map::new());
    let Some(nul) = data.iter().position(|&byte| byte == 0) else {
        compile_and_evaluate(&String::from_utf8_lossy(data), &empty);
        return;
    };
    let policy = String::from_utf8_lossy(&data[..nul]);
    match serde_json::from_slice::<Value>(&data[nul + 1..]) {
        Ok(input) => compile_and_evaluate(&policy, &input),
        Err(_) => {
            compile_and_evaluate(&policy, &empty);
            compile_and_evaluate(&String::from_utf8_lossy(data), &empty);
        }
    }
});
