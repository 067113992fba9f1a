//! Images in the store: their layers (plain tars as built or imported, compressed tars as
//! pulled), configs and manifests, and resolving a name or an ID back to them.

use super::blob::HashingReader;
use super::{Result, Store, StoreError, sha256_hex};
use crate::image::{ImageConfig, Reference, canonical_json};
use crate::snapshot::{Compression, decoder, sniff};
use oci_spec::image::{Descriptor, Digest, ImageManifest, ImageManifestBuilder, MediaType};
use std::fs;
use std::io::{self, Read};

/// A layer of an image: the DiffID of its tar and the blob the store holds it in. Layers
/// built or imported are plain tars (blob digest = DiffID); pulled layers are kept as the
/// registry sent them (gzip or zstd), their DiffID checked when they are first unpacked.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub diff_id: Digest,
    /// The stored blob, as the image manifest lists it.
    pub blob: Descriptor,
    /// The compressed form a plain layer arrived in (remembered for push).
    pub compressed: Option<Descriptor>,
}

impl Layer {
    /// A layer stored as a plain tar of `size` bytes.
    pub fn plain(diff_id: Digest, size: u64) -> Layer {
        Layer {
            blob: Descriptor::new(MediaType::ImageLayer, size, diff_id.clone()),
            diff_id,
            compressed: None,
        }
    }
}

/// An image resolved from the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest blob in the store.
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
}

impl Image {
    /// The image ID as Docker shows it: the digest of the config blob.
    pub fn id(&self) -> &Digest {
        self.manifest.config().digest()
    }

    /// Sum of the layer sizes as stored.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(Descriptor::size).sum()
    }

    /// The layers, base first: each manifest entry with the config's DiffID for it.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let diff_ids = &self.config.rootfs.diff_ids;
        let blobs = self.manifest.layers();
        if diff_ids.len() != blobs.len() {
            return Err(StoreError::Invalid(format!(
                "image {}: config lists {} layers, manifest {}",
                self.id(),
                diff_ids.len(),
                blobs.len()
            )));
        }
        Ok(diff_ids
            .iter()
            .zip(blobs)
            .map(|(diff_id, blob)| Layer {
                diff_id: diff_id.clone(),
                blob: blob.clone(),
                compressed: None,
            })
            .collect())
    }
}

impl Store {
    /// Stores a layer from a tar stream (plain, gzip or zstd, detected by content). The
    /// layer is kept uncompressed; the compressed digest, when there was one, is recorded.
    pub fn import_layer(&self, reader: impl Read) -> Result<Layer> {
        let mut writer = self.blob_writer(None)?;
        let compressed = decompressed_into(reader, |tar| {
            io::copy(tar, &mut writer).map_err(read_error)?;
            Ok(())
        })?;
        let blob = writer.commit()?;
        self.layer_stored(blob, compressed)
    }

    /// The layer whose tar has this DiffID, in the blob the store holds it in: the plain
    /// tar, else a compressed form known to hold it, else one a pulled image's config says
    /// holds it (checked when unpacked). `None` when the store has none of them.
    pub fn find_layer(&self, diff_id: &Digest) -> Result<Option<Layer>> {
        if self.has_blob(diff_id) {
            return Ok(Some(Layer::plain(
                diff_id.clone(),
                self.blob_size(diff_id)?,
            )));
        }
        let verified = self.compressed_forms(diff_id)?;
        let claimed = self.layer_forms(FormKind::Claimed, diff_id)?;
        Ok(verified
            .into_iter()
            .chain(claimed)
            .find(|form| self.has_blob(form.digest()))
            .map(|blob| Layer {
                diff_id: diff_id.clone(),
                blob,
                compressed: None,
            }))
    }

    /// The tar of a layer blob, decompressed as its media type says (plain, gzip, zstd):
    /// every reader of layer contents goes through here. The bytes are not checked against
    /// the DiffID; the reader hashes them where that matters (unpacking does).
    pub fn layer_tar(&self, blob: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let compression = layer_compression(blob)?;
        let file = self.open_blob(blob.digest())?;
        Ok(match compression {
            Compression::Uncompressed => {
                Box::new(io::BufReader::with_capacity(super::snapshots::CHUNK, file))
            }
            _ => Box::new(super::snapshots::decompressing_thread(compression, file)),
        })
    }

    /// The layer of a stored blob, recording the compressed form it arrived in.
    pub(super) fn layer_stored(
        &self,
        blob: super::CommittedBlob,
        compressed: Option<Descriptor>,
    ) -> Result<Layer> {
        if let Some(compressed) = &compressed {
            self.record_compressed(&blob.digest, compressed)?;
        }
        Ok(Layer {
            compressed,
            ..Layer::plain(blob.digest, blob.size)
        })
    }

    /// Remembers that `compressed` decompresses to the layer `diff_id` (it was hashed both
    /// ways), so a push can reuse it instead of compressing again.
    pub fn record_compressed(&self, diff_id: &Digest, compressed: &Descriptor) -> Result<()> {
        self.record_layer_form(FormKind::Verified, diff_id, compressed)
    }

    /// Remembers that a pulled image's config says the stored blob `blob` holds the layer
    /// `diff_id`, so a build cache record naming the DiffID finds it. Unchecked until the
    /// blob is unpacked; push never takes such a form for a layer it compresses.
    pub fn record_claimed_layer(&self, diff_id: &Digest, blob: &Descriptor) -> Result<()> {
        self.record_layer_form(FormKind::Claimed, diff_id, blob)
    }

    fn record_layer_form(&self, kind: FormKind, diff_id: &Digest, form: &Descriptor) -> Result<()> {
        let _lock = self.lock_index()?;
        let mut known = self.layer_forms(kind, diff_id)?;
        if known.iter().any(|d| d.digest() == form.digest()) {
            return Ok(());
        }
        known.push(form.clone());
        let path = self.layer_forms_path(kind, diff_id)?;
        self.write_atomic(&path, &canonical_json(&known)?)
    }

    /// The compressed forms known to hold a layer (gzip, zstd), oldest first.
    pub fn compressed_forms(&self, diff_id: &Digest) -> Result<Vec<Descriptor>> {
        self.layer_forms(FormKind::Verified, diff_id)
    }

    pub(super) fn layer_forms(&self, kind: FormKind, diff_id: &Digest) -> Result<Vec<Descriptor>> {
        let path = self.layer_forms_path(kind, diff_id)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    fn layer_forms_path(&self, kind: FormKind, diff_id: &Digest) -> Result<std::path::PathBuf> {
        Ok(self.root().join(kind.dir()).join(sha256_hex(diff_id)?))
    }

    /// Stores an image whose layers are already in the store: the config blob exactly as
    /// given (so a loaded config keeps its digest; build new ones with
    /// [`ImageConfig::to_canonical_json`]) and an OCI manifest, and lists it in index.json
    /// without a name (name it with [`Store::tag`]).
    pub fn put_image(&self, config: &[u8], layers: &[Layer]) -> Result<Image> {
        self.put_image_as(config, layers, &[])
    }

    /// [`Store::put_image`] under `names` (one index.json update for all of them); without
    /// names, listed unnamed.
    pub fn put_image_as(
        &self,
        config: &[u8],
        layers: &[Layer],
        names: &[Reference],
    ) -> Result<Image> {
        let parsed = ImageConfig::from_slice(config)?;
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        if parsed.rootfs.diff_ids.iter().collect::<Vec<_>>() != diff_ids {
            return Err(StoreError::Invalid(format!(
                "image config lists {} diff_ids that do not match the {} layers given",
                parsed.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        {
            // Leased first, so a concurrent collection keeps layers this image will use.
            let _gc = self.lock_gc(super::lock::LockMode::Shared)?;
            for layer in layers {
                self.lease(layer.blob.digest())?;
                if !self.has_blob(layer.blob.digest()) {
                    return Err(StoreError::BlobNotFound(layer.blob.digest().clone()));
                }
            }
        }
        let config_blob = self.put_blob(config, None)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_blob.size,
                config_blob.digest,
            ))
            .layers(layers.iter().map(|l| l.blob.clone()).collect::<Vec<_>>())
            .build()
            .map_err(|e| StoreError::Invalid(format!("building manifest: {e}")))?;
        let manifest_bytes = canonical_json(&manifest)?;
        let manifest_blob = self.put_blob(&manifest_bytes, None)?;
        let manifest_descriptor = Descriptor::new(
            MediaType::ImageManifest,
            manifest_blob.size,
            manifest_blob.digest,
        );
        if names.is_empty() {
            self.add_image(&manifest_descriptor)?;
        } else {
            self.tag_all(names, &manifest_descriptor)?;
        }
        Ok(Image {
            manifest_descriptor,
            manifest,
            config: parsed,
        })
    }

    /// The image a reference names.
    pub fn resolve(&self, reference: &Reference) -> Result<Image> {
        match self.lookup_ref(reference)? {
            Some(descriptor) => self.load_image(&descriptor),
            None => Err(StoreError::ImageNotFound(reference.familiar())),
        }
    }

    /// An image as the CLI accepts it: a name (`busybox`, `busybox:t`, `a@sha256:…`),
    /// a full image ID (`sha256:…`) or a unique prefix of one.
    pub fn find_image(&self, text: &str) -> Result<Image> {
        if let Ok(reference) = Reference::parse(text)
            && let Some(descriptor) = self.lookup_ref(&reference)?
        {
            return self.load_image(&descriptor);
        }
        let prefix = text.strip_prefix("sha256:").unwrap_or(text);
        let is_id_prefix = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_id_prefix {
            return Err(StoreError::ImageNotFound(text.to_string()));
        }
        let mut found: Option<Image> = None;
        for entry in self.images()? {
            let image = self.load_image(&entry.manifest)?;
            if !image.id().digest().starts_with(prefix) {
                continue;
            }
            match &found {
                Some(other) if other.id() != image.id() => {
                    return Err(StoreError::Invalid(format!(
                        "image ID prefix {text:?} is ambiguous"
                    )));
                }
                _ => found = Some(image),
            }
        }
        found.ok_or_else(|| StoreError::ImageNotFound(text.to_string()))
    }

    /// Reads the manifest a descriptor points at and its config.
    pub fn load_image(&self, manifest_descriptor: &Descriptor) -> Result<Image> {
        let digest = manifest_descriptor.digest();
        let bytes = self.read_blob(digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: format!("manifest {digest}"),
                source,
            })?;
        let config_bytes = self.read_blob(manifest.config().digest())?;
        let config = ImageConfig::from_slice(&config_bytes)?;
        Ok(Image {
            manifest_descriptor: manifest_descriptor.clone(),
            manifest,
            config,
        })
    }
}

pub(super) fn read_error(e: io::Error) -> StoreError {
    StoreError::Invalid(format!("reading layer: {e}"))
}

/// Hands `store` the layer stream decompressed; returns the descriptor of the compressed
/// stream, when it was compressed (its bytes are hashed then, and only then).
pub(super) fn decompressed_into(
    reader: impl Read,
    store: impl FnOnce(&mut dyn Read) -> Result<()>,
) -> Result<Option<Descriptor>> {
    let (compression, whole) = sniff(reader).map_err(read_error)?;
    let Some(media_type) = compressed_media_type(compression) else {
        store(&mut decoder(compression, whole).map_err(read_error)?)?;
        return Ok(None);
    };
    let mut raw = HashingReader::new(whole);
    store(&mut decoder(compression, &mut raw).map_err(read_error)?)?;
    let (digest, size) = raw.finish().map_err(read_error)?;
    Ok(Some(Descriptor::new(media_type, size, digest)))
}

/// Which record of a layer's compressed forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FormKind {
    /// Hashed both ways: decompresses to the DiffID.
    Verified,
    /// A pulled image's config says so; checked on unpack.
    Claimed,
}

impl FormKind {
    pub(super) const ALL: [FormKind; 2] = [FormKind::Verified, FormKind::Claimed];

    pub(super) fn dir(self) -> &'static str {
        match self {
            FormKind::Verified => "compressed/sha256",
            FormKind::Claimed => "claimed/sha256",
        }
    }
}

/// How a layer blob is compressed, from its media type (OCI's and Docker's).
pub fn layer_compression(blob: &Descriptor) -> Result<Compression> {
    let media_type = blob.media_type().to_string();
    Compression::from_layer_media_type(&media_type).ok_or_else(|| {
        StoreError::Invalid(format!(
            "layer {}: unsupported media type {media_type}",
            blob.digest()
        ))
    })
}

/// The OCI media type of a compressed layer; `None` for a plain tar.
fn compressed_media_type(compression: Compression) -> Option<MediaType> {
    match compression {
        Compression::Uncompressed => None,
        Compression::Gzip => Some(MediaType::ImageLayerGzip),
        Compression::Zstd => Some(MediaType::ImageLayerZstd),
    }
}
