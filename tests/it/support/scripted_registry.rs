//! A registry that answers with whatever bytes it is given: each request on 127.0.0.1 gets
//! the next raw HTTP response of a script (status line, headers and body exactly as written,
//! however malformed), and the connection is closed after it. [`drive_client`] runs every
//! registry-client operation against it. Shared by the registry fuzz target
//! (`fuzz/fuzz_targets/registry_client.rs`, through `#[path]`) and the short randomised run in
//! `tests/it/fuzz_regressions.rs`, so both exercise the same thing.
//!
//! Only the standard library and signet: the fuzz crate has no other test dependencies.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet::registry::{Credentials, RegistryClient, RegistryConfig};

/// Separates responses in a script (fuzz input or seed file).
pub const RESPONSE_SEPARATOR: &[u8] = b"\n=====\n";
/// `{HOST}` in a response becomes the server's `127.0.0.1:PORT` (token realms, redirects).
const HOST_PLACEHOLDER: &[u8] = b"{HOST}";
/// What a request gets once the script has run out.
const EXHAUSTED: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
/// A script holds at most this many responses (a few per operation, auth and retries).
const MAX_RESPONSES: usize = 16;
/// The digest used for by-digest operations (sha256 of `{}`).
pub const SOME_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

pub struct ScriptedRegistry {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Vec<u8>>>>,
    served: Arc<AtomicUsize>,
}

impl ScriptedRegistry {
    pub fn start() -> ScriptedRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the scripted registry");
        let addr = listener.local_addr().expect("scripted registry address");
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (script.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let next = shared.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                answer(stream, next.as_deref().unwrap_or(EXHAUSTED), addr);
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        ScriptedRegistry { addr, script, served }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Connections answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    /// Replaces the script with the responses in `data` (split at [`RESPONSE_SEPARATOR`]).
    pub fn load(&self, data: &[u8]) {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        script.clear();
        script.extend(split_script(data));
    }
}

pub fn split_script(data: &[u8]) -> Vec<Vec<u8>> {
    let mut responses = Vec::new();
    let mut rest = data;
    while responses.len() < MAX_RESPONSES {
        match find(rest, RESPONSE_SEPARATOR) {
            Some(at) => {
                responses.push(rest[..at].to_vec());
                rest = &rest[at + RESPONSE_SEPARATOR.len()..];
            }
            None => {
                responses.push(rest.to_vec());
                break;
            }
        }
    }
    responses
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the request head (the client's bodies are never large here), writes `response`,
/// closes the connection.
fn answer(mut stream: TcpStream, response: &[u8], addr: SocketAddr) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&head, b"\r\n\r\n").is_none() && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(&with_host(response, addr));
    let _ = stream.shutdown(Shutdown::Both);
}

fn with_host(response: &[u8], addr: SocketAddr) -> Vec<u8> {
    let host = addr.to_string();
    let mut out = Vec::with_capacity(response.len());
    let mut rest = response;
    while let Some(at) = find(rest, HOST_PLACEHOLDER) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(host.as_bytes());
        rest = &rest[at + HOST_PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A client for the scripted registry: plain HTTP, a short deadline (so a 429 with a long
/// `Retry-After` is given up on at once), no memory of stalled endpoints.
pub fn client_for(registry: &ScriptedRegistry) -> RegistryClient {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![registry.host()],
        request_timeout: Duration::from_millis(500),
        // Every script must reach the registry: a timeout in one must not make the next
        // ones answer "stalled" without trying.
        stalled_for: Duration::ZERO,
        ..RegistryConfig::default()
    })
    .expect("registry client")
}

/// Runs every registry operation against the script in `data`, anonymous and with Basic
/// credentials; any result is fine, a panic is the bug. Returns how many succeeded.
pub async fn drive_client(registry: &ScriptedRegistry, client: &RegistryClient, data: &[u8]) -> usize {
    let host = registry.host();
    let basic = Credentials::Basic {
        username: "fuzz".into(),
        password: "secret".into(),
    };
    let mut succeeded = 0;
    for creds in [Credentials::Anonymous, basic] {
        registry.load(data);
        succeeded += usize::from(client.resolve_digest(&host, "demo/app", "v1", &creds).await.is_ok());
        registry.load(data);
        succeeded += usize::from(
            client
                .get_manifest(&host, "demo/app", SOME_DIGEST, &creds)
                .await
                .is_ok(),
        );
        registry.load(data);
        succeeded += usize::from(
            client
                .get_blob(&host, "demo/app", SOME_DIGEST, 1024 * 1024, &creds)
                .await
                .is_ok(),
        );
        registry.load(data);
        succeeded += usize::from(
            client
                .get_referrers(&host, "demo/app", SOME_DIGEST, &creds)
                .await
                .is_ok(),
        );
    }
    succeeded
}

/// Hand-written hostile and ordinary scripts: the seeds of the fuzz target and of the short
/// run. Each is a list of raw responses.
pub fn seed_scripts() -> Vec<Vec<u8>> {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let ok = |headers: &str, body: &[u8]| {
        let mut r = format!("HTTP/1.1 200 OK\r\n{headers}content-length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r
    };
    let digest_header = format!("docker-content-digest: {SOME_DIGEST}\r\n");
    let bearer = b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://{HOST}/token\",service=\"s\",scope=\"repository:demo/app:pull\"\r\ncontent-length: 0\r\n\r\n".to_vec();
    let scripts: Vec<Vec<Vec<u8>>> = vec![
        vec![ok("content-type: application/vnd.oci.image.manifest.v1+json\r\n", manifest)],
        vec![ok(&digest_header, b"{}")],
        vec![b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 18446744073709551615\r\ncontent-length: 0\r\n\r\n".to_vec()],
        vec![b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n".to_vec(), ok(&digest_header, b"{}")],
        vec![b"HTTP/1.1 429 Too Many Requests\r\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n".to_vec()],
        vec![bearer.clone(), ok("", br#"{"token":"t","expires_in":18446744073709551615}"#), ok(&digest_header, b"{}")],
        vec![bearer.clone(), ok("", br#"{"access_token":"t","expires_in":-1}"#), ok(&digest_header, b"{}")],
        vec![bearer.clone(), ok("", br#"{"token":"\r\nx-injected: 1"}"#)],
        vec![bearer, b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer error=\"invalid_token\"\r\n\r\n".to_vec()],
        vec![b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm=\"r\"\r\ncontent-length: 0\r\n\r\n".to_vec(), ok(&digest_header, b"{}")],
        vec![b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{HOST}/v2/demo/app/blobs/x\r\ncontent-length: 0\r\n\r\n".to_vec(), ok("", b"{}")],
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n{}".to_vec()],
        vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n{}".to_vec()],
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}".to_vec()],
        vec![b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\r\n{\"errors\":[{\"code\":\"X\",\"message\":\"boom\"}]}".to_vec()],
        vec![ok("", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)],
        vec![ok("content-type: application/vnd.docker.distribution.manifest.v1+prettyjws\r\n", b"{}")],
        vec![b"garbage".to_vec()],
        vec![Vec::new()],
    ];
    scripts
        .into_iter()
        .map(|responses| responses.join(RESPONSE_SEPARATOR))
        .collect()
}
