//! The local store: an OCI image layout with blobs, refs, cache records, locks and garbage collection.
//!
//! Layout under the root (itself a valid OCI image layout, so skopeo and umoci read it):
//! ```text
//! oci-layout  index.json  blobs/sha256/<hex>     the OCI layout; layers built or imported
//!                                                stored as plain tars, pulled ones as sent
//! compressed/sha256/<diffid-hex>                 compressed forms known to hold a layer
//! claimed/sha256/<diffid-hex>                    pulled blobs a config says hold it (unchecked)
//! snapshots/<chainid-hex>/                       unpacked layers, extracted once
//! stacks/<chainid-hex>/upper/  …/lower           a layer as what changed (upper/) over the
//!                                                snapshot of the ChainID in `lower`
//! tmp/                                           blobs being written (fsynced, checked, renamed)
//! locks/index  locks/gc                          flock(2) locks shared by rbuild processes
//! leases/<pid>-<n>                               what running processes wrote but not yet tagged
//! pins/<name>                                    manifests containers and build cache need
//! repo-digests.json                              `repo@sha256:…` as on a registry → stored manifest
//! containers/<id>                                locked by each running container's process
//! ```
//! Every blob reaches `blobs/` by rename after fsync and a digest check, so a crash never
//! leaves a wrong blob under a digest name. A process holds its lease file locked while it
//! lives; garbage collection keeps everything a live lease names.

mod archive;
mod blob;
mod buildcache;
mod direct;
mod fsck;
mod gc;
mod images;
mod lock;
mod pins;
mod refs;
mod repo_digests;
mod snapshots;

pub use archive::{ArchiveFormat, ImportOptions, LoadReport, SaveItem};
pub use blob::{BlobWriter, CommittedBlob};
pub use buildcache::{CacheMountLock, CacheRecord, WorkDir};
pub use fsck::FsckReport;
pub use gc::{GcReport, PrunedImage};
pub use images::layer_compression;
pub use images::{Image, Layer};
pub use pins::ContainerPin;
pub use refs::ImageEntry;
pub use snapshots::MAX_STACK;

use crate::image::ImageError;
use lock::{FileLock, LockMode};
use oci_spec::image::{Digest, DigestAlgorithm};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(
        "layer {} refused: its tar hashes to {}, but the image config's DiffID is {}",
        .0.blob, .0.actual, .0.expected
    )]
    DiffIdMismatch(Box<LayerMismatch>),
    #[error("unsupported digest algorithm in {0} (only sha256 is stored)")]
    UnsupportedDigest(Digest),
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    #[error("No such image: {0}")]
    ImageNotFound(String),
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// A layer blob whose tar is not the DiffID its image's config names.
#[derive(Debug)]
pub struct LayerMismatch {
    pub blob: Digest,
    pub expected: Digest,
    pub actual: Digest,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &[u8] = br#"{"manifests":[],"schemaVersion":2}"#;

/// A handle on the store at a root directory. Cheap to clone; usable from many threads.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Created on the first write: lists what this process added, so a concurrent garbage
    /// collection in another process keeps it until this process ends.
    lease: Mutex<Option<Lease>>,
}

#[derive(Debug)]
struct Lease {
    path: PathBuf,
    file: FileLock,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(Some(lease)) = self.lease.get_mut().map(Option::take) {
            // Unlink before unlocking so a collector never reads a released, half-removed lease.
            let _ = fs::remove_file(&lease.path);
            drop(lease.file);
        }
    }
}

/// The sha256 digest a file of the store is named by (blobs, snapshots and layer forms are
/// named by their hex), if its name is one.
fn digest_named(path: &Path) -> Option<Digest> {
    let name = path.file_name()?.to_str()?;
    format!("sha256:{name}").parse().ok()
}

nix::ioctl_read!(get_inode_flags, b'f', 1, libc::c_long);
nix::ioctl_write_ptr!(set_inode_flags, b'f', 2, libc::c_long);

/// ext4's "top of directory hierarchies" inode flag (`chattr +T`).
const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;

/// Marks `dir` as a top directory (`chattr +T`), so that ext4 places each tree made in it
/// (a snapshot, a work directory) in a block group of its own choosing, as it does for home
/// directories, rather than next to its parent. Without a journal, ext4 makes every new inode
/// skip each inode its group freed in the last minutes (`recently_deleted`); a snapshot made
/// where another was just removed then costs time quadratic in their sizes (a 1 GiB import
/// spent 2.3 s of system time on it, 0.75 s once spread). Advice only: other filesystems
/// refuse the flag and lose nothing.
fn spread_subtrees(dir: &Path) {
    let Ok(handle) = File::open(dir) else {
        return;
    };
    let fd = handle.as_raw_fd();
    let mut flags: libc::c_long = 0;
    // SAFETY: both ioctls read or write one c_long at the pointer given, which outlives them.
    unsafe {
        if get_inode_flags(fd, &mut flags).is_ok() && flags & FS_TOPDIR_FL == 0 {
            let _ = set_inode_flags(fd, &(flags | FS_TOPDIR_FL));
        }
    }
}

impl Store {
    /// Opens the store at `root`, creating the layout when it is missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        // Absolute, so paths handed to mounts and other processes stay valid.
        let root = std::path::absolute(root.into()).map_err(|source| StoreError::Io {
            path: PathBuf::from("."),
            source,
        })?;
        for dir in [
            root.join("blobs/sha256"),
            root.join("compressed/sha256"),
            root.join("claimed/sha256"),
            root.join("snapshots"),
            root.join("stacks"),
            root.join("tmp"),
            root.join("locks"),
            root.join("leases"),
            root.join("pins"),
            root.join("containers"),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        for dir in ["snapshots", "tmp"] {
            spread_subtrees(&root.join(dir));
        }
        let store = Store {
            inner: Arc::new(Inner {
                root,
                lease: Mutex::new(None),
            }),
        };
        let layout = store.root().join("oci-layout");
        let index = store.root().join("index.json");
        if !layout.exists() || !index.exists() {
            // Under the index lock: a collector removes unlocked files from tmp/.
            let _guard = store.lock_index()?;
            if !layout.exists() {
                store.write_atomic(&layout, OCI_LAYOUT)?;
            }
            if !index.exists() {
                store.write_atomic(&index, EMPTY_INDEX)?;
            }
        }
        Ok(store)
    }

    /// The default root: `/var/lib/rbuild` for root, else `$XDG_DATA_HOME/rbuild`
    /// (`~/.local/share/rbuild`).
    pub fn default_root() -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/rbuild");
        }
        let data_home = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data_home.join("rbuild")
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        Ok(self.root().join("blobs/sha256").join(sha256_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(digest.clone()),
            _ => StoreError::Io { path, source },
        })
    }

    /// Reads a whole (small) blob: a manifest, a config, an index.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(digest.clone()),
            _ => StoreError::Io { path, source },
        })
    }

    /// Size of a stored blob in bytes.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest)?;
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.clone()))
            }
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// A writer for a new blob; `expected` is checked on commit.
    pub fn blob_writer(&self, expected: Option<&Digest>) -> Result<BlobWriter> {
        BlobWriter::create(self.clone(), expected.cloned())
    }

    /// A writer for a build step's layer, whose tar writer computes the DiffID (so the bytes
    /// are not hashed twice); commit it with [`Store::commit_step`].
    pub fn layer_writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter::create(self.clone(), None)?.without_hashing())
    }

    /// A writer that continues a partial download of `expected` left by an earlier attempt
    /// (by this or another process); [`BlobWriter::offset`] says how many bytes it already
    /// holds, so the caller asks for the rest (an HTTP Range request). The partial data
    /// survives a drop without commit, and is discarded when the digest does not match.
    pub fn resume_blob_writer(&self, expected: &Digest) -> Result<BlobWriter> {
        BlobWriter::resume(self.clone(), expected.clone())
    }

    /// Stores a small blob from memory.
    pub fn put_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<CommittedBlob> {
        let mut writer = self.blob_writer(expected)?;
        writer.write_all(bytes).at(writer.tmp_path())?;
        writer.commit()
    }

    /// Removes a blob (nothing checks references; garbage collection is the safe way).
    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    /// Exclusive lock over index.json changes.
    fn lock_index(&self) -> Result<FileLock> {
        FileLock::acquire(&self.root().join("locks/index"), LockMode::Exclusive)
    }

    /// Shared while content is added (lease entry + rename), exclusive while collecting.
    fn lock_gc(&self, mode: LockMode) -> Result<FileLock> {
        FileLock::acquire(&self.root().join("locks/gc"), mode)
    }

    /// Records `digest` in this process's lease (creating it on first use). Called with the
    /// gc lock held shared, before the content becomes visible.
    fn lease(&self, digest: &Digest) -> Result<()> {
        let mut guard = self
            .inner
            .lease
            .lock()
            .map_err(|_| StoreError::Invalid("lease lock poisoned".to_string()))?;
        if guard.is_none() {
            let dir = self.root().join("leases");
            let prefix = format!("{}-", std::process::id());
            let (file, _, path) = FileLock::create_locked(&dir, &prefix)?;
            *guard = Some(Lease { path, file });
        }
        if let Some(lease) = guard.as_mut() {
            let path = lease.path.clone();
            writeln!(lease.file.file(), "{digest}").at(&path)?;
        }
        Ok(())
    }

    /// Writes a small file atomically: temp file, fsync, rename, fsync the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = self.tmp_dir();
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).at(&dir)?;
        tmp.write_all(bytes).at(tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(path).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        sync_parent(path)
    }
}

/// The hex of a sha256 digest; other algorithms are refused (the layout stores sha256 only).
pub(crate) fn sha256_hex(digest: &Digest) -> Result<&str> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 => Ok(digest.digest()),
        _ => Err(StoreError::UnsupportedDigest(digest.clone())),
    }
}

/// A name usable as a file name in the store (pins): letters, digits, `-`, `_`, `.`.
pub(crate) fn canonical_name(name: &str) -> Result<&str> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name)
    } else {
        Err(StoreError::Invalid(format!(
            "invalid pin name {name:?}: letters, digits, '-', '_' and '.' only"
        )))
    }
}

/// fsyncs the directory holding `path`, so a rename in it survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent).and_then(|d| d.sync_all()).at(parent)
}

#[cfg(test)]
mod tests;
