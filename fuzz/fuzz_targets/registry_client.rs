//! The registry client (`RegistryClient`: tag resolution, manifests, blobs, referrers, with
//! Bearer/Basic auth, 429 retries and redirects) against a registry on loopback that answers
//! with the fuzz input: raw HTTP responses separated by `\n=====\n` (`{HOST}` becomes the
//! server's address, for token realms and redirects). The same harness runs as a short
//! randomised test in `tests/it/registry_responses.rs`.
//!
//! Invariant: nothing panics, and no operation outlives its deadline.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

// Shared with the tests, which also use its seeds and counters.
#[allow(dead_code)]
#[path = "../../tests/it/support/scripted_registry.rs"]
mod scripted_registry;

use scripted_registry::{ScriptedRegistry, client_for, drive_client};

struct Harness {
    runtime: tokio::runtime::Runtime,
    registry: ScriptedRegistry,
    client: signet::registry::RegistryClient,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let registry = ScriptedRegistry::start();
        let client = runtime.block_on(async { client_for(&registry) });
        Harness {
            runtime,
            registry,
            client,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    // The timer is made inside the runtime: tokio's timers need its context.
    let run = harness.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), drive_client(&harness.registry, &harness.client, data)).await
    });
    assert!(run.is_ok(), "an operation outlived its deadline");
});
