//! `pem_certificates` and `authority_from_pem` (a policy's `ca-cert` chain) on arbitrary text.
//!
//! Invariants: an authority holds exactly the chain's certificates, its root (last) is one
//! of them, and `pem_certificates` agrees with it on the count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::keyless::{authority_from_pem, pem_certificates};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let certificates = pem_certificates(text);
    let Ok(authority) = authority_from_pem(text) else {
        return;
    };
    let certificates = certificates.expect("authority_from_pem accepted text pem_certificates refuses");
    assert_eq!(authority.chain_der.len(), certificates.len());
    let root = authority.chain_der.last().expect("an authority has a root");
    assert!(certificates.contains(root));
    let mut sorted_chain = authority.chain_der.clone();
    let mut sorted_certs = certificates;
    sorted_chain.sort();
    sorted_certs.sort();
    assert_eq!(sorted_chain, sorted_certs, "the chain is the text's certificates");
});
