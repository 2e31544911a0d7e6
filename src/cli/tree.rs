//! `signet tree`: what is attached to an image (signatures, attestations, SBOMs, referrers).

use std::process::ExitCode;

use super::common::{RegistryArgs, keychain, registry_client};
use crate::policy::reference::ImageRef;

pub(super) async fn tree(image: &str, args: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let image = ImageRef::parse(image)?;
    let credentials = keychain(args)?.for_registry(image.registry());
    let text = crate::evidence::tree::attachment_tree(&registry_client(args)?, &image, &credentials)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
