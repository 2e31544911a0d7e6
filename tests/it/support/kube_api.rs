//! A stand-in for the Kubernetes API server, because none can be installed on these
//! machines: an in-test HTTP server that serves list and watch of ClusterImagePolicies, and
//! GET of Secrets, ServiceAccounts and ConfigMaps, in the API's own JSON shapes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Objects {
    policies: Vec<Value>,
    /// Secrets, ServiceAccounts and ConfigMaps by (plural resource, namespace, name).
    namespaced: HashMap<(String, String, String), Value>,
    /// Pods, Deployments, Jobs… for `signet audit` to list.
    workloads: Vec<Value>,
    resource_version: u64,
}

#[derive(Clone)]
struct ApiState {
    objects: Arc<Mutex<Objects>>,
    events: broadcast::Sender<String>,
    requests: Arc<Mutex<Vec<String>>>,
    status_patches: Arc<Mutex<Vec<(String, Value)>>>,
    recorded_events: Arc<Mutex<Vec<Value>>>,
}

pub struct FakeApiServer {
    pub addr: SocketAddr,
    state: ApiState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> FakeApiServer {
        let (events, _) = broadcast::channel(64);
        let state = ApiState {
            objects: Arc::default(),
            events,
            requests: Arc::default(),
            status_patches: Arc::default(),
            recorded_events: Arc::default(),
        };
        let app = Router::new()
            .route("/apis/policy.sigstore.dev/v1beta1/clusterimagepolicies", get(policies))
            .route("/apis/policy.sigstore.dev/v1alpha1/trustroots", get(trust_roots))
            .route(
                "/api/v1/namespaces/{namespace}/events",
                axum::routing::post(create_event),
            )
            .route(
                "/apis/policy.sigstore.dev/v1beta1/clusterimagepolicies/{name}/status",
                axum::routing::patch(patch_status),
            )
            .route(
                "/api/v1/namespaces/{namespace}/{resource}/{name}",
                get(namespaced_object),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
                axum::routing::post(create_lease),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                get(get_lease).put(replace_lease),
            )
            .route("/api/v1/{resource}", get(list_workloads))
            .route("/api/v1/namespaces/{namespace}/{resource}", get(list_workloads))
            .route("/apis/{group}/{version}/{resource}", get(list_workloads))
            .route(
                "/apis/{group}/{version}/namespaces/{namespace}/{resource}",
                get(list_workloads),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}",
                axum::routing::patch(apply_object).delete(delete_object),
            )
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind fake API server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApiServer { addr, state, task }
    }

    /// A kubeconfig file pointing at this server.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        kubeconfig_for(dir, &format!("http://{}", self.addr))
    }

    /// Adds a workload (a Pod, Deployment, Job… with apiVersion, kind and metadata).
    pub fn add_workload(&self, object: Value) {
        self.state.objects.lock().expect("lock").workloads.push(object);
    }

    /// Removes the object of `kind` named `namespace`/`name`.
    pub fn remove_workload(&self, kind: &str, namespace: &str, name: &str) {
        self.state.objects.lock().expect("lock").workloads.retain(|o| {
            !(o["kind"] == kind && o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == name)
        });
    }

    /// The PolicyReports written (server-side apply), as stored.
    pub fn policy_reports(&self) -> Vec<Value> {
        let objects = self.state.objects.lock().expect("lock");
        objects
            .workloads
            .iter()
            .filter(|o| o["kind"] == "PolicyReport")
            .cloned()
            .collect()
    }

    /// Adds (or replaces) a ClusterImagePolicy given as JSON and tells watchers.
    pub fn apply_policy(&self, mut policy: Value) {
        let mut objects = self.state.objects.lock().expect("lock");
        objects.resource_version += 1;
        policy["metadata"]["resourceVersion"] = json!(objects.resource_version.to_string());
        policy["metadata"]["uid"] = json!(format!("uid-{}", policy["metadata"]["name"].as_str().unwrap_or("x")));
        let name = policy["metadata"]["name"].clone();
        let existed = objects.policies.iter().any(|p| p["metadata"]["name"] == name);
        objects.policies.retain(|p| p["metadata"]["name"] != name);
        objects.policies.push(policy.clone());
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        let _ = self
            .state
            .events
            .send(json!({"type": kind, "object": policy}).to_string());
    }

    pub fn add_secret(&self, namespace: &str, name: &str, data: &[(&str, &[u8])], kind: &str) {
        use base64::Engine as _;
        let encoded: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "type": kind, "data": encoded});
        self.put("secrets", namespace, name, Some(secret));
    }

    pub fn add_service_account(&self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        let secrets: Vec<Value> = pull_secrets.iter().map(|s| json!({"name": s})).collect();
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}, "imagePullSecrets": secrets});
        self.put("serviceaccounts", namespace, name, Some(account));
    }

    /// Creates or replaces a ConfigMap; `None` deletes it.
    pub fn put_config_map(&self, namespace: &str, name: &str, data: Option<&[(&str, &str)]>) {
        let config_map = data.map(|data| {
            let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data})
        });
        self.put("configmaps", namespace, name, config_map);
    }

    fn put(&self, resource: &str, namespace: &str, name: &str, object: Option<Value>) {
        let key = (resource.to_string(), namespace.to_string(), name.to_string());
        let mut objects = self.state.objects.lock().expect("lock");
        match object {
            Some(object) => objects.namespaced.insert(key, object),
            None => objects.namespaced.remove(&key),
        };
    }

    /// The Events created so far.
    pub fn events(&self) -> Vec<Value> {
        self.state.recorded_events.lock().expect("lock").clone()
    }

    /// The status patches received, by policy name, in order.
    pub fn status_patches(&self) -> Vec<(String, Value)> {
        self.state.status_patches.lock().expect("lock").clone()
    }

    /// A Lease as stored (with its resourceVersion), if one was created.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = ("leases".to_string(), namespace.to_string(), name.to_string());
        self.state.objects.lock().expect("lock").namespaced.get(&key).cloned()
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().expect("lock").clone()
    }
}

pub fn kubeconfig_for(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n- name: tester\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\ncurrent-context: fake\n"
    );
    std::fs::write(&path, config).expect("write kubeconfig");
    path
}

/// Lists of workloads, cluster-wide or in one namespace, by group and plural resource.
async fn list_workloads(State(state): State<ApiState>, UrlPath(params): UrlPath<HashMap<String, String>>) -> Response {
    let group = params.get("group").cloned().unwrap_or_default();
    let version = params.get("version").cloned().unwrap_or_else(|| "v1".to_string());
    let resource = params.get("resource").cloned().unwrap_or_default();
    let namespace = params.get("namespace").cloned();
    state.requests.lock().expect("lock").push(format!(
        "list {group}/{resource} in {}",
        namespace.as_deref().unwrap_or("all")
    ));
    let api_version = if group.is_empty() {
        version.clone()
    } else {
        format!("{group}/{version}")
    };
    let objects = state.objects.lock().expect("lock");
    let items: Vec<Value> = objects
        .workloads
        .iter()
        .filter(|o| o["apiVersion"] == api_version.as_str())
        .filter(|o| {
            let plural = format!("{}s", o["kind"].as_str().unwrap_or_default().to_ascii_lowercase());
            plural == resource
        })
        .filter(|o| {
            namespace
                .as_ref()
                .is_none_or(|ns| o["metadata"]["namespace"] == ns.as_str())
        })
        .cloned()
        .collect();
    let list = json!({
        "apiVersion": api_version,
        "kind": "List",
        "metadata": {"resourceVersion": objects.resource_version.to_string()},
        "items": items,
    });
    axum::Json(list).into_response()
}

/// Server-side apply of a namespaced object of any API group: stores the applied object.
async fn apply_object(
    State(state): State<ApiState>,
    UrlPath(params): UrlPath<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let name = params.get("name").cloned().unwrap_or_default();
    let namespace = params.get("namespace").cloned().unwrap_or_default();
    state.requests.lock().expect("lock").push(format!(
        "apply {}/{} {namespace}/{name}",
        params.get("group").cloned().unwrap_or_default(),
        params.get("resource").cloned().unwrap_or_default()
    ));
    let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut objects = state.objects.lock().expect("lock");
    objects.resource_version += 1;
    object["metadata"]["resourceVersion"] = json!(objects.resource_version.to_string());
    let same = |o: &Value| {
        o["kind"] == object["kind"]
            && o["metadata"]["namespace"] == namespace.as_str()
            && o["metadata"]["name"] == name.as_str()
    };
    objects.workloads.retain(|o| !same(o));
    objects.workloads.push(object.clone());
    axum::Json(object).into_response()
}

async fn delete_object(State(state): State<ApiState>, UrlPath(params): UrlPath<HashMap<String, String>>) -> Response {
    let name = params.get("name").cloned().unwrap_or_default();
    let namespace = params.get("namespace").cloned().unwrap_or_default();
    let resource = params.get("resource").cloned().unwrap_or_default();
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("delete {resource} {namespace}/{name}"));
    let mut objects = state.objects.lock().expect("lock");
    objects.workloads.retain(|o| {
        let plural = format!("{}s", o["kind"].as_str().unwrap_or_default().to_ascii_lowercase());
        !(plural == resource
            && o["metadata"]["namespace"] == namespace.as_str()
            && o["metadata"]["name"] == name.as_str())
    });
    axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})).into_response()
}

async fn policies(State(state): State<ApiState>, Query(query): Query<HashMap<String, String>>) -> Response {
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("clusterimagepolicies?{query:?}"));
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let receiver = tokio_stream_from(state.events.subscribe());
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(receiver))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let objects = state.objects.lock().expect("lock");
    let list = json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicyList",
        "metadata": {"resourceVersion": objects.resource_version.to_string()},
        "items": objects.policies,
    });
    axum::Json(list).into_response()
}

/// TrustRoots: always none, and a watch that never reports anything.
async fn trust_roots(State(state): State<ApiState>, Query(query): Query<HashMap<String, String>>) -> Response {
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("trustroots?{query:?}"));
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let stream = futures::stream::pending::<Result<String, std::io::Error>>();
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let list = json!({
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRootList",
        "metadata": {"resourceVersion": "1"},
        "items": [],
    });
    axum::Json(list).into_response()
}

fn tokio_stream_from(
    receiver: broadcast::Receiver<String>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => return Some((Ok(format!("{event}\n")), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

async fn namespaced_object(
    State(state): State<ApiState>,
    UrlPath((namespace, resource, name)): UrlPath<(String, String, String)>,
) -> Response {
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("{resource}/{namespace}/{name}"));
    let found = state
        .objects
        .lock()
        .expect("lock")
        .namespaced
        .get(&(resource.clone(), namespace, name.clone()))
        .cloned();
    found.map_or_else(|| missing(&resource, &name), |o| axum::Json(o).into_response())
}

async fn patch_status(
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .status_patches
        .lock()
        .expect("lock")
        .push((name.clone(), patch.clone()));
    let objects = state.objects.lock().expect("lock");
    match objects.policies.iter().find(|p| p["metadata"]["name"] == name.as_str()) {
        Some(policy) => {
            let mut updated = policy.clone();
            updated["status"] = patch["status"].clone();
            axum::Json(updated).into_response()
        }
        None => missing("clusterimagepolicies", &name),
    }
}

/// Leases keep the API server's optimistic concurrency: a create of an existing one and a
/// replace with a stale resourceVersion are both 409 Conflict, as the real server answers.
async fn create_lease(
    State(state): State<ApiState>,
    UrlPath(namespace): UrlPath<String>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let name = lease["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let key = ("leases".to_string(), namespace, name.clone());
    let mut objects = state.objects.lock().expect("lock");
    if objects.namespaced.contains_key(&key) {
        return conflict("AlreadyExists", &name);
    }
    objects.resource_version += 1;
    lease["metadata"]["resourceVersion"] = json!(objects.resource_version.to_string());
    objects.namespaced.insert(key, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

async fn get_lease(State(state): State<ApiState>, UrlPath((namespace, name)): UrlPath<(String, String)>) -> Response {
    let key = ("leases".to_string(), namespace, name.clone());
    let found = state.objects.lock().expect("lock").namespaced.get(&key).cloned();
    found.map_or_else(|| missing("leases", &name), |o| axum::Json(o).into_response())
}

async fn replace_lease(
    State(state): State<ApiState>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let key = ("leases".to_string(), namespace, name.clone());
    let mut objects = state.objects.lock().expect("lock");
    let stored = objects
        .namespaced
        .get(&key)
        .map(|l| l["metadata"]["resourceVersion"].clone());
    match stored {
        None => return missing("leases", &name),
        Some(version) if version != lease["metadata"]["resourceVersion"] => return conflict("Conflict", &name),
        Some(_) => {}
    }
    objects.resource_version += 1;
    lease["metadata"]["resourceVersion"] = json!(objects.resource_version.to_string());
    objects.namespaced.insert(key, lease.clone());
    axum::Json(lease).into_response()
}

fn conflict(reason: &str, name: &str) -> Response {
    let status = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": format!("leases \"{name}\": the object has been modified"), "reason": reason, "code": 409
    });
    (StatusCode::CONFLICT, axum::Json(status)).into_response()
}

async fn create_event(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let mut event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.recorded_events.lock().expect("lock").push(event.clone());
    event["metadata"]["name"] = json!("event-1");
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

async fn not_found() -> Response {
    missing("resource", "")
}

fn missing(resource: &str, name: &str) -> Response {
    let status = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": format!("{resource} \"{name}\" not found"), "reason": "NotFound", "code": 404
    });
    (StatusCode::NOT_FOUND, axum::Json(status)).into_response()
}
