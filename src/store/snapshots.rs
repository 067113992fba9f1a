//! Unpacked layers under snapshots/<ChainID>: each is one layer's own files with overlay
//! whiteouts, extracted once (into tmp/, synced, renamed) and shared by every image and
//! container whose layers below are the same.

use super::images::{Image, Layer, decompressed_into, read_error};
use super::lock::LockMode;
use super::{BlobWriter, IoContext, Result, Store, StoreError, sha256_hex, sync_parent};
use crate::snapshot::{
    ExtractOptions, ExtractSummary, OverlayXattrs, WhiteoutHandling, extract_layer,
};
use oci_spec::image::{Descriptor, Digest};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

impl Store {
    /// The unpacked layers of an image, base layer first (overlayfs' `lowerdir=` lists the
    /// top layer first: reverse them). Missing snapshots are extracted now. The snapshots are
    /// leased to this process, so a concurrent garbage collection keeps them while it runs.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let diff_ids = &image.config.rootfs.diff_ids;
        let layers = image.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(StoreError::Invalid(format!(
                "image {}: config lists {} layers, manifest {}",
                image.id(),
                diff_ids.len(),
                layers.len()
            )));
        }
        let chain_ids = image.config.chain_ids();
        let mut dirs = Vec::with_capacity(layers.len());
        for ((chain_id, diff_id), layer) in chain_ids.iter().zip(diff_ids).zip(layers) {
            dirs.push(self.snapshot(chain_id, diff_id, layer)?);
        }
        Ok(dirs)
    }

    /// Where the snapshot of a ChainID lives (whether or not it exists).
    pub fn snapshot_path(&self, chain_id: &Digest) -> Result<PathBuf> {
        Ok(self.root().join("snapshots").join(sha256_hex(chain_id)?))
    }

    /// The snapshot of one layer of a chain, extracted from its blob when missing.
    pub fn layer_snapshot(&self, chain_id: &Digest, layer: &super::Layer) -> Result<PathBuf> {
        self.snapshot(chain_id, &layer.diff_id, &layer.descriptor())
    }

    fn snapshot(&self, chain_id: &Digest, diff_id: &Digest, layer: &Descriptor) -> Result<PathBuf> {
        let target = self.snapshot_path(chain_id)?;
        {
            let _gc = self.lock_gc(LockMode::Shared)?;
            if target.is_dir() {
                self.lease(chain_id)?;
                return Ok(target);
            }
        }
        let work = self.work_dir("snapshot-")?;
        self.extract_into(work.path(), diff_id, layer)?;
        self.adopt_snapshot(chain_id, work.path())
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
        let (chunks, received) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            let extractor = scope.spawn(move || {
                let input = ChunkReader {
                    chunks: received,
                    recycle,
                    current: Vec::new(),
                    position: 0,
                };
                extract_layer(input, dir, &overlay_extract_options())
            });
            let copied = copy_chunks(tar, writer, &chunks, &recycled);
            // The extractor sees the end of the layer (or was stopped by an error of its own).
            drop(chunks);
            let extracted = extractor
                .join()
                .map_err(|_| StoreError::Invalid("the layer extractor panicked".into()))?;
            // Its error explains why the copy stopped, so it comes first.
            let summary = extracted?;
            copied?;
            Ok(summary)
        })
    }

    /// Extracts a layer blob with overlay whiteouts, checks its DiffID and makes it durable.
    fn extract_into(
        &self,
        dir: &std::path::Path,
        diff_id: &Digest,
        layer: &Descriptor,
    ) -> Result<()> {
        let blob = self.open_blob(layer.digest())?;
        let summary = extract_layer(
            io::BufReader::with_capacity(CHUNK, blob),
            dir,
            &overlay_extract_options(),
        )?;
        if summary.diff_id != *diff_id {
            return Err(StoreError::DigestMismatch {
                expected: diff_id.clone(),
                actual: summary.diff_id,
            });
        }
        sync_tree(dir)
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

/// Size of the chunks a teed layer moves in; with [`CHUNKS_IN_FLIGHT`] of them queued, this
/// bounds the memory an import uses whatever the layer size.
const CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

/// Reads `tar` in chunks, writes each to the blob and sends it to the extractor; chunks come
/// back through `recycled` to be filled again. Stops early when the extractor has stopped.
fn copy_chunks(
    tar: &mut dyn Read,
    writer: &mut BlobWriter,
    chunks: &mpsc::SyncSender<Vec<u8>>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<()> {
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let filled = fill(tar, &mut chunk).map_err(read_error)?;
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        writer.write_all(&chunk).at(writer.tmp_path())?;
        if chunks.send(chunk).is_err() {
            return Ok(());
        }
    }
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

/// The extractor's side of a tee: the chunks as one stream, each sent back once read.
struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position >= self.current.len() {
            let Ok(next) = self.chunks.recv() else {
                return Ok(0);
            };
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
