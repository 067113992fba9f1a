//! Unpacked layers under snapshots/<ChainID>: each is one layer's own files with overlay
//! whiteouts, extracted once (into tmp/, synced, renamed) and shared by every image and
//! container whose layers below are the same.

use super::images::{Image, Layer, decompressed_into, read_error};
use super::lock::LockMode;
use super::{BlobWriter, IoContext, Result, Store, StoreError, sha256_hex, sync_parent};
use crate::snapshot::{
    Compression, ExtractOptions, ExtractSummary, OverlayXattrs, WhiteoutHandling, decoder,
    extract_layer,
};
use oci_spec::image::Digest;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Directories one layer's snapshot stacks (each an incremental COPY's changes over the
/// snapshot below) before a build makes the next one whole again: each costs lookups in the
/// layers above a miss more.
pub const MAX_STACK: usize = 8;
/// Deeper than this, a stack is taken for a loop of `lower` files (a whole snapshot could not
/// be made at [`MAX_STACK`], and stacking went on).
const STACK_LIMIT: usize = 64;

impl Store {
    /// The unpacked layers of an image, base layer first (overlayfs' `lowerdir=` lists the
    /// top layer first: reverse them). Missing snapshots are extracted now. The snapshots are
    /// leased to this process, so a concurrent garbage collection keeps them while it runs.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        Ok(self.layer_snapshots(image)?.into_iter().flatten().collect())
    }

    /// The directories of each layer's snapshot (see [`Store::snapshot_dirs`]), base first.
    pub fn layer_snapshots(&self, image: &Image) -> Result<Vec<Vec<PathBuf>>> {
        let layers = image.layers()?;
        let chain_ids = image.config.chain_ids();
        chain_ids
            .iter()
            .zip(&layers)
            .map(|(chain_id, layer)| self.layer_snapshot(chain_id, layer))
            .collect()
    }

    /// Where the snapshot of a ChainID lives when it is whole (whether or not it exists).
    pub fn snapshot_path(&self, chain_id: &Digest) -> Result<PathBuf> {
        Ok(self.root().join("snapshots").join(sha256_hex(chain_id)?))
    }

    /// Where the snapshot of a ChainID lives when it is stacked: `upper/`, its own files, and
    /// `lower`, the ChainID of the snapshot they lie on.
    pub fn stack_path(&self, chain_id: &Digest) -> Result<PathBuf> {
        Ok(self.root().join("stacks").join(sha256_hex(chain_id)?))
    }

    /// The directories that make the snapshot of `chain_id`, lowest first, leased to this
    /// process: one for a whole snapshot; a stacked one's lower's and then its own `upper/`.
    /// `None` when it has none.
    pub fn snapshot_dirs(&self, chain_id: &Digest) -> Result<Option<Vec<PathBuf>>> {
        let _gc = self.lock_gc(LockMode::Shared)?;
        let mut dirs = Vec::new();
        let mut chain_id = chain_id.clone();
        loop {
            let whole = self.snapshot_path(&chain_id)?;
            if whole.is_dir() {
                self.lease(&chain_id)?;
                dirs.push(whole);
                break;
            }
            let stack = self.stack_path(&chain_id)?;
            let lower = stack.join("lower");
            let text = match fs::read_to_string(&lower) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    return Err(StoreError::Io {
                        path: lower,
                        source,
                    });
                }
            };
            if dirs.len() >= STACK_LIMIT {
                return Err(StoreError::Invalid(format!(
                    "{}: stacked over {STACK_LIMIT} deep",
                    stack.display()
                )));
            }
            self.lease(&chain_id)?;
            dirs.push(stack.join("upper"));
            chain_id = text.trim().parse().map_err(|_| {
                StoreError::Invalid(format!("{}: not a ChainID: {text:?}", lower.display()))
            })?;
        }
        dirs.reverse();
        Ok(Some(dirs))
    }

    /// The snapshot of one layer of a chain (see [`Store::snapshot_dirs`]), extracted from
    /// its blob when missing.
    pub fn layer_snapshot(&self, chain_id: &Digest, layer: &Layer) -> Result<Vec<PathBuf>> {
        if let Some(dirs) = self.snapshot_dirs(chain_id)? {
            return Ok(dirs);
        }
        // Removed with what it holds, unless adopted: a refused layer leaves no snapshot.
        let work = self.work_dir("snapshot-")?;
        self.extract_into(work.path(), layer)?;
        Ok(vec![self.adopt_snapshot(chain_id, work.path())?])
    }

    /// Moves a complete, synced snapshot from tmp/ to its ChainID (leased first); when
    /// another process made it meanwhile, theirs is as good (`dir` is left to its owner).
    fn adopt_snapshot(&self, chain_id: &Digest, dir: &Path) -> Result<PathBuf> {
        let target = self.snapshot_path(chain_id)?;
        let _gc = self.lock_gc(LockMode::Shared)?;
        self.lease(chain_id)?;
        match fs::rename(dir, &target) {
            Ok(()) => sync_parent(&target)?,
            Err(_) if target.is_dir() => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: target,
                    source,
                });
            }
        }
        Ok(target)
    }

    /// Stores a base layer (a root filesystem; plain, gzip or zstd) as
    /// [`Store::import_layer`] does and unpacks it as its snapshot (a base layer's ChainID is
    /// its DiffID) in the same pass over the input: one thread writes the blob while another
    /// hashes and extracts the same bytes, a few chunks apart. The blob takes its name only
    /// once the extractor's digest of those bytes is known (and durable, as always).
    pub fn import_base_layer(&self, reader: impl Read) -> Result<Layer> {
        let mut writer = self.layer_writer()?;
        let work = self.work_dir("snapshot-")?;
        let mut summary = None;
        let compressed = decompressed_into(reader, |tar| {
            summary = Some(self.tee_into(tar, &mut writer, work.path())?);
            Ok(())
        })?;
        let summary = summary.ok_or_else(|| StoreError::Invalid("layer not read".into()))?;
        if summary.tar_size != writer.offset() {
            return Err(StoreError::Invalid(format!(
                "layer: the extractor read {} bytes of {}",
                summary.tar_size,
                writer.offset()
            )));
        }
        sync_tree(work.path())?;
        let blob = writer.known_digest(&summary.diff_id).commit()?;
        self.adopt_snapshot(&blob.digest, work.path())?;
        self.layer_stored(blob, compressed)
    }

    /// Copies `tar` into `writer` while a second thread extracts the same bytes into `dir`.
    fn tee_into(
        &self,
        tar: &mut dyn Read,
        writer: &mut BlobWriter,
        dir: &Path,
    ) -> Result<ExtractSummary> {
        let (chunks, received) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            let extractor = scope.spawn(move || {
                let input = ChunkReader {
                    chunks: received,
                    recycle,
                    current: Vec::new(),
                    position: 0,
                    ended: false,
                };
                extract_layer(input, dir, &overlay_extract_options())
            });
            let copied = copy_chunks(tar, writer, &chunks, &recycled);
            // The extractor sees the end of the layer, or a stream cut short when the copy
            // failed (or was stopped by an error of its own).
            drop(chunks);
            let extracted = extractor
                .join()
                .map_err(|_| StoreError::Invalid("the layer extractor panicked".into()))?;
            // A failed copy cuts the extractor's stream short: its own error says why. A
            // copy stopped by the extractor ends well, and the extractor's error says why.
            copied?;
            extracted.map_err(StoreError::from)
        })
    }

    /// Extracts a layer blob with overlay whiteouts, checks its DiffID and makes it durable.
    /// A compressed blob that proves to hold its DiffID becomes a known compressed form of
    /// the layer (push reuses it).
    fn extract_into(&self, dir: &Path, layer: &Layer) -> Result<()> {
        let tar = self.layer_tar(&layer.blob)?;
        let summary = extract_layer(tar, dir, &overlay_extract_options())?;
        if summary.diff_id != layer.diff_id {
            return Err(StoreError::DiffIdMismatch(Box::new(super::LayerMismatch {
                blob: layer.blob.digest().clone(),
                expected: layer.diff_id.clone(),
                actual: summary.diff_id,
            })));
        }
        sync_tree(dir)?;
        if layer.blob.digest() != &layer.diff_id {
            self.record_compressed(&layer.diff_id, &layer.blob)?;
        }
        Ok(())
    }
}

/// Snapshots are lowerdirs of overlay mounts: whiteouts as overlay's, owners restored when
/// root (rootless mounts read `user.` xattrs).
fn overlay_extract_options() -> ExtractOptions {
    let root = nix::unistd::geteuid().is_root();
    ExtractOptions {
        whiteouts: WhiteoutHandling::Overlay(if root {
            OverlayXattrs::Trusted
        } else {
            OverlayXattrs::User
        }),
        restore_owners: root,
    }
}

/// Makes an extracted tree durable: one syncfs of its filesystem beats an fsync per file.
fn sync_tree(dir: &Path) -> Result<()> {
    let handle = File::open(dir).at(dir)?;
    nix::unistd::syncfs(&handle).map_err(|e| StoreError::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })
}

/// Size of the chunks a teed or decompressed layer moves in; with [`CHUNKS_IN_FLIGHT`] of
/// them queued, this bounds the memory an import or unpack uses whatever the layer size.
pub(super) const CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

/// Reads `tar` in chunks, writes each to the blob and sends it to the extractor; chunks come
/// back through `recycled` to be filled again. Stops early when the extractor has stopped.
fn copy_chunks(
    tar: &mut dyn Read,
    writer: &mut BlobWriter,
    chunks: &mpsc::SyncSender<Chunk>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<()> {
    loop {
        let chunk = next_chunk(tar, recycled).map_err(read_error)?;
        if chunk.is_empty() {
            let _ = chunks.send(Ok(chunk));
            return Ok(());
        }
        writer.write_all(&chunk).at(writer.tmp_path())?;
        if chunks.send(Ok(chunk)).is_err() {
            return Ok(());
        }
    }
}

/// The next chunk of `input` (empty at its end), read into a recycled buffer if one is back.
fn next_chunk(input: &mut dyn Read, recycled: &mpsc::Receiver<Vec<u8>>) -> io::Result<Vec<u8>> {
    let mut chunk = recycled.try_recv().unwrap_or_default();
    chunk.resize(CHUNK, 0);
    let filled = fill(input, &mut chunk)?;
    chunk.truncate(filled);
    Ok(chunk)
}

/// Reads until `buffer` is full or the stream ends; returns how many bytes it holds.
fn fill(input: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buffer.get_mut(filled..).filter(|r| !r.is_empty()) {
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A piece of a layer stream handed between threads: bytes, the end (an empty piece), or
/// why the stream broke.
type Chunk = io::Result<Vec<u8>>;

/// Decompresses `blob` on a thread of its own, a few chunks ahead of the reader, so inflating
/// and what the reader does with the tar (extracting and hashing it) run on two cores.
pub(super) fn decompressing_thread(compression: Compression, blob: File) -> ChunkReader {
    let (chunks, received) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut tar = match decoder(compression, blob) {
            Ok(tar) => tar,
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        };
        loop {
            let next = next_chunk(&mut tar, &recycled);
            let ended = !matches!(&next, Ok(chunk) if !chunk.is_empty());
            // A reader that stopped early drops its end: nothing more to do.
            if chunks.send(next).is_err() || ended {
                return;
            }
        }
    });
    ChunkReader {
        chunks: received,
        recycle,
        current: Vec::new(),
        position: 0,
        ended: false,
    }
}

/// The consuming side of a stream handed over in chunks: one stream again, each chunk sent
/// back once read. A stream whose producer stopped without sending its end is an error,
/// never a short layer.
pub(super) struct ChunkReader {
    chunks: mpsc::Receiver<Chunk>,
    recycle: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position >= self.current.len() {
            if self.ended {
                return Ok(0);
            }
            let next = match self.chunks.recv() {
                Ok(next) => next?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the layer stream stopped before its end",
                    ));
                }
            };
            self.ended = next.is_empty();
            let used = std::mem::replace(&mut self.current, next);
            // The writer may have finished: then the chunk is simply freed.
            let _ = self.recycle.send(used);
            self.position = 0;
        }
        let rest = self.current.get(self.position..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(rest.get(..n).unwrap_or_default());
        self.position += n;
        Ok(n)
    }
}
