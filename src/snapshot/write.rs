//! Directory tree → deterministic layer tar, streamed to any writer.

use super::base::BaseLayer;
use super::compression::STREAM_BUFFER;
use super::hash::StreamHasher;
use super::{OPAQUE_WHITEOUT, SnapshotError, WHITEOUT_PREFIX, fsat};
use oci_spec::image::{Digest, Sha256Digest};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::str::FromStr;
use tar::{EntryType, Header};

/// How [`write_layer`] turns a tree into a layer.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Clamp every mtime to this many seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// The tree is an overlayfs upper dir: 0/0 character devices become `.wh.NAME` entries,
    /// opaque directories get a `.wh..wh..opq` entry, and overlay xattrs are left out.
    pub overlay_upper: bool,
}

/// Identity of a layer tar: its DiffID (sha256 of the uncompressed tar) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigest {
    pub diff_id: Digest,
    pub size: u64,
    /// Whether a later layer may copy this one's entries one by one
    /// ([`super::write_layer_over`]): it holds no whiteouts and no hard links, whose
    /// meaning depends on other entries.
    pub mergeable: bool,
}

const NAME_FIELD: usize = 100;
/// Largest value the 12-byte octal size field holds; larger files carry a PAX `size` record.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;
const PAX_XATTR: &str = "SCHILY.xattr.";

/// Writes the tree under `root` (not `root` itself) as a layer tar to `out`: entries in path
/// order (each directory's names sorted bytewise, a directory before its content), numeric
/// owners with empty user and group names, PAX records for long names, long link targets, large
/// sizes and xattrs, hardlinks as links to the first path written. Sockets are left out, as
/// Docker leaves them out.
pub fn write_layer<W: Write>(
    root: &Path,
    out: W,
    options: &WriteOptions,
) -> Result<LayerDigest, SnapshotError> {
    write_tree(root, None, out, options)
}

/// Writes the layer of `base`'s entries with the tree under `root` laid over them, as
/// [`write_layer`] writes that whole tree (the same bytes): an entry of `root` replaces the
/// one of the same path, and every other entry of `base` is copied as it is, not read again
/// from a file. `root` must not hold whiteouts (nothing of `base` is removed).
pub fn write_layer_over<W: Write>(
    root: &Path,
    base: &BaseLayer,
    out: W,
    options: &WriteOptions,
) -> Result<LayerDigest, SnapshotError> {
    write_tree(root, Some(base), out, options)
}

fn write_tree<W: Write>(
    root: &Path,
    base: Option<&BaseLayer>,
    out: W,
    options: &WriteOptions,
) -> Result<LayerDigest, SnapshotError> {
    let mut base = base.map(BaseLayer::entries).transpose()?;
    let mut writer = LayerWriter {
        tar: tar::Builder::new(BufWriter::with_capacity(
            STREAM_BUFFER,
            HashingWriter::new(out),
        )),
        options,
        first_paths: HashMap::new(),
        pax: Vec::new(),
        mergeable: true,
    };
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for item in walk {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            SnapshotError::Io {
                path,
                source: e.into(),
            }
        })?;
        let meta = item.metadata().map_err(|e| SnapshotError::Io {
            path: item.path().to_path_buf(),
            source: e.into(),
        })?;
        let relative = item.path().strip_prefix(root).unwrap_or(item.path());
        let name = relative.as_os_str().as_bytes();
        if let Some(base) = &mut base {
            if is_overlay_whiteout(options, &meta) {
                return Err(SnapshotError::Unrepresentable {
                    path: item.path().to_path_buf(),
                    reason: "a whiteout over a base layer's entries".into(),
                });
            }
            base.copy_before(name, writer.tar.get_mut())?;
        }
        writer.append(item.path(), name, &meta)?;
    }
    if let Some(base) = &mut base {
        base.copy_rest(writer.tar.get_mut())?;
    }
    let mergeable = writer.mergeable;
    let buffered = writer.tar.into_inner().map_err(SnapshotError::Write)?;
    let hashing = buffered
        .into_inner()
        .map_err(|e| SnapshotError::Write(e.into_error()))?;
    Ok(LayerDigest {
        mergeable,
        ..hashing.finish()?
    })
}

/// Whether `meta` is an overlay whiteout (a 0/0 character device in an upper dir).
fn is_overlay_whiteout(options: &WriteOptions, meta: &Metadata) -> bool {
    options.overlay_upper && meta.file_type().is_char_device() && meta.rdev() == 0
}

struct LayerWriter<'o, W: Write> {
    tar: tar::Builder<BufWriter<HashingWriter<W>>>,
    options: &'o WriteOptions,
    /// (device, inode) of files with several links → the path written first.
    first_paths: HashMap<(u64, u64), Vec<u8>>,
    /// PAX records of the entry being written, reused across entries.
    pax: Vec<(String, Vec<u8>)>,
    /// No whiteout or hard link written so far.
    mergeable: bool,
}

impl<W: Write> LayerWriter<'_, W> {
    fn append(&mut self, path: &Path, name: &[u8], meta: &Metadata) -> Result<(), SnapshotError> {
        let io_err = |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let kind = meta.file_type();
        self.pax.clear();
        let mut header = Header::new_ustar();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(self.clamp(meta.mtime()));
        header.set_size(0);

        if is_overlay_whiteout(self.options, meta) {
            // An overlay whiteout: the layer says "deleted" with an empty `.wh.NAME` file.
            let whiteout = whiteout_name(name, WHITEOUT_PREFIX.as_bytes());
            self.mergeable = false;
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o600);
            return self
                .emit(&mut header, &whiteout, io::empty())
                .map_err(io_err);
        }

        // A regular file is opened once, for its xattrs and its data.
        let file = match kind.is_file() {
            true => Some(File::open(path).map_err(io_err)?),
            false => None,
        };
        let xattrs = match &file {
            Some(file) => fsat::list_fd_xattrs(file.as_fd()),
            None => fsat::list_xattrs(path.as_os_str().as_bytes()),
        }
        .map_err(io_err)?;
        let mut opaque = false;
        for (key, value) in xattrs {
            if super::is_overlay_xattr(&key) {
                opaque |= key.ends_with(b".overlay.opaque") && value == b"y";
                continue;
            }
            let key = String::from_utf8(key).map_err(|k| SnapshotError::Unrepresentable {
                path: path.to_path_buf(),
                reason: format!(
                    "xattr name {:?} is not UTF-8",
                    String::from_utf8_lossy(k.as_bytes())
                ),
            })?;
            self.pax.push((format!("{PAX_XATTR}{key}"), value));
        }
        let opaque = opaque && self.options.overlay_upper && kind.is_dir();

        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            let mut dir_name = name.to_vec();
            dir_name.push(b'/');
            self.emit(&mut header, &dir_name, io::empty())
                .map_err(io_err)?;
            if opaque {
                // As Docker writes it: right after the directory, mtime 0, the directory's owner.
                self.pax.clear();
                header.set_entry_type(EntryType::Regular);
                header.set_mtime(0);
                header.set_mode(meta.mode() & 0o777);
                let marker = [name, b"/", OPAQUE_WHITEOUT.as_bytes()].concat();
                self.mergeable = false;
                self.emit(&mut header, &marker, io::empty())
                    .map_err(io_err)?;
            }
            return Ok(());
        }
        if kind.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            let target = std::fs::read_link(path).map_err(io_err)?;
            self.set_link_name(&mut header, target.as_os_str().as_bytes());
            return self.emit(&mut header, name, io::empty()).map_err(io_err);
        }
        if !kind.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.first_paths.get(&key).cloned() {
                header.set_entry_type(EntryType::Link);
                self.mergeable = false;
                self.set_link_name(&mut header, &first);
                return self.emit(&mut header, name, io::empty()).map_err(io_err);
            }
            self.first_paths.insert(key, name.to_vec());
        }
        if let Some(file) = file {
            header.set_entry_type(EntryType::Regular);
            let size = meta.len();
            if size > MAX_OCTAL_SIZE {
                self.pax
                    .push(("size".into(), size.to_string().into_bytes()));
            }
            header.set_size(size);
            return self
                .emit(&mut header, name, ExactLength::new(file, size))
                .map_err(io_err);
        }
        let (entry_type, device) = if kind.is_char_device() {
            (EntryType::Char, true)
        } else if kind.is_block_device() {
            (EntryType::Block, true)
        } else if kind.is_fifo() {
            (EntryType::Fifo, false)
        } else {
            // A socket: tar cannot hold one, and Docker leaves them out of layers too.
            return Ok(());
        };
        header.set_entry_type(entry_type);
        if device {
            let rdev = meta.rdev();
            header.set_device_major(libc::major(rdev)).map_err(io_err)?;
            header.set_device_minor(libc::minor(rdev)).map_err(io_err)?;
        }
        self.emit(&mut header, name, io::empty()).map_err(io_err)
    }

    fn clamp(&self, mtime: i64) -> u64 {
        let mtime = u64::try_from(mtime).unwrap_or(0);
        match self.options.source_date_epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        }
    }

    fn set_link_name(&mut self, header: &mut Header, target: &[u8]) {
        if target.len() > NAME_FIELD {
            self.pax.push(("linkpath".into(), target.to_vec()));
        }
        let field = &mut header.as_old_mut().linkname;
        let shown = target.get(..NAME_FIELD).unwrap_or(target);
        field.fill(0);
        field.iter_mut().zip(shown).for_each(|(d, s)| *d = *s);
    }

    /// Writes the PAX records gathered for this entry, then its header (name set, checksum
    /// computed) and data.
    fn emit(&mut self, header: &mut Header, name: &[u8], data: impl Read) -> io::Result<()> {
        if name.len() > NAME_FIELD {
            self.pax.push(("path".into(), name.to_vec()));
        }
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field
            .iter_mut()
            .zip(name.get(..NAME_FIELD).unwrap_or(name))
            .for_each(|(d, s)| *d = *s);
        if !self.pax.is_empty() {
            self.pax.sort();
            let records = self.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
            self.tar.append_pax_extensions(records)?;
        }
        header.set_cksum();
        self.tar.append(header, data)
    }
}

fn whiteout_name(path: &[u8], prefix: &[u8]) -> Vec<u8> {
    let split = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, base) = path.split_at(split);
    [dir, prefix, base].concat()
}

/// Reads exactly `size` bytes: a file that shrank while being written is an error, not a
/// corrupt tar; bytes it gained are not read.
struct ExactLength<R> {
    inner: io::Take<R>,
}

impl<R: Read> ExactLength<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactLength {
            inner: inner.take(size),
        }
    }
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.inner.limit() > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being written",
            ));
        }
        Ok(n)
    }
}

/// Hashes and counts what passes through to the inner writer.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: StreamHasher,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: StreamHasher::new(),
        }
    }

    fn finish(mut self) -> Result<LayerDigest, SnapshotError> {
        self.inner.flush().map_err(SnapshotError::Write)?;
        let size = self.hasher.size();
        Ok(LayerDigest {
            diff_id: self.hasher.finish(),
            size,
            mergeable: true,
        })
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn sha256_digest(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    // A sha256 hex string is always a valid digest.
    match Sha256Digest::from_str(&hex) {
        Ok(d) => d.into(),
        Err(_) => unreachable!("64 lowercase hex digits form a sha256 digest"),
    }
}
