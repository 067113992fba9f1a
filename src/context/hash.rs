//! Content hashes of selections for cache keys: per entry a digest over its path, type,
//! permission bits, owner, and content digest or link target (never mtime); per selection a
//! digest over its matches and entries in walk order. Entries are stat'ed and read in
//! parallel on every core.

use super::select::{FileKind, Selection};
use super::statcache::StatCache;
use super::{ContextError, io_error};
use nix::fcntl::{AtFlags, OFlag, readlinkat};
use nix::sys::stat::{Mode, fstatat};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Version tag mixed into every selection digest, so a change of this format changes keys.
const FORMAT: &[u8] = b"rbuild-context-hash-v1\0";

/// The digest of one selected entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryDigest {
    /// Path relative to the context root.
    pub path: String,
    pub kind: FileKind,
    /// Hex sha256 of the entry's record.
    pub digest: String,
}

/// The content hash of one COPY/ADD source. Serializable, so the build engine can keep it
/// with its cache record and later say which paths changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceHash {
    pub source: String,
    pub digest: oci_spec::image::Digest,
    pub entries: Vec<EntryDigest>,
}

/// How one path differs between two hashes of the same source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    Added(String),
    Removed(String),
    Changed(String),
}

impl PathChange {
    /// The path concerned, relative to the context root.
    pub fn path(&self) -> &str {
        match self {
            PathChange::Added(path) | PathChange::Removed(path) | PathChange::Changed(path) => path,
        }
    }
}

impl std::fmt::Display for PathChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathChange::Added(path) => write!(f, "file {path} added"),
            PathChange::Removed(path) => write!(f, "file {path} removed"),
            PathChange::Changed(path) => write!(f, "file {path} changed"),
        }
    }
}

impl SourceHash {
    /// The paths that differ from an earlier hash, sorted by path.
    pub fn changes_since(&self, earlier: &SourceHash) -> Vec<PathChange> {
        let before: std::collections::HashMap<&str, &str> = earlier
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.digest.as_str()))
            .collect();
        let now: std::collections::HashSet<&str> =
            self.entries.iter().map(|e| e.path.as_str()).collect();
        let mut changes: Vec<PathChange> = self
            .entries
            .iter()
            .filter_map(|entry| match before.get(entry.path.as_str()) {
                None => Some(PathChange::Added(entry.path.clone())),
                Some(digest) if *digest != entry.digest => {
                    Some(PathChange::Changed(entry.path.clone()))
                }
                Some(_) => None,
            })
            .collect();
        changes.extend(
            earlier
                .entries
                .iter()
                .filter(|e| !now.contains(e.path.as_str()))
                .map(|e| PathChange::Removed(e.path.clone())),
        );
        changes.sort_by(|a, b| a.path().cmp(b.path()));
        changes
    }
}

fn kind_tag(kind: FileKind) -> u8 {
    match kind {
        FileKind::File => b'f',
        FileKind::Dir => b'd',
        FileKind::Symlink => b'l',
        FileKind::Fifo => b'p',
        FileKind::Socket => b's',
        FileKind::CharDevice => b'c',
        FileKind::BlockDevice => b'b',
    }
}

/// An entry to hash: match `m`'s entry `e`, at `host`.
struct Pending {
    m: usize,
    e: usize,
    host: PathBuf,
}

/// The kind and record digest of one entry: `path` (relative to its match) and `host`, whose
/// directory `dir` is open.
fn entry_digest(
    path: &str,
    host: &Path,
    dir: BorrowedFd<'_>,
    cache: &StatCache,
) -> Result<(FileKind, [u8; 32]), ContextError> {
    let name = host.file_name().unwrap_or(host.as_os_str());
    let stat =
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| io_error(host)(e.into()))?;
    let kind = FileKind::of_mode(stat.st_mode);
    let mut record = Vec::with_capacity(path.len() + 64);
    record.extend_from_slice(path.as_bytes());
    record.push(0);
    record.push(kind_tag(kind));
    record.extend_from_slice(&(stat.st_mode & 0o7777).to_le_bytes());
    record.extend_from_slice(&stat.st_uid.to_le_bytes());
    record.extend_from_slice(&stat.st_gid.to_le_bytes());
    match kind {
        FileKind::File => {
            record.extend_from_slice(&cache.content_digest(host, dir, name, &stat)?);
        }
        FileKind::Symlink => {
            let target = readlinkat(dir, name).map_err(|e| io_error(host)(e.into()))?;
            record.extend_from_slice(target.as_bytes());
            record.push(0);
        }
        FileKind::CharDevice | FileKind::BlockDevice => {
            record.extend_from_slice(&stat.st_rdev.to_le_bytes());
        }
        FileKind::Dir | FileKind::Fifo | FileKind::Socket => {}
    }
    Ok((kind, Sha256::digest(&record).into()))
}

/// Hashes one selection. Contents come from `cache` when a file's stat is unchanged.
pub fn hash_selection(
    selection: &Selection,
    cache: &StatCache,
) -> Result<SourceHash, ContextError> {
    // Entries in runs that share a directory; each run is stat'ed and read through its open
    // directory, a lookup of one name instead of the whole host path per entry.
    let mut runs: Vec<(PathBuf, Vec<Pending>)> = Vec::new();
    for (m, matched) in selection.matches.iter().enumerate() {
        for (e, entry) in matched.entries.iter().enumerate() {
            let host = matched.host_path_of(entry);
            let parent = host.parent().unwrap_or(Path::new("/"));
            let new_run = match runs.last() {
                Some((dir, _)) => dir.as_path() != parent,
                None => true,
            };
            if new_run {
                runs.push((parent.to_path_buf(), Vec::new()));
            }
            if let Some((_, run)) = runs.last_mut() {
                run.push(Pending { m, e, host });
            }
        }
    }
    let records: Vec<Vec<(String, FileKind, [u8; 32])>> = runs
        .par_iter()
        .map(|(dir, run)| {
            let dir_fd = nix::fcntl::open(
                dir.as_path(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_error(dir)(e.into()))?;
            run.iter()
                .map(|Pending { m, e, host }| {
                    let matched = selection
                        .matches
                        .get(*m)
                        .ok_or_else(|| ContextError::NotFound(selection.source.clone()))?;
                    let entry = matched
                        .entries
                        .get(*e)
                        .ok_or_else(|| ContextError::NotFound(selection.source.clone()))?;
                    let digest = entry_digest(&entry.path, host, dir_fd.as_fd(), cache)?;
                    Ok((matched.context_path_of(entry), digest.0, digest.1))
                })
                .collect()
        })
        .collect::<Result<_, ContextError>>()?;
    let records = records.into_iter().flatten().collect::<Vec<_>>();
    let work_len = records.len();

    let mut total = Sha256::new();
    total.update(FORMAT);
    total.update([u8::from(selection.parents)]);
    let mut records = records.into_iter();
    let mut entries = Vec::with_capacity(work_len);
    for matched in &selection.matches {
        total.update(b"match\0");
        total.update(matched.name.as_bytes());
        total.update([0]);
        for (path, kind, digest) in records.by_ref().take(matched.entries.len()) {
            total.update(digest);
            entries.push(EntryDigest {
                path,
                kind,
                digest: hex::encode(digest),
            });
        }
    }
    let hex_digest = hex::encode(total.finalize());
    let digest = format!("sha256:{hex_digest}")
        .parse::<oci_spec::image::Digest>()
        .expect("64 lowercase hex characters form a sha256 digest");
    Ok(SourceHash {
        source: selection.source.clone(),
        digest,
        entries,
    })
}
