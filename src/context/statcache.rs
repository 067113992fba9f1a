//! Content digests remembered by (device, inode, size, mtime, ctime), persisted in one compact
//! binary file so that a rebuild with nothing changed only stats files.
//!
//! File format: the magic `RBSTAT2\n`, then fixed 80-byte little-endian records sorted by
//! (device, inode), one per file: device, inode, size (u64), mtime seconds (i64), mtime
//! nanoseconds (u32), ctime seconds (i64), ctime nanoseconds (u32), sha256 (32 bytes). Sorted,
//! it is searched as read, without building a table. Saved to a temporary file and renamed,
//! so a reader never sees half a file; an unreadable file is treated as empty.

use super::{ContextError, io_error};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"RBSTAT2\n";
const RECORD_LEN: usize = 80;
const FILE_NAME: &str = "context-stat-cache";
/// File timestamps come from a coarse clock; a file changed within this window of being read
/// could keep the same timestamps, so its digest is not remembered (git's "racy clean").
const TIMESTAMP_GRANULARITY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct FileId {
    pub(super) device: u64,
    pub(super) inode: u64,
}

impl FileId {
    pub(super) fn of(stat: &FileStat) -> FileId {
        FileId {
            device: stat.st_dev,
            inode: stat.st_ino,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Validity {
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

impl Validity {
    pub(super) fn of(stat: &FileStat) -> Validity {
        Validity {
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: (stat.st_mtime, clamp_nanos(stat.st_mtime_nsec)),
            ctime: (stat.st_ctime, clamp_nanos(stat.st_ctime_nsec)),
        }
    }

    /// True when the file changed so recently before `read_start` that a later change could
    /// carry the same timestamps.
    pub(super) fn is_racy(&self, read_start: SystemTime) -> bool {
        let horizon = read_start
            .checked_sub(TIMESTAMP_GRANULARITY)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let horizon = (
            i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX),
            horizon.subsec_nanos(),
        );
        self.mtime >= horizon || self.ctime >= horizon
    }
}

fn clamp_nanos(nanos: i64) -> u32 {
    u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0)
}

/// How much work hashing did: files whose contents were read (and their bytes), and files
/// whose digest came from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    pub files_read: u64,
    pub bytes_read: u64,
    pub cache_hits: u64,
}

/// One remembered digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    id: FileId,
    validity: Validity,
    digest: [u8; 32],
}

/// The stat cache. Shared by reference between parallel hashing threads: the records read
/// from the file are sorted by file and never change, so lookups take no lock; digests
/// computed during this run go to a small locked list.
#[derive(Debug)]
pub struct StatCache {
    file: Option<PathBuf>,
    /// Read on first use: most builds copy nothing from the context.
    loaded: OnceLock<Loaded>,
    added: Mutex<Vec<Record>>,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    cache_hits: AtomicU64,
}

impl StatCache {
    /// A cache that lives only in memory.
    pub fn in_memory() -> StatCache {
        StatCache {
            file: None,
            loaded: OnceLock::new(),
            added: Mutex::new(Vec::new()),
            files_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// The cache kept in `cache_dir` (created if missing), read when first asked;
    /// [`StatCache::save`] writes it back.
    pub fn open(cache_dir: &Path) -> Result<StatCache, ContextError> {
        std::fs::create_dir_all(cache_dir).map_err(io_error(cache_dir))?;
        let mut cache = StatCache::in_memory();
        cache.file = Some(cache_dir.join(FILE_NAME));
        Ok(cache)
    }

    /// The records of the file, read the first time.
    fn loaded(&self) -> &[[u8; RECORD_LEN]] {
        self.loaded
            .get_or_init(|| self.file.as_deref().map(Loaded::read).unwrap_or_default())
            .records()
    }

    fn added(&self) -> MutexGuard<'_, Vec<Record>> {
        self.added.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remembered digest of `id` if its stat is still `validity`. The record after
    /// `near` is tried first, and `near` moves to the one found: the files of a directory,
    /// hashed in name order, mostly have consecutive inode numbers.
    fn lookup(&self, id: FileId, validity: Validity, near: &mut usize) -> Option<[u8; 32]> {
        let loaded = self.loaded();
        let next = near.wrapping_add(1);
        let at = match loaded.get(next) {
            Some(record) if id_of(record) == id => Ok(next),
            _ => loaded.binary_search_by_key(&id, |record| id_of(record)),
        };
        let found = match at {
            Ok(at) => {
                *near = at;
                loaded.get(at).map(|record| decode(record))
            }
            // Rare: the same file hashed twice in one build, by two sources.
            Err(_) => self.added().iter().rev().find(|r| r.id == id).copied(),
        };
        found.filter(|r| r.validity == validity).map(|r| r.digest)
    }

    /// Writes the cache back atomically when this run computed digests, sorted so the next
    /// run loads it without sorting.
    pub fn save(&self) -> Result<(), ContextError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let added = std::mem::take(&mut *self.added());
        if added.is_empty() {
            return Ok(());
        }
        // Added records come last so they win over the loaded ones of the same file.
        let loaded = self.loaded().iter().map(|record| decode(record));
        let records = sorted(loaded.chain(added).collect());
        let mut bytes = Vec::with_capacity(MAGIC.len() + records.len() * RECORD_LEN);
        bytes.extend_from_slice(MAGIC);
        for record in &records {
            encode(&mut bytes, record);
        }
        write_atomically(file, &bytes)
    }

    /// Counters since the cache was opened.
    pub fn stats(&self) -> HashStats {
        HashStats {
            files_read: self.files_read.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// The sha256 of a regular file's contents: from the cache when its stat is unchanged,
    /// else read (and remembered unless it changed while being read or too recently).
    /// The file is `name` in the open directory `dir`; `path` gives its name for errors (only
    /// worked out then). `near` is where the previous file of the same directory was found in
    /// the cache (any value for the first), updated.
    pub(crate) fn content_digest(
        &self,
        path: &dyn Fn() -> PathBuf,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        stat: &FileStat,
        near: &mut usize,
    ) -> Result<[u8; 32], ContextError> {
        let id = FileId::of(stat);
        let validity = Validity::of(stat);
        if let Some(digest) = self.lookup(id, validity, near) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(digest);
        }
        let read_start = SystemTime::now();
        let mut file = std::fs::File::from(
            openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_error(&path())(e.into()))?,
        );
        let mut hasher = Sha256::new();
        // Sized to the file: a fixed 256 KiB buffer is an mmap, page faults and a munmap for
        // each of a context's many small files.
        let length = usize::try_from(validity.size).unwrap_or(usize::MAX);
        let mut buffer = vec![0u8; length.saturating_add(1).clamp(4096, 256 * 1024)];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(|e| io_error(&path())(e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hasher.update(buffer.get(..n).unwrap_or_default());
        }
        self.files_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(total, Ordering::Relaxed);
        let digest: [u8; 32] = hasher.finalize().into();
        let after = fstat(&file).map_err(|e| io_error(&path())(e.into()))?;
        let unchanged = Validity::of(&after) == validity && after.st_ino == id.inode;
        if unchanged && !validity.is_racy(read_start) {
            self.added().push(Record {
                id,
                validity,
                digest,
            });
        }
        Ok(digest)
    }
}

/// Writes `file` by a temporary file renamed over it, so a reader never sees half of it.
pub(super) fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), ContextError> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(io_error(dir))?;
    temp.write_all(bytes).map_err(io_error(temp.path()))?;
    temp.as_file().sync_all().map_err(io_error(file))?;
    temp.persist(file).map_err(|e| io_error(file)(e.error))?;
    Ok(())
}

/// The cache file as read: the magic, then records sorted by file, searched in place (no
/// table to build, no copy).
#[derive(Debug, Default)]
struct Loaded(Vec<u8>);

impl Loaded {
    /// The file's contents; empty when it is missing, of another format or unsorted.
    fn read(file: &Path) -> Loaded {
        let Ok(bytes) = std::fs::read(file) else {
            return Loaded::default();
        };
        let loaded = Loaded(bytes);
        let whole = loaded.0.len() == MAGIC.len() + loaded.records().len() * RECORD_LEN;
        let sorted = loaded.records().is_sorted_by(|a, b| id_of(a) < id_of(b));
        if loaded.0.starts_with(MAGIC) && whole && sorted {
            loaded
        } else {
            Loaded::default()
        }
    }

    fn records(&self) -> &[[u8; RECORD_LEN]] {
        self.0.get(MAGIC.len()..).unwrap_or_default().as_chunks().0
    }
}

/// Sorts records by file, keeping the last of each file.
fn sorted(mut records: Vec<Record>) -> Vec<Record> {
    if !records.is_sorted_by(|a, b| a.id < b.id) {
        // Stable, so of equal files the later stays later; reversed, dedup keeps the later.
        records.sort_by_key(|r| r.id);
        records.reverse();
        records.dedup_by_key(|r| r.id);
        records.reverse();
    }
    records
}

fn encode(out: &mut Vec<u8>, record: &Record) {
    encode_stat(out, &record.id, &record.validity);
    out.extend_from_slice(&record.digest);
}

/// The 48 bytes of a file's identity and validity, as both cache files store them.
pub(super) const STAT_LEN: usize = 48;

pub(super) fn encode_stat(out: &mut Vec<u8>, id: &FileId, validity: &Validity) {
    out.extend_from_slice(&id.device.to_le_bytes());
    out.extend_from_slice(&id.inode.to_le_bytes());
    out.extend_from_slice(&validity.size.to_le_bytes());
    out.extend_from_slice(&validity.mtime.0.to_le_bytes());
    out.extend_from_slice(&validity.mtime.1.to_le_bytes());
    out.extend_from_slice(&validity.ctime.0.to_le_bytes());
    out.extend_from_slice(&validity.ctime.1.to_le_bytes());
}

/// The file a record (or a listing's header) is of: its first 16 bytes, all a search reads.
fn id_of(record: &[u8]) -> FileId {
    FileId {
        device: u64::from_le_bytes(bytes(record, 0)),
        inode: u64::from_le_bytes(bytes(record, 8)),
    }
}

fn decode(record: &[u8]) -> Record {
    let (id, validity) = decode_stat(record);
    Record {
        id,
        validity,
        digest: bytes(record, STAT_LEN),
    }
}

/// `N` bytes of `record` at `at`; zeros past its end.
pub(super) fn bytes<const N: usize>(record: &[u8], at: usize) -> [u8; N] {
    record
        .get(at..at + N)
        .and_then(|slice| slice.try_into().ok())
        .unwrap_or([0; N])
}

pub(super) fn decode_stat(record: &[u8]) -> (FileId, Validity) {
    let id = id_of(record);
    let validity = Validity {
        size: u64::from_le_bytes(bytes(record, 16)),
        mtime: (
            i64::from_le_bytes(bytes(record, 24)),
            u32::from_le_bytes(bytes(record, 32)),
        ),
        ctime: (
            i64::from_le_bytes(bytes(record, 36)),
            u32::from_le_bytes(bytes(record, 44)),
        ),
    };
    (id, validity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(inode: u64, fill: u8) -> Record {
        Record {
            id: FileId { device: 1, inode },
            validity: Validity {
                size: 10,
                mtime: (1, 2),
                ctime: (3, 4),
            },
            digest: [fill; 32],
        }
    }

    fn file_of(records: &[Record]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for record in records {
            encode(&mut bytes, record);
        }
        bytes
    }

    #[test]
    fn records_are_found_where_they_lie() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = (0..100).map(|i| record(i * 3, i as u8)).collect();
        std::fs::write(dir.path().join(FILE_NAME), file_of(&records)).unwrap();
        let cache = StatCache::open(dir.path()).unwrap();
        let mut near = usize::MAX;
        for wanted in records.iter().rev().chain(&records) {
            assert_eq!(
                cache.lookup(wanted.id, wanted.validity, &mut near),
                Some(wanted.digest)
            );
        }
        let absent = record(1, 0);
        assert_eq!(cache.lookup(absent.id, absent.validity, &mut near), None);
        let mut changed = records[5];
        changed.validity.ctime.1 += 1;
        assert_eq!(cache.lookup(changed.id, changed.validity, &mut near), None);
    }

    #[test]
    fn unsorted_or_cut_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let unsorted = file_of(&[record(9, 1), record(4, 2)]);
        let duplicated = file_of(&[record(4, 1), record(4, 2)]);
        let sorted = file_of(&[record(4, 1), record(9, 2)]);
        let cut = sorted.get(..sorted.len() - 1).unwrap().to_vec();
        for (bytes, found) in [(unsorted, 0), (duplicated, 0), (cut, 0), (sorted, 2)] {
            std::fs::write(&path, bytes).unwrap();
            let cache = StatCache::open(dir.path()).unwrap();
            assert_eq!(cache.loaded().len(), found);
        }
    }

    #[test]
    fn newer_record_of_a_file_wins() {
        let merged = sorted(vec![record(9, 1), record(4, 1), record(9, 2), record(1, 1)]);
        let ids: Vec<u64> = merged.iter().map(|r| r.id.inode).collect();
        assert_eq!(ids, [1, 4, 9]);
        assert_eq!(merged[2].digest, [2; 32]);
    }
}
