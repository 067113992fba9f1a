//! Distribution protocol client: pull, push, auth, credentials.
//!
//! [`Client`] speaks the OCI distribution / Docker Registry HTTP API v2 to one registry host:
//! manifests, blobs, uploads, with the auth flow of [`auth`] and retries on faults.
//! [`credentials`] reads and writes Docker's credential files; [`name`] maps registry names
//! to endpoints; [`compress`] compresses layers for push. [`pull`] and [`push`] move images
//! between a registry and the [`crate::store::Store`].
//!
//! # Build cache on a registry (design for `--cache-to/--cache-from type=registry`)
//!
//! The cache travels as one OCI image manifest pushed at the cache ref, with
//! `artifactType: application/vnd.rbuild.cache.v1` so no runtime mistakes it for an image:
//! - `config` (`application/vnd.rbuild.cache.config.v1+json`, canonical JSON) lists the
//!   records: `{key, parent, op, layer, diff_id}` where `key` is the build's cache key (see
//!   DESIGN.md), `parent` the key before it, `op` the expanded instruction (so a miss can
//!   say why), `layer` an index into `layers` or null for config-only steps, `diff_id` the
//!   uncompressed digest the store keys the layer by; and the image config each final
//!   stage produced, by key.
//! - `layers` are the compressed layer blobs, pushed exactly as [`push`] pushes image layers
//!   (so blobs shared with the pushed image upload once and mount across repositories).
//!   `mode=min` exports the chain of the exported stage only; `mode=max` every stage's.
//! - `RUN --mount=type=cache` contents go as extra tar layers annotated
//!   `vnd.rbuild.cache-mount.id` and `…sharing`, restored into the mount before the step.
//!
//! Import reads the manifest and config only; a layer is fetched when its key is hit, so a
//! runner that hits the last step fetches only the final layers.

pub mod auth;
mod client;
pub mod compress;
pub mod credentials;
mod download;
pub mod name;
mod pull;
mod push;
mod sink;

pub use client::{BlobPush, Client, ClientOptions, MANIFEST_ACCEPT, Manifest};
pub use pull::{NoProgress, Progress, Pulled, pull};
pub use push::{Pushed, push, push_at_level};
pub use sink::{BlobSink, FileSink};

use oci_spec::image::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{method} {url}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: registry answered {status}{}", detail_suffix(.detail))]
    Status {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{method} {url}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        method: String,
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("authentication to {realm} failed: {reason}")]
    Auth { realm: String, reason: String },
    #[error("unsupported authentication challenge {0:?}")]
    Challenge(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: String,
    },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {reference} is larger than {limit} bytes")]
    ManifestTooLarge { reference: String, limit: u64 },
    #[error("invalid manifest {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },
    #[error("no manifest for platform {platform} in index {reference}")]
    NoPlatform { reference: String, platform: String },
    #[error("registry sent invalid {header} header: {value:?}")]
    BadHeader { header: String, value: String },
    #[error("credentials file {path}: {reason}")]
    CredentialsFile { path: String, reason: String },
    #[error("credential helper {helper}: {reason}")]
    CredentialHelper { helper: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("image {reference}: {reason}")]
    InvalidImage { reference: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
