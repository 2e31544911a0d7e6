//! Keyless (Fulcio certificate) test material.
//!
//! - [`MockSigstore`]: `../shared/tools/mock-sigstore-server.js` on a free loopback port, a
//!   real HTTP server around `@sigstore/mock`'s Fulcio and Rekor handlers. Its leaf
//!   certificates are short-lived (10 min), carry the OIDC subject as a **URI** SAN (even
//!   an e-mail address), the issuer in both 1.3.6.1.4.1.57264.1.1 (raw bytes) and .1.8
//!   (DER UTF8String), and an embedded SCT; they are issued straight by a self-signed root
//!   (no intermediate). [`sign_keyless`] signs an image with it via `cosign_sign.py`.
//! - [`PrivateCa`]: an openssl "Fulcio" (P-384 root + intermediate, `fulcio.cnf`) for the
//!   certificates the mock cannot make: e-mail SANs, one issuer extension only, no
//!   code-signing EKU, CA leaves, exact validity windows. [`sign_with_cert`] signs with
//!   one of its leaves, [`rekor_key`] makes a fake Rekor key for the SET.
//!
//! Node and `@sigstore/mock` come from `scripts/install-test-deps.sh`, which installs the
//! npm project under [`signet_tools_dir`]`/npm`.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;

use super::env::{have_tool, python, run, shared_tool, shared_tools_dir, skip_or_fail};
use super::registry::Registry;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `$SIGNET_TOOLS`, else `$HOME/.cache/signet-tools`: where install-test-deps.sh puts the
/// Python venv (`venv/`) and the npm project (`npm/`). Not checked for existence.
pub fn signet_tools_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("SIGNET_TOOLS")
        .or_else(|| var("HOME").map(|h| h.join(".cache/signet-tools")))
        .unwrap_or_else(|| PathBuf::from(".cache/signet-tools"))
}

/// `<signet_tools_dir>/npm/node_modules` when it holds `@sigstore/mock`; otherwise None
/// (skip, or a failure under CI).
pub fn npm_node_modules() -> Option<PathBuf> {
    let modules = signet_tools_dir().join("npm/node_modules");
    if modules.join("@sigstore/mock").is_dir() {
        return Some(modules);
    }
    skip_or_fail(&format!("@sigstore/mock not installed in {}", modules.display()));
    None
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The DER bytes of the first PEM block in `pem_text`.
pub fn pem_to_der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text)
        .unwrap_or_else(|e| panic!("not PEM ({e}): {pem_text}"))
        .into_contents()
}

/// DER bytes of every PEM block in `pem_text`, in order.
pub fn pem_blocks_der(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap_or_else(|e| panic!("not PEM ({e}): {pem_text}"))
        .into_iter()
        .map(pem::Pem::into_contents)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The @sigstore/mock server
// ---------------------------------------------------------------------------------------

/// `node mock-sigstore-server.js PORT OUTDIR` on 127.0.0.1; killed when dropped.
///
/// Endpoints: `POST /api/v2/signingCert` (Fulcio), `POST /api/v1/log/entries` (Rekor),
/// `POST /api/v1/timestamp` (a JSON, not RFC 3161, TSA). Trust material is written to
/// OUTDIR before the server listens. Each start makes a new root certificate (same key
/// only if OUTDIR is reused, which it never is here).
pub struct MockSigstore {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    state: PathBuf,
    log_path: PathBuf,
}

impl MockSigstore {
    /// Starts the mock, or returns None (after "skipping: …"; a panic under CI) when node,
    /// `@sigstore/mock`, `mock-sigstore-server.js` or `cosign_sign.py` is missing. Panics
    /// when everything is there but the server does not come up.
    pub fn start() -> Option<MockSigstore> {
        MockSigstore::start_with_env(&[])
    }

    /// [`MockSigstore::start`] with extra environment for the node process (e.g.
    /// `SUBJECT_CLAIM=sub`: which JWT claim becomes the SAN; `cosign_sign.py` puts the
    /// identity in both `sub` and `email`, so it changes nothing for [`sign_keyless`]).
    pub fn start_with_env(env: &[(&str, &str)]) -> Option<MockSigstore> {
        if !have_tool("node") {
            skip_or_fail("node is not installed");
            return None;
        }
        let modules = npm_node_modules()?;
        let script = shared_tool("mock-sigstore-server.js")?;
        // Checked here so that a running mock means sign_keyless can work.
        shared_tool("cosign_sign.py")?;
        let mut last = String::new();
        for _ in 0..3 {
            match MockSigstore::try_start(&modules, &script, env) {
                Ok(mock) => return Some(mock),
                Err(log) => last = log,
            }
        }
        panic!("mock-sigstore-server.js did not start; last log:\n{last}");
    }

    fn try_start(modules: &Path, script: &Path, env: &[(&str, &str)]) -> Result<MockSigstore, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // A copy beside nothing: `require('@sigstore/mock')` resolves through NODE_PATH.
        let local_script = dir.path().join("mock-sigstore-server.js");
        // With TSA_WHOLE_SECONDS the TSA's clock is the start time in whole seconds: the
        // mock writes milliseconds into genTime otherwise, which sigstore-tsa 0.15.1 cannot
        // decode (its GeneralizedTime takes no fractional seconds).
        let text = std::fs::read_to_string(script).map_err(|e| e.to_string())?.replace(
            "m.initializeTSA(tsaKP)",
            "m.initializeTSA(tsaKP, process.env.TSA_WHOLE_SECONDS ? new Date(Math.floor(Date.now() / 1000) * 1000) : undefined)",
        );
        std::fs::write(&local_script, text).map_err(|e| e.to_string())?;
        let state = dir.path().join("state");
        let log_path = dir.path().join("mock.log");
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let port = free_port();
        let mut command = Command::new("node");
        command
            .arg(&local_script)
            .arg(port.to_string())
            .arg(&state)
            .current_dir(dir.path())
            .env("NODE_PATH", modules)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().map_err(|e| format!("spawn node: {e}"))?;
        let mut mock = MockSigstore {
            child,
            port,
            dir,
            state,
            log_path,
        };
        mock.wait_ready()?;
        Ok(mock)
    }

    /// Ready when the trust files exist and the port accepts connections (the script writes
    /// the files, then listens).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            let addr = ([127, 0, 0, 1], self.port).into();
            if self.state.join("trusted_root.json").is_file()
                && self.state.join("ctfe.pub").is_file()
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not listening after 30s:\n{}", self.log()))
    }

    /// `http://127.0.0.1:PORT` (Fulcio, Rekor and TSA share it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node process's output (one line per request, with the error body on 4xx).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The directory the script wrote its trust material to.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// A scratch directory that lives as long as the mock.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `trusted_root.json`: tlogs (Rekor key), certificateAuthorities (the root only),
    /// ctlogs (CT log key), timestampAuthorities (mock TSA chain); all validFor from
    /// 2020-01-01T00:00:00Z, baseUrl/uri = [`MockSigstore::url`].
    pub fn trusted_root_path(&self) -> PathBuf {
        self.state.join("trusted_root.json")
    }

    pub fn trusted_root(&self) -> Value {
        serde_json::from_str(&read(&self.trusted_root_path())).expect("trusted_root.json")
    }

    /// sigstore-python's `--trust-config` (trustedRoot + signingConfig).
    pub fn trust_config_path(&self) -> PathBuf {
        self.state.join("trust_config.json")
    }

    pub fn fulcio_root_path(&self) -> PathBuf {
        self.state.join("fulcio_root.pem")
    }

    /// The self-signed Fulcio root (P-256 key, ecdsa-with-SHA384, valid from start-up for a
    /// year). It issues the leaves directly.
    pub fn fulcio_root_pem(&self) -> String {
        read(&self.fulcio_root_path())
    }

    pub fn rekor_pub_path(&self) -> PathBuf {
        self.state.join("rekor.pub")
    }

    /// Rekor's P-256 public key (SPKI PEM); it signs SETs and checkpoints.
    pub fn rekor_pub_pem(&self) -> String {
        read(&self.rekor_pub_path())
    }

    pub fn rekor_spki_der(&self) -> Vec<u8> {
        pem_to_der(&self.rekor_pub_pem())
    }

    /// hex(sha256(Rekor SPKI)): the `logID` in bundles.
    pub fn rekor_log_id(&self) -> String {
        format!("{:x}", sha2::Sha256::digest(self.rekor_spki_der()))
    }

    pub fn ctfe_pub_path(&self) -> PathBuf {
        self.state.join("ctfe.pub")
    }

    /// The CT log's P-256 public key (SPKI PEM); it signs the embedded SCTs.
    pub fn ctfe_pub_pem(&self) -> String {
        read(&self.ctfe_pub_path())
    }

    pub fn ctfe_spki_der(&self) -> Vec<u8> {
        pem_to_der(&self.ctfe_pub_pem())
    }

    /// sha256(CT log SPKI): the SCT log id.
    pub fn ctfe_log_id(&self) -> Vec<u8> {
        sha2::Sha256::digest(self.ctfe_spki_der()).to_vec()
    }
}

impl Drop for MockSigstore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_args(command: &mut Command, tag_or_digest: &str) {
    if tag_or_digest.starts_with("sha256:") {
        command.args(["--digest", tag_or_digest]);
    } else {
        command.args(["--tag", tag_or_digest]);
    }
}

fn registry_args(command: &mut Command, reg: &Registry, repo: &str) {
    command.args(["--registry", &reg.url(), "--repo", repo]);
    if let Some((user, pass)) = reg.creds() {
        command.args(["--user", user, "--pass", pass]);
    }
    if reg.is_tls() {
        command.arg("--cacert").arg(reg.cert_dir().join("ca.crt"));
    }
}

fn last_json_line(output: &str) -> Value {
    let line = output.trim().lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("cosign_sign.py printed no JSON ({e}):\n{output}"))
}

fn cosign_sign_py() -> PathBuf {
    shared_tool("cosign_sign.py").unwrap_or_else(|| panic!("cosign_sign.py is needed"))
}

/// Keyless-signs `reg/repo:tag` (or `@sha256:…`) like `cosign sign` with Fulcio + Rekor:
/// an ephemeral key, a certificate from the mock for (`identity`, `issuer`), a hashedrekord
/// entry in the mock Rekor, and a `.sig` layer with the signature, certificate, chain
/// (the mock root) and bundle (SET) annotations. Replaces an existing `.sig` manifest.
/// Returns cosign_sign.py's JSON: `{image_digest, sig_tag, sig_manifest_digest, payload}`.
pub fn sign_keyless(
    reg: &Registry,
    repo: &str,
    tag_or_digest: &str,
    mock: &MockSigstore,
    identity: &str,
    issuer: &str,
) -> Value {
    sign_keyless_with(reg, repo, tag_or_digest, mock, identity, issuer, &[])
}

/// [`sign_keyless`] with more cosign_sign.py arguments (`--append`, `-a k=v`,
/// `--ref-host h`).
pub fn sign_keyless_with(
    reg: &Registry,
    repo: &str,
    tag_or_digest: &str,
    mock: &MockSigstore,
    identity: &str,
    issuer: &str,
    extra: &[&str],
) -> Value {
    let mut command = Command::new(python());
    command.arg(cosign_sign_py());
    registry_args(&mut command, reg, repo);
    target_args(&mut command, tag_or_digest);
    command.args(["--keyless", &mock.url(), "--identity", identity, "--issuer", issuer]);
    command.args(extra);
    last_json_line(&run(&mut command))
}

// ---------------------------------------------------------------------------------------
// A private openssl "Fulcio"
// ---------------------------------------------------------------------------------------

/// The subject alternative name of a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// `email:` (rfc822Name), what real Fulcio issues for e-mail identities.
    Email(String),
    /// `URI:` (uniformResourceIdentifier), e.g. a GitHub workflow ref.
    Uri(String),
    /// No subjectAltName extension at all.
    None,
}

/// What goes into a leaf. `LeafOptions::default()` is a valid Fulcio-like e-mail leaf for
/// alice@example.com from https://oidc.test.local, valid from a minute ago for 10 minutes.
#[derive(Clone, Debug)]
pub struct LeafOptions {
    pub san: San,
    /// 1.3.6.1.4.1.57264.1.1 (deprecated): the issuer's raw bytes as the extension value.
    pub issuer_v1: Option<String>,
    /// 1.3.6.1.4.1.57264.1.8: the issuer as a DER UTF8String.
    pub issuer_v2: Option<String>,
    /// extendedKeyUsage = codeSigning. When false the leaf has no EKU extension at all
    /// (add e.g. `"extendedKeyUsage = serverAuth"` to `extra_extensions` for a wrong one).
    pub code_signing_eku: bool,
    /// notBefore, unix seconds (default: now − 60 s).
    pub not_before: Option<i64>,
    /// notAfter, unix seconds (default: not_before + 660 s, i.e. 10 min from now).
    pub not_after: Option<i64>,
    /// basicConstraints CA:TRUE (+ keyCertSign) instead of CA:FALSE.
    pub ca: bool,
    /// More `name = value` lines for the leaf's openssl extension section.
    pub extra_extensions: Vec<String>,
}

impl Default for LeafOptions {
    fn default() -> LeafOptions {
        LeafOptions {
            san: San::Email("alice@example.com".into()),
            issuer_v1: Some("https://oidc.test.local".into()),
            issuer_v2: Some("https://oidc.test.local".into()),
            code_signing_eku: true,
            not_before: None,
            not_after: None,
            ca: false,
            extra_extensions: Vec::new(),
        }
    }
}

impl LeafOptions {
    /// An e-mail SAN leaf with both issuer extensions set to `issuer`.
    pub fn email(email: &str, issuer: &str) -> LeafOptions {
        LeafOptions {
            san: San::Email(email.into()),
            issuer_v1: Some(issuer.into()),
            issuer_v2: Some(issuer.into()),
            ..LeafOptions::default()
        }
    }

    /// A URI SAN leaf with both issuer extensions set to `issuer`.
    pub fn uri(uri: &str, issuer: &str) -> LeafOptions {
        LeafOptions {
            san: San::Uri(uri.into()),
            issuer_v1: Some(issuer.into()),
            issuer_v2: Some(issuer.into()),
            ..LeafOptions::default()
        }
    }

    /// Adds extension `oid` whose value is exactly `value`'s bytes (as Fulcio writes its
    /// deprecated GitHub workflow extensions).
    pub fn raw_extension(mut self, oid: &str, value: &str) -> LeafOptions {
        self.extra_extensions
            .push(format!("{oid} = {}", der_hex(value.as_bytes())));
        self
    }

    /// Adds Fulcio extension `oid` holding `value` as a DER UTF8String (as Fulcio writes
    /// its current extensions: source repository, ref, runner environment…).
    pub fn fulcio_extension(mut self, oid: &str, value: &str) -> LeafOptions {
        self.extra_extensions
            .push(format!("{oid} = {}", der_hex(&der_utf8_string(value))));
        self
    }

    /// Sets the validity window (unix seconds).
    pub fn valid(mut self, not_before: i64, not_after: i64) -> LeafOptions {
        self.not_before = Some(not_before);
        self.not_after = Some(not_after);
        self
    }
}

/// An issued leaf: a P-256 PKCS#8 key and its certificate, plus the chain above it.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    pub cert_pem: String,
    /// intermediate then root, PEM (cosign's `dev.sigstore.cosign/chain`).
    pub chain_pem: String,
    /// `chain_pem` as a file.
    pub chain_path: PathBuf,
    /// notBefore / notAfter as written (unix seconds).
    pub not_before: i64,
    pub not_after: i64,
}

impl Leaf {
    pub fn cert_der(&self) -> Vec<u8> {
        pem_to_der(&self.cert_pem)
    }
}

/// Start of validity for the CA certificates and the trusted root's `validFor`.
pub const CA_NOT_BEFORE: &str = "2020-01-01T00:00:00Z";

/// A root (P-384, self-signed) and an intermediate (P-384, pathlen:0, codeSigning EKU) made
/// with `openssl ca` and `../shared/tools/fulcio.cnf`; both valid 2020-01-01 to 2040-01-01,
/// so leaves dated in the past still chain. Files live in the `dir` given to
/// [`PrivateCa::new`].
pub struct PrivateCa {
    dir: PathBuf,
    base_config: String,
    root_pem: String,
    intermediate_pem: String,
    chain_path: PathBuf,
    counter: Mutex<u32>,
}

/// YYYYMMDDHHMMSSZ (UTC) for `openssl ca -startdate/-enddate`.
pub fn openssl_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).expect("time in range");
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Escapes a value for an openssl config file (`#` starts a comment, `$` expands).
fn conf_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '#' | '$' | '"' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `DER:aa:bb:…` for an openssl arbitrary extension with exactly these value bytes.
fn der_hex(bytes: &[u8]) -> String {
    let mut out = String::from("DER");
    for b in bytes {
        let _ = write!(out, ":{b:02x}");
    }
    out
}

/// DER of a UTF8String.
pub fn der_utf8_string(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = vec![0x0c];
    let len = bytes.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | len_bytes.len() as u8);
        out.extend(len_bytes);
    }
    out.extend_from_slice(bytes);
    out
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    run(Command::new("openssl").args(args).current_dir(dir))
}

impl PrivateCa {
    /// Makes the CA in `dir` (created if needed; use a tempdir). Panics when openssl or
    /// fulcio.cnf is missing (openssl is one of the registry tools; fulcio.cnf is in
    /// `../shared/tools`).
    pub fn new(dir: &Path) -> PrivateCa {
        let cnf = shared_tools_dir().join("fulcio.cnf");
        let base_config = std::fs::read_to_string(&cnf).unwrap_or_else(|e| {
            panic!(
                "{} is needed for the private CA ({e}); set SIGNET_SHARED_TOOLS",
                cnf.display()
            )
        });
        std::fs::create_dir_all(dir.join("issued")).expect("create CA dir");
        std::fs::write(dir.join("index.txt"), "").expect("index.txt");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        std::fs::write(dir.join("fulcio.cnf"), &base_config).expect("fulcio.cnf copy");
        let ca_window = ["-startdate", "20200101000000Z", "-enddate", "20400101000000Z"];
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.csr",
                "-config",
                "fulcio.cnf",
                "-subj",
                "/O=sigstore.dev/CN=sigstore",
            ],
        );
        let mut args = vec![
            "ca",
            "-batch",
            "-selfsign",
            "-config",
            "fulcio.cnf",
            "-keyfile",
            "root.key",
            "-in",
            "root.csr",
            "-out",
            "root.crt",
            "-extensions",
            "v3_root",
            "-preserveDN",
            "-notext",
        ];
        args.extend(ca_window);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                "inter.key",
                "-out",
                "inter.csr",
                "-config",
                "fulcio.cnf",
                "-subj",
                "/O=sigstore.dev/CN=sigstore-intermediate",
            ],
        );
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "fulcio.cnf",
            "-cert",
            "root.crt",
            "-keyfile",
            "root.key",
            "-in",
            "inter.csr",
            "-out",
            "inter.crt",
            "-extensions",
            "v3_intermediate",
            "-preserveDN",
            "-notext",
        ];
        args.extend(ca_window);
        openssl(dir, &args);
        let root_pem = read(&dir.join("root.crt"));
        let intermediate_pem = read(&dir.join("inter.crt"));
        let chain_path = dir.join("chain.pem");
        std::fs::write(&chain_path, format!("{intermediate_pem}{root_pem}")).expect("chain.pem");
        PrivateCa {
            dir: dir.to_path_buf(),
            base_config,
            root_pem,
            intermediate_pem,
            chain_path,
            counter: Mutex::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.crt")
    }

    pub fn intermediate_path(&self) -> PathBuf {
        self.dir.join("inter.crt")
    }

    /// intermediate + root, PEM.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate_pem, self.root_pem)
    }

    pub fn chain_path(&self) -> &Path {
        &self.chain_path
    }

    /// Issues a leaf with an empty subject and a fresh P-256 key from the intermediate,
    /// with `openssl ca -startdate/-enddate` for the exact window. Files:
    /// `leaf-N.{key,crt,cnf}` in the CA dir.
    pub fn issue(&self, options: LeafOptions) -> Leaf {
        // index.txt and serial are shared: one openssl ca at a time.
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        *counter += 1;
        let name = format!("leaf-{}", *counter);
        let section = self.leaf_section(&options);
        let cnf = format!("{name}.cnf");
        std::fs::write(self.dir.join(&cnf), format!("{}\n{section}", self.base_config)).expect("leaf config");
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/",
                "-config",
                &cnf,
            ],
        );
        let not_before = options.not_before.unwrap_or_else(|| now_unix() - 60);
        let not_after = options.not_after.unwrap_or(not_before + 660);
        let (start, end) = (openssl_time(not_before), openssl_time(not_after));
        openssl(
            &self.dir,
            &[
                "ca",
                "-batch",
                "-config",
                &cnf,
                "-cert",
                "inter.crt",
                "-keyfile",
                "inter.key",
                "-in",
                &csr,
                "-out",
                &crt,
                "-startdate",
                &start,
                "-enddate",
                &end,
                "-extensions",
                "signet_leaf",
                "-subj",
                "/",
                "-notext",
            ],
        );
        let cert_path = self.dir.join(&crt);
        Leaf {
            key_path: self.dir.join(&key),
            cert_pem: read(&cert_path),
            cert_path,
            chain_pem: self.chain_pem(),
            chain_path: self.chain_path.clone(),
            not_before,
            not_after,
        }
    }

    fn leaf_section(&self, o: &LeafOptions) -> String {
        let mut s = String::from("[ signet_leaf ]\n");
        if o.ca {
            s.push_str("basicConstraints = critical,CA:TRUE\n");
            s.push_str("keyUsage = critical,digitalSignature,keyCertSign\n");
        } else {
            s.push_str("basicConstraints = critical,CA:FALSE\n");
            s.push_str("keyUsage = critical,digitalSignature\n");
        }
        if o.code_signing_eku {
            s.push_str("extendedKeyUsage = codeSigning\n");
        }
        s.push_str("subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n");
        if o.san != San::None {
            s.push_str("subjectAltName = critical,@signet_leaf_san\n");
        }
        if let Some(issuer) = &o.issuer_v1 {
            let _ = writeln!(s, "1.3.6.1.4.1.57264.1.1 = {}", der_hex(issuer.as_bytes()));
        }
        if let Some(issuer) = &o.issuer_v2 {
            let _ = writeln!(s, "1.3.6.1.4.1.57264.1.8 = {}", der_hex(&der_utf8_string(issuer)));
        }
        for line in &o.extra_extensions {
            let _ = writeln!(s, "{line}");
        }
        match &o.san {
            San::Email(email) => {
                let _ = writeln!(s, "[ signet_leaf_san ]\nemail.1 = {}", conf_escape(email));
            }
            San::Uri(uri) => {
                let _ = writeln!(s, "[ signet_leaf_san ]\nURI.1 = {}", conf_escape(uri));
            }
            San::None => {}
        }
        s
    }

    /// A Sigstore `trusted_root.json` with this CA (intermediate then root, validFor from
    /// 2020-01-01), a Rekor log for `rekor_spki_der`, and a CT log for `ctlog_spki_der` if
    /// given (both keys assumed ECDSA P-256). Same shape as the mock's.
    pub fn trusted_root_json(&self, rekor_spki_der: &[u8], ctlog_spki_der: Option<&[u8]>) -> String {
        let log = |base_url: &str, spki: &[u8]| {
            json!({
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": B64.encode(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": CA_NOT_BEFORE}
                },
                "logId": {"keyId": B64.encode(sha2::Sha256::digest(spki))}
            })
        };
        let ctlogs: Vec<Value> = ctlog_spki_der
            .map(|spki| log("https://ctfe.test.local", spki))
            .into_iter()
            .collect();
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log("https://rekor.test.local", rekor_spki_der)],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.test.local",
                "certChain": {"certificates": [
                    {"rawBytes": B64.encode(pem_to_der(&self.intermediate_pem))},
                    {"rawBytes": B64.encode(pem_to_der(&self.root_pem))}
                ]},
                "validFor": {"start": CA_NOT_BEFORE}
            }],
            "ctlogs": ctlogs,
            "timestampAuthorities": []
        })
        .to_string()
    }
}

/// A fake Rekor key for SETs: a P-256 PKCS#8 PEM made by openssl in `dir` (`rekor.key`,
/// or `rekor-N.key` when taken). Returns (PEM path, SPKI DER).
pub fn rekor_key(dir: &Path) -> (PathBuf, Vec<u8>) {
    std::fs::create_dir_all(dir).expect("create dir");
    let stem = (1..)
        .map(|n| match n {
            1 => "rekor".to_string(),
            n => format!("rekor-{n}"),
        })
        .find(|s| !dir.join(format!("{s}.key")).exists())
        .expect("a free name");
    let key = format!("{stem}.key");
    let der = format!("{stem}.pub.der");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &der]);
    let spki = std::fs::read(dir.join(&der)).expect("rekor SPKI");
    (dir.join(key), spki)
}

/// Signs `reg/repo:tag` (or `@sha256:…`) with `leaf`'s key via cosign_sign.py, attaching
/// the leaf as `dev.sigstore.cosign/certificate` and `chain_pem_path` (if any; else an
/// empty chain) as `dev.sigstore.cosign/chain`. With `rekor_key_pem_path`, also a
/// `dev.sigstore.cosign/bundle` whose hashedrekord entry records the certificate, with a
/// SET by that key and integratedTime = now. Returns cosign_sign.py's JSON.
pub fn sign_with_cert(
    reg: &Registry,
    repo: &str,
    tag_or_digest: &str,
    leaf: &Leaf,
    chain_pem_path: Option<&Path>,
    rekor_key_pem_path: Option<&Path>,
) -> Value {
    sign_with_cert_with(reg, repo, tag_or_digest, leaf, chain_pem_path, rekor_key_pem_path, &[])
}

/// [`sign_with_cert`] with more cosign_sign.py arguments (`--append`, `-a k=v`, …).
pub fn sign_with_cert_with(
    reg: &Registry,
    repo: &str,
    tag_or_digest: &str,
    leaf: &Leaf,
    chain_pem_path: Option<&Path>,
    rekor_key_pem_path: Option<&Path>,
    extra: &[&str],
) -> Value {
    let mut command = Command::new(python());
    command.arg(cosign_sign_py());
    registry_args(&mut command, reg, repo);
    target_args(&mut command, tag_or_digest);
    command
        .arg("--key")
        .arg(&leaf.key_path)
        .arg("--cert")
        .arg(&leaf.cert_path);
    if let Some(chain) = chain_pem_path {
        command.arg("--chain").arg(chain);
    }
    if let Some(rekor) = rekor_key_pem_path {
        command.arg("--rekor-key").arg(rekor);
    }
    command.args(extra);
    last_json_line(&run(&mut command))
}
