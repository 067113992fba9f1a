//! Garbage collection: removes exactly the blobs, snapshots and temporary files that nothing
//! references. Roots are index.json (named and dangling images), pins, and the leases of
//! live processes; abandoned temporary files are those nobody holds locked.

use super::blob::PARTIAL_PREFIX;
use super::images::FormKind;
use super::lock::{FileLock, LockMode};
use super::refs::ref_name;
use super::{IoContext, Result, Store, StoreError, digest_named};
use crate::image::{ImageConfig, chain_ids};
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<Digest>,
    pub temporary_files: usize,
    /// Bytes freed (blob sizes, snapshot and temporary file sizes).
    pub reclaimed: u64,
}

/// What the store's images reference.
#[derive(Debug, Default)]
pub(crate) struct Reachable {
    pub blobs: HashSet<Digest>,
    pub chain_ids: HashSet<Digest>,
}

impl Store {
    /// Removes everything unreferenced. Waits for concurrent commits in other processes.
    pub fn collect_garbage(&self) -> Result<GcReport> {
        let _index = self.lock_index()?;
        let _gc = self.lock_gc(LockMode::Exclusive)?;
        let mut keep = self.reachable()?;
        self.add_live_leases(&mut keep)?;
        let stacks = self.keep_stack_lowers(&mut keep)?;
        let mut report = GcReport::default();

        let blobs_dir = self.root().join("blobs/sha256");
        for (digest, path) in digest_entries(&blobs_dir)? {
            if keep.blobs.contains(&digest) {
                continue;
            }
            report.reclaimed += fs::symlink_metadata(&path).map_or(0, |m| m.len());
            fs::remove_file(&path).at(&path)?;
            report.blobs.push(digest);
        }
        self.remove_stale_layer_forms(&keep)?;
        let snapshots = digest_entries(&self.root().join("snapshots"))?;
        for (chain_id, path) in snapshots.into_iter().chain(stacks) {
            if keep.chain_ids.contains(&chain_id) {
                continue;
            }
            report.reclaimed += tree_size(&path);
            remove_any(&path)?;
            report.snapshots.push(chain_id);
        }
        let (count, bytes) = self.remove_stale_temporaries()?;
        report.temporary_files += count;
        report.reclaimed += bytes;
        Ok(report)
    }

    /// Keeps the snapshot under each kept stacked one, down to a whole one. Returns the
    /// stacked snapshots.
    fn keep_stack_lowers(&self, keep: &mut Reachable) -> Result<Vec<(Digest, std::path::PathBuf)>> {
        let stacks = digest_entries(&self.root().join("stacks"))?;
        let lowers: HashMap<&Digest, Digest> = stacks
            .iter()
            .filter_map(|(chain_id, path)| {
                let text = fs::read_to_string(path.join("lower")).ok()?;
                Some((chain_id, Digest::from_str(text.trim()).ok()?))
            })
            .collect();
        let mut pending: Vec<Digest> = keep.chain_ids.iter().cloned().collect();
        while let Some(chain_id) = pending.pop() {
            if let Some(lower) = lowers.get(&chain_id)
                && keep.chain_ids.insert(lower.clone())
            {
                pending.push(lower.clone());
            }
        }
        Ok(stacks)
    }

    /// Drops the records of a layer's compressed forms once neither the layer's plain blob
    /// nor any blob they name is kept (forms on registries only matter beside a plain blob).
    fn remove_stale_layer_forms(&self, keep: &Reachable) -> Result<()> {
        for kind in FormKind::ALL {
            let dir = self.root().join(kind.dir());
            for (diff_id, path) in digest_entries(&dir)? {
                let named = self.layer_forms(kind, &diff_id).unwrap_or_default();
                let used = keep.blobs.contains(&diff_id)
                    || named.iter().any(|form| keep.blobs.contains(form.digest()));
                if !used {
                    fs::remove_file(&path).at(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Removes what processes that ended (or were killed) left in tmp/: entries no live
    /// process holds locked, except partial downloads younger than [`PARTIAL_KEPT_FOR`]
    /// (the next pull resumes them). Returns how many, and their size.
    pub fn remove_stale_temporaries(&self) -> Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).at(&tmp)? {
            let entry = entry.at(&tmp)?;
            let path = entry.path();
            if is_resumable_partial(&entry) {
                continue;
            }
            // Held locked by a live writer: not ours to remove.
            let Some(_held) = FileLock::try_exclusive(&path)? else {
                continue;
            };
            bytes += tree_size(&path);
            remove_any(&path)?;
            count += 1;
        }
        Ok((count, bytes))
    }

    /// Blobs and snapshots reachable from index.json. Missing or unreadable blobs are
    /// skipped here (fsck reports them).
    pub(crate) fn reachable(&self) -> Result<Reachable> {
        let mut reachable = Reachable::default();
        let index = self.index()?;
        let mut pending: Vec<Digest> = index
            .manifests()
            .iter()
            .map(|d| d.digest().clone())
            .collect();
        pending.extend(self.pins()?.into_values().flatten());
        for digest in self.cached_digests()? {
            // A cached layer may be held in a pulled compressed blob (`--cache-from`).
            for kind in FormKind::ALL {
                let forms = self.layer_forms(kind, &digest).unwrap_or_default();
                reachable
                    .blobs
                    .extend(forms.iter().map(|form| form.digest().clone()));
            }
            reachable.chain_ids.insert(digest.clone());
            reachable.blobs.insert(digest);
        }
        while let Some(digest) = pending.pop() {
            if !reachable.blobs.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue;
            };
            if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes) {
                let config = manifest.config().digest().clone();
                if let Ok(config_bytes) = self.read_blob(&config)
                    && let Ok(parsed) = ImageConfig::from_slice(&config_bytes)
                {
                    reachable
                        .chain_ids
                        .extend(chain_ids(&parsed.rootfs.diff_ids));
                    // A pulled layer's blob digest is not its DiffID; a plain blob of the
                    // same layer (built or loaded) is kept too.
                    reachable
                        .blobs
                        .extend(parsed.rootfs.diff_ids.iter().cloned());
                }
                reachable.blobs.insert(config);
                reachable
                    .blobs
                    .extend(manifest.layers().iter().map(|l| l.digest().clone()));
            } else if let Ok(nested) = serde_json::from_slice::<ImageIndex>(&bytes) {
                pending.extend(nested.manifests().iter().map(|d| d.digest().clone()));
            }
        }
        Ok(reachable)
    }

    /// Adds what live processes listed in their leases.
    fn add_live_leases(&self, keep: &mut Reachable) -> Result<()> {
        let leased = self.live_leases()?;
        keep.chain_ids.extend(leased.iter().cloned());
        keep.blobs.extend(leased);
        Ok(())
    }

    /// Everything the leases of live processes name; removes the leases of dead processes.
    pub(crate) fn live_leases(&self) -> Result<HashSet<Digest>> {
        let mut leased = HashSet::new();
        let dir = self.root().join("leases");
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let file = match fs::File::open(&path) {
                Ok(file) => file,
                // Its process ended (and removed it) meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            if let Some(_stale) = FileLock::try_exclusive(&path)? {
                remove_any(&path)?;
                continue;
            }
            for line in BufReader::new(file).lines() {
                if let Ok(digest) = Digest::from_str(line.at(&path)?.trim()) {
                    leased.insert(digest);
                }
            }
        }
        Ok(leased)
    }

    /// Removes dangling images (every image with `all`), except pinned ones and those a
    /// running process is still making (its lease names the manifest). Blobs stay until
    /// [`Store::collect_garbage`]. Returns the removed images with the names they had.
    pub fn prune_images(&self, all: bool) -> Result<Vec<PrunedImage>> {
        let mut leased = self.live_leases()?;
        leased.extend(self.pins()?.into_values().flatten());
        let mut removed: Vec<(Descriptor, Vec<String>)> = Vec::new();
        self.update_index(|entries| {
            let mut names: HashMap<Digest, Vec<String>> = HashMap::new();
            for entry in entries.iter() {
                let list = names.entry(entry.digest().clone()).or_default();
                list.extend(ref_name(entry).map(str::to_string));
            }
            entries.retain(|entry| {
                let entry_names = names.get(entry.digest()).cloned().unwrap_or_default();
                let prune = (all || entry_names.is_empty()) && !leased.contains(entry.digest());
                if prune && !removed.iter().any(|(d, _)| d.digest() == entry.digest()) {
                    removed.push((entry.clone(), entry_names));
                }
                !prune
            });
        })?;
        Ok(removed
            .into_iter()
            .map(|(manifest, names)| PrunedImage {
                id: self.load_image(&manifest).ok().map(|i| i.id().clone()),
                names,
            })
            .collect())
    }
}

/// An image [`Store::prune_images`] removed.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunedImage {
    /// The image ID (config digest), when the manifest was still readable.
    pub id: Option<Digest>,
    pub names: Vec<String>,
}

/// The entries of a directory named by sha256 hex; others are left alone.
fn digest_entries(dir: &Path) -> Result<Vec<(Digest, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if let Some(digest) = digest_named(&path) {
            out.push((digest, path));
        }
    }
    Ok(out)
}

/// Apparent size of a file or directory tree.
pub(crate) fn tree_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

/// Removes a file or a directory tree of any depth.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(crate::snapshot::remove_tree(path)?),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// How long an interrupted download stays resumable in tmp/.
const PARTIAL_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A partial download ([`Store::resume_blob_writer`]) written to within [`PARTIAL_KEPT_FOR`].
fn is_resumable_partial(entry: &fs::DirEntry) -> bool {
    entry
        .file_name()
        .to_string_lossy()
        .starts_with(PARTIAL_PREFIX)
        && entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age < PARTIAL_KEPT_FOR))
}
