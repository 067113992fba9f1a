//! Safe extraction of a context sent as a tar stream: every entry and hard-link target must be
//! a plain relative path, never reached through a symlink, so nothing is written outside the
//! destination.

use super::{ContextError, io_error};
use std::io::{BufRead, Read};
use std::path::{Component, Path, PathBuf};

fn unsafe_entry(entry: &Path, reason: &str) -> ContextError {
    ContextError::UnsafeTarEntry {
        entry: entry.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The destination of an archive path: refused when absolute, when it climbs with `..`, or
/// when one of its parents inside `dest` is a symlink.
fn checked_destination(dest: &Path, name: &Path) -> Result<PathBuf, ContextError> {
    let mut target = dest.to_path_buf();
    for component in name.components() {
        match component {
            Component::Normal(part) => {
                if let Ok(metadata) = std::fs::symlink_metadata(&target)
                    && metadata.file_type().is_symlink()
                {
                    return Err(unsafe_entry(name, "a parent directory is a symlink"));
                }
                target.push(part);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(name, "path climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(name, "absolute path"));
            }
        }
    }
    Ok(target)
}

/// Extracts `reader`, a tar stream plain or compressed with gzip or zstd (as `docker build -`
/// accepts), into the existing directory `dest`.
pub(crate) fn extract(reader: impl Read, dest: &Path) -> Result<(), ContextError> {
    let tar_error = |error: std::io::Error| ContextError::Io {
        path: PathBuf::from("-"),
        source: error,
    };
    let mut buffered = std::io::BufReader::new(reader);
    let magic = buffered.fill_buf().map_err(tar_error)?;
    let stream: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(buffered).map_err(tar_error)?)
    } else {
        Box::new(buffered)
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let name = entry.path().map_err(tar_error)?.into_owned();
        let target = checked_destination(dest, &name)?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let Some(link) = entry.link_name().map_err(tar_error)? else {
                return Err(unsafe_entry(&name, "hard link without a target"));
            };
            checked_destination(dest, &link)?;
        }
        if !(kind.is_file()
            || kind.is_dir()
            || kind.is_symlink()
            || kind.is_hard_link()
            || kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_fifo()
            || kind == tar::EntryType::Continuous)
        {
            return Err(unsafe_entry(
                &name,
                "devices are not allowed in a build context",
            ));
        }
        // Never write through an existing symlink at the entry's own place.
        if let Ok(existing) = std::fs::symlink_metadata(&target)
            && !(existing.is_dir() && kind.is_dir())
        {
            if existing.is_dir() {
                std::fs::remove_dir_all(&target).map_err(io_error(&target))?;
            } else {
                std::fs::remove_file(&target).map_err(io_error(&target))?;
            }
        }
        let unpacked = entry.unpack_in(dest).map_err(|error| ContextError::Io {
            path: target.clone(),
            source: error,
        })?;
        if !unpacked {
            return Err(unsafe_entry(&name, "path leaves the context"));
        }
    }
    Ok(())
}
