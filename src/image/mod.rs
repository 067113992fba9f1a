//! Image formats: config (Docker extensions, canonical JSON), manifests, references, archives.

pub mod config;
pub mod reference;
pub mod time;

pub use config::{
    ContainerConfig, HealthConfig, History, ImageConfig, RootFs, canonical_json, chain_ids,
    digest_from_hash, sha256_digest,
};
pub use reference::Reference;

/// Errors of the image formats.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid image config: {0}")]
    Config(#[source] serde_json::Error),
}
