//! The HTTP side of the registry client: URLs, auth round trips, 429 retries, error
//! classification and size-limited, digest-checked bodies.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url, redirect};
use tracing::{debug, warn};

use super::auth::{Challenge, TokenCache, TokenKey, challenge_error, parse_challenges, parse_token_response};
use super::places::Places;
use super::{
    Credentials, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, Manifest, RegistryConfig, RegistryError, Target,
    is_sha256_digest, sha256_digest,
};

/// Blob downloads are commonly redirected once to object storage; more than this is a loop.
const MAX_REDIRECTS: usize = 5;
/// 429 answers are retried at most this many times per operation.
const MAX_RATE_LIMIT_RETRIES: u32 = 2;
/// Wait used when a 429 carries no usable `Retry-After`.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_millis(500);
/// `Retry-After` is the registry's to choose; anything longer than a day is read as a day
/// (only for the message: a wait past the call's deadline is never slept anyway), so no
/// value can overflow `Instant` arithmetic.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Error bodies are read only for their message; cap them.
const MAX_ERROR_BODY: usize = 16 * 1024;
const MAX_TOKEN_BODY: usize = 1024 * 1024;
/// Idle pooled connections are closed after this; a registry used again soon reuses them.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const REFERRERS_ACCEPT: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The host actually contacted for a registry name. Docker Hub's canonical name
/// `index.docker.io` (and `docker.io`) is served by `registry-1.docker.io`.
pub fn registry_endpoint(registry: &str) -> &str {
    match registry {
        "index.docker.io" | "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// OCI distribution client. Cheap to clone: clones share the connection pool and token cache.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Registry operations at once, per endpoint and in the process; stalled endpoints.
    places: Places,
    insecure_hosts: Vec<String>,
    timeout: Duration,
    tokens: TokenCache,
    /// Endpoints that challenged with Basic: later calls send credentials up front.
    basic_endpoints: Mutex<HashSet<String>>,
    /// `signet_registry_requests_total{registry, status}`, when metrics are wanted.
    requests: Option<prometheus::IntCounterVec>,
}

/// One operation: what it is about (for errors), where it goes, and its deadline.
struct Call<'a> {
    target: Target,
    endpoint: String,
    base: String,
    creds: &'a Credentials,
    started: Instant,
    deadline: Instant,
}

impl Call<'_> {
    fn url(&self, kind: &str, reference: &str) -> Result<Url, RegistryError> {
        let raw = format!("{}/{}/{}/{}", self.base, self.target.repository, kind, reference);
        Url::parse(&raw).map_err(|e| self.invalid(format!("cannot build URL {raw:?}: {e}")))
    }

    fn remaining(&self) -> Result<Duration, RegistryError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout());
        }
        Ok(left)
    }

    fn token_key(&self) -> TokenKey {
        TokenKey {
            registry: self.endpoint.clone(),
            scope: format!("repository:{}:pull", self.target.repository),
            identity: self.creds.identity(),
        }
    }

    fn timeout(&self) -> RegistryError {
        RegistryError::Timeout {
            target: self.target.clone(),
            elapsed: self.started.elapsed(),
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            target: self.target.clone(),
            detail: detail.into(),
        }
    }

    fn invalid(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::InvalidReference {
            target: self.target.clone(),
            detail: detail.into(),
        }
    }

    fn unauthorized(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Unauthorized {
            target: self.target.clone(),
            detail: detail.into(),
        }
    }
}

impl RegistryClient {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        if config.request_timeout.is_zero() {
            return Err(invalid_config("request_timeout must be greater than zero"));
        }
        if config.max_concurrent_operations == 0 {
            return Err(invalid_config("max_concurrent_operations must be greater than zero"));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(redirect_policy())
            // Connections are pooled per host; never more idle ones than could be busy.
            .pool_max_idle_per_host(config.max_concurrent_operations)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout);
        let roots = parse_extra_roots(&config.extra_roots_pem)?;
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        let http = builder
            .build()
            .map_err(|e| invalid_config(format!("building HTTP client: {}", error_chain(&e))))?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                places: Places::new(config.max_concurrent_operations, config.stalled_for),
                insecure_hosts: config.insecure_hosts,
                timeout: config.request_timeout,
                tokens: TokenCache::new(),
                basic_endpoints: Mutex::new(HashSet::new()),
                requests: None,
            }),
        })
    }

    /// Counts every request by registry and HTTP status (`error` for transport failures).
    /// Call right after [`RegistryClient::new`], before the client is cloned.
    pub fn with_request_counter(mut self, counter: prometheus::IntCounterVec) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.requests = Some(counter);
        }
        self
    }

    /// HEAD (fallback GET) the manifest for a tag or digest with the full Accept list;
    /// returns the digest the registry reports (Docker-Content-Digest), or, on GET, the
    /// sha256 of the bytes. For a multi-arch tag this is the index digest.
    async fn resolve_digest_now(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<String, RegistryError> {
        let call = self.call(registry, repository, reference, creds)?;
        let url = call.url("manifests", reference)?;
        let resp = self.send(&call, Method::HEAD, &url, Some(MANIFEST_ACCEPT)).await?;
        let status = resp.status();
        if status.is_success() {
            reject_schema1(&call, content_type(resp.headers()).as_deref())?;
            if let Some(digest) = header_digest(resp.headers()) {
                check_reference_digest(&call, &digest)?;
                return Ok(digest);
            }
            debug!(target = %call.target, "HEAD without a sha256 Docker-Content-Digest; using GET");
        } else if matches!(status, StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED) {
            debug!(target = %call.target, %status, "registry refuses HEAD; using GET");
        } else {
            return Err(status_error(&call, resp).await);
        }
        Ok(self.fetch_manifest(&call, &url).await?.digest)
    }

    /// GET a manifest (tag or digest). When `reference` is a digest the body's sha256 must
    /// equal it. Limited to [`MAX_MANIFEST_BYTES`].
    async fn get_manifest_now(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<Manifest, RegistryError> {
        let call = self.call(registry, repository, reference, creds)?;
        let url = call.url("manifests", reference)?;
        self.fetch_manifest(&call, &url).await
    }

    /// GET a blob, verify its sha256 equals `digest`, reading at most `max_bytes`.
    async fn get_blob_now(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        max_bytes: usize,
        creds: &Credentials,
    ) -> Result<Vec<u8>, RegistryError> {
        let call = self.call(registry, repository, digest, creds)?;
        if !is_sha256_digest(digest) {
            return Err(call.invalid("blobs are fetched by sha256 digest only"));
        }
        let url = call.url("blobs", digest)?;
        let resp = self.send(&call, Method::GET, &url, None).await?;
        if !resp.status().is_success() {
            return Err(status_error(&call, resp).await);
        }
        let bytes = read_limited(&call, resp, max_bytes).await?;
        verify_digest(&call, digest, &sha256_digest(&bytes))?;
        Ok(bytes)
    }

    /// GET `/v2/<repo>/referrers/<digest>` (OCI 1.1). `Ok(None)` when the registry has no
    /// referrers API (404, or an answer that is not an index), so callers fall back to the
    /// referrers tag schema.
    async fn get_referrers_now(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        creds: &Credentials,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let call = self.call(registry, repository, digest, creds)?;
        if !is_sha256_digest(digest) {
            return Err(call.invalid("referrers are listed by sha256 digest only"));
        }
        let url = call.url("referrers", digest)?;
        let resp = self.send(&call, Method::GET, &url, Some(REFERRERS_ACCEPT)).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(status_error(&call, resp).await),
            _ => {}
        }
        let bytes = read_limited(&call, resp, MAX_MANIFEST_BYTES).await?;
        if !is_index(&bytes) {
            debug!(target = %call.target, "referrers answer is not an image index; treating as unsupported");
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// [`Self::resolve_digest_now`], in its turn among the registry places.
    pub async fn resolve_digest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<String, RegistryError> {
        self.in_turn(
            registry,
            repository,
            reference,
            self.resolve_digest_now(registry, repository, reference, creds),
        )
        .await
    }

    /// [`Self::get_manifest_now`], in its turn among the registry places.
    pub async fn get_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: &Credentials,
    ) -> Result<Manifest, RegistryError> {
        self.in_turn(
            registry,
            repository,
            reference,
            self.get_manifest_now(registry, repository, reference, creds),
        )
        .await
    }

    /// [`Self::get_blob_now`], in its turn among the registry places.
    pub async fn get_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        max_bytes: usize,
        creds: &Credentials,
    ) -> Result<Vec<u8>, RegistryError> {
        self.in_turn(
            registry,
            repository,
            digest,
            self.get_blob_now(registry, repository, digest, max_bytes, creds),
        )
        .await
    }

    /// [`Self::get_referrers_now`], in its turn among the registry places.
    pub async fn get_referrers(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
        creds: &Credentials,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        self.in_turn(
            registry,
            repository,
            digest,
            self.get_referrers_now(registry, repository, digest, creds),
        )
        .await
    }

    /// Runs one operation in its turn (see [`Places::turn`]). An endpoint whose
    /// operation just timed out is answered at once for `stalled_for`, without a turn: a
    /// registry that does not answer must not hold places again and again.
    async fn in_turn<T>(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        operation: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let endpoint = registry_endpoint(registry);
        if let Some(left) = self.inner.places.stalled_for(endpoint) {
            return Err(RegistryError::Stalled {
                target: Target {
                    registry: registry.to_string(),
                    repository: repository.to_string(),
                    reference: reference.to_string(),
                },
                left,
            });
        }
        // The semaphores are never closed, so this error cannot happen; mapped, not unwrapped.
        let _turn = (self.inner.places.turn(endpoint).await)
            .map_err(|_| invalid_config("the registry client is shutting down"))?;
        let outcome = operation.await;
        if let Err(RegistryError::Timeout { .. }) = &outcome {
            self.inner.places.timed_out(endpoint);
        }
        outcome
    }

    fn call<'a>(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: &'a Credentials,
    ) -> Result<Call<'a>, RegistryError> {
        let target = Target {
            registry: registry.to_string(),
            repository: repository.to_string(),
            reference: reference.to_string(),
        };
        if let Some(problem) = validate(registry, repository, reference) {
            return Err(RegistryError::InvalidReference {
                target,
                detail: problem.to_string(),
            });
        }
        let endpoint = registry_endpoint(registry).to_string();
        let scheme = if self.is_insecure(&endpoint) { "http" } else { "https" };
        let started = Instant::now();
        Ok(Call {
            base: format!("{scheme}://{endpoint}/v2"),
            target,
            endpoint,
            creds,
            started,
            deadline: started + self.inner.timeout,
        })
    }

    /// Whether `host_port` is configured for plain HTTP; an entry without a port covers
    /// every port of that host.
    fn is_insecure(&self, host_port: &str) -> bool {
        let host = split_host(host_port);
        self.inner.insecure_hosts.iter().any(|entry| {
            entry.eq_ignore_ascii_case(host_port) || (split_host(entry) == entry && entry.eq_ignore_ascii_case(host))
        })
    }

    async fn fetch_manifest(&self, call: &Call<'_>, url: &Url) -> Result<Manifest, RegistryError> {
        let resp = self.send(call, Method::GET, url, Some(MANIFEST_ACCEPT)).await?;
        if !resp.status().is_success() {
            return Err(status_error(call, resp).await);
        }
        let header_media_type = content_type(resp.headers());
        let reported = header_digest(resp.headers());
        let bytes = read_limited(call, resp, MAX_MANIFEST_BYTES).await?;
        let digest = sha256_digest(&bytes);
        check_reference_digest(call, &digest)?;
        if let Some(reported) = reported {
            // The registry describing different bytes than it sent means we could pin a
            // digest that is not what we verified.
            verify_digest(call, &reported, &digest)?;
        }
        let media_type = body_media_type(&bytes).or(header_media_type).unwrap_or_default();
        reject_schema1(call, Some(&media_type))?;
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Sends a request, answering one auth challenge and retrying 429s within the deadline.
    /// Returns every other response, successful or not, for the caller to interpret.
    async fn send(
        &self,
        call: &Call<'_>,
        method: Method,
        url: &Url,
        accept: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut auth = self.cached_auth(call);
        let mut challenged = false;
        let mut rate_limited = 0;
        loop {
            let resp = self.execute(call, method.clone(), url, accept, auth.as_deref()).await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    auth = Some(self.answer_challenge(call, &resp).await?);
                }
                StatusCode::UNAUTHORIZED => {
                    self.inner.tokens.remove(&call.token_key());
                    return Err(rejected(call, &resp));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let retry_after = retry_after(resp.headers());
                    let wait = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                    let fits = Instant::now().checked_add(wait).is_some_and(|end| end < call.deadline);
                    if rate_limited >= MAX_RATE_LIMIT_RETRIES || !fits {
                        return Err(RegistryError::RateLimited {
                            target: call.target.clone(),
                            retry_after,
                        });
                    }
                    rate_limited += 1;
                    warn!(target = %call.target, ?wait, "registry rate limited (429); retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(resp),
            }
        }
    }

    async fn execute(
        &self,
        call: &Call<'_>,
        method: Method,
        url: &Url,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .timeout(call.remaining()?);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, sensitive_header(call, auth)?);
        }
        let sent = req.send().await;
        if let Some(counter) = &self.inner.requests {
            let status = sent
                .as_ref()
                .map_or_else(|_| "error".to_string(), |r| r.status().as_u16().to_string());
            counter
                .with_label_values(&[call.target.registry.as_str(), status.as_str()])
                .inc();
        }
        let resp = sent.map_err(|e| classify(call, &e))?;
        debug!(%method, %url, status = resp.status().as_u16(), "registry response");
        Ok(resp)
    }

    /// Authorization to send before any challenge: a cached token, or Basic credentials for
    /// endpoints known to want them.
    fn cached_auth(&self, call: &Call<'_>) -> Option<String> {
        if let Some(token) = self.inner.tokens.get(&call.token_key()) {
            return Some(format!("Bearer {token}"));
        }
        let basic = self
            .inner
            .basic_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&call.endpoint);
        if basic { call.creds.basic_header() } else { None }
    }

    async fn answer_challenge(&self, call: &Call<'_>, resp: &Response) -> Result<String, RegistryError> {
        let values = header_strs(resp.headers(), WWW_AUTHENTICATE);
        match parse_challenges(values.iter().copied()) {
            None => Err(call.unauthorized("401 without a Basic or Bearer challenge")),
            Some(Challenge::Basic) => {
                let Some(header) = call.creds.basic_header() else {
                    return Err(call.unauthorized("registry requires credentials; none given"));
                };
                self.inner
                    .basic_endpoints
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(call.endpoint.clone());
                Ok(header)
            }
            Some(Challenge::Bearer { realm, service, scope }) => {
                let token = self
                    .fetch_token(call, &realm, service.as_deref(), scope.as_deref())
                    .await?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Gets a bearer token from the challenge's realm (Docker token protocol) and caches it.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        let key = call.token_key();
        let url = self.token_url(call, realm, service, scope.unwrap_or(&key.scope))?;
        let mut req = self
            .inner
            .http
            .get(url.clone())
            .timeout(call.remaining()?)
            .header(ACCEPT, "application/json");
        if let Some(basic) = call.creds.basic_header() {
            req = req.header(AUTHORIZATION, sensitive_header(call, &basic)?);
        }
        let resp = req.send().await.map_err(|e| classify(call, &e))?;
        debug!(realm = %url.host_str().unwrap_or(""), status = resp.status().as_u16(), "token response");
        match resp.status() {
            StatusCode::UNAUTHORIZED => {
                return Err(call.unauthorized(format!("token endpoint {realm} rejected {}", call.creds.describe())));
            }
            s if !s.is_success() => return Err(status_error(call, resp).await),
            _ => {}
        }
        let body = read_limited(call, resp, MAX_TOKEN_BODY).await?;
        let token = parse_token_response(&body)
            .ok_or_else(|| call.protocol(format!("token endpoint {realm} answered without a token")))?;
        self.inner.tokens.insert(key, &token);
        Ok(token.value)
    }

    /// The realm URL with service and scope. A plain-HTTP realm is accepted only for hosts
    /// configured as insecure, since credentials are sent to it.
    fn token_url(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Url, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| call.protocol(format!("bad token realm {realm:?}: {e}")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(call.protocol(format!("token realm {realm:?} has no host"))),
        };
        let allowed = match url.scheme() {
            "https" => true,
            "http" => self.is_insecure(&realm_host),
            _ => false,
        };
        if !allowed {
            return Err(call.protocol(format!(
                "token realm {realm:?} is not https and its host is not an insecure registry"
            )));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        Ok(url)
    }
}

fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let downgrade =
            attempt.url().scheme() == "http" && attempt.previous().last().is_some_and(|u| u.scheme() == "https");
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if downgrade {
            attempt.error("redirect from https to plain http refused")
        } else {
            attempt.follow()
        }
    })
}

fn invalid_config(detail: impl Into<String>) -> RegistryError {
    RegistryError::InvalidConfig { detail: detail.into() }
}

fn parse_extra_roots(pems: &[Vec<u8>]) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let mut roots = Vec::new();
    for (i, pem) in pems.iter().enumerate() {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid_config(format!("registry CA #{}: {}", i + 1, error_chain(&e))))?;
        if certs.is_empty() {
            return Err(invalid_config(format!(
                "registry CA #{} holds no PEM certificate",
                i + 1
            )));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

/// Checks names before they go into a URL, so a crafted image reference cannot reach other
/// paths (`..`, `?`, `#`) or hosts. Returns what is wrong, if anything.
fn validate(registry: &str, repository: &str, reference: &str) -> Option<&'static str> {
    let registry_ok = !registry.is_empty()
        && registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !registry_ok {
        return Some("registry must be a host name or address with an optional port");
    }
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().any(|b| b.is_ascii_alphanumeric())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !repository_ok {
        return Some("repository must be lowercase path components of [a-z0-9._-]");
    }
    if !(is_sha256_digest(reference) || is_tag(reference)) {
        return Some("reference must be a tag or a sha256 digest");
    }
    None
}

fn is_tag(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

fn split_host(host_port: &str) -> &str {
    // Bracketed IPv6 keeps its colons; otherwise the port follows the last colon.
    if let Some(end) = host_port.find(']') {
        return &host_port[..=end];
    }
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

fn sensitive_header(call: &Call<'_>, value: &str) -> Result<HeaderValue, RegistryError> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| call.protocol("credentials or token are not a valid header value"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// The final 401: say whose credentials were refused and why, if the registry said.
fn rejected(call: &Call<'_>, resp: &Response) -> RegistryError {
    let values = header_strs(resp.headers(), WWW_AUTHENTICATE);
    let mut detail = format!("registry rejected {}", call.creds.describe());
    if let Some(reason) = challenge_error(values.iter().copied()) {
        detail.push_str(&format!(" ({reason})"));
    }
    call.unauthorized(detail)
}

/// Turns a non-success answer into the matching error, with the registry's own message.
async fn status_error(call: &Call<'_>, resp: Response) -> RegistryError {
    let status = resp.status();
    let body = read_limited(call, resp, MAX_ERROR_BODY).await.unwrap_or_default();
    let detail = error_detail(status, &body);
    let target = call.target.clone();
    match status.as_u16() {
        401 => RegistryError::Unauthorized { target, detail },
        403 => RegistryError::Forbidden { target, detail },
        404 => RegistryError::NotFound { target, detail },
        429 => RegistryError::RateLimited {
            target,
            retry_after: None,
        },
        500..=599 => RegistryError::Server {
            target,
            status: status.as_u16(),
            detail,
        },
        code => RegistryError::UnexpectedStatus {
            target,
            status: code,
            detail,
        },
    }
}

/// `CODE: message` from a distribution error body, else the start of the body, else the
/// status reason.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = parsed
            .errors
            .into_iter()
            .map(|e| {
                let code = e.code.unwrap_or_default();
                match e.message {
                    Some(m) => format!("{code}: {m}"),
                    None => code,
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text: String = String::from_utf8_lossy(body).trim().chars().take(200).collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no detail").to_string()
    } else {
        text
    }
}

/// Reads the body, failing as soon as it exceeds `limit` (announced or actual).
async fn read_limited(call: &Call<'_>, mut resp: Response, limit: usize) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        target: call.target.clone(),
        limit,
    };
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(call, &e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn verify_digest(call: &Call<'_>, expected: &str, found: &str) -> Result<(), RegistryError> {
    if expected == found {
        return Ok(());
    }
    Err(RegistryError::DigestMismatch {
        target: call.target.clone(),
        expected: expected.to_string(),
        found: found.to_string(),
    })
}

/// When the reference is a digest, what we got must be exactly that.
fn check_reference_digest(call: &Call<'_>, found: &str) -> Result<(), RegistryError> {
    let reference = call.target.reference.as_str();
    if is_sha256_digest(reference) {
        verify_digest(call, reference, found)?;
    }
    Ok(())
}

/// Schema1 manifests have a different digest than what was pushed, and signet never
/// asks for them; getting one means the registry ignored our Accept list.
fn reject_schema1(call: &Call<'_>, media_type: Option<&str>) -> Result<(), RegistryError> {
    match media_type {
        Some(mt) if mt.starts_with("application/vnd.docker.distribution.manifest.v1") => {
            Err(call.protocol(format!("registry returned a schema1 manifest ({mt})")))
        }
        _ => Ok(()),
    }
}

fn header_strs(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Vec<&str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

fn header_digest(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(DOCKER_CONTENT_DIGEST)?.to_str().ok()?.trim();
    is_sha256_digest(value).then(|| value.to_string())
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or(value).trim();
    (!essence.is_empty()).then(|| essence.to_string())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let seconds = value.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

fn body_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()?
        .media_type
        .filter(|m| !m.is_empty())
}

fn is_index(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("manifests").is_some_and(|m| m.is_array()))
}

/// Maps a transport failure to Timeout / Tls / Connect / Protocol by looking at the chain.
fn classify(call: &Call<'_>, err: &reqwest::Error) -> RegistryError {
    let detail = error_chain(err);
    let target = call.target.clone();
    if err.is_timeout() {
        call.timeout()
    } else if err.is_redirect() {
        RegistryError::Protocol { target, detail }
    } else if is_tls_error(err) {
        RegistryError::Tls { target, detail }
    } else if err.is_connect() || err.is_body() {
        RegistryError::Connect { target, detail }
    } else {
        RegistryError::Protocol { target, detail }
    }
}

/// Whether a rustls error is anywhere in the chain (the peer's certificate or handshake).
fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        current = next_error(e);
    }
    false
}

/// The next error in a chain. rustls errors arrive wrapped in (nested) `io::Error`s, whose
/// `source()` skips the wrapped error, so an io::Error is opened with `get_ref` instead.
fn next_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        return Some(inner);
    }
    e.source()
}

/// `outer: inner: innermost`, skipping repeats (wrappers often repeat their source).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = next_error(e);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(registry_endpoint("index.docker.io"), "registry-1.docker.io");
        assert_eq!(registry_endpoint("docker.io"), "registry-1.docker.io");
        assert_eq!(registry_endpoint("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn validates_names() {
        let digest = sha256_digest(b"x");
        assert_eq!(validate("127.0.0.1:5000", "demo/hello", "v1"), None);
        assert_eq!(validate("ghcr.io", "a/b-c/d_e.f", &digest), None);
        assert!(validate("", "a", "v1").is_some());
        assert!(validate("evil.io/x", "a", "v1").is_some());
        assert!(validate("r", "a/../b", "v1").is_some());
        assert!(validate("r", "A", "v1").is_some());
        assert!(validate("r", "a//b", "v1").is_some());
        assert!(validate("r", "a", "v1?x").is_some());
        assert!(validate("r", "a", ".v1").is_some());
        assert!(validate("r", "a", "sha256:abc").is_some());
    }

    #[test]
    fn insecure_host_matching() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = RegistryClient::new(RegistryConfig {
            insecure_hosts: vec!["127.0.0.1:5000".into(), "plain.local".into()],
            ..RegistryConfig::default()
        })
        .expect("client");
        assert!(client.is_insecure("127.0.0.1:5000"));
        assert!(!client.is_insecure("127.0.0.1:5001"));
        assert!(client.is_insecure("plain.local"));
        assert!(client.is_insecure("PLAIN.local:8080"));
        assert!(!client.is_insecure("ghcr.io"));
        assert_eq!(split_host("[::1]:5000"), "[::1]");
    }

    #[test]
    fn error_detail_forms() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            error_detail(StatusCode::NOT_FOUND, body),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(error_detail(StatusCode::NOT_FOUND, b""), "Not Found");
        assert_eq!(error_detail(StatusCode::BAD_GATEWAY, b" oops "), "oops");
    }

    #[test]
    fn bad_config_is_rejected() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let bad_ca = RegistryClient::new(RegistryConfig {
            extra_roots_pem: vec![b"not a pem".to_vec()],
            ..RegistryConfig::default()
        });
        assert!(matches!(bad_ca, Err(RegistryError::InvalidConfig { .. })));
        let zero = RegistryClient::new(RegistryConfig {
            request_timeout: Duration::ZERO,
            ..RegistryConfig::default()
        });
        assert!(matches!(zero, Err(RegistryError::InvalidConfig { .. })));
    }
}
