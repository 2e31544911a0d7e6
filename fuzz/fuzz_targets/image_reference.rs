//! `ImageRef::parse` on arbitrary strings.
//!
//! Invariants: a parsed reference's normalised form (`Display`) parses again to the same
//! registry, repository, tag and digest, and prints the same; accepted references are ASCII;
//! `pinned` keeps a parseable reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::policy::reference::ImageRef;

const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(image) = ImageRef::parse(raw) else {
        return;
    };
    assert!(raw.is_ascii(), "accepted a non-ASCII reference {raw:?}");
    assert_eq!(image.raw(), raw);
    let normalised = image.to_string();
    let again = ImageRef::parse(&normalised)
        .unwrap_or_else(|e| panic!("{raw:?} normalises to {normalised:?}, which does not parse: {e}"));
    assert_eq!(again.registry(), image.registry(), "{raw:?} -> {normalised:?}");
    assert_eq!(again.repository(), image.repository(), "{raw:?} -> {normalised:?}");
    assert_eq!(again.digest(), image.digest(), "{raw:?} -> {normalised:?}");
    assert_eq!(
        again.effective_tag(),
        image.effective_tag(),
        "{raw:?} -> {normalised:?}"
    );
    assert_eq!(again.to_string(), normalised, "normalisation is idempotent for {raw:?}");
    assert_eq!(
        image.registry(),
        image.registry().to_ascii_lowercase(),
        "registry lower-cased"
    );
    assert!(!image.name().is_empty());
    let _ = image.registry_reference();
    let pinned = image.pinned(SHA256);
    let pinned_ref =
        ImageRef::parse(&pinned).unwrap_or_else(|e| panic!("{raw:?} pinned is {pinned:?}, which does not parse: {e}"));
    assert_eq!(pinned_ref.digest(), Some(SHA256));
    assert_eq!(pinned_ref.name(), image.name(), "pinning keeps the name of {raw:?}");
    assert_eq!(pinned_ref.tag(), image.tag(), "pinning keeps the tag of {raw:?}");
});
