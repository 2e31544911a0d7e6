//! GitHub's own policies for its artifact attestations (the `trust-policies` chart, rendered
//! for an organisation: a `github` TrustRoot from GitHub's TUF mirror, and a
//! ClusterImagePolicy with a `github` authority for GitHub's Sigstore instance and a
//! `public-good` one) through `/validate` and `/mutate`, unchanged but for two things a test
//! cannot have: the TrustRoot's TUF root and mirror are a local python-free TUF repository
//! on loopback (GitHub's signing keys are not ours), and the organisation placeholder is
//! filled in as `helm --set policy.organization` would. The GitHub instance is played by a
//! private CA (certificates with Fulcio's GitHub extensions) and the mock's RFC 3161 TSA, with
//! no transparency log, as GitHub's is; the public-good instance by the mock Fulcio and Rekor.

use crate::signet_server::{Signet, admitted_within, assert_denied, pod_review, policy_dir, validate};
use crate::support::{
    LeafOptions, MockSigstore, PrivateCa, Registry, attach_bundle, attest_and_attach_as, build_image,
    github_instance_bundle, pem_to_der, require_tools,
};
use crate::tuf::{TufRepo, VALID, mirror_server};

use base64::Engine as _;
use serde_json::{Value, json};

const ORG: &str = "my-org";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const SOURCE_REPOSITORY: &str = "1.3.6.1.4.1.57264.1.12";
const RUNNER_ENVIRONMENT: &str = "1.3.6.1.4.1.57264.1.11";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The chart's two objects, as rendered (fixture), with the TUF root and mirror replaced
/// and the organisation filled in.
fn rendered_policies(root_json: &[u8], mirror: &str) -> (String, String) {
    let fixtures = crate::support::fixtures_dir().expect("fixtures");
    let text = std::fs::read_to_string(
        fixtures.join("github-attestations/helm-trust-policies__rendered-organization-example.yaml"),
    )
    .unwrap();
    let documents: Vec<&str> = text.split("\n---\n").skip(1).collect();
    let [trust_root, policy] = documents[..] else {
        panic!("the rendered example holds a TrustRoot and a ClusterImagePolicy")
    };
    let mut lines: Vec<String> = trust_root.lines().map(str::to_string).collect();
    let mirror_line = lines
        .iter()
        .position(|l| l.trim_start().starts_with("mirror:"))
        .unwrap();
    lines[mirror_line] = format!("    mirror: {mirror}");
    let root_line = lines.iter().position(|l| l.trim_start().starts_with("root:")).unwrap();
    lines[root_line + 1] = format!("      {}", b64(root_json));
    (lines.join("\n"), policy.replace("MY-ORGANIZATION", ORG))
}

/// GitHub's instance: a trusted root with Fulcio CAs and timestamp authorities and no
/// transparency or CT log, as `tuf-repo.github.com` serves it.
fn github_trusted_root(ca: &PrivateCa, mock: &MockSigstore) -> Vec<u8> {
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "ctlogs": [],
        "certificateAuthorities": [{
            "subject": {"organization": "GitHub, Inc.", "commonName": "Internal Services Root"},
            "uri": "https://fulcio.githubapp.com",
            "certChain": {"certificates": [
                {"rawBytes": b64(&pem_to_der(ca.intermediate_pem()))},
                {"rawBytes": b64(&pem_to_der(ca.root_pem()))},
            ]},
            "validFor": {"start": "2020-01-01T00:00:00Z"},
        }],
        "timestampAuthorities": mock.trusted_root()["timestampAuthorities"],
    })
    .to_string()
    .into_bytes()
}

/// A leaf from GitHub's instance for a workflow of `repository`, built on `runner`.
fn workflow_leaf(ca: &PrivateCa, repository: &str, runner: &str) -> crate::support::Leaf {
    let workflow = format!("https://github.com/{repository}/.github/workflows/release.yml@refs/heads/main");
    ca.issue(
        LeafOptions::uri(&workflow, GITHUB_ISSUER)
            .fulcio_extension(SOURCE_REPOSITORY, &format!("https://github.com/{repository}"))
            .fulcio_extension(RUNNER_ENVIRONMENT, runner)
            .valid(1_577_836_800, 2_208_988_800),
    )
}

async fn review(signet: &Signet, endpoint: &str, image: &str) -> Value {
    signet.review(endpoint, &pod_review("u", &[image])).await
}

#[tokio::test]
async fn githubs_chart_policies_admit_github_and_public_good_attestations() {
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start_with_env(&[("TSA_WHOLE_SECONDS", "1")]) else {
        return;
    };
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new(ca_dir.path());
    let registry = Registry::htpasswd("testuser", "testpass");
    let host = registry.host();

    // GitHub's instance signs org/app from a GitHub-hosted runner; org/website is another
    // repository of the organisation; other/app comes from another organisation;
    // org/selfhosted is org/app built on a self-hosted runner.
    let mut images = std::collections::BTreeMap::new();
    for (repo, repository, runner) in [
        ("org/app", format!("{ORG}/app"), "github-hosted"),
        ("org/website", format!("{ORG}/website"), "github-hosted"),
        ("other/app", "other-org/app".to_string(), "github-hosted"),
        ("org/selfhosted", format!("{ORG}/app"), "self-hosted"),
    ] {
        let digest = build_image(&registry, repo, "v1", repo);
        let leaf = workflow_leaf(&ca, &repository, runner);
        let bundle = github_instance_bundle(&leaf, &mock, &digest, SLSA_PROVENANCE).await;
        attach_bundle(&registry, repo, &digest, &bundle).await;
        images.insert(repo, digest);
    }
    // The public-good instance signs org/public.
    let public = build_image(&registry, "org/public", "v1", "public");
    let workflow = format!("https://github.com/{ORG}/public/.github/workflows/release.yml@refs/heads/main");
    attest_and_attach_as(
        &registry,
        "org/public",
        &public,
        &mock,
        SLSA_PROVENANCE,
        &json!({}),
        Some((GITHUB_ISSUER, &workflow)),
    );

    let repo = TufRepo::build("trusted_root.json", &github_trusted_root(&ca, &mock), VALID).await;
    let mirror = mirror_server(repo.repository()).await;
    let (trust_root, policy) = rendered_policies(&repo.root_json, &format!("http://{}", mirror.host()));

    let scratch = tempfile::tempdir().unwrap();
    let auth_file = scratch.path().join("config.json");
    let auth = b64(b"testuser:testpass");
    std::fs::write(&auth_file, json!({"auths": {host.clone(): {"auth": auth}}}).to_string()).unwrap();
    let public_good_root = mock.trusted_root_path();
    let args = [
        "--insecure-registry",
        &host,
        "--registry-auth-file",
        auth_file.to_str().unwrap(),
        "--trust-root",
        public_good_root.to_str().unwrap(),
    ];
    let dir = policy_dir(&[&trust_root, &policy]);
    let signet = Signet::start(dir.path(), &args).await;
    let image = |repo: &str| format!("{host}/{repo}:v1");

    // The TrustRoot loads from the mirror in the background; then the GitHub-signed image
    // is admitted and pinned to the digest its attestation names.
    let admitted = admitted_within(&signet, &image("org/app"), 30).await;
    assert!(admitted.0, "{}\n{}", admitted.1, signet.logs());
    // Both objects load (the policy is enforced: a cluster would show it Ready), and the
    // TrustRoot came from its mirror.
    assert!(
        signet.logs().contains("\"policies\":1,\"rejected\":0"),
        "{}",
        signet.logs()
    );
    assert!(
        signet.logs().contains("TUF mirror fetched and verified")
            && signet.logs().contains("\"trust_root\":\"github\""),
        "{}",
        signet.logs()
    );
    let mutated = review(&signet, "mutate", &image("org/app")).await;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(patch[1]["op"], "replace", "{patch}");
    assert_eq!(
        patch[1]["value"],
        format!("{host}/org/app:v1@{}", images["org/app"]),
        "{patch}"
    );

    // Public-good and GitHub authorities in one policy: the public-good image passes too,
    // and so does any repository of the organisation.
    for repo in ["org/public", "org/website", "org/selfhosted"] {
        let answer = validate(&signet, &image(repo)).await;
        assert!(answer.0, "{repo}: {}", answer.1);
    }

    // Another organisation's workflow matches neither authority's identity.
    assert_denied(
        &validate(&signet, &image("other/app")).await,
        &[
            "certificate identity mismatch",
            "https://github.com/other-org/app/.github/workflows/release.yml",
        ],
    );
    drop(signet);

    // The chart's policy narrowed (signet's certificateExtensions): this repository only,
    // GitHub-hosted runners only; and GitHub's instance alone.
    let identity = format!("        subjectRegExp: https://github.com/{ORG}/.*/\\.github/workflows/.*\n");
    let narrowed = format!(
        "{identity}        certificateExtensions:\n          sourceRepositoryURI: https://github.com/{ORG}/app\n          runnerEnvironment: github-hosted\n"
    );
    let github_only = policy
        .split("  - name: public-good")
        .next()
        .unwrap()
        .replace(&identity, &narrowed);
    assert!(github_only.contains("certificateExtensions"), "{github_only}");
    let dir = policy_dir(&[&trust_root, &github_only]);
    let signet = Signet::start(dir.path(), &args).await;
    let admitted = admitted_within(&signet, &image("org/app"), 30).await;
    assert!(admitted.0, "{}", admitted.1);
    assert_denied(
        &validate(&signet, &image("org/website")).await,
        &[
            &format!("expected issuer \"{GITHUB_ISSUER}\""),
            &format!("sourceRepositoryURI \"https://github.com/{ORG}/app\""),
            &format!("found issuer \"{GITHUB_ISSUER}\""),
            &format!("sourceRepositoryURI \"https://github.com/{ORG}/website\""),
        ],
    );
    assert_denied(
        &validate(&signet, &image("org/selfhosted")).await,
        &[
            "runnerEnvironment \"github-hosted\"",
            "runnerEnvironment \"self-hosted\"",
        ],
    );
    // Only a public-good signature: not enough for GitHub's instance.
    assert_denied(
        &validate(&signet, &image("org/public")).await,
        &["no verified attestation"],
    );
}
