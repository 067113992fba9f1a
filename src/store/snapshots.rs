//! Unpacked layers under snapshots/<ChainID>: each is one layer's own files with overlay
//! whiteouts, extracted once (into tmp/, synced, renamed) and shared by every image and
//! container whose layers below are the same.

use super::images::Image;
use super::lock::LockMode;
use super::{IoContext, Result, Store, StoreError, sha256_hex, sync_parent};
use crate::snapshot::{ExtractOptions, OverlayXattrs, WhiteoutHandling, extract_layer};
use oci_spec::image::{Descriptor, Digest};
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

impl Store {
    /// The unpacked layers of an image, base layer first (overlayfs' `lowerdir=` lists the
    /// top layer first: reverse them). Missing snapshots are extracted now. The snapshots are
    /// leased to this process, so a concurrent garbage collection keeps them while it runs.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let diff_ids = &image.config.rootfs.diff_ids;
        let layers = image.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(StoreError::Invalid(format!(
                "image {}: config lists {} layers, manifest {}",
                image.id(),
                diff_ids.len(),
                layers.len()
            )));
        }
        let chain_ids = image.config.chain_ids();
        let mut dirs = Vec::with_capacity(layers.len());
        for ((chain_id, diff_id), layer) in chain_ids.iter().zip(diff_ids).zip(layers) {
            dirs.push(self.snapshot(chain_id, diff_id, layer)?);
        }
        Ok(dirs)
    }

    /// Where the snapshot of a ChainID lives (whether or not it exists).
    pub fn snapshot_path(&self, chain_id: &Digest) -> Result<PathBuf> {
        Ok(self.root().join("snapshots").join(sha256_hex(chain_id)?))
    }

    /// The snapshot of one layer of a chain, extracted from its blob when missing.
    pub fn layer_snapshot(&self, chain_id: &Digest, layer: &super::Layer) -> Result<PathBuf> {
        self.snapshot(chain_id, &layer.diff_id, &layer.descriptor())
    }

    fn snapshot(&self, chain_id: &Digest, diff_id: &Digest, layer: &Descriptor) -> Result<PathBuf> {
        let target = self.snapshot_path(chain_id)?;
        {
            let _gc = self.lock_gc(LockMode::Shared)?;
            if target.is_dir() {
                self.lease(chain_id)?;
                return Ok(target);
            }
        }
        let work = self.work_dir("snapshot-")?;
        let dir = work.path();
        self.extract_into(dir, diff_id, layer)?;
        let _gc = self.lock_gc(LockMode::Shared)?;
        self.lease(chain_id)?;
        match fs::rename(dir, &target) {
            Ok(()) => sync_parent(&target)?,
            // Another process extracted it meanwhile: theirs is as good as ours (the work
            // directory goes on drop).
            Err(_) if target.is_dir() => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: target,
                    source,
                });
            }
        }
        Ok(target)
    }

    /// Extracts a layer blob with overlay whiteouts, checks its DiffID and makes it durable.
    fn extract_into(
        &self,
        dir: &std::path::Path,
        diff_id: &Digest,
        layer: &Descriptor,
    ) -> Result<()> {
        let root = nix::unistd::geteuid().is_root();
        let options = ExtractOptions {
            whiteouts: WhiteoutHandling::Overlay(if root {
                OverlayXattrs::Trusted
            } else {
                OverlayXattrs::User
            }),
            restore_owners: root,
        };
        let blob = self.open_blob(layer.digest())?;
        let summary = extract_layer(io::BufReader::with_capacity(1 << 20, blob), dir, &options)?;
        if summary.diff_id != *diff_id {
            return Err(StoreError::DigestMismatch {
                expected: diff_id.clone(),
                actual: summary.diff_id,
            });
        }
        let handle = File::open(dir).at(dir)?;
        nix::unistd::syncfs(&handle).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })
    }
}
