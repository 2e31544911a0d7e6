//! The registry client against hostile responses: the short randomised run of the
//! `registry_client` fuzz target, in the test command. Every seed script of
//! `support::scripted_registry` and deterministic mutations of them (numbers that overflow,
//! truncations, duplicated and spliced headers) go through every client operation; nothing
//! may panic or hang. The coverage-guided run is `scripts/fuzz.sh registry_client`.

use crate::support;

use std::time::{Duration, Instant};

use support::scripted_registry::{ScriptedRegistry, client_for, drive_client, seed_scripts};

/// Mutations tried (the run also stops at [`TIME_BOUND`]).
const MUTATIONS: usize = 2_000;
/// The run stops here even if mutations are left, so a loaded machine cannot stall CI.
const TIME_BOUND: Duration = Duration::from_secs(30);
/// One script through every operation; each operation's own deadline is 0.5 s.
const SCRIPT_BOUND: Duration = Duration::from_secs(10);

/// Splices that have broken HTTP clients before: huge and negative numbers, bare CR/LF,
/// duplicated framing headers, NULs, non-UTF-8.
const TOKENS: &[&[u8]] = &[
    b"18446744073709551615",
    b"99999999999999999999999",
    b"-1",
    b"0",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"content-length: 0\r\n",
    b"transfer-encoding: chunked\r\n",
    b"retry-after: 18446744073709551615\r\n",
    b"www-authenticate: Bearer realm=\"http://{HOST}/token\"\r\n",
    b"docker-content-digest: sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\r\n",
    b"location: http://{HOST}/x\r\n",
    b"\"expires_in\":18446744073709551615",
    b"\0",
    b"\xff\xfe",
    b"\n=====\n",
];

/// xorshift64*: a fixed seed, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            1 => data.truncate(at),
            2 if at < data.len() => data[at] = rng.next() as u8,
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let end = (at + rng.below(64)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
        }
    }
    data
}

#[tokio::test]
async fn the_registry_client_survives_hostile_responses() {
    let registry = ScriptedRegistry::start();
    let client = client_for(&registry);
    let seeds = seed_scripts();
    let mut succeeded = 0;
    for (i, seed) in seeds.iter().enumerate() {
        let run = tokio::time::timeout(SCRIPT_BOUND, drive_client(&registry, &client, seed)).await;
        succeeded += run.unwrap_or_else(|_| panic!("seed {i} hung: {}", String::from_utf8_lossy(seed)));
    }
    assert!(succeeded > 0, "the well-formed seeds must succeed somewhere");
    let mut rng = Rng(0x5167_4e74_2026_1202);
    let started = Instant::now();
    let mut tried = 0;
    while tried < MUTATIONS && started.elapsed() < TIME_BOUND {
        let data = mutate(&mut rng, &seeds);
        let run = tokio::time::timeout(SCRIPT_BOUND, drive_client(&registry, &client, &data)).await;
        assert!(
            run.is_ok(),
            "mutation {tried} hung: {:?}",
            String::from_utf8_lossy(&data)
        );
        tried += 1;
    }
    let served = registry.served();
    println!(
        "{} seeds ({succeeded} operations succeeded) and {tried} mutations in {:.1?}: {served} responses served",
        seeds.len(),
        started.elapsed()
    );
    assert!(tried >= 100, "only {tried} mutations ran in {TIME_BOUND:?}");
    assert!(
        served >= tried * 8,
        "every operation reached the registry: {served} responses"
    );
}
