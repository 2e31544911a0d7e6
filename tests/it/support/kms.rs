//! A local AWS KMS: `moto` in server mode (PyPI `moto[server]`, installed by
//! scripts/install-test-deps.sh), with keys created and used through `boto3`, AWS's own
//! Python SDK, so signatures come from an implementation independent of signet.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::cosign::Signs;
use super::env::{python, run, skip_or_fail};

/// Credentials moto accepts (it checks none unless asked to).
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

pub struct Moto {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// `moto_server` on a free loopback port; `env` for the server (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0` makes it check credentials).
    pub fn start(env: &[(&str, &str)]) -> Option<Moto> {
        let server = python().with_file_name("moto_server");
        if !server.is_file() {
            skip_or_fail(&format!("moto_server not installed at {}", server.display()));
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let log = std::fs::File::create(dir.path().join("moto.log")).ok()?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .ok()?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto { child, url, _dir: dir })
    }

    /// Runs `script` with `kms` (a boto3 KMS client on this server) defined; its stdout.
    pub fn boto3(&self, script: &str) -> String {
        let program = format!(
            "import base64, sys, boto3\nkms = boto3.client('kms', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{script}",
            self.url
        );
        run(Command::new(python()).args(["-c", &program])).trim().to_string()
    }

    /// A new signing key of `spec` (ECC_NIST_P256, RSA_2048…), named by `alias` too.
    pub fn create_key(&self, spec: &str, alias: &str) -> KmsKey {
        let created = self.boto3(&format!(
            "m = kms.create_key(KeyUsage='SIGN_VERIFY', KeySpec='{spec}')['KeyMetadata']\nkms.create_alias(AliasName='{alias}', TargetKeyId=m['KeyId'])\nprint(m['KeyId'], m['Arn'])"
        ));
        let (key_id, arn) = created.split_once(' ').expect("key id and ARN");
        let (key_id, arn) = (key_id.to_string(), arn.to_string());
        let alias_arn = arn.replace(&format!("key/{key_id}"), alias);
        let spki = self.boto3(&format!(
            "print(base64.b64encode(kms.get_public_key(KeyId='{key_id}')['PublicKey']).decode())"
        ));
        let der = base64::engine::general_purpose::STANDARD
            .decode(spki)
            .expect("base64 SPKI");
        KmsKey {
            moto_url: self.url.clone(),
            key_id,
            arn,
            alias_arn,
            algorithm: if spec.starts_with("RSA") {
                "RSASSA_PKCS1_V1_5_SHA_256"
            } else {
                "ECDSA_SHA_256"
            },
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", der)),
        }
    }

    /// Points `alias` at `key` (a rotation, as operators do it).
    pub fn point_alias(&self, alias: &str, key: &KmsKey) {
        self.boto3(&format!(
            "kms.update_alias(AliasName='{alias}', TargetKeyId='{}')",
            key.key_id
        ));
    }
}

/// A key in moto's KMS; signing goes through boto3's `Sign`.
pub struct KmsKey {
    moto_url: String,
    pub key_id: String,
    /// `arn:aws:kms:REGION:ACCOUNT:key/ID`
    pub arn: String,
    /// The alias it was created with, as an ARN (`…:alias/NAME`).
    pub alias_arn: String,
    algorithm: &'static str,
    public_pem: String,
}

impl Signs for KmsKey {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("message");
        std::fs::write(&path, message).expect("message");
        let program = format!(
            "import base64, boto3\nkms = boto3.client('kms', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\nm = open('{}', 'rb').read()\nprint(base64.b64encode(kms.sign(KeyId='{}', Message=m, MessageType='RAW', SigningAlgorithm='{}')['Signature']).decode())",
            self.moto_url,
            path.display(),
            self.key_id,
            self.algorithm
        );
        let signature = run(Command::new(python()).args(["-c", &program]));
        base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .expect("base64 signature")
    }

    fn public_pem(&self) -> String {
        self.public_pem.clone()
    }
}
