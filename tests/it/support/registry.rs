//! A real `docker-registry` (distribution 2.8) on 127.0.0.1 with a free port.

use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::env::run_in;

/// A running registry; killed when dropped. Storage and config live in a temp dir.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    tls: Option<TlsFiles>,
    creds: Option<(String, String)>,
}

struct TlsFiles {
    ca_pem: Vec<u8>,
    /// Holds only `ca.crt`: skopeo reads any `*.key` in a cert dir as a client key.
    cert_dir: PathBuf,
}

enum Kind<'a> {
    Plain,
    Tls,
    Htpasswd(&'a str, &'a str),
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        Registry::start(Kind::Plain)
    }

    /// HTTPS with a server certificate for 127.0.0.1/localhost from a private CA
    /// ([`Registry::ca_pem`]).
    pub fn tls() -> Registry {
        Registry::start(Kind::Tls)
    }

    /// Plain HTTP with htpasswd (bcrypt) basic auth for one user.
    pub fn htpasswd(user: &str, pass: &str) -> Registry {
        Registry::start(Kind::Htpasswd(user, pass))
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://…` or `https://…` base URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The private CA (PEM) that signed the server certificate. Panics for non-TLS registries.
    pub fn ca_pem(&self) -> &[u8] {
        &self.tls_files().ca_pem
    }

    /// A directory holding only the CA as `ca.crt` (for skopeo `--dest-cert-dir`).
    pub fn cert_dir(&self) -> &Path {
        &self.tls_files().cert_dir
    }

    /// The htpasswd user and password, if any.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's combined stdout/stderr, including its access log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Access-log lines (Apache combined format: `… "GET /v2/… HTTP/1.1" 200 …`).
    pub fn access_log(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("\" ") && l.contains(" HTTP/"))
            .filter(|l| !l.starts_with("time="))
            .map(str::to_string)
            .collect()
    }

    /// Requests whose access-log line has `method` and a path containing `path_part`.
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        let needle = format!("\"{method} ");
        self.access_log()
            .iter()
            .filter(|l| l.contains(&needle) && l.contains(path_part))
            .count()
    }

    /// Like [`Registry::count_requests`], but first waits (up to 2 s) for at least
    /// `at_least` matching lines, since the registry writes its access-log line after the
    /// response has gone out; then lets late extra lines arrive before counting.
    pub fn settled_count(&self, method: &str, path_part: &str, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.count_requests(method, path_part) < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.count_requests(method, path_part)
    }

    /// A temp directory that lives as long as the registry (for image layouts etc.).
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    fn tls_files(&self) -> &TlsFiles {
        self.tls
            .as_ref()
            .unwrap_or_else(|| panic!("registry {} is not a TLS registry", self.host()))
    }

    fn start(kind: Kind<'_>) -> Registry {
        // A port picked by binding :0 can be taken again before the registry binds it.
        let mut last_log = String::new();
        for _ in 0..3 {
            match Registry::try_start(&kind) {
                Ok(reg) => return reg,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not start; last log:\n{last_log}");
    }

    fn try_start(kind: &Kind<'_>) -> Result<Registry, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let (tls, creds) = match kind {
            Kind::Plain => (None, None),
            Kind::Tls => (Some(make_tls(dir.path())), None),
            Kind::Htpasswd(u, p) => {
                write_htpasswd(dir.path(), u, p);
                (None, Some((u.to_string(), p.to_string())))
            }
        };
        let config = dir.path().join("config.yml");
        write_config(&config, dir.path(), port, tls.is_some(), creds.is_some());
        let log_path = dir.path().join("registry.log");
        let child = spawn(&config, &log_path);
        let mut reg = Registry {
            child,
            port,
            dir,
            log_path,
            tls,
            creds,
        };
        reg.wait_ready()?;
        Ok(reg)
    }

    /// Ready once the port accepts connections: distribution binds only after setup.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            let addr = ([127, 0, 0, 1], self.port).into();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not listening after 15s:\n{}", self.log()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn spawn(config: &Path, log_path: &Path) -> Child {
    let log = File::create(log_path).expect("create registry log");
    let log2 = log.try_clone().expect("clone log handle");
    Command::new("docker-registry")
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .expect("spawn docker-registry (apt-get install docker-registry)")
}

fn write_config(path: &Path, dir: &Path, port: u16, tls: bool, auth: bool) {
    let d = dir.display();
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: signet-test-secret\n"
    );
    if tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\n"
        ));
    }
    if auth {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: {d}/htpasswd\n"
        ));
    }
    std::fs::write(path, yaml).expect("write registry config");
}

fn write_htpasswd(dir: &Path, user: &str, pass: &str) {
    // The registry accepts bcrypt entries only, hence -B.
    let line = run_in(dir, "htpasswd", &["-Bbn", user, pass]);
    let mut f = File::create(dir.join("htpasswd")).expect("create htpasswd");
    f.write_all(line.trim_end().as_bytes()).expect("write htpasswd");
    f.write_all(b"\n").expect("write htpasswd");
}

/// A P-256 CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
fn make_tls(dir: &Path) -> TlsFiles {
    run_in(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=signet test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    run_in(
        dir,
        "openssl",
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
         keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write server.ext");
    run_in(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
    );
    let cert_dir = dir.join("trust");
    std::fs::create_dir_all(&cert_dir).expect("create trust dir");
    std::fs::copy(dir.join("ca.crt"), cert_dir.join("ca.crt")).expect("copy ca.crt");
    TlsFiles {
        ca_pem: std::fs::read(dir.join("ca.crt")).expect("read ca.crt"),
        cert_dir,
    }
}
