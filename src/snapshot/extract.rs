//! Layer tar (plain, gzip, zstd) → files under a target directory, whiteouts applied or kept
//! as overlay whiteouts, no entry ever reaching outside the target.

use super::compression::{Compression, STREAM_BUFFER, decompress};
use super::fsat::{self, ResolveError};
use super::write::sha256_digest;
use super::{OPAQUE_WHITEOUT, SnapshotError, WHITEOUT_PREFIX};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat, linkat, symlinkat};
use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;
use tar::EntryType;

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutHandling {
    /// The target already holds the lower layers: delete what whiteouts name, empty opaque
    /// directories of lower content. The result is the flattened tree.
    Apply,
    /// The target is an empty directory that will be one lowerdir of an overlay mount: write
    /// whiteouts as 0/0 character devices and mark opaque directories with the xattr.
    Overlay(OverlayXattrs),
}

/// Which xattr namespace the overlay mount reads (`userxattr` mounts, rootless, use `user.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattrs {
    Trusted,
    User,
}

impl OverlayXattrs {
    fn opaque(self) -> &'static [u8] {
        match self {
            OverlayXattrs::Trusted => b"trusted.overlay.opaque",
            OverlayXattrs::User => b"user.overlay.opaque",
        }
    }
}

/// How [`extract_layer`] applies a layer.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub whiteouts: WhiteoutHandling,
    /// Give files the owners the layer records (needs root, or a user namespace that maps them).
    pub restore_owners: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            whiteouts: WhiteoutHandling::Apply,
            restore_owners: nix::unistd::geteuid().is_root(),
        }
    }
}

/// What an extraction did.
#[derive(Debug, Clone)]
pub struct ExtractSummary {
    /// sha256 of the uncompressed tar stream: the layer's DiffID.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    pub compression: Compression,
    /// Entries applied (whiteouts included).
    pub entries: u64,
    /// Entries skipped and attributes not restored, e.g. device nodes without the privilege to
    /// create them (at most [`MAX_WARNINGS`] kept).
    pub warnings: Vec<String>,
    /// Warnings beyond those kept.
    pub warnings_omitted: u64,
}

/// Most warnings an [`ExtractSummary`] keeps.
pub const MAX_WARNINGS: usize = 100;
/// Bytes of entry paths remembered for opaque whiteouts that come after entries of their
/// directory (Apply mode); beyond it, such a whiteout is refused rather than memory grown.
const MAX_TRACKED_PATH_BYTES: usize = 16 << 20;
const TRACKED_PATH_OVERHEAD: usize = 48;

/// Files of at least this size have their writeback started as soon as they are written.
const WRITEBACK_MIN: u64 = 64 << 10;

/// Extracts the layer read from `input` (plain, gzip or zstd, detected by content) onto the
/// existing directory `target`. Entry paths and hardlink targets are resolved inside the target
/// (symlinks in parent components followed only while they stay inside); an entry that would
/// reach outside is refused with an error naming it, before anything outside changes. Memory
/// stays bounded whatever the layer.
pub fn extract_layer<R: Read>(
    input: R,
    target: &Path,
    options: &ExtractOptions,
) -> Result<ExtractSummary, SnapshotError> {
    let (compression, reader) = decompress(input).map_err(SnapshotError::Read)?;
    let root = nix::fcntl::open(
        target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SnapshotError::Io {
        path: target.to_path_buf(),
        source: e.into(),
    })?;
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
        size: 0,
    };
    let has_lower = !fsat::is_empty_dir(root.as_fd()).map_err(|e| SnapshotError::Io {
        path: target.to_path_buf(),
        source: e.into(),
    })?;
    let mut extractor = Extractor {
        root: Rc::new(root),
        has_lower,
        options,
        buffer: vec![0u8; STREAM_BUFFER],
        cached_parent: None,
        this_layer: HashSet::new(),
        tracked_bytes: 0,
        tracking_overflowed: false,
        entries: 0,
        warnings: Vec::new(),
        warnings_omitted: 0,
        name: Vec::new(),
        pending_dirs: Vec::new(),
        pending_path: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(SnapshotError::Read)?;
        for entry in entries {
            let mut entry = entry.map_err(SnapshotError::Read)?;
            extractor.apply(&mut entry)?;
        }
    }
    extractor.name.clear();
    extractor.leave_directories();
    // The DiffID covers the whole stream, padding after the end-of-archive blocks included.
    io::copy(&mut hashing, &mut io::sink()).map_err(SnapshotError::Read)?;
    Ok(ExtractSummary {
        diff_id: sha256_digest(hashing.hasher),
        tar_size: hashing.size,
        compression,
        entries: extractor.entries,
        warnings: extractor.warnings,
        warnings_omitted: extractor.warnings_omitted,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }
}

struct Extractor<'a> {
    root: Rc<OwnedFd>,
    options: &'a ExtractOptions,
    buffer: Vec<u8>,
    /// The last parent directory resolved without symlinks: its path below the target and fd.
    cached_parent: Option<CachedDir>,
    /// The target held files before this layer (lower layers, in Apply mode).
    has_lower: bool,
    /// Paths written by this layer, so an opaque whiteout after them keeps them (Apply mode,
    /// with lower content only).
    this_layer: HashSet<Vec<u8>>,
    tracked_bytes: usize,
    tracking_overflowed: bool,
    entries: u64,
    warnings: Vec<String>,
    warnings_omitted: u64,
    /// The current entry's normalised path (components joined by `/`).
    name: Vec<u8>,
    /// Directories of this layer enclosing the current entry, outermost first, whose mtimes are
    /// set when the entries leave them; `pending_path[..end]` is each one's path.
    pending_dirs: Vec<PendingDir>,
    pending_path: Vec<u8>,
}

struct PendingDir {
    end: usize,
    mtime: i64,
    dir: Rc<OwnedFd>,
}

/// A directory resolved without symlinks, by its path below the target and its depth.
struct CachedDir {
    path: Vec<u8>,
    depth: usize,
    dir: Rc<OwnedFd>,
}

/// Directory levels whose mtimes are restored after their content; deeper ones (pathological
/// trees) keep the mtime their content gives them, so open descriptors stay bounded.
const MAX_PENDING_DIRS: usize = 128;

/// An entry's metadata, taken from its header and PAX records before its data is read.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Extractor<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            return Ok(());
        }
        self.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let components = match components(&raw) {
            Ok(c) => c,
            Err(reason) => return Err(refused(&shown, reason)),
        };
        self.name.clear();
        for (i, c) in components.iter().enumerate() {
            if i > 0 {
                self.name.push(b'/');
            }
            self.name.extend_from_slice(c);
        }
        self.leave_directories();
        let meta = read_meta(entry).map_err(|e| entry_err(&shown, e))?;
        let Some((last, parents)) = components.split_last() else {
            // `./`: the target directory itself.
            if !kind.is_dir() {
                return Err(refused(
                    &shown,
                    "names the target directory but is not a directory",
                ));
            }
            let root = self.root.clone();
            self.finish_open(&shown, root.as_fd(), &meta)?;
            self.enter_directory(root, meta.mtime);
            return Ok(());
        };
        if last.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&shown, parents, last, &meta);
        }
        let (parent, clean) = self.parent(&shown, parents, true)?;
        let parent = parent.as_fd();
        if self.has_lower && self.options.whiteouts == WhiteoutHandling::Apply {
            self.track_this_layer();
        }
        match kind {
            EntryType::Directory => {
                let cache_depth = clean.then_some(components.len());
                self.directory(&shown, parent, last, &meta, cache_depth)
            }
            EntryType::Regular | EntryType::Continuous => {
                let file = self.create_file(&shown, parent, last)?;
                self.copy_data(&shown, entry, &file)?;
                self.finish_open(&shown, file.as_fd(), &meta)
            }
            EntryType::GNUSparse => self.sparse_file(&shown, entry, parent, last, &meta),
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.replace(&shown, parent, last)?;
                symlinkat(OsStr::from_bytes(&target), parent, OsStr::from_bytes(last))
                    .map_err(|e| entry_err(&shown, e.into()))?;
                self.finish_at(&shown, parent, last, &meta, false)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&shown, parent, last, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (kind_flag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(entry)),
                    EntryType::Block => (SFlag::S_IFBLK, device(entry)),
                    _ => (SFlag::S_IFIFO, 0),
                };
                self.replace(&shown, parent, last)?;
                match mknodat(
                    parent,
                    OsStr::from_bytes(last),
                    kind_flag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                ) {
                    Ok(()) => self.finish_at(&shown, parent, last, &meta, true),
                    Err(Errno::EPERM) => {
                        self.warn(format!(
                            "{shown}: device node skipped (no privilege to create it)"
                        ));
                        Ok(())
                    }
                    Err(e) => Err(entry_err(&shown, e.into())),
                }
            }
            other => {
                self.warn(format!("{shown}: entry type {other:?} skipped"));
                Ok(())
            }
        }
    }

    /// Resolves the parent directory of the current entry, reusing the last one when it is the
    /// same or an ancestor (tar entries come in tree order). Also says whether it was reached
    /// without symlinks (only such directories are cached).
    fn parent(
        &mut self,
        shown: &str,
        parents: &[&[u8]],
        create: bool,
    ) -> Result<(Rc<OwnedFd>, bool), SnapshotError> {
        let joined_len: usize = parents
            .iter()
            .map(|p| p.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        let joined = self.name.get(..joined_len).unwrap_or_default();
        let (start, depth) = match &self.cached_parent {
            Some(cached) if cached.path.as_slice() == joined => {
                return Ok((cached.dir.clone(), true));
            }
            Some(cached)
                if !cached.path.is_empty()
                    && joined.starts_with(&cached.path)
                    && joined.get(cached.path.len()) == Some(&b'/') =>
            {
                (cached.dir.clone(), cached.depth)
            }
            _ if parents.is_empty() => return Ok((self.root.clone(), true)),
            _ => (self.root.clone(), 0),
        };
        let start_names = parents.get(..depth).unwrap_or_default();
        let rest = parents.get(depth..).unwrap_or_default();
        match fsat::resolve_dir(self.root.as_fd(), start.as_fd(), start_names, rest, create) {
            Ok((fd, through_symlink)) => {
                let fd = Rc::new(fd);
                if !through_symlink {
                    self.cached_parent = Some(CachedDir {
                        path: joined.to_vec(),
                        depth: parents.len(),
                        dir: fd.clone(),
                    });
                }
                Ok((fd, !through_symlink))
            }
            Err(ResolveError::Escape(reason)) => Err(refused(shown, &reason)),
            Err(ResolveError::Missing) => Err(entry_err(shown, Errno::ENOENT.into())),
            Err(ResolveError::Io(e)) => Err(entry_err(shown, e)),
        }
    }

    /// Forgets the cached parent when `path` (removed or replaced) is it or one of its ancestors.
    fn invalidate(&mut self, path: &[u8]) {
        if let Some(cached) = &self.cached_parent {
            let cached = &cached.path;
            let below =
                cached.starts_with(path) && matches!(cached.get(path.len()), None | Some(b'/'));
            if path.is_empty() || below {
                self.cached_parent = None;
            }
        }
    }

    fn track_this_layer(&mut self) {
        if self.tracking_overflowed {
            return;
        }
        self.tracked_bytes += self.name.len() + TRACKED_PATH_OVERHEAD;
        if self.tracked_bytes > MAX_TRACKED_PATH_BYTES {
            self.tracking_overflowed = true;
            self.this_layer = HashSet::new();
        } else {
            self.this_layer.insert(self.name.clone());
        }
    }

    /// Removes whatever is at `name` in `parent` (a directory with its content) so the entry can
    /// take its place.
    fn replace(
        &mut self,
        shown: &str,
        parent: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<(), SnapshotError> {
        let existing = fsat::lstat_at(parent, name).map_err(|e| entry_err(shown, e.into()))?;
        if existing.is_some() {
            let path = self.name.clone();
            self.invalidate(&path);
            fsat::remove_all_at(parent, name).map_err(|e| entry_err(shown, e.into()))?;
        }
        Ok(())
    }

    /// A directory entry; `cache_depth` is its depth when its parent was reached without
    /// symlinks, so that it can serve as the parent of the entries that follow.
    fn directory(
        &mut self,
        shown: &str,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        cache_depth: Option<usize>,
    ) -> Result<(), SnapshotError> {
        let make = |parent| {
            nix::sys::stat::mkdirat(
                parent,
                OsStr::from_bytes(name),
                Mode::from_bits_truncate(0o700),
            )
        };
        match make(parent) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let existing =
                    fsat::lstat_at(parent, name).map_err(|e| entry_err(shown, e.into()))?;
                if !existing.is_some_and(|s| fsat::is_dir(&s)) {
                    self.replace(shown, parent, name)?;
                    make(parent).map_err(|e| entry_err(shown, e.into()))?;
                }
            }
            Err(e) => return Err(entry_err(shown, e.into())),
        }
        let dir = Rc::new(fsat::open_dir_at(parent, name).map_err(|e| entry_err(shown, e.into()))?);
        self.finish_open(shown, dir.as_fd(), meta)?;
        if let Some(depth) = cache_depth {
            self.cached_parent = Some(CachedDir {
                path: self.name.clone(),
                depth,
                dir: dir.clone(),
            });
        }
        self.enter_directory(dir, meta.mtime);
        Ok(())
    }

    fn create_file(
        &mut self,
        shown: &str,
        parent: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<File, SnapshotError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = || {
            openat(
                parent,
                OsStr::from_bytes(name),
                flags,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match create() {
            Err(Errno::EEXIST) => {
                self.replace(shown, parent, name)?;
                create()
            }
            other => other,
        }
        .map_err(|e| entry_err(shown, e.into()))?;
        Ok(File::from(fd))
    }

    fn copy_data<R: Read>(
        &mut self,
        shown: &str,
        entry: &mut tar::Entry<'_, R>,
        mut file: &File,
    ) -> Result<(), SnapshotError> {
        let expected = entry.size();
        let mut written = 0u64;
        loop {
            let n = entry.read(&mut self.buffer).map_err(SnapshotError::Read)?;
            let Some(chunk) = self.buffer.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            file.write_all(chunk).map_err(|e| entry_err(shown, e))?;
            written += n as u64;
        }
        if written >= WRITEBACK_MIN {
            // Start this file's writeback now, so the disk works while the rest of the layer is
            // unpacked and the sync that ends the extraction has little left to wait for.
            // Advice only: a filesystem that refuses it is synced at the end all the same.
            // SAFETY: a plain syscall on a descriptor this function borrows.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
        if written != expected {
            return Err(SnapshotError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{shown}: layer ends inside the file ({written} of {expected} bytes)"),
            )));
        }
        Ok(())
    }

    /// A GNU sparse file: the tar crate knows the sparse map and seeks over the holes, so a
    /// 10 GiB file of holes costs what its data costs. It writes through a /proc path naming
    /// one component inside the already-resolved parent.
    fn sparse_file<R: Read>(
        &mut self,
        shown: &str,
        entry: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), SnapshotError> {
        drop(self.create_file(shown, parent, name)?);
        entry.set_preserve_mtime(false);
        entry
            .unpack(fsat::proc_path(parent, name))
            .map_err(|e| entry_err(shown, e))?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(parent, OsStr::from_bytes(name), flags, Mode::empty())
            .map_err(|e| entry_err(shown, e.into()))?;
        self.finish_open(shown, fd.as_fd(), meta)
    }

    fn hardlink(
        &mut self,
        shown: &str,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
    ) -> Result<(), SnapshotError> {
        let target_components = components(target)
            .map_err(|reason| refused(shown, &format!("hardlink target {reason}")))?;
        let Some((target_name, target_parents)) = target_components.split_last() else {
            return Err(refused(shown, "hardlink to the target directory"));
        };
        let target_dir = match fsat::resolve_dir(
            self.root.as_fd(),
            self.root.as_fd(),
            &[],
            target_parents,
            false,
        ) {
            Ok((fd, _)) => fd,
            Err(ResolveError::Escape(reason)) => {
                return Err(refused(shown, &format!("hardlink target: {reason}")));
            }
            Err(ResolveError::Missing) => return Err(entry_err(shown, Errno::ENOENT.into())),
            Err(ResolveError::Io(e)) => return Err(entry_err(shown, e)),
        };
        let Some(target_stat) = fsat::lstat_at(target_dir.as_fd(), target_name)
            .map_err(|e| entry_err(shown, e.into()))?
        else {
            return Err(entry_err(
                shown,
                io::Error::new(io::ErrorKind::NotFound, "hardlink target does not exist"),
            ));
        };
        if fsat::is_dir(&target_stat) {
            return Err(refused(shown, "hardlink to a directory"));
        }
        if let Some(existing) =
            fsat::lstat_at(parent, name).map_err(|e| entry_err(shown, e.into()))?
        {
            if existing.st_ino == target_stat.st_ino && existing.st_dev == target_stat.st_dev {
                return Ok(());
            }
            self.replace(shown, parent, name)?;
        }
        linkat(
            target_dir.as_fd(),
            OsStr::from_bytes(target_name),
            parent,
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )
        .map_err(|e| entry_err(shown, e.into()))
    }

    fn whiteout(
        &mut self,
        shown: &str,
        parents: &[&[u8]],
        last: &[u8],
        meta: &Meta,
    ) -> Result<(), SnapshotError> {
        let opaque = last == OPAQUE_WHITEOUT.as_bytes();
        let hidden = last.get(WHITEOUT_PREFIX.len()..).unwrap_or_default();
        if !opaque && (hidden.is_empty() || hidden.starts_with(WHITEOUT_PREFIX.as_bytes())) {
            // aufs bookkeeping (`.wh..wh.plnk`, ...): meaningless here.
            return Ok(());
        }
        if hidden == b"." || hidden == b".." {
            return Err(refused(shown, "whiteout of `.` or `..`"));
        }
        match self.options.whiteouts {
            WhiteoutHandling::Overlay(xattrs) => {
                let (parent, _) = self.parent(shown, parents, true)?;
                if opaque {
                    return fsat::set_xattr_fd(parent.as_fd(), xattrs.opaque(), b"y")
                        .map_err(|e| entry_err(shown, e));
                }
                let dir_len = self.name.len() - last.len();
                self.name.truncate(dir_len);
                self.name.extend_from_slice(hidden);
                self.replace(shown, parent.as_fd(), hidden)?;
                mknodat(
                    parent.as_fd(),
                    OsStr::from_bytes(hidden),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    0,
                )
                .map_err(|e| entry_err(shown, e.into()))?;
                self.finish_at(shown, parent.as_fd(), hidden, meta, false)
            }
            WhiteoutHandling::Apply => {
                let parent = match self.parent(shown, parents, false) {
                    Ok((fd, _)) => fd,
                    // Nothing below to hide.
                    Err(SnapshotError::Entry { source, .. })
                        if source.raw_os_error() == Some(libc::ENOENT) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let dir_len = self.name.len() - last.len();
                self.name.truncate(dir_len);
                if opaque {
                    if !self.has_lower {
                        return Ok(());
                    }
                    self.empty_of_lower(shown, parent.as_fd())
                } else {
                    self.name.extend_from_slice(hidden);
                    let path = self.name.clone();
                    self.invalidate(&path);
                    fsat::remove_all_at(parent.as_fd(), hidden)
                        .map_err(|e| entry_err(shown, e.into()))
                }
            }
        }
    }

    /// Opaque whiteout, Apply mode: removes everything below the directory (`self.name` is its
    /// path with a trailing `/`, or empty for the root) that this layer did not write, inside
    /// directories this layer wrote too.
    fn empty_of_lower(&mut self, shown: &str, dir: BorrowedFd<'_>) -> Result<(), SnapshotError> {
        if self.tracking_overflowed {
            return Err(refused(
                shown,
                "opaque whiteout after more entries than can be remembered",
            ));
        }
        let prefix = self.name.clone();
        self.invalidate(prefix.strip_suffix(b"/").unwrap_or(&prefix));
        let io = |e: Errno| entry_err(shown, e.into());
        let mut pending = vec![(
            dir.try_clone_to_owned().map_err(|e| entry_err(shown, e))?,
            prefix,
        )];
        while let Some((dir, prefix)) = pending.pop() {
            let mut child = prefix.clone();
            for name in fsat::list_dir(dir.as_fd()).map_err(io)? {
                child.truncate(prefix.len());
                child.extend_from_slice(&name);
                if !self.this_layer.contains(&child) {
                    fsat::remove_all_at(dir.as_fd(), &name).map_err(io)?;
                } else if fsat::lstat_at(dir.as_fd(), &name)
                    .map_err(io)?
                    .is_some_and(|s| fsat::is_dir(&s))
                {
                    let below = fsat::open_dir_at(dir.as_fd(), &name).map_err(io)?;
                    pending.push((below, [child.as_slice(), b"/"].concat()));
                }
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs, times on an open file or directory (in that order: chown clears
    /// set-id bits and capabilities).
    fn finish_open(
        &mut self,
        shown: &str,
        fd: BorrowedFd<'_>,
        meta: &Meta,
    ) -> Result<(), SnapshotError> {
        if self.options.restore_owners
            && let Err(e) = fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
        {
            self.warn(format!(
                "{shown}: owner {}:{} not restored: {e}",
                meta.uid, meta.gid
            ));
        }
        fchmod(fd, Mode::from_bits_truncate(meta.mode & 0o7777))
            .map_err(|e| entry_err(shown, e.into()))?;
        for (key, value) in &meta.xattrs {
            if let Err(e) = fsat::set_xattr_fd(fd, key, value) {
                self.warn(format!(
                    "{shown}: xattr {} not restored: {e}",
                    String::from_utf8_lossy(key)
                ));
            }
        }
        let time = TimeSpec::new(meta.mtime, 0);
        futimens(fd, &time, &time).map_err(|e| entry_err(shown, e.into()))
    }

    /// Owner, mode (`chmod`: not for symlinks), xattrs, times on a directory entry, never
    /// following a symlink.
    fn finish_at(
        &mut self,
        shown: &str,
        dir: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), SnapshotError> {
        let os_name = OsStr::from_bytes(name);
        if self.options.restore_owners {
            let owner = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
            if let Err(e) = fchownat(dir, os_name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW) {
                self.warn(format!(
                    "{shown}: owner {}:{} not restored: {e}",
                    meta.uid, meta.gid
                ));
            }
        }
        if chmod {
            fchmodat(
                dir,
                os_name,
                Mode::from_bits_truncate(meta.mode & 0o7777),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| entry_err(shown, e.into()))?;
        }
        if !meta.xattrs.is_empty() {
            let path = fsat::proc_path(dir, name);
            for (key, value) in &meta.xattrs {
                if let Err(e) = fsat::set_xattr_nofollow(path.as_os_str().as_bytes(), key, value) {
                    self.warn(format!(
                        "{shown}: xattr {} not restored: {e}",
                        String::from_utf8_lossy(key)
                    ));
                }
            }
        }
        let time = TimeSpec::new(meta.mtime, 0);
        utimensat(dir, os_name, &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| entry_err(shown, e.into()))
    }

    /// Remembers a directory of this layer whose mtime must be set again once its content is
    /// written (adding entries changes it). `self.name` is its path.
    fn enter_directory(&mut self, dir: Rc<OwnedFd>, mtime: i64) {
        if self.pending_dirs.len() < MAX_PENDING_DIRS {
            self.pending_dirs.push(PendingDir {
                end: self.name.len(),
                mtime,
                dir,
            });
            self.pending_path.clear();
            self.pending_path.extend_from_slice(&self.name);
        }
    }

    /// Sets the mtimes of the pending directories that do not contain the current entry
    /// (`self.name`): tar entries come in tree order, so their content is complete.
    fn leave_directories(&mut self) {
        while let Some(top) = self.pending_dirs.last() {
            let prefix = self.pending_path.get(..top.end).unwrap_or_default();
            let contains = (top.end == 0 && !self.name.is_empty())
                || (self.name.starts_with(prefix) && self.name.get(top.end) == Some(&b'/'));
            if contains {
                break;
            }
            if let Some(done) = self.pending_dirs.pop() {
                let time = TimeSpec::new(done.mtime, 0);
                // Failing here only loses a directory mtime the content changed anyway.
                let _ = futimens(done.dir.as_fd(), &time, &time);
            }
        }
    }

    fn warn(&mut self, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(message);
        } else {
            self.warnings_omitted += 1;
        }
    }
}

/// The components of an entry path, `.` and empty ones dropped. Absolute paths and `..` are
/// refused: a layer names paths relative to the root of the image.
fn components(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if path.starts_with(b"/") {
        return Err("is an absolute path");
    }
    let mut parts = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("contains `..`"),
            _ => parts.push(part),
        }
    }
    Ok(parts)
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let old = header.as_old();
    let mut meta = Meta {
        mode: numeric(header.mode().map(u64::from), &old.mode)?
            .try_into()
            .map_err(|_| invalid("mode out of range"))?,
        uid: numeric(header.uid(), &old.uid)?
            .try_into()
            .map_err(|_| invalid("uid out of range"))?,
        gid: numeric(header.gid(), &old.gid)?
            .try_into()
            .map_err(|_| invalid("gid out of range"))?,
        mtime: i64::try_from(numeric(header.mtime(), &old.mtime)?).unwrap_or(i64::MAX),
        xattrs: Vec::new(),
    };
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if !super::is_overlay_xattr(name) {
                    meta.xattrs
                        .push((name.to_vec(), record.value_bytes().to_vec()));
                }
            } else if key == b"mtime" {
                // Seconds with an optional fraction; layers are compared to the second.
                let value = record
                    .value()
                    .map_err(|_| invalid("PAX mtime is not UTF-8"))?;
                let seconds = value.split('.').next().unwrap_or_default();
                meta.mtime = seconds
                    .parse()
                    .map_err(|_| invalid("PAX mtime is not a number"))?;
            }
        }
    }
    Ok(meta)
}

/// A numeric header field; blank (NULs or spaces) reads as 0, as Go's archive/tar reads it.
fn numeric(parsed: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> libc::dev_t {
    let header = entry.header();
    let major = header.device_major().ok().flatten().unwrap_or(0);
    let minor = header.device_minor().ok().flatten().unwrap_or(0);
    libc::makedev(major, minor)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

fn refused(entry: &str, reason: &str) -> SnapshotError {
    SnapshotError::Refused {
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

fn entry_err(entry: &str, source: io::Error) -> SnapshotError {
    SnapshotError::Entry {
        entry: entry.to_string(),
        source,
    }
}
