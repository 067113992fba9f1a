//! Push: an image from the store to a registry. Plain layers are compressed (gzip in
//! parallel, or zstd) unless a compressed form the store remembers is on the registry
//! already, and uploaded while they compress; pulled layers go as they are stored; blobs go first, in parallel, and the manifest last, so a
//! registry never names a missing blob.

use super::compress::{Compression, compress_file_feeding};
use super::pull::{Progress, client_for, short_id};
use super::{Client, Error};
use crate::image::{Reference, canonical_json};
use crate::store::{Image, Store, layer_compression};
use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, Digest, ImageManifestBuilder, MediaType};

const PARALLEL_LAYERS: usize = 3;
/// Compressed pieces (gzip members of about 1 MiB) queued for the upload.
const PIECES_IN_FLIGHT: usize = 8;

/// The manifest as pushed: its digest and size, as `docker push` prints them.
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
}

/// Pushes `image` from `store` to `target` (tag `latest` when it names none) and records the
/// pushed manifest's digest as a RepoDigest of the image.
pub async fn push(
    store: &Store,
    image: &Image,
    target: &Reference,
    compression: Compression,
    tls_verify: bool,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    push_at_level(
        store,
        image,
        target,
        (compression, None),
        tls_verify,
        progress,
    )
    .await
}

/// [`push`], compressing at a chosen level (`None`: the default; see
/// [`Compression::levels`]).
pub async fn push_at_level(
    store: &Store,
    image: &Image,
    target: &Reference,
    (compression, level): (Compression, Option<i32>),
    tls_verify: bool,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    let client = client_for(target, tls_verify)?;
    let repository = target.path();
    // A repository of the same registry the image was pulled from holds its pulled blobs:
    // the registry links them instead of taking the bytes again.
    let pulled_from = store
        .repo_digests(image.manifest_descriptor.digest())?
        .iter()
        .filter_map(|name| Reference::parse(name).ok())
        .find(|source| source.domain() == target.domain() && source.path() != repository)
        .map(|source| source.path().to_string());
    let layers: Vec<Descriptor> = futures_util::stream::iter(image.manifest.layers().iter())
        .map(|layer| {
            push_layer(
                &client,
                store,
                (repository, pulled_from.as_deref()),
                layer,
                (compression, level),
                progress,
            )
        })
        .buffered(PARALLEL_LAYERS)
        .try_collect()
        .await?;
    let config = image.manifest.config();
    client
        .push_blob(
            repository,
            config.digest(),
            config.size(),
            &store.blob_path(config.digest())?,
            None,
            &mut |_| {},
        )
        .await?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(layers)
        .build()
        .map_err(|e| Error::InvalidImage {
            reference: target.to_string(),
            reason: format!("building the manifest: {e}"),
        })?;
    let bytes = canonical_json(&manifest)?;
    let tag = match (target.tag(), target.digest()) {
        (Some(tag), _) => tag.to_string(),
        (None, Some(digest)) => digest.to_string(),
        (None, None) => "latest".to_string(),
    };
    let digest = client
        .put_manifest(
            repository,
            &tag,
            MediaType::ImageManifest.to_string().as_str(),
            &bytes,
        )
        .await?;
    store.add_repo_digest(target, &digest, &image.manifest_descriptor)?;
    Ok(Pushed {
        digest,
        size: bytes.len() as u64,
    })
}

/// Pushes one stored layer; returns its descriptor as pushed. A plain layer is compressed
/// (once: the form is remembered); a compressed one (as pulled) goes as it is.
async fn push_layer(
    client: &Client,
    store: &Store,
    (repository, pulled_from): (&str, Option<&str>),
    layer: &Descriptor,
    (compression, level): (Compression, Option<i32>),
    progress: &dyn Progress,
) -> Result<Descriptor, Error> {
    if layer_compression(layer)? != crate::snapshot::Compression::Uncompressed {
        return push_stored(client, store, (repository, pulled_from), layer, progress).await;
    }
    let diff_id = layer.digest();
    let media_type = compression.layer_media_type();
    // A form compressed before (by an earlier push or as pulled) that the registry holds.
    let known: Vec<Descriptor> = store
        .compressed_forms(diff_id)?
        .into_iter()
        .filter(|form| form.media_type().as_ref() == media_type)
        .collect();
    for form in &known {
        if client.blob_size(repository, form.digest()).await?.is_some() {
            progress.status(&short_id(form.digest()), "Layer already exists");
            return Ok(form.clone());
        }
    }
    let source = store.blob_path(diff_id)?;
    // Deleted when dropped, whatever happens to the upload.
    let packed_file = tempfile::Builder::new()
        .prefix("push-")
        .tempfile_in(store.root().join("tmp"))
        .map_err(|e| Error::io("creating a file in the store's tmp/", e))?;
    let packed = packed_file.path().to_path_buf();
    // The upload streams the compressed pieces as they come; the file keeps them for a
    // retry after a fault, and the digest, known at the end, closes the upload.
    let (pieces, received) =
        tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(PIECES_IN_FLIGHT);
    let compressing = {
        let (source, packed) = (source.clone(), packed.clone());
        tokio::task::spawn_blocking(move || {
            let mut pieces = Some(pieces);
            compress_file_feeding(&source, &packed, compression, level, &mut |piece| {
                // A failed upload stops taking pieces; the file is finished regardless.
                if let Some(sender) = &pieces
                    && sender.blocking_send(Ok(piece.to_vec())).is_err()
                {
                    pieces = None;
                }
            })
        })
    };
    let id = short_id(diff_id);
    progress.status(&id, "Pushing");
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(
        received,
        |mut received| async move { received.recv().await.map(|piece| (piece, received)) },
    ));
    let streamed = client.upload_streamed(repository, body).await;
    let info = compressing
        .await
        .map_err(|e| Error::io("compressing a layer", std::io::Error::other(e)))?
        .map_err(|e| Error::io(format!("compressing layer {diff_id}"), e))?;
    let descriptor = match compression {
        Compression::Gzip => Descriptor::new(MediaType::ImageLayerGzip, info.size, info.digest),
        Compression::Zstd => Descriptor::new(MediaType::ImageLayerZstd, info.size, info.digest),
    };
    let total = descriptor.size();
    let finished = match streamed {
        Ok(location) => {
            client
                .finish_upload(repository, &location, descriptor.digest())
                .await
        }
        Err(error) => Err(error),
    };
    let status = match finished {
        Ok(()) => {
            progress.bytes(&id, total, total);
            "Pushed"
        }
        // Again from the file, with the retries and resumable chunks of a known blob.
        Err(_) => client
            .push_blob(
                repository,
                descriptor.digest(),
                total,
                &packed,
                None,
                &mut |done| progress.bytes(&id, done, total),
            )
            .await?
            .status(),
    };
    drop(packed_file);
    store.record_compressed(diff_id, &descriptor)?;
    progress.status(&id, status);
    Ok(descriptor)
}

/// Pushes a compressed layer blob exactly as the store holds it, mounted from the
/// repository it was pulled from when that is on the same registry.
async fn push_stored(
    client: &Client,
    store: &Store,
    (repository, pulled_from): (&str, Option<&str>),
    layer: &Descriptor,
    progress: &dyn Progress,
) -> Result<Descriptor, Error> {
    let id = short_id(layer.digest());
    let total = layer.size();
    progress.status(&id, "Pushing");
    let pushed = client
        .push_blob(
            repository,
            layer.digest(),
            total,
            &store.blob_path(layer.digest())?,
            pulled_from,
            &mut |done| progress.bytes(&id, done, total),
        )
        .await?;
    progress.status(&id, pushed.status());
    Ok(layer.clone())
}
