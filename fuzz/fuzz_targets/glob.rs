//! `Glob::compile` on arbitrary strings, and `matches` against parsed references.
//!
//! Input: the first line is the glob, each further line an image reference.
//! Invariants: compiling and matching never panic and are deterministic; a compiled glob
//! keeps its source; a glob that matches an image's normalised spelling matches the image
//! (normalising can never move an image out of a policy's reach); `**` matches every image and
//! `REGISTRY/**` every image of that registry (IPv6 hosts cannot be written in a glob).
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use signet::policy::glob::Glob;
use signet::policy::reference::ImageRef;

thread_local! {
    /// `REGISTRY/**` globs by registry: compiling a glob's regex is the slow part.
    static REGISTRY_GLOBS: RefCell<HashMap<String, Glob>> = RefCell::new(HashMap::new());
}

static EVERYTHING: LazyLock<Glob> = LazyLock::new(|| Glob::compile("**").expect("**"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    let compiled = Glob::compile(source);
    // A few images are enough to check matching; compiling a glob per image is the slow part.
    let images: Vec<ImageRef> = lines.take(8).filter_map(|l| ImageRef::parse(l).ok()).collect();
    if let Ok(glob) = &compiled {
        assert_eq!(glob.as_str(), source);
        for image in &images {
            let matched = glob.matches(image);
            assert_eq!(matched, glob.matches(image), "deterministic");
            let normalised = ImageRef::parse(&image.to_string())
                .unwrap_or_else(|e| panic!("normalised {image} does not parse: {e}"));
            if glob.matches(&normalised) {
                assert!(
                    matched,
                    "{source:?} matches {normalised} but not {:?}, its spelling in the pod",
                    image.raw()
                );
            }
        }
    }
    for image in &images {
        assert!(EVERYTHING.matches(image), "** does not match {:?}", image.raw());
        if image.registry().starts_with('[') {
            continue;
        }
        let registry_glob = format!("{}/**", image.registry());
        REGISTRY_GLOBS.with_borrow_mut(|cache| {
            if cache.len() > 256 {
                cache.clear();
            }
            let everything = cache.entry(registry_glob.clone()).or_insert_with(|| {
                Glob::compile(&registry_glob)
                    .unwrap_or_else(|e| panic!("{registry_glob:?} (for {:?}) does not compile: {e}", image.raw()))
            });
            assert!(
                everything.matches(image),
                "{:?} does not match {registry_glob}",
                image.raw()
            );
        });
    }
});
