//! `TrustRoot::from_json` (a sigstore `trusted_root.json`) on arbitrary bytes.
//!
//! Invariants: nothing panics; every log of a parsed root has a hex sha256 log id under
//! which it is found again; the expiry question is answered without panicking; every CA
//! has a chain; building the `sigstore-verify` verifier from it answers without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::trust::TrustRoot;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = TrustRoot::from_json(data) else {
        return;
    };
    for now in [
        time::OffsetDateTime::UNIX_EPOCH,
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
    ] {
        let _ = root.earliest_expiry(now);
    }
    let _ = root.verifier();
    for log in root.tlogs.iter().chain(&root.ctlogs) {
        assert_eq!(log.log_id.len(), 64, "log id {:?}", log.log_id);
        assert!(
            log.log_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "log id {:?}",
            log.log_id
        );
        let _ = log.valid_at(time::OffsetDateTime::UNIX_EPOCH);
    }
    for log in &root.tlogs {
        assert!(root.tlog(&log.log_id).is_some());
    }
    for log in &root.ctlogs {
        let id: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&log.log_id[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        assert!(root.ctlog(&id).is_some(), "ctlog {} not found by its id", log.log_id);
    }
    let id = &data[..data.len().min(32)];
    let _ = root.ctlog(id);
    let _ = root.tlog(&String::from_utf8_lossy(id));
});
