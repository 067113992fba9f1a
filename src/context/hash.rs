//! Content hashes of selections for cache keys: per entry a digest over its path, type,
//! permission bits, owner, and content digest or link target (never mtime); per selection a
//! digest over its matches and entries in walk order. Entries are stat'ed and read in
//! parallel on every core.

use super::select::{FileKind, Selection};
use super::statcache::StatCache;
use super::{ContextError, io_error};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

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

/// Hashes one selection. Contents come from `cache` when a file's stat is unchanged.
pub fn hash_selection(
    selection: &Selection,
    cache: &StatCache,
) -> Result<SourceHash, ContextError> {
    let work: Vec<(usize, usize)> = selection
        .matches
        .iter()
        .enumerate()
        .flat_map(|(m, matched)| (0..matched.entries.len()).map(move |e| (m, e)))
        .collect();
    let records: Vec<(String, FileKind, [u8; 32])> = work
        .par_iter()
        .map(|&(m, e)| {
            let matched = selection
                .matches
                .get(m)
                .ok_or_else(|| ContextError::NotFound(selection.source.clone()))?;
            let entry = matched
                .entries
                .get(e)
                .ok_or_else(|| ContextError::NotFound(selection.source.clone()))?;
            let host = matched.host_path_of(entry);
            let metadata = std::fs::symlink_metadata(&host).map_err(io_error(&host))?;
            let kind = FileKind::of(metadata.file_type());
            let mut record = Vec::with_capacity(entry.path.len() + 64);
            record.extend_from_slice(entry.path.as_bytes());
            record.push(0);
            record.push(kind_tag(kind));
            record.extend_from_slice(&(metadata.mode() & 0o7777).to_le_bytes());
            record.extend_from_slice(&metadata.uid().to_le_bytes());
            record.extend_from_slice(&metadata.gid().to_le_bytes());
            match kind {
                FileKind::File => {
                    record.extend_from_slice(&cache.content_digest(&host, &metadata)?);
                }
                FileKind::Symlink => {
                    let target = std::fs::read_link(&host).map_err(io_error(&host))?;
                    record.extend_from_slice(target.as_os_str().as_bytes());
                    record.push(0);
                }
                FileKind::CharDevice | FileKind::BlockDevice => {
                    record.extend_from_slice(&metadata.rdev().to_le_bytes());
                }
                FileKind::Dir | FileKind::Fifo | FileKind::Socket => {}
            }
            let digest: [u8; 32] = Sha256::digest(&record).into();
            Ok((matched.context_path_of(entry), kind, digest))
        })
        .collect::<Result<_, ContextError>>()?;

    let mut total = Sha256::new();
    total.update(FORMAT);
    total.update([u8::from(selection.parents)]);
    let mut records = records.into_iter();
    let mut entries = Vec::with_capacity(work.len());
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
