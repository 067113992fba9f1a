//! flock(2) locks shared between rbuild processes. A lock lives as long as its value.

use super::{IoContext, Result, StoreError};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

/// A held flock on an open file.
#[derive(Debug)]
pub(crate) struct FileLock {
    held: Flock<File>,
}

impl FileLock {
    /// Opens (creating) `path` and blocks until the lock is granted.
    pub(crate) fn acquire(path: &Path, mode: LockMode) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .at(path)?;
        FileLock::from_file(file, path, mode)
    }

    /// Locks an already open file, blocking.
    pub(crate) fn from_file(file: File, path: &Path, mode: LockMode) -> Result<FileLock> {
        let arg = match mode {
            LockMode::Shared => FlockArg::LockShared,
            LockMode::Exclusive => FlockArg::LockExclusive,
        };
        lock_retrying(file, arg).map_err(|errno| lock_error(path, errno))
    }

    /// Locks a file or directory exclusively if nobody holds it locked; `None` when
    /// someone does, or when it is gone.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = match File::open(path) {
            Ok(file) => file,
            // Its owner removed or renamed it meanwhile: nothing to take.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Some(FileLock { held })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(lock_error(path, errno)),
        }
    }

    /// Creates a new uniquely named file in `dir` and locks it exclusively. Returns the lock
    /// (on its own descriptor), the file for writing and its path. A collector removes unlocked
    /// files, so the name is checked to still lead to the locked file, else made again.
    pub(crate) fn create_locked(dir: &Path, prefix: &str) -> Result<(FileLock, File, PathBuf)> {
        loop {
            let tmp = tempfile::Builder::new()
                .prefix(prefix)
                .tempfile_in(dir)
                .at(dir)?;
            let (file, path) = tmp.keep().map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                source: e.error,
            })?;
            let lock =
                FileLock::from_file(file.try_clone().at(&path)?, &path, LockMode::Exclusive)?;
            if same_file(&file, &path)? {
                return Ok((lock, file, path));
            }
        }
    }

    pub(crate) fn file(&mut self) -> &mut File {
        &mut self.held
    }
}

fn lock_retrying(
    mut file: File,
    arg: FlockArg,
) -> std::result::Result<FileLock, nix::errno::Errno> {
    loop {
        match Flock::lock(file, arg) {
            Ok(held) => return Ok(FileLock { held }),
            Err((back, nix::errno::Errno::EINTR)) => file = back,
            Err((_, errno)) => return Err(errno),
        }
    }
}

fn lock_error(path: &Path, errno: nix::errno::Errno) -> StoreError {
    StoreError::Io {
        path: PathBuf::from(path),
        source: std::io::Error::from(errno),
    }
}

/// Whether `path` still names the open `file`.
pub(crate) fn same_file(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata().at(path)?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
