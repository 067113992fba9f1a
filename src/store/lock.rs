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
    /// someone does.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = File::open(path).at(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Some(FileLock { held })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(lock_error(path, errno)),
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
