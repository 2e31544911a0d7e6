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
