//! `key.kms` authorities. AWS KMS is real: `moto` in server mode, keys created and images
//! signed through boto3. Google Cloud KMS, Azure Key Vault and Vault have no local
//! implementation on these machines, so they are in-test HTTP servers that answer as the
//! providers document (token endpoints, key reads) and check the requests' paths, auth
//! headers and bodies.

use crate::signet_server::{Signet, admitted_within, assert_denied, policy_dir, validate};
use crate::support::{
    AWS_ENV, MockReply, MockServer, Moto, Registry, SignOptions, TestKey, attach_bundle, build_image, keyed_bundle,
    require_tools, sign_image, statement,
};

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

fn kms_policy(name: &str, glob: &str, kms: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - name: release\n    key:\n      kms: {kms}\n"
    )
}

#[tokio::test]
async fn aws_kms_keys_verify_both_formats_and_follow_a_rotation() {
    if !require_tools() {
        return;
    }
    let Some(moto) = Moto::start(&[]) else { return };
    let registry = Registry::plain();
    let host = registry.host();
    let ecc = moto.create_key("ECC_NIST_P256", "alias/release");
    let rsa = moto.create_key("RSA_2048", "alias/release-rsa");
    let next = moto.create_key("ECC_NIST_P256", "alias/next");

    let ecc_sig = build_image(&registry, "kms/ecc", "v1", "ecc");
    sign_image(&registry, "kms/ecc", &ecc_sig, &ecc, &SignOptions::default()).await;
    let rsa_sig = build_image(&registry, "kms/rsa", "v1", "rsa");
    sign_image(&registry, "kms/rsa", &rsa_sig, &rsa, &SignOptions::default()).await;
    let ecc_bundle = build_image(&registry, "kms/bundle", "v1", "bundle");
    let ecc_statement = statement("kms/bundle", &ecc_bundle, COSIGN_SIGN);
    let bundle = keyed_bundle(&ecc, &TestKey::generate(), &ecc_statement, None);
    attach_bundle(&registry, "kms/bundle", &ecc_bundle, &bundle).await;
    let rsa_bundle = build_image(&registry, "kms/rsa-bundle", "v1", "rsa-bundle");
    let rsa_statement = statement("kms/rsa-bundle", &rsa_bundle, COSIGN_SIGN);
    let bundle = keyed_bundle(&rsa, &TestKey::generate(), &rsa_statement, None);
    attach_bundle(&registry, "kms/rsa-bundle", &rsa_bundle, &bundle).await;
    let rotated = build_image(&registry, "kms/rotated", "v1", "rotated");
    sign_image(&registry, "kms/rotated", &rotated, &next, &SignOptions::default()).await;

    let missing_alias = ecc.alias_arn.replace("alias/release", "alias/missing");
    let dir = policy_dir(&[
        &kms_policy(
            "ecc",
            &format!("{host}/kms/ecc*"),
            &format!("awskms:///{}", ecc.alias_arn),
        ),
        &kms_policy(
            "bundle",
            &format!("{host}/kms/bundle*"),
            &format!("awskms:///{}", ecc.arn),
        ),
        &kms_policy(
            "rsa",
            &format!("{host}/kms/rsa*"),
            &format!("awskms:///{}", rsa.alias_arn),
        ),
        &kms_policy(
            "rotating",
            &format!("{host}/kms/rotated*"),
            &format!("awskms:///{}", ecc.alias_arn),
        ),
        &kms_policy(
            "missing",
            &format!("{host}/kms/missing*"),
            &format!("awskms:///{missing_alias}"),
        ),
    ]);
    let moto_url = moto.url.clone();
    let mut env: Vec<(&str, &str)> = AWS_ENV.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto_url));
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let args = [
        "--policy-dir",
        &dir_arg,
        "--insecure-registry",
        &host,
        "--kms-refresh-seconds",
        "5",
    ];
    let signet = Signet::spawn(&args, &env);
    signet.wait_ready().await;
    let image = |repo: &str| format!("{host}/kms/{repo}:v1");

    // kms/rsa-bundle matches the "rsa" policy's glob too: its bundle satisfies both.
    for repo in ["ecc", "rsa", "bundle", "rsa-bundle"] {
        let outcome = admitted_within(&signet, &image(repo), 20).await;
        assert!(outcome.0, "{repo}: {}\n{}", outcome.1, signet.logs());
    }
    // A key the KMS does not have: denied, naming the reference and the provider's answer.
    let missing = build_image(&registry, "kms/missing", "v1", "missing");
    sign_image(&registry, "kms/missing", &missing, &ecc, &SignOptions::default()).await;
    assert_denied(
        &validate(&signet, &image("missing")).await,
        &[
            &format!("KMS key awskms:///{missing_alias}"),
            "AWS KMS answered HTTP 400",
            "NotFoundException",
        ],
    );
    // Signed with the next key: denied until alias/release points at it, then admitted
    // once the background refresh has picked the rotation up.
    let before = validate(&signet, &image("rotated")).await;
    assert_denied(&before, &["not signed by key"]);
    moto.point_alias("alias/release", &next);
    let after = admitted_within(&signet, &image("rotated"), 20).await;
    assert!(
        after.0,
        "the rotation was not picked up: {}\n{}",
        after.1,
        signet.logs()
    );
    assert!(signet.logs().contains("KMS key rotated"), "{}", signet.logs());
    // The old key's images are no longer verified anew (a result verified before is reused
    // for --signature-ttl-seconds, as for any key): a never-seen one signed by it is denied.
    let late = build_image(&registry, "kms/ecc-late", "v1", "late");
    sign_image(&registry, "kms/ecc-late", &late, &ecc, &SignOptions::default()).await;
    assert_denied(&validate(&signet, &image("ecc-late")).await, &["not signed by key"]);

    // `signet verify` (no webhook) fetches the key itself.
    let cli = |repo: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["--log-level", "warn", "verify", &image(repo), "--policy", &dir_arg])
            .args(["--insecure-registry", &host])
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let output = cli("rsa");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));

    // The KMS goes away: the last key fetched stays in use, so a never-seen image signed
    // with it is still verified; `signet verify`, which has no key yet, says why it denies.
    let after_outage = build_image(&registry, "kms/rotated-late", "v1", "after outage");
    sign_image(
        &registry,
        "kms/rotated-late",
        &after_outage,
        &next,
        &SignOptions::default(),
    )
    .await;
    drop(moto);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !signet.logs().contains("the last key fetched stays in use") {
        assert!(
            Instant::now() < deadline,
            "no failed refresh logged:\n{}",
            signet.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let outcome = validate(&signet, &image("rotated-late")).await;
    assert!(outcome.0, "the last good key was dropped: {}", outcome.1);
    let output = cli("rotated-late");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success() && text.contains("cannot reach"), "{text}");
}

#[tokio::test]
async fn aws_kms_access_denied_and_unreachable_are_named() {
    if !require_tools() {
        return;
    }
    // INITIAL_NO_AUTH_ACTION_COUNT=0: moto checks every request's credentials, and ours are
    // not an IAM user it knows.
    let Some(moto) = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let registry = Registry::plain();
    let host = registry.host();
    const RELEASE: &str = "awskms:///arn:aws:kms:us-east-1:123456789012:alias/release";
    let dir = policy_dir(&[&kms_policy("denied", "**", RELEASE)]);
    let mut env: Vec<(&str, &str)> = AWS_ENV.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto.url));
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let signet = Signet::spawn(&["--policy-dir", &dir_arg, "--insecure-registry", &host], &env);
    signet.wait_ready().await;
    build_image(&registry, "any/app", "v1", "any");
    let image = format!("{}/any/app:v1", host);
    let deadline = Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        let outcome = validate(&signet, &image).await;
        if outcome.1.contains("answered") || Instant::now() > deadline {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_denied(&outcome, &[&format!("KMS key {RELEASE}"), "AWS KMS answered HTTP 403"]);
    drop(signet);

    // Nothing listening: the reason says so, and the webhook still answers.
    let closed = format!("http://127.0.0.1:{}", crate::signet_server::free_port());
    let mut env: Vec<(&str, &str)> = AWS_ENV.to_vec();
    env.push(("AWS_ENDPOINT_URL", &closed));
    let signet = Signet::spawn(&["--policy-dir", &dir_arg, "--insecure-registry", &host], &env);
    signet.wait_ready().await;
    let first = validate(&signet, &image).await;
    assert_denied(&first, &[&format!("KMS key {RELEASE}")]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_denied(&validate(&signet, &image).await, &["cannot reach"]);
}

/// A P-256 key's SPKI PEM and JWK coordinates (base64url).
fn p256_material() -> (TestKey, String, String, String) {
    let key = TestKey::generate();
    let spki = key.spki_der();
    // Uncompressed point: the SPKI's last 65 bytes (04 || X || Y).
    let point = &spki[spki.len() - 65..];
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
    let pem = key.public_pem();
    (key, pem, x, y)
}

/// Signs `repo:v1` with `key` and starts signet on one policy with `kms` and `env`.
/// What one cloud case runs on; dropping it stops signet and the registry.
struct Case {
    _registry: Registry,
    _policies: tempfile::TempDir,
    signet: Signet,
    image: String,
}

async fn signed_image_and_signet(kms: &str, key: &TestKey, env: &[(&str, &str)], extra: &[&str]) -> Case {
    let registry = Registry::plain();
    let host = registry.host();
    let digest = build_image(&registry, "cloud/app", "v1", "cloud");
    sign_image(&registry, "cloud/app", &digest, key, &SignOptions::default()).await;
    let dir = policy_dir(&[&kms_policy("cloud", "**", kms)]);
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["--policy-dir", dir_arg.as_str(), "--insecure-registry", host.as_str()];
    args.extend_from_slice(extra);
    let signet = Signet::spawn(&args, env);
    signet.wait_ready().await;
    Case {
        _registry: registry,
        _policies: dir,
        signet,
        image: format!("{host}/cloud/app:v1"),
    }
}

#[tokio::test]
async fn gcp_kms_keys_with_a_service_account() {
    if !require_tools() {
        return;
    }
    let (key, pem, _, _) = p256_material();
    let version = "projects/p/locations/global/keyRings/r/cryptoKeys/release/cryptoKeyVersions/2";
    let server = MockServer::start(move |request| {
        let path = request.path.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("POST", "/token") => {
                let body = String::from_utf8_lossy(&request.body);
                if !body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
                    return MockReply::with_body(400, r#"{"error":"unsupported_grant_type"}"#);
                }
                MockReply::with_body(200, json!({"access_token": "gcp-token", "expires_in": 3600}).to_string())
            }
            ("GET", "/v1/projects/p/locations/global/keyRings/r/cryptoKeys/release/cryptoKeyVersions") => {
                // Two pages: the newest version is on the second.
                let name = |n: u32| format!("projects/p/locations/global/keyRings/r/cryptoKeys/release/cryptoKeyVersions/{n}");
                let versions = if request.path.contains("pageToken=page-2") {
                    json!({"cryptoKeyVersions": [{"name": name(2)}]})
                } else {
                    json!({"cryptoKeyVersions": [{"name": name(1)}], "nextPageToken": "page-2"})
                };
                MockReply::with_body(200, versions.to_string())
            }
            ("GET", p) if p == format!("/v1/{version}/publicKey") => {
                if request.header("authorization") != Some("Bearer gcp-token") {
                    return MockReply::with_body(401, r#"{"error":{"code":401,"message":"Request had invalid authentication credentials."}}"#);
                }
                MockReply::with_body(200, json!({"pem": pem, "algorithm": "EC_SIGN_P256_SHA256", "name": version}).to_string())
            }
            _ => MockReply::with_body(
                403,
                r#"{"error":{"code":403,"message":"Permission 'cloudkms.cryptoKeyVersions.viewPublicKey' denied on resource","status":"PERMISSION_DENIED"}}"#,
            ),
        }
    })
    .await;
    // A service-account key file whose token_uri is the in-test server.
    let scratch = tempfile::tempdir().unwrap();
    use aws_lc_rs::encoding::AsDer as _;
    let rsa_pkcs8: aws_lc_rs::encoding::Pkcs8V1Der =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap()
            .as_der()
            .unwrap();
    let private_key = pem::encode(&pem::Pem::new("PRIVATE KEY", rsa_pkcs8.as_ref().to_vec()));
    let credentials = scratch.path().join("sa.json");
    let url = format!("http://{}", server.host());
    std::fs::write(
        &credentials,
        json!({"type": "service_account", "client_email": "signet@p.iam.gserviceaccount.com", "private_key": private_key,
               "token_uri": format!("{url}/token")})
        .to_string(),
    )
    .unwrap();
    let endpoint = format!("gcp={url}");
    let env = [("GOOGLE_APPLICATION_CREDENTIALS", credentials.to_str().unwrap())];
    let kms = "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/release";
    let case = signed_image_and_signet(kms, &key, &env, &["--kms-endpoint", &endpoint]).await;
    let outcome = admitted_within(&case.signet, &case.image, 20).await;
    assert!(outcome.0, "{}\n{}", outcome.1, case.signet.logs());

    // The token request is a JWT bearer grant signed by the service account.
    let token = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("a token request");
    let form = String::from_utf8_lossy(&token.body).to_string();
    let assertion = form
        .split("assertion=")
        .nth(1)
        .expect("an assertion")
        .split('&')
        .next()
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(assertion.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "signet@p.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/cloudkms");
    assert_eq!(claims["aud"], format!("{url}/token"));
    // No version in the reference: the newest enabled one was asked for.
    assert!(
        server.count(&format!("/v1/{version}/publicKey")) >= 1,
        "{:?}",
        server.requests()
    );
    drop(case);

    // A version the service account may not read: denied with Google's message.
    let denied = "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/other/cryptoKeyVersions/1";
    let case = signed_image_and_signet(denied, &key, &env, &["--kms-endpoint", &endpoint]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_denied(
        &validate(&case.signet, &case.image).await,
        &[
            denied,
            "Google Cloud KMS answered HTTP 403",
            "cloudkms.cryptoKeyVersions.viewPublicKey",
        ],
    );
}

#[tokio::test]
async fn azure_key_vault_keys_with_workload_identity() {
    if !require_tools() {
        return;
    }
    let (key, _, x, y) = p256_material();
    let server = MockServer::start(move |request| {
        let path = request.path.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("POST", "/tenant-1/oauth2/v2.0/token") => {
                let body = String::from_utf8_lossy(&request.body);
                let expected = [
                    "client_id=client-1",
                    "scope=https%3A%2F%2Fvault.azure.net%2F.default",
                    "grant_type=client_credentials",
                    "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
                    "client_assertion=federated-jwt",
                ];
                if expected.iter().all(|part| body.contains(part)) {
                    MockReply::with_body(200, json!({"access_token": "azure-token", "token_type": "Bearer"}).to_string())
                } else {
                    MockReply::with_body(400, json!({"error": "invalid_request", "error_description": format!("bad form {body}")}).to_string())
                }
            }
            ("GET", "/keys/release") if request.path.contains("api-version=7.4") => {
                if request.header("authorization") != Some("Bearer azure-token") {
                    return MockReply::with_body(401, r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#);
                }
                let jwk = json!({"key": {"kid": "https://v.vault.azure.net/keys/release/abc", "kty": "EC", "crv": "P-256", "x": x, "y": y}});
                MockReply::with_body(200, jwk.to_string())
            }
            _ => MockReply::with_body(404, r#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) gone was not found in this key vault."}}"#),
        }
    })
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let federated = scratch.path().join("token");
    std::fs::write(&federated, "federated-jwt\n").unwrap();
    let url = format!("http://{}", server.host());
    let env = [
        ("AZURE_CLIENT_ID", "client-1"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_FEDERATED_TOKEN_FILE", federated.to_str().unwrap()),
        ("AZURE_AUTHORITY_HOST", url.as_str()),
    ];
    let endpoint = format!("azure={url}");
    let case = signed_image_and_signet(
        "azurekms://v.vault.azure.net/release",
        &key,
        &env,
        &["--kms-endpoint", &endpoint],
    )
    .await;
    let outcome = admitted_within(&case.signet, &case.image, 20).await;
    assert!(outcome.0, "{}\n{}", outcome.1, case.signet.logs());
    drop(case);

    let case = signed_image_and_signet(
        "azurekms://v.vault.azure.net/gone",
        &key,
        &env,
        &["--kms-endpoint", &endpoint],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_denied(
        &validate(&case.signet, &case.image).await,
        &[
            "azurekms://v.vault.azure.net/gone",
            "Azure Key Vault answered HTTP 404",
            "was not found in this key vault",
        ],
    );
}

#[tokio::test]
async fn vault_transit_keys_with_kubernetes_auth() {
    if !require_tools() {
        return;
    }
    let (key, pem, _, _) = p256_material();
    let server = MockServer::start(move |request| {
        let path = request.path.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("POST", "/v1/auth/kubernetes/login") => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                if body["role"] == "signet" && body["jwt"] == "sa-token" {
                    MockReply::with_body(200, json!({"auth": {"client_token": "vault-token"}}).to_string())
                } else {
                    MockReply::with_body(400, r#"{"errors":["invalid role name or jwt"]}"#)
                }
            }
            ("GET", "/v1/transit/keys/release") => {
                if request.header("x-vault-token") != Some("vault-token") {
                    return MockReply::with_body(403, r#"{"errors":["permission denied"]}"#);
                }
                let answer = json!({"data": {"name": "release", "type": "ecdsa-p256", "latest_version": 2, "keys": {
                    "1": {"public_key": "not this one"},
                    "2": {"public_key": pem, "name": "P-256"}
                }}});
                MockReply::with_body(200, answer.to_string())
            }
            _ => MockReply::with_body(403, r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
        }
    })
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let sa_token = scratch.path().join("token");
    std::fs::write(&sa_token, "sa-token").unwrap();
    let url = format!("http://{}", server.host());
    let env = [
        ("VAULT_ADDR", url.as_str()),
        ("VAULT_KUBERNETES_ROLE", "signet"),
        ("VAULT_KUBERNETES_TOKEN_PATH", sa_token.to_str().unwrap()),
    ];
    let case = signed_image_and_signet("hashivault://release", &key, &env, &[]).await;
    let outcome = admitted_within(&case.signet, &case.image, 20).await;
    assert!(outcome.0, "{}\n{}", outcome.1, case.signet.logs());
    drop(case);

    let case = signed_image_and_signet("hashivault://secret-key", &key, &env, &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_denied(
        &validate(&case.signet, &case.image).await,
        &[
            "hashivault://secret-key",
            "Vault answered HTTP 403",
            "permission denied",
        ],
    );
}
