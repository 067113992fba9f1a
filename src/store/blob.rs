//! Writing blobs: hashed while written into tmp/, fsynced, checked, renamed into blobs/.

use super::direct::BlobFile;
use super::lock::{FileLock, LockMode, same_file};
use super::{IoContext, Result, Store, StoreError, sha256_hex, sync_parent};
use crate::image::digest_from_hash;
use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const WRITE_BUFFER: usize = 1 << 20;
/// Names of resumable partial downloads in tmp/, followed by the hex of the blob's digest.
pub(super) const PARTIAL_PREFIX: &str = "partial-sha256-";

/// A blob that reached `blobs/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedBlob {
    pub digest: Digest,
    pub size: u64,
}

/// Writes one blob. Bytes are hashed as they are written into a file in tmp/; [`commit`]
/// fsyncs, checks the expected digest and renames the file to its digest name. Dropped
/// without commit, a fresh writer removes its file; a resumed one keeps it for next time.
///
/// [`commit`]: BlobWriter::commit
pub struct BlobWriter {
    store: Store,
    out: BlobFile,
    /// Held on a duplicate descriptor while writing, so collectors and other resumers wait.
    _lock: FileLock,
    tmp_path: PathBuf,
    hasher: Sha256,
    size: u64,
    expected: Option<Digest>,
    keep_on_drop: bool,
    done: bool,
    /// Off for a layer whose writer hashes it already ([`Store::layer_writer`]): its digest
    /// is given at commit, computed over the same bytes.
    hashing: bool,
}

impl BlobWriter {
    pub(super) fn create(store: Store, expected: Option<Digest>) -> Result<BlobWriter> {
        if let Some(expected) = &expected {
            sha256_hex(expected)?;
        }
        let (lock, file, tmp_path) = FileLock::create_locked(&store.tmp_dir(), "blob-")?;
        Ok(BlobWriter {
            store,
            out: BlobFile::new(file, true),
            _lock: lock,
            tmp_path,
            hasher: Sha256::new(),
            size: 0,
            expected,
            keep_on_drop: false,
            done: false,
            hashing: true,
        })
    }

    pub(super) fn resume(store: Store, expected: Digest) -> Result<BlobWriter> {
        let tmp_path = store
            .tmp_dir()
            .join(format!("{PARTIAL_PREFIX}{}", sha256_hex(&expected)?));
        // Lock, then check the name still leads to the locked file: the previous holder
        // may have committed (renamed) it while we waited.
        let (file, lock) = loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&tmp_path)
                .at(&tmp_path)?;
            let lock = FileLock::from_file(
                file.try_clone().at(&tmp_path)?,
                &tmp_path,
                LockMode::Exclusive,
            )?;
            if same_file(&file, &tmp_path)? {
                break (file, lock);
            }
        };
        let mut hasher = Sha256::new();
        let size = hash_file(&file, &mut hasher).at(&tmp_path)?;
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::End(0)).at(&tmp_path)?;
        Ok(BlobWriter {
            store,
            // Resumed at the end of what an earlier attempt wrote: direct I/O when that
            // is block-aligned (a new download, or one cut after a whole chunk).
            out: BlobFile::new(file, BlobFile::is_aligned(size)),
            _lock: lock,
            tmp_path,
            hasher,
            size,
            expected: Some(expected),
            keep_on_drop: true,
            done: false,
            hashing: true,
        })
    }

    /// Bytes written so far, including those of an earlier attempt this writer resumed.
    pub fn offset(&self) -> u64 {
        self.size
    }

    pub(super) fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// sha256 of every byte written so far, including a resumed prefix.
    pub fn digest_so_far(&self) -> Digest {
        digest_from_hash(&self.hasher.clone().finalize())
    }

    /// Removes the file, resumable or not (its bytes are known bad, or no longer needed).
    pub fn discard(mut self) -> Result<()> {
        self.done = true;
        fs::remove_file(&self.tmp_path).at(&self.tmp_path)
    }

    /// Makes the blob durable under its digest name and returns the digest and size.
    pub fn commit(self) -> Result<CommittedBlob> {
        let blob = self.finish_synced()?;
        let store = blob._writer.store.clone();
        if let Err(e) = store.commit_file(&blob.tmp_path, &blob.digest) {
            let _ = fs::remove_file(&blob.tmp_path);
            return Err(e);
        }
        Ok(CommittedBlob {
            digest: blob.digest,
            size: blob.size,
        })
    }

    /// A writer that does not hash: for layers written by [`crate::snapshot::write_layer`],
    /// which hashes them already; the digest is given with [`BlobWriter::known_digest`].
    pub(super) fn without_hashing(mut self) -> BlobWriter {
        self.hashing = false;
        self
    }

    /// The digest of what was written, computed by the producer.
    pub(super) fn known_digest(mut self, digest: &Digest) -> BlobWriter {
        self.expected = Some(digest.clone());
        self
    }

    /// Flushes, fdatasyncs and checks the digest, leaving the file in tmp/ (locked while the
    /// result lives) for the caller to rename. On failure the file is removed.
    pub(super) fn finish_synced(mut self) -> Result<SyncedBlob> {
        self.done = true;
        match self.sync_and_check() {
            Ok(digest) => Ok(SyncedBlob {
                digest,
                size: self.size,
                tmp_path: self.tmp_path.clone(),
                _writer: self,
            }),
            Err(e) => {
                let _ = fs::remove_file(&self.tmp_path);
                Err(e)
            }
        }
    }

    fn sync_and_check(&mut self) -> Result<Digest> {
        self.out.flush().at(&self.tmp_path)?;
        self.out.file().sync_data().at(&self.tmp_path)?;
        if !self.hashing {
            return self.expected.clone().ok_or_else(|| {
                StoreError::Invalid("a layer writer was committed without its digest".into())
            });
        }
        let hash = std::mem::take(&mut self.hasher).finalize();
        let digest = digest_from_hash(&hash);
        match &self.expected {
            Some(expected) if *expected != digest => Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            }),
            _ => Ok(digest),
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if self.hashing {
            self.hasher.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.keep_on_drop {
            let _ = self.out.flush();
        } else {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// A blob written, durable and checked, not yet under its digest name.
pub(super) struct SyncedBlob {
    pub digest: Digest,
    pub size: u64,
    pub tmp_path: PathBuf,
    /// Keeps the tmp file locked until it is renamed.
    _writer: BlobWriter,
}

impl Store {
    /// Moves a complete, fsynced file from tmp/ to its digest name (or drops it when the
    /// blob is already there), recording it in this process's lease first.
    pub(super) fn commit_file(&self, tmp_path: &Path, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest)?;
        let _gc = self.lock_gc(LockMode::Shared)?;
        self.lease(digest)?;
        if target.exists() {
            fs::remove_file(tmp_path).at(tmp_path)?;
            return Ok(());
        }
        fs::rename(tmp_path, &target).at(&target)?;
        sync_parent(&target)
    }
}

/// Hashes a file from its start; returns its length.
fn hash_file(mut file: &File, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; WRITE_BUFFER];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Reads to the end, then returns the digest and size of everything read.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((digest_from_hash(&self.hasher.finalize()), self.size))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}
