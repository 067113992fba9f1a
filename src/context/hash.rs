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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Entries of one match from which they are hashed on the rayon pool's threads.
const PARALLEL_ENTRIES_MIN: usize = 256;

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
    record.update([0, kind.tag()]);
    record.update((stat.st_mode & 0o7777).to_le_bytes());
    record.update(stat.st_uid.to_le_bytes());
    record.update(stat.st_gid.to_le_bytes());
    match kind {
        FileKind::File => {
            record.update(cache.content_digest(host, dir, name, &stat, near)?);
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

/// Directories of the entries being hashed, kept open: each entry is then a lookup of one name
/// instead of its whole host path. Two stay open, a directory and its parent, as hashing goes
/// down into a subdirectory and comes back for the next one.
#[derive(Default)]
struct OpenDirs {
    /// Each directory relative to its match (`None` for the match's parent) and its
    /// descriptor; the most recently used last.
    slots: Vec<(Option<String>, OwnedFd)>,
}

impl OpenDirs {
    /// The open directory `relative` of `matched`; `None` for the match's parent.
    fn get(
        &mut self,
        matched: &Match,
        relative: Option<&str>,
    ) -> Result<BorrowedFd<'_>, ContextError> {
        let slot = match self
            .slots
            .iter()
            .position(|(dir, _)| dir.as_deref() == relative)
        {
            Some(at) => self.slots.remove(at),
            None => {
                let host = match relative {
                    None => match (matched.host_path.parent(), matched.host_path.file_name()) {
                        (Some(parent), Some(_)) => parent.to_path_buf(),
                        _ => matched.host_path.clone(),
                    },
                    Some("") => matched.host_path.clone(),
                    Some(dir) => matched.host_path.join(dir),
                };
                let fd = nix::fcntl::open(
                    host.as_path(),
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_error(&host)(e.into()))?;
                (relative.map(str::to_string), fd)
            }
        };
        if self.slots.len() > 1 {
            self.slots.remove(0);
        }
        let fd: &OwnedFd = &self.slots.push_mut(slot).1;
        Ok(fd.as_fd())
    }
}

/// The digest of one entry of `matched`, stat'ed through `dir`.
fn hash_entry(
    matched: &Match,
    entry: &SelectedEntry,
    dir: &mut OpenDirs,
    cache: &StatCache,
    near: &mut usize,
) -> Result<EntryDigest, ContextError> {
    let (relative, name) = match entry.path.rsplit_once('/') {
        Some((relative, name)) => (Some(relative), OsStr::new(name)),
        None if !entry.path.is_empty() => (Some(""), OsStr::new(&entry.path)),
        // The match itself, named in its parent directory.
        None => (
            None,
            matched.host_path.file_name().unwrap_or(OsStr::new(".")),
        ),
    };
    let host = || matched.host_path_of(entry);
    let fd = dir.get(matched, relative)?;
    let (kind, digest) = entry_digest(&entry.path, fd, name, &host, cache, near)?;
    Ok(EntryDigest {
        path: matched.context_path_of(entry),
        kind,
        digest,
    })
}

/// Hashes one selection. Contents come from `cache` when a file's stat is unchanged.
pub fn hash_selection(
    selection: &Selection,
    cache: &StatCache,
) -> Result<SourceHash, ContextError> {
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for matched in &selection.matches {
        // In parallel, each worker keeping its directory open across the entries it takes
        // (consecutive ones, mostly of one directory). The digests are written straight into
        // place; the first error is set aside meanwhile.
        let failure = OnceLock::new();
        let hash = |(dir, near): &mut (OpenDirs, usize), entry| {
            hash_entry(matched, entry, dir, cache, near).unwrap_or_else(|error| {
                let _ = failure.set(error);
                EntryDigest {
                    path: String::new(),
                    kind: entry.kind,
                    digest: [0; 32],
                }
            })
        };
        let start = || (OpenDirs::default(), usize::MAX);
        // The pool only for many entries: waking its threads costs a few more than it saves.
        if matched.entries.len() >= PARALLEL_ENTRIES_MIN {
            matched
                .entries
                .par_iter()
                .map_init(start, hash)
                .collect_into_vec(&mut digests);
        } else {
            let mut state = start();
            digests = matched
                .entries
                .iter()
                .map(|entry| hash(&mut state, entry))
                .collect();
        }
        if let Some(error) = failure.into_inner() {
            return Err(error);
        }
        entries.append(&mut digests);
    }

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
