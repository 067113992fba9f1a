//! `--cache-to` and `--cache-from`: a build's cache records carried between stores, through a
//! registry or a folder.
//!
//! The cache travels as an ordinary image: its layers are the layers the records name, and its
//! config, besides a valid image config, holds the records under `rbuild.cache`. So pushing,
//! pulling, saving and loading it reuse the image code paths (compression, resumable
//! downloads, digest checks), and any registry stores it.

use super::BuildError;
use super::options::CacheSpec;
use crate::image::{ImageConfig, RootFs};
use crate::store::{ArchiveFormat, CacheRecord, Layer, SaveItem, Store};
use oci_spec::image::Digest;
use std::collections::BTreeMap;

/// The config field holding the records: key → record.
const RECORDS_FIELD: &str = "rbuild.cache";
/// The archive a local cache folder holds.
const ARCHIVE_NAME: &str = "rbuild-cache.tar";

fn other(error: impl std::fmt::Display) -> BuildError {
    BuildError::Other(error.to_string())
}

/// Exports the records of `keys` (and their layers) to `spec`.
pub fn export(store: &Store, keys: &[Digest], spec: &CacheSpec) -> Result<(), BuildError> {
    let mut records = BTreeMap::new();
    let mut layers: Vec<Layer> = Vec::new();
    for key in keys {
        let Some(record) = store.cache_record(key)? else {
            continue;
        };
        if let Some(diff_id) = &record.diff_id {
            let Some(layer) = store.find_layer(diff_id)? else {
                continue;
            };
            if !layers.iter().any(|l| &l.diff_id == diff_id) {
                layers.push(layer);
            }
        }
        records.insert(key.to_string(), record);
    }
    let (os, architecture, variant) = crate::image::host_platform();
    let mut config = ImageConfig {
        architecture,
        os,
        variant,
        rootfs: RootFs {
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            ..RootFs::default()
        },
        ..ImageConfig::default()
    };
    config.extra.insert(
        RECORDS_FIELD.to_owned(),
        serde_json::to_value(&records).map_err(other)?,
    );
    let bytes = config.to_canonical_json().map_err(other)?;
    let image = store.put_image(&bytes, &layers)?;
    let exported = write_out(store, &image, spec);
    // The cache is not an image to list: the records keep its layers.
    store.forget_image(image.manifest_descriptor.digest())?;
    exported
}

fn write_out(
    store: &Store,
    image: &crate::store::Image,
    spec: &CacheSpec,
) -> Result<(), BuildError> {
    match spec {
        CacheSpec::Local(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| other(format!("{}: {e}", dir.display())))?;
            let path = dir.join(ARCHIVE_NAME);
            let partial = dir.join(format!("{ARCHIVE_NAME}.partial"));
            let file = std::fs::File::create(&partial)
                .map_err(|e| other(format!("{}: {e}", partial.display())))?;
            let items = [SaveItem {
                image: image.clone(),
                names: Vec::new(),
            }];
            store.save_archive(&items, ArchiveFormat::Oci, std::io::BufWriter::new(file))?;
            std::fs::rename(&partial, &path).map_err(|e| other(format!("{}: {e}", path.display())))
        }
        CacheSpec::Registry(reference) => {
            let runtime = tokio::runtime::Runtime::new().map_err(other)?;
            runtime
                .block_on(crate::registry::push(
                    store,
                    image,
                    reference,
                    crate::registry::compress::Compression::Gzip,
                    true,
                    &crate::registry::NoProgress,
                ))
                .map(|_| ())
                .map_err(|e| other(format!("--cache-to {reference}: {e}")))
        }
    }
}

/// Imports the records (and layers) of the cache at `spec` into the store. Returns how many
/// records it brought; a cache that does not exist yet is not an error (the first build).
pub fn import(store: &Store, spec: &CacheSpec) -> Result<usize, BuildError> {
    let image = match spec {
        CacheSpec::Local(dir) => {
            let path = dir.join(ARCHIVE_NAME);
            let Ok(file) = std::fs::File::open(&path) else {
                return Ok(0);
            };
            let report = store.load_archive(std::io::BufReader::new(file))?;
            let Some(id) = report.untagged.first() else {
                return Err(other(format!("{}: no cache image in it", path.display())));
            };
            store.find_image(id.as_ref())?
        }
        CacheSpec::Registry(reference) => {
            let runtime = tokio::runtime::Runtime::new().map_err(other)?;
            match runtime.block_on(crate::registry::pull(
                store,
                reference,
                true,
                &crate::registry::NoProgress,
            )) {
                Ok(pulled) => pulled.image,
                Err(crate::registry::Error::Status { status: 404, .. }) => return Ok(0),
                Err(e) => return Err(other(format!("--cache-from {reference}: {e}"))),
            }
        }
    };
    let records: BTreeMap<String, CacheRecord> = image
        .config
        .extra
        .get(RECORDS_FIELD)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| other(format!("the cache's records: {e}")))?
        .unwrap_or_default();
    // The cache is not an image to list: only its records and layers stay.
    store.forget_image(image.manifest_descriptor.digest())?;
    let mut imported = 0;
    for (key, record) in records {
        let Ok(key) = key.parse::<Digest>() else {
            continue;
        };
        if store.cache_record(&key)?.is_none() {
            store.put_cache_record(&key, &record)?;
            imported += 1;
        }
    }
    Ok(imported)
}
