//! Bad input, end to end: the real `signet` binary over real HTTPS gets every kind of
//! malformed request on `/mutate` and `/validate`. Each row states the HTTP status, the
//! `allowed` answer and a fragment of the message; no row may crash, hang or 5xx the server,
//! which must keep answering normal reviews afterwards. The AdmissionReview fixtures of other
//! projects (`../shared/fixtures/admission-review/`) must each get a 200 or a 400 in time.

use crate::signet_server;
use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_server::{Signet, pod_review, policy_dir, review_for, static_policy};

/// How long one answer may take; everything here is answered without any registry call.
const ANSWER_BOUND: Duration = Duration::from_secs(15);

const ENDPOINTS: [&str; 2] = ["mutate", "validate"];

/// One malformed request and what signet must answer, on both endpoints.
struct Row {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    /// `response.allowed` for 200s; `None` for 400/413.
    allowed: Option<bool>,
    /// Must occur in `response.status.message` (200) or in the body (400/413); "" for none.
    fragment: &'static str,
}

fn row(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    allowed: Option<bool>,
    fragment: &'static str,
) -> Row {
    Row {
        name,
        body: body.into(),
        status,
        allowed,
        fragment,
    }
}

fn envelope(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn pod_request(uid: &str, containers: Value) -> Value {
    pod_review_with_spec(uid, json!({"containers": containers}))
}

fn pod_review_with_spec(uid: &str, spec: Value) -> Value {
    review_for(
        uid,
        ("", "v1", "pods", "Pod"),
        "CREATE",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
    )
}

/// A pod with a good container and one image volume `data` whose `image` field is `image`.
fn volume_review(image: Value) -> String {
    pod_review_with_spec(
        "vol",
        json!({
            "containers": [{"name": "ok", "image": "ghcr.io/org/app:v1"}],
            "volumes": [{"name": "data", "image": image}],
        }),
    )
    .to_string()
}

/// A one-container pod running `image`, as bytes.
fn pod_with(image: &str) -> Vec<u8> {
    pod_review("img", &[image]).to_string().into_bytes()
}

/// The policies every row runs against: ghcr.io passes, evil.example.com fails, anything
/// else is unmatched and denied (`--no-match-policy deny`, the default).
fn policies() -> tempfile::TempDir {
    policy_dir(&[
        &static_policy("allow-ghcr", "ghcr.io/**", "pass", "enforce"),
        &static_policy("block-evil", "evil.example.com/**", "fail", "enforce"),
    ])
}

/// The good review with one edit.
fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut review = pod_review("edited", &["ghcr.io/org/app:v1"]);
    edit(&mut review);
    review.to_string()
}

fn table() -> Vec<Row> {
    let good = pod_review("good", &["ghcr.io/org/app:v1"]).to_string();
    let hidden_image = good.replace(
        "\"image\":\"ghcr.io/org/app:v1\"",
        "\"image\":\"ghcr.io/org/app:v1\",\"image\":\"evil.example.com/x:1\"",
    );
    let evil_containers = json!({"containers": [{"name": "c", "image": "evil.example.com/x"}]});
    let widget = review_for(
        "u",
        ("example.com", "v1", "widgets", "Widget"),
        "CREATE",
        json!({"spec": evil_containers}),
    );
    let config_map = review_for(
        "u",
        ("", "v1", "configmaps", "ConfigMap"),
        "CREATE",
        json!({"data": evil_containers}),
    );
    let no_object = edited(|r| drop(r["request"].as_object_mut().and_then(|o| o.remove("object"))));
    let ephemeral = pod_review_with_spec(
        "u",
        json!({
            "containers": [{"name": "ok", "image": "ghcr.io/a"}],
            "ephemeralContainers": [{"name": "dbg", "image": "evil.example.com/x"}],
        }),
    );
    let with_args = |uid: &str, len: usize| {
        pod_review_with_spec(
            uid,
            json!({"containers": [{"name": "c", "image": "ghcr.io/a", "args": ["y".repeat(len)]}]}),
        )
    };
    let over_limit = with_args("u", 8 * 1024 * 1024 + 1);
    let under_limit = with_args("big", 8 * 1024 * 1024 - 1024);
    let mut rows = Vec::from([
        // Not JSON at all.
        row("non-JSON text", "not json", 400, None, "not valid JSON"),
        row("empty body", "", 400, None, "not valid JSON"),
        row(
            "invalid UTF-8",
            b"{\"kind\": \"\xff\xfe\"}".to_vec(),
            400,
            None,
            "not valid JSON",
        ),
        row(
            "UTF-8 BOM before the JSON",
            format!("\u{feff}{good}"),
            400,
            None,
            "not valid JSON",
        ),
        row(
            "truncated JSON",
            &good.as_bytes()[..good.len() / 2],
            400,
            None,
            "not valid JSON",
        ),
        row(
            "truncated by one byte",
            &good.as_bytes()[..good.len() - 1],
            400,
            None,
            "not valid JSON",
        ),
        row("trailing garbage", format!("{good} {{}}"), 400, None, "not valid JSON"),
        row(
            "number out of range",
            good.replace("\"uid\":\"good\"", "\"uid\":\"good\",\"n\":1e400"),
            400,
            None,
            "not valid JSON",
        ),
        row(
            "deeply nested arrays",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            400,
            None,
            "not valid JSON",
        ),
        row(
            "deeply nested object inside the pod",
            good.replace(
                "\"metadata\":{",
                &format!(
                    "\"deep\":{}0{},\"metadata\":{{",
                    "{\"a\":".repeat(10_000),
                    "}".repeat(10_000)
                ),
            ),
            400,
            None,
            "not valid JSON",
        ),
        // JSON, but not an AdmissionReview.
        row("JSON array", "[]", 400, None, "not a JSON object"),
        row("JSON null", "null", 400, None, "not a JSON object"),
        row("JSON string", "\"AdmissionReview\"", 400, None, "not a JSON object"),
        row(
            "wrong kind",
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}).to_string(),
            400,
            None,
            "expected \"AdmissionReview\"",
        ),
        row(
            "kind in lower case",
            good.replace("\"AdmissionReview\"", "\"admissionreview\""),
            400,
            None,
            "expected \"AdmissionReview\"",
        ),
        row(
            "kind missing",
            json!({"apiVersion": "admission.k8s.io/v1", "request": {"uid": "u"}}).to_string(),
            400,
            None,
            "expected \"AdmissionReview\"",
        ),
        row(
            "kind not a string",
            json!({"apiVersion": "admission.k8s.io/v1", "kind": 7}).to_string(),
            400,
            None,
            "expected \"AdmissionReview\"",
        ),
        row(
            "wrong apiVersion",
            good.replace("admission.k8s.io/v1", "admission.k8s.io/v2"),
            400,
            None,
            "is not supported",
        ),
        row(
            "apiVersion of another group",
            good.replace("admission.k8s.io/v1", "v1"),
            400,
            None,
            "is not supported",
        ),
        row(
            "apiVersion missing",
            json!({"kind": "AdmissionReview", "request": {"uid": "u"}}).to_string(),
            400,
            None,
            "is not supported",
        ),
        // Duplicate keys: two readers could disagree on which value counts, so they are refused.
        row(
            "duplicate top-level key",
            good.replacen("{", "{\"kind\":\"AdmissionReview\",", 1),
            400,
            None,
            "duplicate key \"kind\"",
        ),
        row(
            "duplicate uid",
            good.replace("\"uid\":\"good\"", "\"uid\":\"good\",\"uid\":\"other\""),
            400,
            None,
            "duplicate key \"uid\"",
        ),
        row(
            "duplicate image key hides a second image",
            hidden_image,
            400,
            None,
            "duplicate key \"image\"",
        ),
        // An AdmissionReview whose request is unusable: answered, denied.
        row(
            "request null",
            envelope(Value::Null).to_string(),
            200,
            Some(false),
            "no request",
        ),
        row(
            "request missing",
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
            200,
            Some(false),
            "no request",
        ),
        row(
            "request not an object",
            envelope(json!("x")).to_string(),
            200,
            Some(false),
            "request is malformed",
        ),
        row(
            "uid missing",
            envelope(json!({"operation": "CREATE"})).to_string(),
            200,
            Some(false),
            "no uid",
        ),
        row(
            "uid empty",
            good.replace("\"uid\":\"good\"", "\"uid\":\"\""),
            200,
            Some(false),
            "no uid",
        ),
        row(
            "uid a number",
            good.replace("\"uid\":\"good\"", "\"uid\":5"),
            200,
            Some(false),
            "request is malformed",
        ),
        // v1beta1 has the same shape and is answered in kind.
        row(
            "v1beta1 review",
            good.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1"),
            200,
            Some(true),
            "",
        ),
        // Resources that run no containers are admitted without looking inside.
        row(
            "unknown resource kind with an evil image",
            widget.to_string(),
            200,
            Some(true),
            "",
        ),
        row("ConfigMap", config_map.to_string(), 200, Some(true), ""),
        row(
            "unknown operation",
            good.replace("\"operation\":\"CREATE\"", "\"operation\":\"FROB\""),
            200,
            Some(true),
            "",
        ),
        // Objects with no or odd containers.
        row(
            "object null",
            edited(|r| r["request"]["object"] = Value::Null),
            200,
            Some(false),
            "has no object",
        ),
        row("object absent", no_object, 200, Some(false), "has no object"),
        row(
            "spec absent",
            edited(|r| drop(r["request"]["object"].as_object_mut().and_then(|o| o.remove("spec")))),
            200,
            Some(true),
            "",
        ),
        row(
            "spec a string",
            pod_review_with_spec("u", json!("x")).to_string(),
            200,
            Some(false),
            "/spec must be an object",
        ),
        row(
            "containers null",
            pod_review_with_spec("u", json!({"containers": null})).to_string(),
            200,
            Some(true),
            "",
        ),
        row(
            "containers absent",
            pod_review_with_spec("u", json!({})).to_string(),
            200,
            Some(true),
            "",
        ),
        row(
            "containers empty",
            pod_request("u", json!([])).to_string(),
            200,
            Some(true),
            "",
        ),
        row(
            "containers an object",
            pod_request("u", json!({"image": "evil.example.com/x"})).to_string(),
            200,
            Some(false),
            "must be a list of containers",
        ),
        row(
            "container a string",
            pod_request("u", json!(["evil.example.com/x"])).to_string(),
            200,
            Some(false),
            "must be a container object",
        ),
        row(
            "container null",
            pod_request("u", json!([null])).to_string(),
            200,
            Some(false),
            "must be a container object",
        ),
        row(
            "image a number",
            pod_request("u", json!([{"name": "c", "image": 42}])).to_string(),
            200,
            Some(false),
            "must be a string",
        ),
        row(
            "image a list",
            pod_request("u", json!([{"name": "c", "image": ["evil.example.com/x"]}])).to_string(),
            200,
            Some(false),
            "must be a string",
        ),
        row(
            "image null",
            pod_request("u", json!([{"name": "c", "image": null}])).to_string(),
            200,
            Some(true),
            "",
        ),
        row(
            "initContainers a string",
            pod_review_with_spec("u", json!({"containers": [], "initContainers": "evil.example.com/x"})).to_string(),
            200,
            Some(false),
            "must be a list of containers",
        ),
        row(
            "evil image in ephemeralContainers",
            ephemeral.to_string(),
            200,
            Some(false),
            "evil.example.com/x",
        ),
        // Image volumes (KEP-4639) are images too.
        row(
            "evil image volume",
            volume_review(json!({"reference": "evil.example.com/x:1"})),
            200,
            Some(false),
            "volume \"data\" image \"evil.example.com/x:1\"",
        ),
        row(
            "image volume from a registry no policy names",
            volume_review(json!({"reference": "unknown.example.com/x:1"})),
            200,
            Some(false),
            "no ClusterImagePolicy matches",
        ),
        row(
            "image volume reference that is not a string",
            volume_review(json!({"reference": 7})),
            200,
            Some(false),
            "/spec/volumes/0/image/reference must be a string",
        ),
        row(
            "image volume that is not an object",
            volume_review(json!("evil.example.com/x:1")),
            200,
            Some(false),
            "/spec/volumes/0/image must be an object",
        ),
        row(
            "invalid image volume reference",
            volume_review(json!({"reference": "evil.example.com/X"})),
            200,
            Some(false),
            "is invalid",
        ),
        // The default HTTPS port is the same registry.
        row(
            "evil registry spelled with :443",
            pod_with("evil.example.com:443/x:1"),
            200,
            Some(false),
            "block-evil",
        ),
        row(
            "evil registry spelled with :0443",
            pod_with("EVIL.example.com:0443/x:1"),
            200,
            Some(false),
            "block-evil",
        ),
        row(
            "registry port over 65535",
            pod_with("ghcr.io:65979/org/app:v1"),
            200,
            Some(false),
            "is not a number",
        ),
        // Invalid references are denied with the reference named.
        row(
            "empty image",
            pod_with(""),
            200,
            Some(false),
            "image reference is empty",
        ),
        row(
            "upper-case repository",
            pod_with("ghcr.io/UPPER/case"),
            200,
            Some(false),
            "must be lower-case",
        ),
        row(
            "empty tag",
            pod_with("ghcr.io/org/app:"),
            200,
            Some(false),
            "is not a valid tag",
        ),
        row(
            "short digest",
            pod_with("ghcr.io/org/app@sha256:abc"),
            200,
            Some(false),
            "64 lower-case hex",
        ),
        row(
            "upper-case digest",
            pod_with(&format!("ghcr.io/org/app@sha256:{}", "A".repeat(64))),
            200,
            Some(false),
            "64 lower-case hex",
        ),
        row(
            "md5 digest",
            pod_with(&format!("ghcr.io/org/app@md5:{}", "a".repeat(32))),
            200,
            Some(false),
            "unsupported digest algorithm",
        ),
        row(
            "bad port",
            pod_with("ghcr.io:99999999/org/app"),
            200,
            Some(false),
            "is not a number",
        ),
        row(
            "path traversal",
            pod_with("ghcr.io/../evil"),
            200,
            Some(false),
            "must be lower-case letters",
        ),
        row(
            "double slash",
            pod_with("ghcr.io//org/app"),
            200,
            Some(false),
            "must be lower-case letters",
        ),
        row(
            "scheme prefix",
            pod_with("https://ghcr.io/org/app"),
            200,
            Some(false),
            "invalid",
        ),
        row(
            "leading dash host",
            pod_with("-ghcr.io/org/app"),
            200,
            Some(false),
            "invalid",
        ),
        row(
            "bad IPv6 registry",
            pod_with("[::zz]:5000/app"),
            200,
            Some(false),
            "is not an IPv6 address",
        ),
        // Unicode tricks: nothing outside the ASCII grammar is guessed at.
        row(
            "Cyrillic homoglyph in registry",
            pod_with("ghсr.io/org/app"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "Cyrillic homoglyph in path",
            pod_with("ghcr.io/оrg/app"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "zero-width space",
            pod_with("ghcr.io/org/app\u{200b}"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "zero-width joiner in registry",
            pod_with("evil\u{200d}.example.com/x"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "right-to-left override",
            pod_with("ghcr.io/org/\u{202e}1v:ppa"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "full-width slash",
            pod_with("ghcr.io\u{ff0f}org/app"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "full-width letters",
            pod_with("ｇｈｃｒ.io/org/app"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "combining accent",
            pod_with("ghcr.io/org/ap\u{0301}p"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "non-breaking space",
            pod_with("ghcr.io/org/app\u{a0}"),
            200,
            Some(false),
            "is not allowed",
        ),
        // Control characters.
        row(
            "NUL byte",
            pod_with("ghcr.io/org/app\u{0}"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "newline",
            pod_with("ghcr.io/org/app\nevil.example.com/x"),
            200,
            Some(false),
            "is not allowed",
        ),
        row("tab", pod_with("ghcr.io/org/app\t"), 200, Some(false), "is not allowed"),
        row(
            "escape sequence",
            pod_with("\u{1b}[2Jghcr.io/org/app"),
            200,
            Some(false),
            "is not allowed",
        ),
        row(
            "space",
            pod_with("ghcr.io/org/app evil"),
            200,
            Some(false),
            "is not allowed",
        ),
        // Very long image strings.
        row(
            "name longer than 255",
            pod_with(&format!("ghcr.io/{}", "a".repeat(300))),
            200,
            Some(false),
            "longer than 255",
        ),
        row(
            "tag longer than 128",
            pod_with(&format!("ghcr.io/org/app:{}", "t".repeat(129))),
            200,
            Some(false),
            "is not a valid tag",
        ),
        row(
            "1 MiB image",
            pod_with(&format!("ghcr.io/{}", "a".repeat(1024 * 1024))),
            200,
            Some(false),
            "longer than 255",
        ),
        // Enormous bodies.
        row(
            "body over 8 MiB",
            format!(
                "{{\"kind\":\"AdmissionReview\",\"pad\":\"{}\"}}",
                "x".repeat(9 * 1024 * 1024)
            ),
            413,
            None,
            "",
        ),
        row("valid review over 8 MiB", over_limit.to_string(), 413, None, ""),
        row(
            "valid review just under 8 MiB",
            under_limit.to_string(),
            200,
            Some(true),
            "",
        ),
    ]);
    // Huge numbers of containers.
    let many: Vec<String> = (0..5_000).map(|i| format!("ghcr.io/org/app-{i}:v{i}")).collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    rows.push(row(
        "5,000 distinct containers",
        pod_review("many", &many_refs).to_string(),
        200,
        Some(true),
        "",
    ));
    let mut many_refs = many_refs;
    many_refs.push("evil.example.com/x:1");
    rows.push(row(
        "5,000 containers and one evil",
        pod_review("many-evil", &many_refs).to_string(),
        200,
        Some(false),
        "\"c5000\"",
    ));
    let same = vec!["ghcr.io/org/app:v1"; 5_000];
    rows.push(row(
        "5,000 containers of one image",
        pod_review("same", &same).to_string(),
        200,
        Some(true),
        "",
    ));
    rows
}

async fn check_row(signet: &Signet, endpoint: &str, row: &Row) -> Result<(), String> {
    let name = row.name;
    let started = Instant::now();
    let (status, answer) = tokio::time::timeout(ANSWER_BOUND, signet.post(endpoint, row.body.clone()))
        .await
        .map_err(|_| format!("{name} /{endpoint}: no answer within {ANSWER_BOUND:?}"))?;
    let took = started.elapsed();
    let shown: String = answer.to_string().chars().take(400).collect();
    if status != row.status {
        return Err(format!(
            "{name} /{endpoint}: status {status}, expected {}: {shown}",
            row.status
        ));
    }
    let message = match status {
        200 => {
            let response = &answer["response"];
            if answer["kind"] != "AdmissionReview" {
                return Err(format!("{name} /{endpoint}: not an AdmissionReview: {shown}"));
            }
            let sent: Option<Value> = serde_json::from_slice(&row.body).ok();
            let uid = sent
                .as_ref()
                .and_then(|s| s.pointer("/request/uid"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if response["uid"] != uid {
                return Err(format!(
                    "{name} /{endpoint}: uid {} not echoed as {uid:?}",
                    response["uid"]
                ));
            }
            let allowed = response["allowed"].as_bool();
            if allowed != row.allowed {
                return Err(format!(
                    "{name} /{endpoint}: allowed {allowed:?}, expected {:?}: {shown}",
                    row.allowed
                ));
            }
            if allowed == Some(false) && response["status"]["code"] != 403 {
                return Err(format!("{name} /{endpoint}: a denial carries code 403: {shown}"));
            }
            if response.get("patch").is_some() {
                return Err(format!(
                    "{name} /{endpoint}: nothing was verified, nothing may be pinned: {shown}"
                ));
            }
            response["status"]["message"].as_str().unwrap_or_default().to_string()
        }
        _ => answer.as_str().unwrap_or_default().to_string(),
    };
    if !message.contains(row.fragment) {
        let message: String = message.chars().take(400).collect();
        return Err(format!(
            "{name} /{endpoint}: message lacks {:?}: {message}",
            row.fragment
        ));
    }
    if took > Duration::from_secs(5) {
        eprintln!("slow: {name} /{endpoint} took {took:?}");
    }
    Ok(())
}

/// Sends every row to both endpoints of a fresh server; returns the failures. Checks that the
/// server survives each row and still answers (and still denies) normal reviews afterwards.
async fn run_table(rows: &[Row]) -> Vec<String> {
    let dir = policies();
    let mut signet = Signet::start(dir.path(), &[]).await;
    let mut failures = Vec::new();
    for row in rows {
        for endpoint in ENDPOINTS {
            if let Err(failure) = check_row(&signet, endpoint, row).await {
                failures.push(failure);
            }
        }
        assert!(
            signet.is_running(),
            "signet exited after {:?}: {}",
            row.name,
            signet.logs()
        );
    }
    let logs = signet.logs();
    assert!(!logs.contains("panicked"), "signet panicked: {logs}");
    for endpoint in ENDPOINTS {
        let fine = signet
            .review(endpoint, &pod_review("after", &["ghcr.io/org/app:v1"]))
            .await;
        assert_eq!(fine["allowed"], true, "still serving after bad input: {fine}");
        let evil = signet
            .review(endpoint, &pod_review("after-evil", &["evil.example.com/x:1"]))
            .await;
        assert_eq!(evil["allowed"], false, "still denying after bad input: {evil}");
    }
    let (status, _) = signet.admin_get("/readyz").await;
    assert_eq!(status, 200, "still ready after bad input");
    failures
}

#[tokio::test]
async fn every_malformed_request_gets_a_clear_answer_and_the_server_keeps_serving() {
    let rows = table();
    let failures = run_table(&rows).await;
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len() * ENDPOINTS.len(),
        failures.join("\n")
    );
}

/// A request that has a uid but a malformed other field is denied with uid `""`: the API
/// server refuses a response whose uid differs from the request's ("expected response.uid"),
/// so the user sees a webhook failure instead of signet's message (and a webhook with
/// `failurePolicy: Ignore` would admit the object). The uid should be echoed whenever it can
/// be read.
#[tokio::test]
async fn malformed_requests_with_a_readable_uid_echo_it() {
    let rows = vec![
        row(
            "operation a number",
            edited(|r| r["request"]["operation"] = json!(1)),
            200,
            Some(false),
            "request is malformed",
        ),
        row(
            "resource a string",
            edited(|r| r["request"]["resource"] = json!("pods")),
            200,
            Some(false),
            "request is malformed",
        ),
        row(
            "namespace a number",
            edited(|r| r["request"]["namespace"] = json!(3)),
            200,
            Some(false),
            "request is malformed",
        ),
    ];
    let failures = run_table(&rows).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every AdmissionReview fixture of other projects gets a 200 or a 400 in time, on both
/// endpoints: never a 5xx, never a hang. Bare AdmissionRequests (kubewarden's) are wrapped.
#[tokio::test]
async fn shared_admission_review_fixtures_get_200_or_400_in_time() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let dir = policies();
    let mut signet = Signet::start(dir.path(), &[]).await;
    let mut paths: Vec<_> = std::fs::read_dir(fixtures.join("admission-review"))
        .expect("admission-review fixtures")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "only {} fixtures", paths.len());
    let started = Instant::now();
    let (mut answered, mut refused) = (0, 0);
    for path in &paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let text = std::fs::read(path).expect("read fixture");
        let value: Option<Value> = serde_json::from_slice(&text).ok();
        let is_bare_request = value
            .as_ref()
            .is_some_and(|v| v.get("uid").is_some() && v.get("kind").is_some_and(Value::is_object));
        let body = match &value {
            Some(v) if is_bare_request => envelope(v.clone()).to_string().into_bytes(),
            _ => text,
        };
        for endpoint in ENDPOINTS {
            let (status, answer) = tokio::time::timeout(ANSWER_BOUND, signet.post(endpoint, body.clone()))
                .await
                .unwrap_or_else(|_| panic!("{name} /{endpoint}: no answer within {ANSWER_BOUND:?}"));
            match status {
                200 => {
                    assert_eq!(answer["kind"], "AdmissionReview", "{name} /{endpoint}: {answer}");
                    let response = &answer["response"];
                    let allowed = response["allowed"]
                        .as_bool()
                        .unwrap_or_else(|| panic!("{name}: {answer}"));
                    if !allowed {
                        let message = response["status"]["message"].as_str().unwrap_or_default();
                        assert!(
                            !message.is_empty(),
                            "{name} /{endpoint}: a denial explains itself: {answer}"
                        );
                    }
                    assert!(
                        response.get("patch").is_none(),
                        "{name} /{endpoint}: nothing verified: {answer}"
                    );
                    answered += 1;
                }
                400 => {
                    let text = answer.as_str().unwrap_or_default();
                    assert!(!text.is_empty(), "{name} /{endpoint}: a 400 explains itself");
                    refused += 1;
                }
                other => panic!("{name} /{endpoint}: status {other}: {answer}"),
            }
        }
        assert!(signet.is_running(), "signet exited on {name}: {}", signet.logs());
    }
    let took = started.elapsed();
    eprintln!(
        "{} fixtures: {answered} answered, {refused} refused (400), in {took:?}",
        paths.len()
    );
    assert!(took < Duration::from_secs(60), "fixtures took {took:?}");
    assert!(answered >= 60, "only {answered} answers: wrapping bare requests broke?");
    let fine = signet
        .review("validate", &pod_review("after", &["ghcr.io/org/app:v1"]))
        .await;
    assert_eq!(fine["allowed"], true, "still serving after the fixtures: {fine}");
}
