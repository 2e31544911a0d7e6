//! `Bundle::from_json` and `bundle::verify` (Sigstore bundles, as cosign v3 attaches them and
//! `signet verify-bundle` reads them) on arbitrary bytes, against the embedded public-good
//! trust root, for a key and for a keyless identity.
//!
//! Invariants: nothing panics; a keyless bundle that verifies names who signed it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet::api::cip::Identity;
use signet::verify::bundle::{Artifact, Bundle, Signer, Timestamps, verify};
use signet::verify::keyless::KeylessRequirements;
use signet::verify::trust::TrustRoot;

fn trust() -> &'static TrustRoot {
    static ROOT: OnceLock<TrustRoot> = OnceLock::new();
    ROOT.get_or_init(|| TrustRoot::public_good().expect("the embedded root parses"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json(data) else {
        return;
    };
    let trust = trust();
    let identity = Identity {
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        subject_reg_exp: Some(".*".into()),
        ..Default::default()
    };
    for artifact in [Artifact::Bytes(b"Hello, World!\n"), Artifact::Sha256([0x5a; 32])] {
        let signer = Signer::Keyless(KeylessRequirements {
            identities: std::slice::from_ref(&identity),
            ignore_sct: false,
        });
        if let Ok(verified) = verify(&bundle, &artifact, &signer, trust, Timestamps::Optional) {
            assert!(verified.identity.is_some(), "a keyless bundle verified without an identity");
        }
    }
});
