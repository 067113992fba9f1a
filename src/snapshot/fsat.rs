//! File-system operations relative to directory descriptors, so that no path component of a
//! layer entry is ever resolved outside the target directory.

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Most symbolic links followed while resolving one path, as the kernel allows (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Why a directory path could not be resolved inside the root.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// Resolution would leave the root (an absolute symlink, or `..` above the root).
    Escape(String),
    /// A component does not exist (only when not creating).
    Missing,
    Io(io::Error),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> Self {
        ResolveError::Io(e.into())
    }
}

/// Opens a directory entry of `dir` as a directory without following a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<OwnedFd> {
    openat(dir, OsStr::from_bytes(name), DIR_FLAGS, Mode::empty())
}

/// Resolves the directory `components` below `start` (which is `start_names` below `root`),
/// following symlinks only while they stay beneath `root`, creating missing directories (mode
/// 0755) when `create` is set. Returns the directory and whether a symlink was traversed.
pub(crate) fn resolve_dir(
    root: BorrowedFd<'_>,
    start: BorrowedFd<'_>,
    start_names: &[&[u8]],
    components: &[&[u8]],
    create: bool,
) -> Result<(OwnedFd, bool), ResolveError> {
    let mut current: Option<OwnedFd> = None;
    for (index, name) in components.iter().enumerate() {
        let dir = current.as_ref().map_or(start, |fd| fd.as_fd());
        match step(dir, name, create)? {
            Step::Dir(next) => current = Some(next),
            Step::Symlink(target) => {
                // Leave the fast path: resolve the remainder lexically from the root.
                let mut lexical: Vec<Vec<u8>> = start_names.iter().map(|n| n.to_vec()).collect();
                lexical.extend(components.iter().take(index).map(|n| n.to_vec()));
                let rest = components.get(index + 1..).unwrap_or_default();
                return resolve_slow(root, lexical, target, rest, create);
            }
        }
    }
    match current {
        Some(fd) => Ok((fd, false)),
        None => Ok((start.try_clone_to_owned().map_err(ResolveError::Io)?, false)),
    }
}

enum Step {
    Dir(OwnedFd),
    Symlink(Vec<u8>),
}

fn step(dir: BorrowedFd<'_>, name: &[u8], create: bool) -> Result<Step, ResolveError> {
    match open_dir_at(dir, name) {
        Ok(fd) => Ok(Step::Dir(fd)),
        Err(Errno::ENOENT) if create => {
            match nix::sys::stat::mkdirat(
                dir,
                OsStr::from_bytes(name),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(Step::Dir(open_dir_at(dir, name)?))
        }
        Err(Errno::ENOENT) => Err(ResolveError::Missing),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            let stat = fstatat(dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
                Ok(Step::Symlink(
                    readlinkat(dir, OsStr::from_bytes(name))?
                        .as_bytes()
                        .to_vec(),
                ))
            } else {
                Err(ResolveError::Io(io::Error::from(Errno::ENOTDIR)))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Resolution after a symlink: `lexical` names real directories below `root`; the symlink
/// `target` is spliced in front of `rest`.
fn resolve_slow(
    root: BorrowedFd<'_>,
    mut lexical: Vec<Vec<u8>>,
    first_target: Vec<u8>,
    rest: &[&[u8]],
    create: bool,
) -> Result<(OwnedFd, bool), ResolveError> {
    let mut pending: std::collections::VecDeque<Vec<u8>> =
        rest.iter().map(|n| n.to_vec()).collect();
    let mut followed = 0usize;
    let mut target = Some(first_target);
    let mut current = reopen(root, &lexical)?;
    loop {
        if let Some(link) = target.take() {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(ResolveError::Io(io::Error::from(Errno::ELOOP)));
            }
            if link.starts_with(b"/") {
                return Err(ResolveError::Escape(format!(
                    "a parent is a symlink to the absolute path {:?}",
                    String::from_utf8_lossy(&link)
                )));
            }
            for part in link.split(|&b| b == b'/').rev() {
                pending.push_front(part.to_vec());
            }
        }
        let Some(name) = pending.pop_front() else {
            return Ok((current, true));
        };
        match name.as_slice() {
            b"" | b"." => {}
            b".." => {
                if lexical.pop().is_none() {
                    return Err(ResolveError::Escape(
                        "a parent symlink leads above the target directory".into(),
                    ));
                }
                // `current` is a real directory below the root, so its `..` is its lexical parent.
                current = open_dir_at(current.as_fd(), b"..")?;
            }
            _ => match step(current.as_fd(), &name, create)? {
                Step::Dir(next) => {
                    current = next;
                    lexical.push(name);
                }
                Step::Symlink(link) => target = Some(link),
            },
        }
    }
}

fn reopen(root: BorrowedFd<'_>, names: &[Vec<u8>]) -> Result<OwnedFd, ResolveError> {
    let mut current = root.try_clone_to_owned().map_err(ResolveError::Io)?;
    for name in names {
        current = open_dir_at(current.as_fd(), name)?;
    }
    Ok(current)
}

/// `lstat` of a directory entry; `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Removes `name` from `dir` whatever it is, a directory with all its content included, without
/// following symlinks. Uses one open directory at a time whatever the depth.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    let Some(stat) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&stat) {
        return unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir);
    }
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut current = open_dir_at(dir, name)?;
    loop {
        match first_full_subdir_after_removing_the_rest(current.as_fd())? {
            Some(child) => {
                current = open_dir_at(current.as_fd(), &child)?;
                path.push(child);
            }
            None => match path.pop() {
                Some(child) => {
                    // Descended without following symlinks, so `..` is the directory we came from.
                    current = open_dir_at(current.as_fd(), b"..")?;
                    unlinkat(
                        current.as_fd(),
                        OsStr::from_bytes(&child),
                        UnlinkatFlags::RemoveDir,
                    )?;
                }
                None => break,
            },
        }
    }
    drop(current);
    unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir)
}

/// Removes the file or directory tree at `path` however deep, one open directory at a time,
/// never following symlinks. A missing path is not an error.
pub fn remove_tree(path: &std::path::Path) -> Result<(), super::SnapshotError> {
    let io_err = |e: Errno| super::SnapshotError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let name = path.file_name().ok_or_else(|| io_err(Errno::EINVAL))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let parent = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    remove_all_at(parent.as_fd(), name.as_bytes()).map_err(io_err)
}

/// Removes the entries of `dir` up to its first subdirectory that is not empty, which it
/// returns (empty ones go at once: a work dir is mostly empty directories). Earlier entries are
/// gone by then, so calling it again after removing that subdirectory goes on where this call
/// stopped.
fn first_full_subdir_after_removing_the_rest(dir: BorrowedFd<'_>) -> nix::Result<Option<Vec<u8>>> {
    let mut listing = Dir::openat(dir, ".", DIR_FLAGS, Mode::empty())?;
    for entry in listing.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_subdir = match entry.file_type() {
            Some(Type::Directory) => true,
            Some(_) => false,
            None => lstat_at(dir, name)?.is_some_and(|s| is_dir(&s)),
        };
        if is_subdir {
            match unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => continue,
                Err(Errno::ENOTEMPTY | Errno::EEXIST) => return Ok(Some(name.to_vec())),
                Err(e) => return Err(e),
            }
        }
        match unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether `dir` has no entries besides `.` and `..`.
pub(crate) fn is_empty_dir(dir: BorrowedFd<'_>) -> nix::Result<bool> {
    let mut listing = Dir::openat(dir, ".", DIR_FLAGS, Mode::empty())?;
    for entry in listing.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The names in `dir` other than `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<Vec<u8>>> {
    let mut listing = Dir::openat(dir, ".", DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// A path naming `name` in `dir` through /proc, for the calls that have no `*at` form
/// (`lsetxattr`); `name` is one component, so nothing but `dir` is resolved.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    path.push(OsStr::from_bytes(name));
    path
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(Errno::EINVAL))
}

/// Sets an extended attribute on an open file.
pub(crate) fn set_xattr_fd(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let key = cstring(key)?;
    // SAFETY: key is NUL-terminated, value is a valid slice for its length.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an extended attribute on a path without following a final symlink.
pub(crate) fn set_xattr_nofollow(path: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let (path, key) = (cstring(path)?, cstring(key)?);
    // SAFETY: both strings are NUL-terminated, value is a valid slice for its length.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// All extended attributes of a path (final symlink not followed), sorted by name.
pub(crate) fn list_xattrs(path: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = cstring(path)?;
    read_xattrs(
        // SAFETY: path is NUL-terminated; buf is writable for its length.
        |buf| unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
        |key, buf| {
            // SAFETY: path and key are NUL-terminated; buf is writable for its length.
            unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    key.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            }
        },
    )
}

/// The same for an open file: no path lookup.
pub(crate) fn list_fd_xattrs(file: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let fd = file.as_raw_fd();
    read_xattrs(
        // SAFETY: fd is open for the borrow; buf is writable for its length.
        |buf| unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()) },
        // SAFETY: as above, and key is NUL-terminated.
        |key, buf| unsafe { libc::fgetxattr(fd, key.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
    )
}

/// Lists names with `list`, reads each value with `get`; sorted by name.
fn read_xattrs(
    mut list: impl FnMut(&mut [u8]) -> libc::ssize_t,
    mut get: impl FnMut(&CStr, &mut [u8]) -> libc::ssize_t,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = grow_until_fits(&mut list)?;
    let mut attrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let key = cstring(name)?;
        match grow_until_fits(|buf| get(&key, buf)) {
            Ok(value) => attrs.push((name.to_vec(), value)),
            // Removed between listing and reading.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    attrs.sort();
    Ok(attrs)
}

fn grow_until_fits(mut call: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let size = call(&mut []);
        if size < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(err),
            };
        }
        let mut buf = vec![0u8; size.unsigned_abs()];
        let got = call(&mut buf);
        if got >= 0 {
            buf.truncate(got.unsigned_abs());
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
    }
}
