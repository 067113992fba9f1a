//! Image formats: config (Docker extensions, canonical JSON), manifests, references, archives.

pub mod config;
pub mod reference;
pub mod time;

pub use config::{
    ContainerConfig, HealthConfig, History, ImageConfig, RootFs, canonical_json, chain_ids,
    digest_from_hash, host_platform, sha256_digest,
};
pub use reference::Reference;

/// Docker schema 2 media types (the OCI ones are `oci_spec::image::MediaType`).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Errors of the image formats.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid image config: {0}")]
    Config(#[source] serde_json::Error),
}
