//! `signet crd`: prints the CustomResourceDefinitions, or writes them to a folder.

use std::path::Path;

use anyhow::Context as _;

pub(super) fn crd(write: Option<&Path>) -> anyhow::Result<()> {
    match write {
        None => print!("{}", crate::api::crds_yaml()?),
        Some(dir) => {
            for (name, text) in crate::api::crd_files()? {
                let path = dir.join(name);
                std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
