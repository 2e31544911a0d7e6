//! `PublicKey::from_pem` and `PublicKey::from_spki_der` on arbitrary bytes (the text as PEM,
//! the bytes as DER), and `verify` with a parsed key on whatever follows.
//!
//! Invariants: a parsed key's SPKI DER parses again to the same kind and fingerprint;
//! a key from PEM equals the key from its DER; verifying garbage never panics and never
//! succeeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::keys::{HashAlgorithm, PublicKey};

fn check(key: &PublicKey, data: &[u8]) {
    let again = PublicKey::from_spki_der(key.spki_der()).expect("a parsed key's DER parses again");
    assert_eq!(again.kind_name(), key.kind_name());
    assert_eq!(again.fingerprint(), key.fingerprint());
    let (message, signature) = data.split_at(data.len() / 2);
    for hash in ["sha224", "sha256", "sha384", "sha512"] {
        if let Some(hash) = HashAlgorithm::from_name(hash) {
            // Random bytes are no signature over random bytes (2^-128 chance aside).
            assert!(key.verify(message, signature, hash).is_err(), "garbage verified");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        assert_eq!(key.spki_der(), data);
        check(&key, data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(key) = PublicKey::from_pem(text)
    {
        check(&key, data);
    }
});
