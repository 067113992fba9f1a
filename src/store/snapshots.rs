//! Unpacked layers under snapshots/<ChainID>: each is one layer's own files with overlay
//! whiteouts, extracted once (into tmp/, synced, renamed) and shared by every image and
//! container whose layers below are the same.

use super::images::Image;
use super::lock::{FileLock, LockMode, same_file};
use super::{IoContext, Result, Store, StoreError, sha256_hex, sync_parent};
use crate::snapshot::{
    ExtractOptions, OverlayXattrs, WhiteoutHandling, extract_layer, remove_tree,
};
use oci_spec::image::{Descriptor, Digest};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
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

    fn snapshot(&self, chain_id: &Digest, diff_id: &Digest, layer: &Descriptor) -> Result<PathBuf> {
        let target = self.snapshot_path(chain_id)?;
        {
            let _gc = self.lock_gc(LockMode::Shared)?;
            if target.is_dir() {
                self.lease(chain_id)?;
                return Ok(target);
            }
        }
        let (dir, _lock) = self.locked_tmp_dir()?;
        let extracted = self.extract_into(&dir, diff_id, layer);
        if let Err(e) = extracted {
            let _ = remove_tree(&dir);
            return Err(e);
        }
        let _gc = self.lock_gc(LockMode::Shared)?;
        self.lease(chain_id)?;
        match fs::rename(&dir, &target) {
            Ok(()) => sync_parent(&target)?,
            // Another process extracted it meanwhile: theirs is as good as ours.
            Err(_) if target.is_dir() => remove_tree(&dir)?,
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

    /// A new directory in tmp/, mode 0755 (it becomes the root directory of a layer), held
    /// locked so a collector leaves it alone.
    fn locked_tmp_dir(&self) -> Result<(PathBuf, FileLock)> {
        let tmp = self.tmp_dir();
        loop {
            let dir = tempfile::Builder::new()
                .prefix("snapshot-")
                .tempdir_in(&tmp)
                .at(&tmp)?
                .keep();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).at(&dir)?;
            let handle = File::open(&dir).at(&dir)?;
            let lock =
                FileLock::from_file(handle.try_clone().at(&dir)?, &dir, LockMode::Exclusive)?;
            if same_file(&handle, &dir)? {
                return Ok((dir, lock));
            }
        }
    }
}
