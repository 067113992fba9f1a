//! What the build engine keeps in the store: cache records (a step's cache key → the layer it
//! made), the last key seen at each step position (to explain a cache miss), cache mounts, and
//! work directories that become snapshots.
//!
//! ```text
//! cache/records/<key-hex>.json       a CacheRecord
//! cache/sources/<key-hex>.json       its sources' content hashes, entry by entry
//! cache/positions/<position-hex>     the key a step position had last time
//! cache/mounts/<id-hex>/             RUN --mount=type=cache directories
//! ```
//! Garbage collection keeps the layers and snapshots cache records name, as BuildKit keeps its
//! build cache until it is pruned ([`Store::clear_build_cache`]).

use super::lock::{FileLock, LockMode, same_file};
use super::{IoContext, Result, Store, StoreError, sha256_hex};
use crate::snapshot::remove_tree;
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The outcome of one build step, found again by its cache key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step made; `None` when it changed nothing.
    pub diff_id: Option<Digest>,
    pub size: u64,
    /// The ChainID of the file system after the step.
    pub chain_id: Option<Digest>,
    /// When the step ran (RFC 3339): a rebuild from the cache keeps the image's times, so
    /// it gives the same image ID.
    #[serde(default)]
    pub created: Option<String>,
    /// What went into the key, kept to explain a later miss: left unparsed until then (with a
    /// large context it is most of the record, and a hit does not read it).
    pub inputs: Box<serde_json::value::RawValue>,
    /// Whether the next result of the step may copy this layer's entries one by one
    /// ([`crate::snapshot::LayerDigest::mergeable`]).
    #[serde(default)]
    pub mergeable: bool,
}

/// A directory under tmp/, held locked so a collector leaves it alone, removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    _lock: FileLock,
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = remove_tree(&self.path);
    }
}

/// Held while a `sharing=locked` cache mount is in use.
#[derive(Debug)]
pub struct CacheMountLock {
    _lock: FileLock,
}

fn hex_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Store {
    fn cache_dir(&self, kind: &str) -> Result<PathBuf> {
        let dir = self.root().join("cache").join(kind);
        fs::create_dir_all(&dir).at(&dir)?;
        Ok(dir)
    }

    /// The cache record of `key`, if one was written.
    pub fn cache_record(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        let path = self
            .cache_dir("records")?
            .join(format!("{}.json", sha256_hex(key)?));
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes the cache record of `key` (atomically: a reader sees the old or the new one).
    pub fn put_cache_record(&self, key: &Digest, record: &CacheRecord) -> Result<()> {
        let path = self
            .cache_dir("records")?
            .join(format!("{}.json", sha256_hex(key)?));
        let bytes = serde_json::to_vec(record)
            .map_err(|e| StoreError::Invalid(format!("cache record: {e}")))?;
        self.write_cache_file(&path, &bytes)
    }

    /// The content hashes of the sources of the step of `key`, entry by entry, as written by
    /// [`Store::put_cache_sources`]: to explain a later miss, and to start the next result of
    /// a COPY from this one. Kept apart from the record, which a cache hit reads, because a
    /// large context makes them megabytes.
    pub fn cache_sources(&self, key: &Digest) -> Result<Option<String>> {
        let path = self.cache_sources_path(key)?;
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes what [`Store::cache_sources`] reads; before the record, so that a record found
    /// has its sources.
    pub fn put_cache_sources(&self, key: &Digest, sources: &str) -> Result<()> {
        let path = self.cache_sources_path(key)?;
        self.write_cache_file(&path, sources.as_bytes())
    }

    fn cache_sources_path(&self, key: &Digest) -> Result<PathBuf> {
        Ok(self
            .cache_dir("sources")?
            .join(format!("{}.json", sha256_hex(key)?)))
    }

    /// Writes by rename but without fsync: a cache file lost or cut short by a crash reads as
    /// absent (a miss), never as a wrong answer, and a build writes several per step.
    fn write_cache_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        // Beside the target, not in tmp/, where other builds remove unlocked files.
        let dir = path.parent().unwrap_or(path);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
        std::io::Write::write_all(&mut tmp, bytes).at(tmp.path())?;
        tmp.persist(path).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The key a step position (any stable text naming it) had at its last build.
    pub fn last_key_at(&self, position: &str) -> Result<Option<Digest>> {
        let path = self.cache_dir("positions")?.join(hex_of(position));
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn set_last_key_at(&self, position: &str, key: &Digest) -> Result<()> {
        let path = self.cache_dir("positions")?.join(hex_of(position));
        self.write_cache_file(&path, key.to_string().as_bytes())
    }

    /// The directory of cache mount `id`, created on first use with `mode`, `uid` and `gid`,
    /// or as `seed` (a directory on the store's filesystem, moved in) when given.
    pub fn cache_mount_dir(
        &self,
        id: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        seed: Option<&Path>,
    ) -> Result<PathBuf> {
        let path = self.cache_mount_path(id)?;
        if !path.is_dir() {
            let work = self.work_dir("mount-")?;
            let dir = match seed {
                // A seeded cache starts as the seed: its tree, modes and owners.
                Some(seed) => seed.to_path_buf(),
                None => {
                    let dir = work.path().join("d");
                    fs::create_dir(&dir).at(&dir)?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).at(&dir)?;
                    nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into())).map_err(|e| {
                        StoreError::Io {
                            path: dir.clone(),
                            source: e.into(),
                        }
                    })?;
                    dir
                }
            };
            // Another build may have made it meanwhile; either is as good.
            if fs::rename(&dir, &path).is_err() && !path.is_dir() {
                return Err(StoreError::Invalid(format!(
                    "cannot create cache mount directory {}",
                    path.display()
                )));
            }
        }
        Ok(path)
    }

    /// Where cache mount `id` lives (whether or not it exists yet).
    pub fn cache_mount_path(&self, id: &str) -> Result<PathBuf> {
        Ok(self.cache_dir("mounts")?.join(hex_of(id)))
    }

    /// A lock file serialising users of cache mount `id` (`sharing=locked`).
    pub fn lock_cache_mount(&self, id: &str) -> Result<CacheMountLock> {
        let path = self
            .cache_dir("mounts")?
            .join(format!("{}.lock", hex_of(id)));
        FileLock::acquire(&path, LockMode::Exclusive).map(|lock| CacheMountLock { _lock: lock })
    }

    /// The lock of cache mount `id` when no other build holds it (`sharing=private`).
    pub fn try_lock_cache_mount(&self, id: &str) -> Result<Option<CacheMountLock>> {
        let path = self
            .cache_dir("mounts")?
            .join(format!("{}.lock", hex_of(id)));
        // The first user of the mount makes its lock file.
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        Ok(FileLock::try_exclusive(&path)?.map(|lock| CacheMountLock { _lock: lock }))
    }

    /// Forgets every cache record and cache mount (`system prune`); layers only they used go
    /// at the next collection.
    pub fn clear_build_cache(&self) -> Result<()> {
        let dir = self.root().join("cache");
        if dir.exists() {
            let _gc = self.lock_gc(LockMode::Exclusive)?;
            remove_tree(&dir).map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Layers and snapshots the cache records name, for garbage collection.
    pub(crate) fn cached_digests(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("cache/records");
        let mut digests = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(digests);
        };
        for entry in entries {
            let path = entry.at(&dir)?.path();
            let Ok(bytes) = fs::read(&path) else { continue };
            if let Ok(record) = serde_json::from_slice::<CacheRecord>(&bytes) {
                digests.extend(record.diff_id);
                digests.extend(record.chain_id);
            }
        }
        Ok(digests)
    }

    /// A new empty directory under tmp/, held locked while the value lives and removed on drop.
    pub fn work_dir(&self, prefix: &str) -> Result<WorkDir> {
        let tmp = self.tmp_dir();
        loop {
            let dir = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(&tmp)
                .at(&tmp)?
                .keep();
            // A collector may remove it before it is locked: then make another.
            let handle = match File::open(&dir) {
                Ok(handle) => handle,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path: dir, source }),
            };
            let lock =
                FileLock::from_file(handle.try_clone().at(&dir)?, &dir, LockMode::Exclusive)?;
            if same_file(&handle, &dir)? {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).at(&dir)?;
                return Ok(WorkDir {
                    path: dir,
                    _lock: lock,
                });
            }
        }
    }

    /// Commits one build step's layer and its snapshot with one fdatasync (of the blob) and
    /// no directory fsync, which would dominate a small build: the blob is durable before it
    /// takes its digest name, as every blob; a rename lost in a power cut leaves it in tmp/
    /// (collected later, and the step's cache record then misses). The snapshot `dir` (the
    /// step's upper dir) is derived data renamed as it is, as Docker's overlay2 keeps layers:
    /// a process killed at any point leaves it complete (the page cache outlives the process).
    /// With `lower`, `dir` holds only what changed over that ChainID's snapshot, and is
    /// stacked on it. Returns the blob and the snapshot's directories, lowest first.
    pub fn commit_step(
        &self,
        writer: super::BlobWriter,
        diff_id: &Digest,
        chain_id: &Digest,
        dir: &Path,
        lower: Option<&Digest>,
    ) -> Result<(super::CommittedBlob, Vec<PathBuf>)> {
        let blob = self.commit_step_blob(writer, diff_id, chain_id)?;
        Ok((blob, self.commit_step_snapshot(chain_id, dir, lower)?))
    }

    /// The blob half of [`Store::commit_step`]: the layer is in the store (and leased, with
    /// its ChainID) once this returns, its snapshot may follow later.
    pub fn commit_step_blob(
        &self,
        writer: super::BlobWriter,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<super::CommittedBlob> {
        let blob = writer.known_digest(diff_id).finish_synced()?;
        let target = self.blob_path(&blob.digest)?;
        let _gc = self.lock_gc(LockMode::Shared)?;
        self.lease(&blob.digest)?;
        self.lease(chain_id)?;
        if target.exists() {
            fs::remove_file(&blob.tmp_path).at(&blob.tmp_path)?;
        } else {
            fs::rename(&blob.tmp_path, &target).at(&target)?;
        }
        Ok(super::CommittedBlob {
            digest: blob.digest,
            size: blob.size,
        })
    }

    /// The snapshot half of [`Store::commit_step`]: `dir` becomes the snapshot of `chain_id`
    /// (stacked on `lower`'s when given) unless it has one already. Returns its directories.
    pub fn commit_step_snapshot(
        &self,
        chain_id: &Digest,
        dir: &Path,
        lower: Option<&Digest>,
    ) -> Result<Vec<PathBuf>> {
        let stack = match lower {
            Some(lower) => Some(self.stack_of(dir, lower)?),
            None => None,
        };
        {
            let _gc = self.lock_gc(LockMode::Shared)?;
            self.lease(chain_id)?;
            let (from, to) = match &stack {
                Some(stack) => (stack.path(), self.stack_path(chain_id)?),
                None => (dir, self.snapshot_path(chain_id)?),
            };
            let made =
                self.snapshot_path(chain_id)?.is_dir() || self.stack_path(chain_id)?.is_dir();
            if !made {
                match fs::rename(from, &to) {
                    Ok(()) => {}
                    // Another build made it meanwhile: theirs is as good.
                    Err(_) if to.is_dir() => {}
                    Err(source) => return Err(StoreError::Io { path: to, source }),
                }
            }
        }
        self.snapshot_dirs(chain_id)?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "the snapshot of {chain_id} vanished as it was made"
            ))
        })
    }

    /// A stacked snapshot in tmp/, ready to take its ChainID's name: `upper` (moved from
    /// `dir`) and `lower`.
    fn stack_of(&self, dir: &Path, lower: &Digest) -> Result<WorkDir> {
        let stack = self.work_dir("stack-")?;
        let lower_path = stack.path().join("lower");
        fs::write(&lower_path, format!("{lower}\n")).at(&lower_path)?;
        let upper = stack.path().join("upper");
        fs::rename(dir, &upper).at(&upper)?;
        Ok(stack)
    }
}
