//! Pull: an image from a registry into the store, as containerd keeps images. Layers download
//! in parallel into the store exactly as the registry sends them (gzip, zstd), each checked
//! against the manifest's digest and size while it streams; nothing unchecked is kept. The
//! tar inside is checked against the config's DiffID when the layer is first unpacked
//! ([`Store::layer_dirs`]), which refuses a layer that does not match.

use super::credentials::CredentialFile;
use super::download::LayerDownload;
use super::name::endpoint_host;
use super::{Client, ClientOptions, Error};
use crate::image::{ImageConfig, Reference};
use crate::snapshot::Compression;
use crate::store::{Image, Layer, Store, layer_compression};
use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, Digest, MediaType};

/// How many layers move at once, as Docker does by default.
const PARALLEL_LAYERS: usize = 3;

/// What pull and push report, per blob, for the command line to render.
pub trait Progress: Send + Sync {
    /// A blob (named by its short digest) changed state: "Downloading", "Pull complete"…
    fn status(&self, id: &str, status: &str);
    /// Bytes moved so far for a blob of `total` bytes.
    fn bytes(&self, id: &str, done: u64, total: u64);
}

/// Progress that shows nothing (builds pull bases and push results without a display).
pub struct NoProgress;

impl Progress for NoProgress {
    fn status(&self, _: &str, _: &str) {}
    fn bytes(&self, _: &str, _: u64, _: u64) {}
}

/// Docker's short form of a digest: 12 hex digits.
pub(crate) fn short_id(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// A client for the registry of `reference`, with the user's saved credentials for it.
pub(crate) fn client_for(reference: &Reference, tls_verify: bool) -> Result<Client, Error> {
    // Without HOME and REGISTRY_AUTH_FILE there is no credentials file: pull anonymously.
    let credential = match CredentialFile::default_location() {
        Ok(file) => file.get(reference.domain())?,
        Err(_) => None,
    };
    Client::new(
        endpoint_host(reference.domain()),
        ClientOptions {
            tls_verify,
            credential,
            ..ClientOptions::default()
        },
    )
}

/// The image pulled, and the digest the registry knows it by (printed as `Digest:`).
pub struct Pulled {
    pub image: Image,
    pub digest: Digest,
    /// False when a `repo@sha256:…` reference named an image the store has: nothing moved.
    pub fetched: bool,
}

/// Pulls `reference` into `store` and names it there, recording its RepoDigest. Layers the
/// store has are not fetched, and a digest reference the store has needs no network at all.
pub async fn pull(
    store: &Store,
    reference: &Reference,
    tls_verify: bool,
    progress: &dyn Progress,
) -> Result<Pulled, Error> {
    if let Some(digest) = reference.digest()
        && let Some(manifest) = store.lookup_ref(reference)?
    {
        return Ok(Pulled {
            image: store.load_image(&manifest)?,
            digest: digest.clone(),
            fetched: false,
        });
    }
    let client = client_for(reference, tls_verify)?;
    let repository = reference.path();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, tag) => tag.unwrap_or("latest").to_string(),
    };
    let (manifest, image_manifest, index) = client.resolve_image(repository, &wanted).await?;
    let registry_digest = index.map_or(manifest.digest, |index| index.digest);

    let config_descriptor = image_manifest.config();
    let config_bytes = match store.has_blob(config_descriptor.digest()) {
        true => store.read_blob(config_descriptor.digest())?,
        false => {
            let mut bytes = Vec::new();
            client
                .get_blob(
                    repository,
                    config_descriptor.digest(),
                    Some(config_descriptor.size()),
                    &mut bytes,
                    &mut |_| {},
                )
                .await?;
            bytes
        }
    };
    let config = ImageConfig::from_slice(&config_bytes)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != image_manifest.layers().len() {
        return Err(Error::InvalidImage {
            reference: reference.to_string(),
            reason: format!(
                "the manifest lists {} layers but the config {} diff_ids",
                image_manifest.layers().len(),
                diff_ids.len()
            ),
        });
    }
    let layers: Vec<Layer> =
        futures_util::stream::iter(image_manifest.layers().iter().zip(diff_ids.iter()))
            .map(|(descriptor, diff_id)| {
                pull_layer(&client, store, repository, descriptor, diff_id, progress)
            })
            .buffered(PARALLEL_LAYERS)
            .try_collect()
            .await?;
    let image = store.put_image(&config_bytes, &layers)?;
    store.tag(reference, &image.manifest_descriptor)?;
    store.add_repo_digest(reference, &registry_digest, &image.manifest_descriptor)?;
    Ok(Pulled {
        image,
        digest: registry_digest,
        fetched: true,
    })
}

/// Fetches one layer blob unless the store has it, or has the layer's plain tar (built or
/// loaded here). The blob is kept as sent; the layer lists it under OCI's media type.
async fn pull_layer(
    client: &Client,
    store: &Store,
    repository: &str,
    descriptor: &Descriptor,
    diff_id: &Digest,
    progress: &dyn Progress,
) -> Result<Layer, Error> {
    let id = short_id(descriptor.digest());
    let media_type = match layer_compression(descriptor)? {
        Compression::Uncompressed => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    };
    let layer = Layer {
        diff_id: diff_id.clone(),
        blob: Descriptor::new(media_type, descriptor.size(), descriptor.digest().clone()),
        compressed: None,
    };
    if store.has_blob(descriptor.digest()) {
        progress.status(&id, "Already exists");
    } else if store.has_blob(diff_id) {
        progress.status(&id, "Already exists");
        return Ok(Layer::plain(diff_id.clone(), store.blob_size(diff_id)?));
    } else {
        fetch_blob(client, store, repository, descriptor, progress).await?;
        progress.status(&id, "Pull complete");
    }
    if layer.blob.digest() != diff_id {
        store.record_claimed_layer(diff_id, &layer.blob)?;
    }
    Ok(layer)
}

/// Downloads a blob into the store, resuming what an earlier run left in tmp/.
async fn fetch_blob(
    client: &Client,
    store: &Store,
    repository: &str,
    descriptor: &Descriptor,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let id = short_id(descriptor.digest());
    progress.status(&id, "Pulling fs layer");
    let mut download = LayerDownload::open(store, descriptor)?;
    let total = descriptor.size();
    let fetched = loop {
        let fetched = client
            .get_blob(
                repository,
                descriptor.digest(),
                Some(total),
                &mut download,
                &mut |done| progress.bytes(&id, done, total),
            )
            .await;
        if !(fetched.as_ref().is_err_and(is_mismatch) && download.resumed_from() > 0) {
            break fetched;
        }
        // The bytes an earlier run left were not a prefix of this blob: fetch it whole.
        download.start_over()?;
    };
    if let Err(error) = fetched {
        // Bytes that do not hash right are no use to the next attempt; any other failure
        // leaves the partial file for the next pull to resume.
        if is_mismatch(&error) {
            download.discard()?;
        }
        return Err(error);
    }
    download.finish()?;
    Ok(())
}

/// A download whose bytes did not match the manifest's digest or size.
fn is_mismatch(error: &Error) -> bool {
    matches!(
        error,
        Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
    )
}
