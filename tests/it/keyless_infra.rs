//! The keyless test infrastructure itself (tests/it/support/keyless.rs): the @sigstore/mock
//! server, keyless signing through it, and the private openssl "Fulcio". Every check here
//! is made with an independent tool (openssl) or by hand on the DER, so the material the
//! keyless verification tests rely on is known to be real.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest;
use support::{
    LeafOptions, MockSigstore, PrivateCa, Registry, San, build_image, der_utf8_string, get_manifest, pem_blocks_der,
    pem_to_der, rekor_key, require_tools, run, sign_keyless, sign_keyless_with, sign_with_cert,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ISSUER: &str = "https://oidc.test.local";
const GH_ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/example/repo/.github/workflows/release.yml@refs/heads/main";

// DER content octets of the OIDs looked for.
const OID_ISSUER_V1: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x01];
const OID_ISSUER_V2: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08];
const OID_SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
const OID_EKU: &[u8] = &[0x55, 0x1d, 0x25];

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// (content, rest) of the DER TLV at the start of `der`.
fn der_tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = match der[1] {
        l if l < 0x80 => (l as usize, 2),
        l => {
            let n = (l & 0x7f) as usize;
            let len = der[2..2 + n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        }
    };
    (tag, &der[header..header + len], &der[header + len..])
}

/// The extnValue (OCTET STRING contents) of the extension with OID `oid` in a
/// certificate, found by scanning the DER for `06 len oid`.
fn extension(cert_der: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let mut needle = vec![0x06, oid.len() as u8];
    needle.extend_from_slice(oid);
    let at = cert_der.windows(needle.len()).position(|w| w == needle)?;
    let mut rest = &cert_der[at + needle.len()..];
    // Optional `critical BOOLEAN`.
    if rest[0] == 0x01 {
        rest = der_tlv(rest).2;
    }
    let (tag, value, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "extnValue is an OCTET STRING");
    Some(value.to_vec())
}

/// Log ids of the SCTs in an SCT-list extension value (RFC 6962 §3.3).
fn sct_log_ids(ext_value: &[u8]) -> Vec<Vec<u8>> {
    let (tag, list, _) = der_tlv(ext_value);
    assert_eq!(tag, 0x04, "SCT list is an OCTET STRING");
    let total = u16::from_be_bytes([list[0], list[1]]) as usize;
    let mut scts = &list[2..2 + total];
    let mut ids = Vec::new();
    while !scts.is_empty() {
        let len = u16::from_be_bytes([scts[0], scts[1]]) as usize;
        let sct = &scts[2..2 + len];
        assert_eq!(sct[0], 0, "SCT v1");
        ids.push(sct[1..33].to_vec());
        scts = &scts[2 + len..];
    }
    ids
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write file");
    path
}

fn openssl(args: &[&str]) -> String {
    run(Command::new("openssl").args(args))
}

fn openssl_status(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn cert_text(cert: &Path) -> String {
    openssl(&["x509", "-in", s(cert), "-noout", "-text"])
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Verifies a DER ECDSA signature over sha256(data) with openssl.
fn ecdsa_verifies(dir: &Path, public_pem: &Path, data: &[u8], signature: &[u8]) -> bool {
    let data_path = write(dir, "data.bin", data);
    let sig_path = write(dir, "sig.der", signature);
    openssl_status(&[
        "dgst",
        "-sha256",
        "-verify",
        s(public_pem),
        "-signature",
        s(&sig_path),
        s(&data_path),
    ])
    .0
}

/// Rekor's signed bundle payload: the canonical JSON of (body, integratedTime, logID,
/// logIndex), keys sorted, no spaces.
fn canonical_bundle_payload(payload: &Value) -> String {
    format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        payload["body"], payload["integratedTime"], payload["logID"], payload["logIndex"]
    )
}

/// Checks a cosign `.sig` layer: the signature verifies over the payload with the
/// certificate's key, and the bundle's SET verifies with `rekor_pub` and its entry records
/// this certificate, signature and payload hash. Returns the bundle payload.
fn check_layer(dir: &Path, layer: &Value, payload: &[u8], rekor_pub: &Path) -> Value {
    let ann = &layer["annotations"];
    let cert_pem = ann["dev.sigstore.cosign/certificate"]
        .as_str()
        .expect("certificate annotation");
    let cert_path = write(dir, "layer-cert.pem", cert_pem);
    let leaf_pub = write(
        dir,
        "layer-pub.pem",
        openssl(&["x509", "-in", s(&cert_path), "-noout", "-pubkey"]),
    );
    let signature_b64 = ann["dev.cosignproject.cosign/signature"]
        .as_str()
        .expect("signature annotation");
    let signature = B64.decode(signature_b64).expect("signature base64");
    assert!(
        ecdsa_verifies(dir, &leaf_pub, payload, &signature),
        "signature verifies over the payload with the certificate's key"
    );
    assert!(
        !ecdsa_verifies(dir, &leaf_pub, b"other payload", &signature),
        "and not over something else"
    );
    assert_eq!(
        layer["digest"].as_str(),
        Some(format!("sha256:{:x}", sha2::Sha256::digest(payload)).as_str())
    );

    let bundle: Value = serde_json::from_str(ann["dev.sigstore.cosign/bundle"].as_str().expect("bundle annotation"))
        .expect("bundle JSON");
    let set = B64
        .decode(bundle["SignedEntryTimestamp"].as_str().expect("SET"))
        .expect("SET base64");
    let bundle_payload = bundle["Payload"].clone();
    let canonical = canonical_bundle_payload(&bundle_payload);
    assert!(
        ecdsa_verifies(dir, rekor_pub, canonical.as_bytes(), &set),
        "SET verifies with the Rekor key over {canonical}"
    );
    let rekor_spki = pem_to_der(&std::fs::read_to_string(rekor_pub).expect("rekor pub"));
    assert_eq!(
        bundle_payload["logID"].as_str(),
        Some(format!("{:x}", sha2::Sha256::digest(&rekor_spki)).as_str())
    );
    let integrated = bundle_payload["integratedTime"].as_i64().expect("integratedTime");
    assert!((integrated - now()).abs() < 300, "integratedTime is now");

    let body: Value = serde_json::from_slice(
        &B64.decode(bundle_payload["body"].as_str().expect("body"))
            .expect("body base64"),
    )
    .expect("body JSON");
    assert_eq!(body["kind"], "hashedrekord");
    assert_eq!(
        body["spec"]["data"]["hash"]["value"].as_str(),
        Some(format!("{:x}", sha2::Sha256::digest(payload)).as_str())
    );
    assert_eq!(body["spec"]["signature"]["content"].as_str(), Some(signature_b64));
    let recorded = B64
        .decode(
            body["spec"]["signature"]["publicKey"]["content"]
                .as_str()
                .expect("recorded key"),
        )
        .expect("recorded base64");
    assert_eq!(
        pem_to_der(&String::from_utf8(recorded).expect("PEM")),
        pem_to_der(cert_pem),
        "the log entry records the certificate"
    );
    bundle_payload
}

fn b64_der(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("rawBytes")).expect("rawBytes base64")
}

#[tokio::test]
async fn mock_sigstore_keyless_signature_is_real() {
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let reg = Registry::plain();
    let digest = build_image(&reg, "demo/keyless", "v1", "keyless");

    // The trust material the mock wrote.
    let root = mock.trusted_root();
    assert_eq!(
        root["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    let ca_certs = root["certificateAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .expect("CA chain");
    assert_eq!(ca_certs.len(), 1, "the mock CA is a root only");
    assert_eq!(b64_der(&ca_certs[0]["rawBytes"]), pem_to_der(&mock.fulcio_root_pem()));
    assert_eq!(
        b64_der(&root["tlogs"][0]["publicKey"]["rawBytes"]),
        mock.rekor_spki_der()
    );
    assert_eq!(
        b64_der(&root["tlogs"][0]["logId"]["keyId"]),
        hex_to_bytes(&mock.rekor_log_id())
    );
    assert_eq!(
        b64_der(&root["ctlogs"][0]["publicKey"]["rawBytes"]),
        mock.ctfe_spki_der()
    );
    assert_eq!(b64_der(&root["ctlogs"][0]["logId"]["keyId"]), mock.ctfe_log_id());
    assert_eq!(root["tlogs"][0]["baseUrl"].as_str(), Some(mock.url().as_str()));

    // An e-mail identity, then a workflow URI identity appended to the same `.sig`.
    let out = sign_keyless(&reg, "demo/keyless", "v1", &mock, "alice@example.com", ISSUER);
    assert_eq!(out["image_digest"].as_str(), Some(digest.as_str()));
    let sig_tag = out["sig_tag"].as_str().expect("sig_tag").to_string();
    assert_eq!(sig_tag, format!("{}.sig", digest.replacen(':', "-", 1)));
    let out2 = sign_keyless_with(&reg, "demo/keyless", &digest, &mock, WORKFLOW, GH_ISSUER, &["--append"]);
    let manifest = get_manifest(&reg, "demo/keyless", &sig_tag)
        .await
        .expect(".sig manifest pushed");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "two signatures: {manifest}");

    for (layer, (out, identity, issuer)) in layers
        .iter()
        .zip([(&out, "alice@example.com", ISSUER), (&out2, WORKFLOW, GH_ISSUER)])
    {
        let payload = out["payload"].as_str().expect("payload").as_bytes();
        let payload_json: Value = serde_json::from_slice(payload).expect("payload JSON");
        assert_eq!(
            payload_json["critical"]["image"]["docker-manifest-digest"].as_str(),
            Some(digest.as_str())
        );
        assert_eq!(
            payload_json["critical"]["identity"]["docker-reference"].as_str(),
            Some(format!("{}/demo/keyless", reg.host()).as_str())
        );
        check_layer(dir, layer, payload, &mock.rekor_pub_path());

        let ann = &layer["annotations"];
        let cert_pem = ann["dev.sigstore.cosign/certificate"].as_str().expect("cert");
        let chain_pem = ann["dev.sigstore.cosign/chain"].as_str().expect("chain");
        let chain = pem_blocks_der(chain_pem);
        assert_eq!(chain.len(), 1, "the chain annotation is the mock root alone");
        assert_eq!(chain[0], pem_to_der(&mock.fulcio_root_pem()));

        let cert_path = write(dir, "mock-leaf.pem", cert_pem);
        let (ok, text) = openssl_status(&[
            "verify",
            "-x509_strict",
            "-CAfile",
            s(&mock.fulcio_root_path()),
            s(&cert_path),
        ]);
        assert!(ok, "openssl verifies the mock leaf against its root: {text}");

        // SAN: always a URI, whatever the identity looks like.
        let san = openssl(&["x509", "-in", s(&cert_path), "-noout", "-ext", "subjectAltName"]);
        assert!(san.contains("critical"), "{san}");
        assert!(san.contains(&format!("URI:{identity}")), "{san}");
        assert!(!san.contains("email:"), "{san}");
        let text = cert_text(&cert_path);
        assert!(text.contains("Code Signing"), "{text}");
        assert!(text.contains("Subject: \n") || text.contains("Subject:\n"), "{text}");

        // Issuer in both Fulcio extensions.
        let der = pem_to_der(cert_pem);
        assert_eq!(extension(&der, OID_ISSUER_V1).as_deref(), Some(issuer.as_bytes()));
        assert_eq!(extension(&der, OID_ISSUER_V2), Some(der_utf8_string(issuer)));

        // One embedded SCT, from the mock CT log.
        let scts = extension(&der, OID_SCT_LIST).expect("embedded SCT list");
        assert_eq!(sct_log_ids(&scts), vec![mock.ctfe_log_id()]);

        // 10-minute validity starting about now.
        let dates = openssl(&[
            "x509",
            "-in",
            s(&cert_path),
            "-noout",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
        ]);
        let start = parse_iso(line_value(&dates, "notBefore="));
        let end = parse_iso(line_value(&dates, "notAfter="));
        assert_eq!(end - start, 600, "{dates}");
        assert!((start - now()).abs() < 300, "{dates}");
    }
    assert!(mock.log().contains("POST /api/v2/signingCert 201"), "{}", mock.log());
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn line_value<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .trim()
}

/// `2021-01-01 00:00:00Z` → unix seconds.
fn parse_iso(value: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| -> u16 {
        value
            .get(range)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad date {value}"))
    };
    assert!(value.len() == 20 && value.ends_with('Z'), "bad date {value}");
    let month = time::Month::try_from(num(5..7) as u8).expect("month");
    let date = time::Date::from_calendar_date(num(0..4) as i32, month, num(8..10) as u8).expect("date");
    let clock = time::Time::from_hms(num(11..13) as u8, num(14..16) as u8, num(17..19) as u8).expect("time");
    time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp()
}

fn dates(cert: &Path) -> (i64, i64) {
    let out = openssl(&[
        "x509",
        "-in",
        s(cert),
        "-noout",
        "-startdate",
        "-enddate",
        "-dateopt",
        "iso_8601",
    ]);
    (
        parse_iso(line_value(&out, "notBefore=")),
        parse_iso(line_value(&out, "notAfter=")),
    )
}

fn verify_leaf(ca: &PrivateCa, cert: &Path, at: Option<i64>) -> (bool, String) {
    let root = ca.root_path();
    let inter = ca.intermediate_path();
    let at = at.map(|t| t.to_string());
    // OpenSSL 3.0 has no code-signing purpose: EKUs are checked on the text instead.
    let mut args = vec!["verify", "-x509_strict"];
    if let Some(at) = &at {
        args.extend(["-attime", at.as_str()]);
    }
    args.extend(["-CAfile", s(&root), "-untrusted", s(&inter), s(cert)]);
    openssl_status(&args)
}

#[test]
fn private_ca_chains_and_leaves_are_what_was_asked() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let ca = PrivateCa::new(&work.path().join("ca"));

    // Root and intermediate.
    let root_text = cert_text(&ca.root_path());
    assert!(root_text.contains("NIST CURVE: P-384"), "{root_text}");
    assert!(
        root_text.contains("Issuer: O = sigstore.dev, CN = sigstore\n"),
        "{root_text}"
    );
    assert!(
        root_text.contains("Subject: O = sigstore.dev, CN = sigstore\n"),
        "{root_text}"
    );
    let inter_text = cert_text(&ca.intermediate_path());
    assert!(inter_text.contains("NIST CURVE: P-384"), "{inter_text}");
    assert!(inter_text.contains("CA:TRUE, pathlen:0"), "{inter_text}");
    assert!(inter_text.contains("Code Signing"), "{inter_text}");
    assert!(
        inter_text.contains("Subject: O = sigstore.dev, CN = sigstore-intermediate"),
        "{inter_text}"
    );
    let (start, end) = dates(&ca.intermediate_path());
    assert_eq!((start, end), (1_577_836_800, 2_208_988_800), "2020-01-01 .. 2040-01-01");
    assert_eq!(
        pem_blocks_der(&ca.chain_pem()),
        vec![pem_to_der(ca.intermediate_pem()), pem_to_der(ca.root_pem())]
    );
    assert_eq!(std::fs::read_to_string(ca.chain_path()).expect("chain"), ca.chain_pem());

    // The default leaf: e-mail SAN, both issuer extensions, code signing, 10 minutes.
    let leaf = ca.issue(LeafOptions::default());
    let (ok, text) = verify_leaf(&ca, &leaf.cert_path, None);
    assert!(ok, "openssl verifies the chain: {text}");
    let (ok, text) = openssl_status(&["verify", "-CAfile", s(&ca.root_path()), s(&leaf.cert_path)]);
    assert!(!ok, "the root alone does not verify the leaf: {text}");
    let text = cert_text(&leaf.cert_path);
    assert!(text.contains("email:alice@example.com"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Code Signing"), "{text}");
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    let der = leaf.cert_der();
    assert_eq!(extension(&der, OID_ISSUER_V1).as_deref(), Some(ISSUER.as_bytes()));
    assert_eq!(extension(&der, OID_ISSUER_V2), Some(der_utf8_string(ISSUER)));
    assert!(extension(&der, OID_SCT_LIST).is_none(), "no SCT from openssl");
    assert_eq!(dates(&leaf.cert_path), (leaf.not_before, leaf.not_after));
    assert_eq!(leaf.not_after - leaf.not_before, 660);
    assert_eq!(leaf.chain_pem, ca.chain_pem());
    let key = std::fs::read_to_string(&leaf.key_path).expect("leaf key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8: {key}");
    let cert_pub = openssl(&["x509", "-in", s(&leaf.cert_path), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", s(&leaf.key_path), "-pubout"]);
    assert_eq!(cert_pub, key_pub, "the key is the certificate's");

    // A URI SAN with characters openssl's config syntax treats specially; v2 issuer only.
    let uri = "https://github.com/o/r/.github/workflows/a,b.yml@refs/tags/v1#x$y";
    let leaf = ca.issue(LeafOptions {
        issuer_v1: None,
        ..LeafOptions::uri(uri, GH_ISSUER)
    });
    let san = openssl(&["x509", "-in", s(&leaf.cert_path), "-noout", "-ext", "subjectAltName"]);
    assert!(san.contains(&format!("URI:{uri}\n")), "{san}");
    let der = leaf.cert_der();
    assert_eq!(extension(&der, OID_ISSUER_V1), None);
    assert_eq!(extension(&der, OID_ISSUER_V2), Some(der_utf8_string(GH_ISSUER)));
    assert!(verify_leaf(&ca, &leaf.cert_path, None).0);

    // v1 issuer only, a long one (multi-byte DER length in .1.8 is covered by the unit below).
    let long_issuer = format!("https://issuer.test.local/{}", "x".repeat(200));
    let leaf = ca.issue(LeafOptions {
        issuer_v2: None,
        issuer_v1: Some(long_issuer.clone()),
        ..LeafOptions::default()
    });
    let der = leaf.cert_der();
    assert_eq!(extension(&der, OID_ISSUER_V1), Some(long_issuer.clone().into_bytes()));
    assert_eq!(extension(&der, OID_ISSUER_V2), None);
    let leaf = ca.issue(LeafOptions {
        issuer_v1: None,
        issuer_v2: Some(long_issuer.clone()),
        ..LeafOptions::default()
    });
    assert_eq!(
        extension(&leaf.cert_der(), OID_ISSUER_V2),
        Some(der_utf8_string(&long_issuer))
    );
    let encoded = der_utf8_string(&long_issuer);
    let (tag, content, rest) = der_tlv(&encoded);
    assert_eq!((tag, content, rest.len()), (0x0c, long_issuer.as_bytes(), 0));

    // No EKU at all; a wrong EKU; no SAN.
    let leaf = ca.issue(LeafOptions {
        code_signing_eku: false,
        ..LeafOptions::default()
    });
    assert_eq!(extension(&leaf.cert_der(), OID_EKU), None);
    let leaf = ca.issue(LeafOptions {
        code_signing_eku: false,
        extra_extensions: vec!["extendedKeyUsage = serverAuth".into()],
        ..LeafOptions::default()
    });
    let text = cert_text(&leaf.cert_path);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(!text.contains("Code Signing"), "{text}");
    let leaf = ca.issue(LeafOptions {
        san: San::None,
        ..LeafOptions::default()
    });
    assert!(!cert_text(&leaf.cert_path).contains("Subject Alternative Name"));

    // A CA leaf.
    let leaf = ca.issue(LeafOptions {
        ca: true,
        ..LeafOptions::default()
    });
    let text = cert_text(&leaf.cert_path);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");

    // Exact windows: expired an hour ago, not valid for another hour.
    let t = now();
    let expired = ca.issue(LeafOptions::default().valid(t - 7200, t - 3600));
    assert_eq!(dates(&expired.cert_path), (t - 7200, t - 3600));
    let (ok, text) = verify_leaf(&ca, &expired.cert_path, None);
    assert!(!ok && text.contains("expired"), "{text}");
    assert!(verify_leaf(&ca, &expired.cert_path, Some(t - 5000)).0);
    let future = ca.issue(LeafOptions::default().valid(t + 3600, t + 4200));
    let (ok, text) = verify_leaf(&ca, &future.cert_path, None);
    assert!(!ok && text.contains("not yet valid"), "{text}");
    // Far past and far future (GeneralizedTime after 2049).
    let old = ca.issue(LeafOptions::default().valid(1_609_459_200, 1_609_459_800));
    assert_eq!(dates(&old.cert_path), (1_609_459_200, 1_609_459_800));
    assert!(verify_leaf(&ca, &old.cert_path, Some(1_609_459_500)).0);
    let late = ca.issue(LeafOptions::default().valid(t, 2_556_144_000));
    assert_eq!(dates(&late.cert_path), (t, 2_556_144_000), "2051-01-01");

    // A second CA in another directory is unrelated.
    let other = PrivateCa::new(&work.path().join("other"));
    let leaf = other.issue(LeafOptions::default());
    assert!(!verify_leaf(&ca, &leaf.cert_path, None).0);
}

#[test]
fn private_ca_trusted_root_and_rekor_keys() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let ca = PrivateCa::new(&work.path().join("ca"));
    let (rekor, rekor_spki) = rekor_key(work.path());
    let (ctlog, ctlog_spki) = rekor_key(work.path());
    assert_eq!(rekor.file_name().and_then(|n| n.to_str()), Some("rekor.key"));
    assert_eq!(ctlog.file_name().and_then(|n| n.to_str()), Some("rekor-2.key"));
    assert_ne!(rekor_spki, ctlog_spki);
    let key = std::fs::read_to_string(&rekor).expect("rekor key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8: {key}");
    let text = openssl(&["pkey", "-in", s(&rekor), "-noout", "-text"]);
    assert!(text.contains("P-256"), "{text}");
    let pub_pem = openssl(&["pkey", "-in", s(&rekor), "-pubout"]);
    assert_eq!(pem_to_der(&pub_pem), rekor_spki);

    let root: Value = serde_json::from_str(&ca.trusted_root_json(&rekor_spki, None)).expect("json");
    assert_eq!(
        root["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    let authority = &root["certificateAuthorities"][0];
    let certs = authority["certChain"]["certificates"].as_array().expect("certs");
    assert_eq!(certs.len(), 2);
    assert_eq!(b64_der(&certs[0]["rawBytes"]), pem_to_der(ca.intermediate_pem()));
    assert_eq!(b64_der(&certs[1]["rawBytes"]), pem_to_der(ca.root_pem()));
    assert_eq!(authority["validFor"]["start"], "2020-01-01T00:00:00Z");
    let tlog = &root["tlogs"][0];
    assert_eq!(b64_der(&tlog["publicKey"]["rawBytes"]), rekor_spki);
    assert_eq!(tlog["publicKey"]["keyDetails"], "PKIX_ECDSA_P256_SHA_256");
    assert_eq!(
        b64_der(&tlog["logId"]["keyId"]),
        sha2::Sha256::digest(&rekor_spki).to_vec()
    );
    assert_eq!(tlog["publicKey"]["validFor"]["start"], "2020-01-01T00:00:00Z");
    assert_eq!(root["ctlogs"], serde_json::json!([]));

    let root: Value = serde_json::from_str(&ca.trusted_root_json(&rekor_spki, Some(&ctlog_spki))).expect("json");
    assert_eq!(b64_der(&root["ctlogs"][0]["publicKey"]["rawBytes"]), ctlog_spki);
    assert_eq!(
        b64_der(&root["ctlogs"][0]["logId"]["keyId"]),
        sha2::Sha256::digest(&ctlog_spki).to_vec()
    );
}

#[tokio::test]
async fn private_ca_signature_lands_in_the_registry() {
    if !require_tools() || support::shared_tool("cosign_sign.py").is_none() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let reg = Registry::plain();
    let digest = build_image(&reg, "demo/private", "v1", "private CA");
    let ca = PrivateCa::new(&dir.join("ca"));
    let (rekor, _) = rekor_key(dir);
    let rekor_pub = write(dir, "rekor.pub", openssl(&["pkey", "-in", s(&rekor), "-pubout"]));

    let leaf = ca.issue(LeafOptions::uri(WORKFLOW, GH_ISSUER));
    let out = sign_with_cert(&reg, "demo/private", "v1", &leaf, Some(&leaf.chain_path), Some(&rekor));
    assert_eq!(out["image_digest"].as_str(), Some(digest.as_str()));
    let manifest = get_manifest(&reg, "demo/private", out["sig_tag"].as_str().expect("tag"))
        .await
        .expect(".sig manifest");
    let layer = &manifest["layers"][0];
    let ann = &layer["annotations"];
    assert_eq!(
        ann["dev.sigstore.cosign/certificate"].as_str(),
        Some(leaf.cert_pem.as_str())
    );
    assert_eq!(ann["dev.sigstore.cosign/chain"].as_str(), Some(ca.chain_pem().as_str()));
    let payload = out["payload"].as_str().expect("payload").as_bytes();
    check_layer(dir, layer, payload, &rekor_pub);

    // By digest, no chain, no Rekor: certificate and signature only.
    let leaf = ca.issue(LeafOptions::default());
    let out = sign_with_cert(&reg, "demo/private", &digest, &leaf, None, None);
    let manifest = get_manifest(&reg, "demo/private", out["sig_tag"].as_str().expect("tag"))
        .await
        .expect(".sig manifest");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "replaced, not appended");
    let ann = &layers[0]["annotations"];
    assert_eq!(
        ann["dev.sigstore.cosign/certificate"].as_str(),
        Some(leaf.cert_pem.as_str())
    );
    assert_eq!(ann["dev.sigstore.cosign/chain"].as_str(), Some(""));
    assert!(ann.get("dev.sigstore.cosign/bundle").is_none(), "{ann}");
}

/// The signature layers sigstore-rs 0.15 (the reference cosign verifier) trusts for
/// `reg/repo:tag` under `trusted_root_json`.
async fn sigstore_rs_layers(
    reg: &Registry,
    image: &str,
    trusted_root_json: &[u8],
) -> Vec<sigstore::cosign::SignatureLayer> {
    use sigstore::cosign::CosignCapabilities as _;
    let trust = sigstore::trust::sigstore::SigstoreTrustRoot::from_trusted_root_json_unchecked(trusted_root_json)
        .expect("sigstore-rs reads the trusted root");
    let config = sigstore::registry::ClientConfig {
        protocol: sigstore::registry::ClientProtocol::Http,
        ..Default::default()
    };
    let mut client = sigstore::cosign::ClientBuilder::default()
        .with_oci_client_config(config)
        .with_trust_repository(&trust)
        .expect("trust repository")
        .build()
        .expect("sigstore client");
    let reference: sigstore::registry::OciReference =
        format!("{}/{image}", reg.host()).parse().expect("image reference");
    client
        .trusted_signature_layers(&sigstore::registry::Auth::Anonymous, &reference)
        .await
        .expect("trusted signature layers")
}

fn url_constraint(url: &str, issuer: &str) -> sigstore::cosign::verification_constraint::VerificationConstraintVec {
    vec![Box::new(
        sigstore::cosign::verification_constraint::CertSubjectUrlVerifier {
            url: url.into(),
            issuer: issuer.into(),
        },
    )]
}

fn email_constraint(email: &str, issuer: &str) -> sigstore::cosign::verification_constraint::VerificationConstraintVec {
    use sigstore::cosign::verification_constraint::cert_subject_email_verifier::StringVerifier;
    vec![Box::new(
        sigstore::cosign::verification_constraint::CertSubjectEmailVerifier {
            email: StringVerifier::ExactMatch(email.into()),
            issuer: Some(StringVerifier::ExactMatch(issuer.into())),
        },
    )]
}

fn satisfied(
    layers: &[sigstore::cosign::SignatureLayer],
    constraints: &sigstore::cosign::verification_constraint::VerificationConstraintVec,
) -> bool {
    sigstore::cosign::verify_constraints(layers, constraints.iter()).is_ok()
}

/// An independent verifier accepts both kinds of material: the mock's (URI SAN, root-only
/// chain, its trusted_root.json) and the private CA's (e-mail SAN, intermediate, the
/// trusted_root.json built by [`PrivateCa::trusted_root_json`]).
#[tokio::test]
async fn sigstore_rs_verifies_mock_and_private_ca_signatures() {
    if !require_tools() || support::shared_tool("cosign_sign.py").is_none() {
        return;
    }
    let reg = Registry::plain();
    build_image(&reg, "demo/rs-mock", "v1", "sigstore-rs mock");
    build_image(&reg, "demo/rs-private", "v1", "sigstore-rs private");

    if let Some(mock) = MockSigstore::start() {
        sign_keyless(&reg, "demo/rs-mock", "v1", &mock, "alice@example.com", ISSUER);
        let root = std::fs::read(mock.trusted_root_path()).expect("trusted root");
        let layers = sigstore_rs_layers(&reg, "demo/rs-mock:v1", &root).await;
        assert_eq!(layers.len(), 1, "the layer is trusted");
        assert!(satisfied(&layers, &url_constraint("alice@example.com", ISSUER)));
        assert!(!satisfied(&layers, &url_constraint("bob@example.com", ISSUER)));
        assert!(!satisfied(&layers, &url_constraint("alice@example.com", GH_ISSUER)));
        assert!(
            !satisfied(&layers, &email_constraint("alice@example.com", ISSUER)),
            "the mock's SAN is a URI, not an e-mail address"
        );
    }

    let work = tempfile::tempdir().expect("tempdir");
    let ca = PrivateCa::new(&work.path().join("ca"));
    let (rekor, rekor_spki) = rekor_key(work.path());
    let leaf = ca.issue(LeafOptions::default());
    sign_with_cert(
        &reg,
        "demo/rs-private",
        "v1",
        &leaf,
        Some(&leaf.chain_path),
        Some(&rekor),
    );
    let root = ca.trusted_root_json(&rekor_spki, None);
    let layers = sigstore_rs_layers(&reg, "demo/rs-private:v1", root.as_bytes()).await;
    assert_eq!(layers.len(), 1, "the layer is trusted");
    assert!(satisfied(&layers, &email_constraint("alice@example.com", ISSUER)));
    assert!(!satisfied(&layers, &email_constraint("bob@example.com", ISSUER)));

    // Another CA's trusted root: the certificate does not chain, so no layer is trusted.
    let other = PrivateCa::new(&work.path().join("other"));
    let layers = sigstore_rs_layers(
        &reg,
        "demo/rs-private:v1",
        other.trusted_root_json(&rekor_spki, None).as_bytes(),
    )
    .await;
    assert!(!satisfied(&layers, &email_constraint("alice@example.com", ISSUER)));
}
