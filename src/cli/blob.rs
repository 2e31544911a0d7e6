//! `signet verify-blob` and `signet verify-bundle`: a file's signature checked the way cosign
//! (or the sigstore-conformance command line) would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::verify::bundle::sha256_digest_bytes;
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
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_identity_regexp"])]
    key: Option<PathBuf>,
    #[arg(long)]
    certificate_identity: Option<String>,
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Accept certificates without an embedded SCT.
    #[arg(long)]
    insecure_ignore_sct: bool,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long)]
    trust_root: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(super) struct VerifyBundleArgs {
    /// Use Sigstore's staging instance: needs its trusted root in --trusted-root.
    #[arg(long)]
    staging: bool,
    /// The Sigstore bundle (`*.sigstore.json`).
    #[arg(long)]
    bundle: PathBuf,
    /// The expected certificate identity (a SAN: email, URI…), matched exactly.
    #[arg(long, requires = "certificate_oidc_issuer")]
    certificate_identity: Option<String>,
    /// The expected OIDC issuer, matched exactly.
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    /// Public key (PEM) for bundles signed with a key.
    #[arg(long, conflicts_with = "certificate_identity")]
    key: Option<PathBuf>,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long, alias = "trust-root")]
    trusted_root: Option<PathBuf>,
    /// The artifact: a file, or `sha256:<64 hex>` for its digest (unless such a file exists).
    file_or_digest: String,
}

pub(super) fn verify_blob(args: &VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    use crate::verify::blob::{BlobAuthority, BlobSignature, verify_blob};
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        path.as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()
    };
    let blob = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let authority = match (&args.key, &args.certificate_identity, &args.certificate_identity_regexp) {
        (Some(key), _, _) => BlobAuthority::Key(crate::verify::keys::PublicKey::from_pem(&std::fs::read_to_string(
            key,
        )?)?),
        (None, None, None) => {
            anyhow::bail!("give --key, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]")
        }
        _ => {
            anyhow::ensure!(
                args.certificate_oidc_issuer.is_some() || args.certificate_oidc_issuer_regexp.is_some(),
                "keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp"
            );
            BlobAuthority::Keyless {
                identity: crate::api::cip::Identity {
                    issuer: args.certificate_oidc_issuer.clone(),
                    issuer_reg_exp: args.certificate_oidc_issuer_regexp.clone(),
                    subject: args.certificate_identity.clone(),
                    subject_reg_exp: args.certificate_identity_regexp.clone(),
                },
                ignore_sct: args.insecure_ignore_sct,
            }
        }
    };
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
    use crate::verify::blob::{BlobAuthority, verify_sigstore_bundle};
    use crate::verify::bundle::Artifact;
    let authority = match (&args.key, &args.certificate_identity) {
        (Some(key), _) => BlobAuthority::Key(crate::verify::keys::PublicKey::from_pem(
            &std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?,
        )?),
        (None, Some(identity)) => BlobAuthority::Keyless {
            identity: crate::api::cip::Identity {
                issuer: args.certificate_oidc_issuer.clone(),
                subject: Some(identity.clone()),
                ..Default::default()
            },
            ignore_sct: false,
        },
        (None, None) => anyhow::bail!("give --key, or --certificate-identity with --certificate-oidc-issuer"),
    };
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
    Ok(report_verification(verify_sigstore_bundle(
        &bundle, &artifact, &authority, &trust,
    )))
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
