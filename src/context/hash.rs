//! Content hashes of selections for cache keys: per entry a digest over its path, type,
//! permission bits, owner, and content digest or link target (never mtime); per selection a
//! digest over its matches and entries in walk order. Entries are stat'ed and read in
//! parallel on every core.

use super::select::{FileKind, Match, SelectedEntry, Selection};
use super::statcache::StatCache;
use super::{ContextError, io_error};
use crate::image::config::digest_from_hash;
use nix::fcntl::{AtFlags, OFlag, readlinkat};
use nix::sys::stat::{Mode, fstatat};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Version tag mixed into every selection digest, so a change of this format changes keys.
const FORMAT: &[u8] = b"rbuild-context-hash-v1\0";

/// The digest of one selected entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryDigest {
    /// Path relative to the context root.
    pub path: String,
    pub kind: FileKind,
    /// The sha256 of the entry's record; hex in JSON.
    #[serde(with = "hex_digest")]
    pub digest: [u8; 32],
}

/// A digest as 64 lowercase hex characters in serialized forms.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let mut digest = [0; 32];
        hex::decode_to_slice(text.as_bytes(), &mut digest).map_err(D::Error::custom)?;
        Ok(digest)
    }
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
        let before: std::collections::HashMap<&str, &[u8; 32]> = earlier
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.digest))
            .collect();
        let now: std::collections::HashSet<&str> =
            self.entries.iter().map(|e| e.path.as_str()).collect();
        let mut changes: Vec<PathChange> = self
            .entries
            .iter()
            .filter_map(|entry| match before.get(entry.path.as_str()) {
                None => Some(PathChange::Added(entry.path.clone())),
                Some(digest) if **digest != entry.digest => {
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

/// The record digest of one entry, stat'ed as `name` in the open directory `dir`: its path
/// relative to its match, type, permission bits, owner, and content digest, link target or
/// device number. `host` names it in errors.
fn entry_digest(
    path: &str,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    host: &dyn Fn() -> PathBuf,
    cache: &StatCache,
    near: &mut usize,
) -> Result<(FileKind, [u8; 32]), ContextError> {
    let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| io_error(&host())(e.into()))?;
    let kind = FileKind::of_mode(stat.st_mode);
    let mut record = Sha256::new();
    record.update(path.as_bytes());
    record.update([0, kind_tag(kind)]);
    record.update((stat.st_mode & 0o7777).to_le_bytes());
    record.update(stat.st_uid.to_le_bytes());
    record.update(stat.st_gid.to_le_bytes());
    match kind {
        FileKind::File => {
            record.update(cache.content_digest(&host(), dir, name, &stat, near)?);
        }
        FileKind::Symlink => {
            let target = readlinkat(dir, name).map_err(|e| io_error(&host())(e.into()))?;
            record.update(target.as_bytes());
            record.update([0]);
        }
        FileKind::CharDevice | FileKind::BlockDevice => {
            record.update(stat.st_rdev.to_le_bytes());
        }
        FileKind::Dir | FileKind::Fifo | FileKind::Socket => {}
    }
    Ok((kind, record.finalize().into()))
}

/// Consecutive entries of one match that share a directory, stat'ed through that directory
/// opened once: a lookup of one name per entry instead of the whole host path.
struct Run<'a> {
    matched: &'a Match,
    /// The directory on the host.
    dir: PathBuf,
    entries: &'a [SelectedEntry],
}

impl Run<'_> {
    /// Digests the run's entries into `out` (as many slots as entries).
    fn hash_into(&self, out: &mut [EntryDigest], cache: &StatCache) -> Result<(), ContextError> {
        let dir = nix::fcntl::open(
            self.dir.as_path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error(&self.dir)(e.into()))?;
        let mut near = usize::MAX;
        for (entry, slot) in self.entries.iter().zip(out) {
            let name = match entry.path.rsplit_once('/') {
                Some((_, name)) if !entry.path.is_empty() => OsStr::new(name),
                _ if !entry.path.is_empty() => OsStr::new(&entry.path),
                // The match itself, named in its parent directory.
                _ => self
                    .matched
                    .host_path
                    .file_name()
                    .unwrap_or(OsStr::new(".")),
            };
            let host = || self.matched.host_path_of(entry);
            let (kind, digest) =
                entry_digest(&entry.path, dir.as_fd(), name, &host, cache, &mut near)?;
            *slot = EntryDigest {
                path: self.matched.context_path_of(entry),
                kind,
                digest,
            };
        }
        Ok(())
    }
}

/// Splits a match's entries into runs that share a directory (entries are listed parents
/// first, so a directory's files are consecutive up to its first subdirectory's contents).
fn runs_of(matched: &Match) -> Vec<Run<'_>> {
    let mut runs = Vec::new();
    let mut rest = matched.entries.as_slice();
    if let Some((itself, children)) = rest.split_first()
        && itself.path.is_empty()
    {
        let parent = matched
            .host_path
            .parent()
            .filter(|_| matched.host_path.file_name().is_some());
        runs.push(Run {
            matched,
            dir: parent.unwrap_or(&matched.host_path).to_path_buf(),
            entries: std::slice::from_ref(itself),
        });
        rest = children;
    }
    while let Some(first) = rest.first() {
        let dir = dir_of(first);
        let length = rest
            .iter()
            .position(|entry| dir_of(entry) != dir)
            .unwrap_or(rest.len());
        let (entries, after) = rest.split_at(length);
        runs.push(Run {
            matched,
            dir: if dir.is_empty() {
                matched.host_path.clone()
            } else {
                matched.host_path.join(dir)
            },
            entries,
        });
        rest = after;
    }
    runs
}

/// The directory of an entry, relative to its match.
fn dir_of(entry: &SelectedEntry) -> &str {
    entry.path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Hashes one selection. Contents come from `cache` when a file's stat is unchanged.
pub fn hash_selection(
    selection: &Selection,
    cache: &StatCache,
) -> Result<SourceHash, ContextError> {
    let runs: Vec<Run<'_>> = selection.matches.iter().flat_map(runs_of).collect();
    let total_entries = runs.iter().map(|run| run.entries.len()).sum();
    let placeholder = EntryDigest {
        path: String::new(),
        kind: FileKind::File,
        digest: [0; 32],
    };
    let mut entries = vec![placeholder; total_entries];
    // Each run fills its own slice of `entries`, so the runs go in parallel in walk order.
    let mut work = Vec::with_capacity(runs.len());
    let mut free = entries.as_mut_slice();
    for run in &runs {
        let (slots, after) = free.split_at_mut(run.entries.len());
        work.push((run, slots));
        free = after;
    }
    work.into_par_iter()
        .try_for_each(|(run, slots)| run.hash_into(slots, cache))?;

    let mut total = Sha256::new();
    total.update(FORMAT);
    total.update([u8::from(selection.parents)]);
    let mut digests = entries.iter();
    for matched in &selection.matches {
        total.update(b"match\0");
        total.update(matched.name.as_bytes());
        total.update([0]);
        for entry in digests.by_ref().take(matched.entries.len()) {
            total.update(entry.digest);
        }
    }
    Ok(SourceHash {
        source: selection.source.clone(),
        digest: digest_from_hash(&total.finalize()),
        entries,
    })
}
