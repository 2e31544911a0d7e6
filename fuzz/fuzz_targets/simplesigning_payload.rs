//! `cosign::parse_payload` (the simple-signing JSON a cosign signature signs) on arbitrary
//! bytes.
//!
//! Invariant: accepted claims written back as a canonical payload parse to the same claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use signet::verify::cosign::parse_payload;

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = parse_payload(data) else {
        return;
    };
    let canonical = json!({
        "critical": {
            "type": "cosign container image signature",
            "image": {"docker-manifest-digest": claims.docker_manifest_digest},
            "identity": {"docker-reference": claims.docker_reference},
        },
        "optional": claims.annotations,
    });
    let again = parse_payload(canonical.to_string().as_bytes()).expect("canonical payload parses");
    assert_eq!(again, claims);
});
