//! Distribution protocol client: pull, push, auth, credentials.
//!
//! [`Client`] speaks the OCI distribution / Docker Registry HTTP API v2 to one registry host:
//! manifests, blobs, uploads, with the auth flow of [`auth`] and retries on faults.
//! [`credentials`] reads and writes Docker's credential files; [`name`] turns what a user
//! types into a registry endpoint and repository; [`compress`] compresses layers for push.

pub mod auth;
mod client;
pub mod compress;
pub mod credentials;
pub mod name;
mod sink;

pub use client::{BlobPush, Client, ClientOptions, MANIFEST_ACCEPT, Manifest, host_platform};
pub use name::RemoteName;
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

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    digest_from_hasher(sha2::Sha256::new_with_prefix(data))
}

pub(crate) fn digest_from_hasher(hasher: sha2::Sha256) -> Digest {
    use sha2::Digest as _;
    let hex = hex::encode(hasher.finalize());
    // A lowercase sha256 hex string is always a valid digest.
    Digest::try_from(format!("sha256:{hex}")).unwrap_or_else(|_| unreachable!("sha256 digest"))
}
