//! The images an object under review runs or mounts, as admission finds them and policy
//! evaluation reads them.

/// One image the object under review runs or mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// JSON pointer of the field, e.g. `/spec/template/spec/containers/0/image` or
    /// `/spec/volumes/2/image/reference`.
    pub path: String,
    /// Container or volume name, for messages.
    pub name: String,
    /// Whether a container runs it or a volume mounts it.
    pub source: ImageSource,
    /// The image exactly as written.
    pub image: String,
}

/// Where in a pod spec an image comes from. Both are pulled by the kubelet from the same
/// registries, so both are matched, verified and pinned alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    Container,
    /// An image volume (`spec.volumes[].image.reference`, KEP-4639): its files are mounted
    /// into containers, so an unverified one is as dangerous as an unverified container.
    Volume,
}

impl ImageSource {
    pub fn noun(self) -> &'static str {
        match self {
            ImageSource::Container => "container",
            ImageSource::Volume => "volume",
        }
    }
}
