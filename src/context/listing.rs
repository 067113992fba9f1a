//! Directory listings remembered by the directory's (device, inode, size, mtime, ctime), so
//! that walking an unchanged context costs one stat per directory instead of reading it: any
//! entry added, removed or renamed changes the directory's ctime, which no one can set.
//!
//! File format: the magic `RBLIST1\n`, then per directory, sorted by (device, inode): device,
//! inode, size (u64), mtime seconds (i64), mtime nanoseconds (u32), ctime seconds (i64),
//! ctime nanoseconds (u32), the number of entries (u32), then each entry sorted by name: its
//! kind (one byte), the length of its name (u16) and the name (UTF-8). Little-endian; saved
//! by rename; a file that does not parse is treated as empty.

use super::select::{FileKind, join};
use super::statcache::{
    FileId, STAT_LEN, Validity, bytes, decode_stat, encode_stat, write_atomically,
};
use super::{ContextError, io_error};
use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, lstat};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

const MAGIC: &[u8; 8] = b"RBLIST1\n";
const FILE_NAME: &str = "context-listings";
const HEADER_LEN: usize = STAT_LEN + 4;

/// One directory's entries, sorted by name: their paths (`prefix/name`) and kinds.
type Entries = Vec<(String, FileKind)>;

/// The listings of one context, kept in a file when [`Listings::keep_in`] names its folder.
#[derive(Debug, Default)]
pub(super) struct Listings {
    file: OnceLock<PathBuf>,
    loaded: OnceLock<Loaded>,
    added: Mutex<Vec<(FileId, Validity, Entries)>>,
    read: AtomicU64,
}

/// The file as read, with where each directory's entries lie.
#[derive(Debug, Default)]
struct Loaded {
    bytes: Vec<u8>,
    /// Per directory: its validity, where its entries lie in `bytes` and their number.
    index: HashMap<FileId, (Validity, Range<usize>, u32)>,
}

impl Loaded {
    fn read(file: &Path) -> Loaded {
        let Ok(contents) = std::fs::read(file) else {
            return Loaded::default();
        };
        let mut index = HashMap::new();
        let mut at = MAGIC.len();
        while at < contents.len() {
            let Some(header) = contents.get(at..at + HEADER_LEN) else {
                return Loaded::default();
            };
            let (id, validity) = decode_stat(header);
            let count = u32::from_le_bytes(bytes::<4>(header, STAT_LEN));
            let start = at + HEADER_LEN;
            at = start;
            for _ in 0..count {
                if at >= contents.len() {
                    return Loaded::default();
                }
                let length = u16::from_le_bytes(bytes::<2>(&contents, at + 1));
                at += 3 + usize::from(length);
            }
            index.insert(id, (validity, start..at, count));
        }
        if !contents.starts_with(MAGIC) || at != contents.len() {
            return Loaded::default();
        }
        Loaded {
            bytes: contents,
            index,
        }
    }

    /// The entries of a directory in the file, each named `prefix/name`; `None` when absent,
    /// changed, or not readable as written.
    fn entries(&self, id: FileId, validity: Validity, prefix: &str) -> Option<Entries> {
        let (cached, range, count) = self.index.get(&id)?;
        if *cached != validity {
            return None;
        }
        let mut at = range.start;
        let mut entries = Vec::with_capacity(usize::try_from(*count).ok()?);
        for _ in 0..*count {
            let kind = FileKind::of_tag(*self.bytes.get(at)?)?;
            let length = usize::from(u16::from_le_bytes(bytes::<2>(&self.bytes, at + 1)));
            let name = self.bytes.get(at + 3..at + 3 + length)?;
            let name = std::str::from_utf8(name).ok()?;
            entries.push((join(prefix, name), kind));
            at += 3 + length;
        }
        Some(entries)
    }
}

impl Listings {
    /// Keeps the listings in `cache_dir` from now on (the first folder named wins).
    pub(super) fn keep_in(&self, cache_dir: &Path) {
        let _ = self.file.set(cache_dir.join(FILE_NAME));
    }

    /// How many directories were read (not taken from the file).
    pub(super) fn directories_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The entries of the host directory `dir`, sorted by name, each named `prefix/name`
    /// (just `name` when `prefix` is empty): from the file when the directory is unchanged,
    /// else read and remembered.
    pub(super) fn sorted_entries(&self, dir: &Path, prefix: &str) -> Result<Entries, ContextError> {
        let Some(file) = self.file.get() else {
            return self.read_sorted(dir, prefix);
        };
        let before = lstat(dir).map_err(|e| io_error(dir)(e.into()))?;
        let (id, validity) = (FileId::of(&before), Validity::of(&before));
        let loaded = self.loaded.get_or_init(|| Loaded::read(file));
        if let Some(entries) = loaded.entries(id, validity, prefix) {
            return Ok(entries);
        }
        let read_start = SystemTime::now();
        let entries = self.read_sorted(dir, prefix)?;
        let after = lstat(dir).map_err(|e| io_error(dir)(e.into()))?;
        // Remembered only when it did not change while being read, nor so recently that a
        // later change could keep its timestamps; names fit the file's u16 lengths (Linux
        // allows 255 bytes).
        let unchanged = FileId::of(&after) == id && Validity::of(&after) == validity;
        let storable = entries
            .iter()
            .all(|(path, _)| path.len() <= usize::from(u16::MAX));
        if unchanged && storable && !validity.is_racy(read_start) {
            let skip = if prefix.is_empty() {
                0
            } else {
                prefix.len() + 1
            };
            let names = entries
                .iter()
                .map(|(path, kind)| (path.get(skip..).unwrap_or_default().to_string(), *kind))
                .collect();
            self.added
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, validity, names));
        }
        Ok(entries)
    }

    /// Writes the file back when directories were remembered in this run.
    pub(super) fn save(&self) -> Result<(), ContextError> {
        let Some(file) = self.file.get() else {
            return Ok(());
        };
        let added = std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        if added.is_empty() {
            return Ok(());
        }
        let loaded = self.loaded.get_or_init(|| Loaded::read(file));
        // Each directory's entries as stored: the loaded bytes, or those of this run.
        let mut directories: HashMap<FileId, (Validity, u32, Vec<u8>)> = HashMap::new();
        for (id, (validity, range, count)) in &loaded.index {
            let stored = loaded.bytes.get(range.clone()).unwrap_or_default();
            directories.insert(*id, (*validity, *count, stored.to_vec()));
        }
        for (id, validity, entries) in added {
            let mut stored = Vec::new();
            for (name, kind) in &entries {
                stored.push(kind.tag());
                stored.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
                stored.extend_from_slice(name.as_bytes());
            }
            let count = u32::try_from(entries.len()).unwrap_or(0);
            directories.insert(id, (validity, count, stored));
        }
        let mut sorted: Vec<_> = directories.into_iter().collect();
        sorted.sort_unstable_by_key(|(id, _)| *id);
        let mut out = MAGIC.to_vec();
        for (id, (validity, count, stored)) in &sorted {
            encode_stat(&mut out, id, validity);
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(stored);
        }
        write_atomically(file, &out)
    }

    /// Reads the directory.
    fn read_sorted(&self, dir: &Path, prefix: &str) -> Result<Entries, ContextError> {
        self.read.fetch_add(1, Ordering::Relaxed);
        let handle = Dir::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error(dir)(e.into()))?;
        let mut children = Vec::new();
        // Owning: a borrowing iterator rewinds the directory when dropped, a wasted seek.
        for entry in handle {
            let entry = entry.map_err(|e| io_error(dir)(e.into()))?;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let Ok(name) = name.to_str() else {
                return Err(ContextError::Io {
                    path: dir.join(OsStr::from_bytes(name.to_bytes())),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "file name is not UTF-8",
                    ),
                });
            };
            let kind = match entry.file_type() {
                Some(file_type) => FileKind::of_dir_entry(file_type),
                // A file system that does not say: ask the entry itself.
                None => {
                    let path = dir.join(name);
                    let metadata = std::fs::symlink_metadata(&path).map_err(io_error(&path))?;
                    FileKind::of(metadata.file_type())
                }
            };
            children.push((join(prefix, name), kind));
        }
        children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(children)
    }
}
