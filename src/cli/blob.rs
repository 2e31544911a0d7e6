//! `signet verify-blob` and `signet verify-bundle`: a file's signature checked the way cosign
//! (or the sigstore-conformance command line) would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use std::collections::BTreeMap;

use crate::api::cip::Identity;
use crate::verify::bundle::sha256_digest_bytes;
use crate::verify::keyless::FULCIO_EXTENSIONS;

/// The OIDC issuer of GitHub Actions' tokens, `gh attestation verify`'s default.
const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";
use crate::verify::trust::TrustRoot;

#[derive(Args, Debug)]
pub(super) struct VerifyBlobArgs {
    /// The file that was signed.
    file: PathBuf,
    /// base64 signature file (`cosign sign-blob --output-signature`).
    #[arg(long)]
    signature: Option<PathBuf>,
    /// Signing certificate (PEM or base64 PEM), for keyless.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// cosign's bundle (`cosign sign-blob --bundle`): signature, certificate and Rekor entry.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Public key (PEM) for keyed signatures.
    #[arg(long)]
    key: Option<PathBuf>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long)]
    trust_root: Option<PathBuf>,
}

/// Who must have signed, for keyless signatures: cosign's certificate flags and `gh
/// attestation verify`'s GitHub flags, which match Fulcio's certificate extensions. Without
/// an issuer flag, GitHub Actions' issuer with gh's flags, else a certificate without one
/// (GitHub's release attestations).
#[derive(Args, Debug, Default)]
pub(super) struct IdentityArgs {
    /// The certificate's subject (SAN: email, URI…), matched exactly.
    #[arg(long)]
    certificate_identity: Option<String>,
    /// A regexp the certificate's subject must match (unanchored).
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    /// The OIDC issuer, matched exactly.
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    /// A regexp the OIDC issuer must match (unanchored).
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Fulcio extension NAME must equal VALUE (NAME as in `certificateExtensions`, e.g.
    /// sourceRepositoryRef=refs/heads/main); repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    certificate_extension: Vec<String>,
    /// GitHub owner (organisation or user) of the source repository.
    #[arg(long)]
    owner: Option<String>,
    /// GitHub source repository, OWNER/REPO.
    #[arg(long)]
    repo: Option<String>,
    /// Repository of the workflow that signed (a reusable workflow's own repository).
    #[arg(long)]
    signer_repo: Option<String>,
    /// Workflow that signed: [HOST/]OWNER/REPO/PATH.
    #[arg(long)]
    signer_workflow: Option<String>,
    /// Git ref the build ran on (refs/heads/main, refs/tags/v1…).
    #[arg(long)]
    source_ref: Option<String>,
    /// Git commit the build ran on.
    #[arg(long)]
    source_digest: Option<String>,
    /// Refuse builds on self-hosted runners.
    #[arg(long)]
    deny_self_hosted_runners: bool,
    /// GitHub host for --owner, --repo, --signer-repo and --signer-workflow.
    #[arg(long, default_value = "github.com")]
    hostname: String,
    /// Accept certificates without an embedded SCT.
    #[arg(long)]
    insecure_ignore_sct: bool,
}

impl IdentityArgs {
    /// The identity these flags ask for; `None` when no flag names one.
    fn identity(&self) -> anyhow::Result<Option<Identity>> {
        let subject_reg_exp = self.subject_reg_exp();
        if self.certificate_identity.is_none() && subject_reg_exp.is_none() {
            return Ok(None);
        }
        // Without an issuer flag: gh's default (GitHub Actions) when gh's flags name the
        // signer; otherwise only a certificate that names no issuer (GitHub's release
        // attestations). Any issuer at all takes `--certificate-oidc-issuer-regexp .*`.
        let gh_flags = [&self.owner, &self.repo, &self.signer_repo, &self.signer_workflow]
            .iter()
            .any(|flag| flag.is_some());
        let (issuer, issuer_reg_exp) = match (&self.certificate_oidc_issuer, &self.certificate_oidc_issuer_regexp) {
            (None, None) if gh_flags => (Some(GITHUB_ACTIONS_ISSUER.to_string()), None),
            (None, None) => (None, Some("^$".to_string())),
            (issuer, regexp) => (issuer.clone(), regexp.clone()),
        };
        Ok(Some(Identity {
            issuer,
            issuer_reg_exp,
            subject: self.certificate_identity.clone(),
            subject_reg_exp,
            certificate_extensions: self.extensions()?,
            certificate_extensions_reg_exp: BTreeMap::new(),
        }))
    }

    /// `--certificate-extension` pairs and what gh's flags say about the certificate's
    /// Fulcio extensions.
    fn extensions(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let host = self.hostname.trim_end_matches('/');
        let mut extensions = BTreeMap::new();
        for pair in &self.certificate_extension {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--certificate-extension {pair:?}: expected NAME=VALUE"))?;
            anyhow::ensure!(
                FULCIO_EXTENSIONS.iter().any(|(_, known)| *known == name),
                "--certificate-extension {name:?}: not a Fulcio extension ({})",
                FULCIO_EXTENSIONS.map(|(_, n)| n).join(", ")
            );
            extensions.insert(name.to_string(), value.to_string());
        }
        let from_flags = [
            (
                "sourceRepositoryOwnerURI",
                self.owner.as_ref().map(|o| format!("https://{host}/{o}")),
            ),
            (
                "sourceRepositoryURI",
                self.repo.as_ref().map(|r| format!("https://{host}/{r}")),
            ),
            ("sourceRepositoryRef", self.source_ref.clone()),
            ("sourceRepositoryDigest", self.source_digest.clone()),
            (
                "runnerEnvironment",
                self.deny_self_hosted_runners.then(|| "github-hosted".to_string()),
            ),
        ];
        for (name, value) in from_flags {
            if let Some(value) = value {
                extensions.insert(name.to_string(), value);
            }
        }
        Ok(extensions)
    }

    /// gh's rule for the subject (the signing workflow): the explicit flags, else the
    /// signer's workflow or repository, else the source repository or owner, as a prefix.
    fn subject_reg_exp(&self) -> Option<String> {
        if self.certificate_identity_regexp.is_some() || self.certificate_identity.is_some() {
            return self.certificate_identity_regexp.clone();
        }
        let scope = self
            .signer_workflow
            .as_deref()
            .or(self.signer_repo.as_deref())
            .or(self.repo.as_deref())
            .or(self.owner.as_deref())?;
        let path = scope.trim_start_matches("https://");
        let has_host = path.split('/').next().is_some_and(|first| first.contains('.'));
        let url = if has_host {
            format!("https://{path}")
        } else {
            format!("https://{}/{path}", self.hostname.trim_end_matches('/'))
        };
        // A repository or owner ends at a path segment; a workflow path may be followed by
        // `@ref`.
        let boundary = if self.signer_workflow.is_some() { "" } else { "/" };
        Some(format!("^{}{boundary}", regex::escape(&url)))
    }

    /// The keyless authority, or the error that says which flags to give.
    fn keyless(&self) -> anyhow::Result<crate::verify::blob::BlobAuthority> {
        let identity = self.identity()?.context(
            "give --key, or an identity: --certificate-identity[-regexp], --owner, --repo, --signer-repo or --signer-workflow",
        )?;
        Ok(crate::verify::blob::BlobAuthority::Keyless {
            identity,
            ignore_sct: self.insecure_ignore_sct,
        })
    }
}

#[derive(Args, Debug)]
pub(super) struct VerifyBundleArgs {
    /// Use Sigstore's staging instance: needs its trusted root in --trusted-root.
    #[arg(long)]
    staging: bool,
    /// The Sigstore bundle (`*.sigstore.json`).
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Public key (PEM) for bundles signed with a key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long, alias = "trust-root")]
    trusted_root: Option<PathBuf>,
    /// The artifact: a file, or `sha256:<64 hex>` for its digest (unless such a file exists).
    file_or_digest: String,
}

pub(super) fn verify_blob(args: &VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    use crate::verify::blob::{BlobSignature, verify_blob};
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        path.as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()
    };
    let blob = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let authority = authority(args.key.as_ref(), &args.identity)?;
    let trust = match &args.trust_root {
        None => TrustRoot::public_good()?,
        Some(path) => {
            TrustRoot::from_json(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?
        }
    };
    let material = BlobSignature {
        signature_b64: read(&args.signature)?,
        certificate: read(&args.certificate)?,
        bundle: read(&args.bundle)?,
    };
    Ok(report_verification(verify_blob(&blob, material, &authority, &trust)))
}

pub(super) fn verify_bundle(args: &VerifyBundleArgs) -> anyhow::Result<ExitCode> {
    use crate::verify::blob::verify_sigstore_bundle;
    use crate::verify::bundle::Artifact;
    let authority = authority(args.key.as_ref(), &args.identity)?;
    let trust = match (&args.trusted_root, args.staging) {
        (Some(path), _) => {
            TrustRoot::from_json(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?
        }
        (None, true) => anyhow::bail!(
            "--staging needs the staging trusted root in --trusted-root (signet embeds only the public-good root)"
        ),
        (None, false) => TrustRoot::public_good()?,
    };
    let bundle = std::fs::read(&args.bundle).with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let contents;
    let artifact = match digest_argument(&args.file_or_digest) {
        Some(digest) => Artifact::Sha256(digest),
        None => {
            contents =
                std::fs::read(&args.file_or_digest).with_context(|| format!("cannot read {}", args.file_or_digest))?;
            Artifact::Bytes(&contents)
        }
    };
    let bundles = bundles_in(&bundle);
    anyhow::ensure!(!bundles.is_empty(), "{} holds no bundle", args.bundle.display());
    let mut failures = Vec::new();
    for (i, bundle) in bundles.iter().enumerate() {
        match verify_sigstore_bundle(bundle, &artifact, &authority, &trust) {
            Ok(detail) => return Ok(report_verification(Ok(detail))),
            Err(why) if bundles.len() == 1 => failures.push(why),
            Err(why) => failures.push(format!("bundle {} of {}: {why}", i + 1, bundles.len())),
        }
    }
    Ok(report_verification(Err(failures.join("; "))))
}

/// The bundles in a file: one JSON document, or JSON Lines of them (`gh attestation
/// download` writes one bundle per line); the artifact verifies if one of them does.
fn bundles_in(file: &[u8]) -> Vec<&[u8]> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(file).is_ok() {
        return vec![file];
    }
    file.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect()
}

/// A key, or the identity the flags name; not both.
fn authority(key: Option<&PathBuf>, identity: &IdentityArgs) -> anyhow::Result<crate::verify::blob::BlobAuthority> {
    match key {
        Some(key) => {
            anyhow::ensure!(identity.identity()?.is_none(), "give --key or identity flags, not both");
            let pem = std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
            Ok(crate::verify::blob::BlobAuthority::Key(
                crate::verify::keys::PublicKey::from_pem(&pem)?,
            ))
        }
        None => identity.keyless(),
    }
}

/// cosign's way of saying it: the detail and "Verified OK" (exit 0), or why not (exit 1).
fn report_verification(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(detail) => {
            eprintln!("{detail}");
            println!("Verified OK");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: verification failed: {why}");
            ExitCode::from(1)
        }
    }
}

/// `sha256:<64 hex>` that is not a file on disk is a digest (the conformance CLI's rule).
fn digest_argument(text: &str) -> Option<[u8; 32]> {
    if std::path::Path::new(text).exists() {
        return None;
    }
    sha256_digest_bytes(text)
}
