//! Inputs the fuzz targets in fuzz/ found (see scripts/fuzz.sh), kept as regression tests.
//! Both bugs found so far are fixed, and the fuzz targets check these invariants without
//! exceptions.

use signet::policy::glob::Glob;
use signet::policy::reference::ImageRef;

/// fuzz/image_reference: `ghcrAio/org/app@sha512:0…02` (minimised: `A/b`). Docker reads an
/// upper-case first component as a registry host, but once the host is lower-cased the
/// normal form reads back as Docker Hub, so a Docker Hub glob (`calico/*`) could match an
/// image the kubelet pulls from host `calico`. signet now rejects such references outright.
#[test]
fn upper_case_single_label_hosts_are_rejected() {
    for raw in [
        "ghcrAio/org/app@sha512:00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002",
        "A/b",
        "Registry/team/app:v1",
        "Calico/node",
    ] {
        let err = ImageRef::parse(raw).expect_err(raw).to_string();
        assert!(err.contains(raw.split('/').next().unwrap_or(raw)), "{raw}: {err}");
    }
}

/// Every reference that parses keeps its registry through normalisation.
#[test]
fn normalised_references_name_the_same_registry() {
    for raw in [
        "calico/node",
        "ghcr.io/org/app",
        "localhost:5000/a",
        "[::1]:5000/a:v1",
        "GHCR.io/org/app",
    ] {
        let image = ImageRef::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        let again = ImageRef::parse(&image.to_string()).unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(
            (again.registry(), again.repository()),
            (image.registry(), image.repository()),
            "{raw}"
        );
    }
    let glob = Glob::compile("calico/*").expect("glob");
    assert!(glob.matches(&ImageRef::parse("calico/node").expect("docker hub image")));
}

/// Found by hand next to fuzz/cue_policy: 26 lines that each double a string (`a1: a0 + a0`)
/// built a 1 GiB string and aborted the process on the allocation. Strings an evaluation
/// builds are capped at 1 MiB, so the policy denies, naming the cap (or the time limit).
#[test]
fn cue_strings_cannot_double_their_way_to_gigabytes() {
    use signet::policy::cue::CuePolicy;
    use signet::policy::rego::Verdict;
    let doubling: String = (1..=26).map(|i| format!("a{i}: a{} + a{}\n", i - 1, i - 1)).collect();
    for policy in [
        format!("a0: \"xxxxxxxxxxxxxxxx\"\n{doubling}"),
        (1..=26).fold("import \"strings\"\na0: \"xxxxxxxxxxxxxxxx\"\n".to_string(), |p, i| {
            p + &format!("a{i}: strings.Join([a{}, a{}], \"\")\n", i - 1, i - 1)
        }),
        (1..=26).fold("a0: \"xxxxxxxxxxxxxxxx\"\n".to_string(), |p, i| {
            p + &format!("a{i}: \"\\(a{})\\(a{})\"\n", i - 1, i - 1)
        }),
    ] {
        let verdict = CuePolicy::compile("doubling", &policy)
            .unwrap()
            .evaluate_blocking(&serde_json::json!({}));
        let Verdict::Deny { error, .. } = verdict else {
            panic!("{policy}: admitted");
        };
        // The size cap, or in a slow (debug) build the time limit, whichever comes first.
        let stopped = error.contains("a string of more than 1048576 bytes is not built")
            || error.contains("the CUE evaluation was stopped: evaluation took longer than");
        assert!(stopped, "{error}");
    }
}

/// fuzz/cue_policy (a timeout): `x: [...=~"\w{100}"]` against 400 strings compiled the
/// regular expression twice per string (29 ms each), and the clock was read only every 1,024
/// steps, so the 0.5 s limit was overshot by seconds. Patterns are now compiled once per
/// evaluation, and the clock is read every 16 steps.
#[test]
fn cue_regular_expressions_are_compiled_once_per_evaluation() {
    use signet::policy::cue::CuePolicy;
    use signet::policy::rego::Verdict;
    let policy = CuePolicy::compile("regex", "x: [...=~\"\\\\w{100}\"]\n").unwrap();
    let input = serde_json::json!({"x": vec!["a"; 400]});
    let started = std::time::Instant::now();
    let verdict = policy.evaluate_blocking(&input);
    let Verdict::Deny { error, .. } = verdict else {
        panic!("admitted");
    };
    assert!(
        error.contains("x.0: invalid value \"a\" (out of bound =~\"\\\\w{100}\")"),
        "{error}"
    );
    eprintln!("400 regex checks: {:?}", started.elapsed());
}
