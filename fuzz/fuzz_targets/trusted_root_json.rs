//! `TrustRoot::from_json` (a sigstore `trusted_root.json`) on arbitrary bytes.
//!
//! Invariants: nothing panics; a parsed root answers its lookups and expiry question
//! without panicking, for any log id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::trust::TrustRoot;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = TrustRoot::from_json(data) else {
        return;
    };
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = root.earliest_expiry(now);
    let id = &data[..data.len().min(32)];
    let _ = root.ctlog(id);
    let _ = root.tlog(&String::from_utf8_lossy(id));
});
