//! Signature verification: the [`Verifier`] signet uses in production, backed by the
//! registry client.

use futures::future::BoxFuture;

use crate::policy::evaluate::{AuthorityCheck, RequestContext, Verifier};
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::AuthorityKind;
use crate::registry::{Credentials, RegistryClient};

/// Resolves digests and verifies authorities against real registries.
pub struct RegistryVerifier {
    registry: RegistryClient,
}

impl RegistryVerifier {
    pub fn new(registry: RegistryClient) -> Self {
        RegistryVerifier { registry }
    }
}

impl Verifier for RegistryVerifier {
    fn resolve_digest<'a>(
        &'a self,
        image: &'a ImageRef,
        _context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.registry
                .resolve_digest(
                    image.registry(),
                    image.repository(),
                    image.registry_reference(),
                    &Credentials::Anonymous,
                )
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn verify<'a>(&'a self, check: AuthorityCheck<'a>) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match check.authority.kind {
                AuthorityKind::Static { .. } => {
                    Err("static authorities need no verifier".to_string())
                }
                AuthorityKind::Key => {
                    Err("key authorities are not supported yet by this signet build".to_string())
                }
                AuthorityKind::Keyless => Err(
                    "keyless authorities are not supported yet by this signet build".to_string(),
                ),
            }
        })
    }
}
