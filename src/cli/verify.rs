//! `signet verify`: one image against policies, as admission would, with every check shown.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common::{DecisionArgs, RegistryArgs, load_policies, trust_root, verifier};
use crate::policy::evaluate::{RequestContext, ResourceInfo, evaluate};
use crate::policy::image::ContainerImage;

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// The image reference, as it would appear in a pod spec.
    image: String,
    /// Policy file or folder; repeatable.
    #[arg(long, required = true)]
    policy: Vec<PathBuf>,
    /// Also show, for every policy, whether its globs match the image and why not.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(super) async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let snapshot = load_policies(&args.policy).await?;
    let verifier = verifier(&args.registry, trust_root(&args.registry)?, None)?.fetching_kms_inline();
    let images = [ContainerImage {
        path: String::new(),
        name: "verify".to_string(),
        source: crate::policy::image::ImageSource::Container,
        image: args.image.clone(),
    }];
    let resource = ResourceInfo {
        group: String::new(),
        version: "v1".to_string(),
        resource: "pods".to_string(),
        ..ResourceInfo::default()
    };
    let evaluation = evaluate(
        &snapshot,
        &images,
        &resource,
        &RequestContext::default(),
        &verifier,
        args.decision.no_match_policy,
        usize::from(args.decision.review_concurrency),
    )
    .await;
    if args.explain {
        print!("{}", crate::report::explain_matching(&args.image, &snapshot));
    }
    print!("{}", crate::report::verification_report(&args.image, &evaluation));
    Ok(if evaluation.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
