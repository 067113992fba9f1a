//! A COPY's layer written on a thread of its own while the next steps already run on the
//! COPY's files (its upper dir, where it was made): a large COPY's tar costs as much as the
//! RUN that follows it, and the RUN needs the files, not the tar. The thread commits the blob
//! and writes the step's cache record, so a build killed meanwhile still finds the step
//! cached (its snapshot is then extracted from the blob). The upper dir becomes the snapshot
//! when a later step needs the layer ([`super::Shared::settle`]), by which time no mount uses
//! its old path.

use super::LayerState;
use super::fsop::StackBase;
use crate::image::chain_ids;
use crate::snapshot::{BaseLayer, LayerDigest, WriteOptions};
use crate::store::{BlobWriter, CacheRecord, Layer, Store, WorkDir};
use oci_spec::image::Digest;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// A written layer tar, not yet committed, and the directory to commit as its snapshot.
pub(super) struct Written {
    pub digest: LayerDigest,
    pub writer: BlobWriter,
    pub snapshot: PathBuf,
    /// The snapshot `snapshot` is stacked on, if any.
    pub lower: Option<Digest>,
}

/// Writes the layer of a step's upper dir into a new blob (not committed): the whole tree,
/// or with `base`, the tree's changes over that layer.
pub(super) fn write_step_layer(
    store: &Store,
    upper: &Path,
    base: Option<&BaseLayer>,
    options: &WriteOptions,
) -> Result<Written, String> {
    let mut writer = store.layer_writer().map_err(|e| e.to_string())?;
    let digest = match base {
        Some(base) => crate::snapshot::write_layer_over(upper, base, &mut writer, options),
        None => crate::snapshot::write_layer(upper, &mut writer, options),
    }
    .map_err(|e| format!("writing layer: {e}"))?;
    Ok(Written {
        digest,
        writer,
        snapshot: upper.to_path_buf(),
        lower: None,
    })
}

/// Writes the layer of a COPY's upper dir over `base` when given, and decides its snapshot:
/// the upper dir stacked on the base's, or when that stack is deep enough, both linked into
/// one whole snapshot (`flat`) meanwhile.
fn write_copy_layer(
    store: &Store,
    upper: &Path,
    flat: &Path,
    base: Option<StackBase>,
    options: &WriteOptions,
) -> Result<Written, String> {
    let mut written = write_step_layer(store, upper, base.as_ref().map(|b| &b.layer), options)?;
    let Some(base) = base else {
        return Ok(written);
    };
    if base.flatten {
        let mut dirs = base.dirs;
        dirs.push(upper.to_path_buf());
        std::fs::create_dir(flat).map_err(|e| format!("{}: {e}", flat.display()))?;
        if super::fsop::link_snapshot(&dirs, flat)? {
            written.snapshot = flat.to_path_buf();
            return Ok(written);
        }
    }
    written.lower = Some(base.chain_id);
    Ok(written)
}

/// The step's cache key, and what its cache record keeps besides the layer.
pub(super) struct StepRecord {
    pub key: Digest,
    pub created: Option<String>,
    pub inputs: Box<serde_json::value::RawValue>,
}

/// A layer in the store whose snapshot is still the step's upper dir (or its `flat` copy).
pub(super) struct Committed {
    layer: Layer,
    chain_id: Digest,
    snapshot: PathBuf,
    lower: Option<Digest>,
}

/// Writes the layer, commits its blob and writes the step's cache record.
fn write_and_commit(
    store: &Store,
    work: &Path,
    base: Option<StackBase>,
    options: &WriteOptions,
    parent: &[Digest],
    record: StepRecord,
) -> Result<Committed, String> {
    let (upper, flat) = (work.join("upper"), work.join("flat"));
    let written = write_copy_layer(store, &upper, &flat, base, options)?;
    let diff_id = written.digest.diff_id.clone();
    let mut diff_ids = parent.to_vec();
    diff_ids.push(diff_id.clone());
    let chain_id = chain_ids(&diff_ids).pop().ok_or("no chain id")?;
    let blob = store
        .commit_step_blob(written.writer, &diff_id, &chain_id)
        .map_err(|e| e.to_string())?;
    store
        .put_cache_record(
            &record.key,
            &CacheRecord {
                diff_id: Some(diff_id),
                size: blob.size,
                chain_id: Some(chain_id.clone()),
                created: record.created,
                inputs: record.inputs,
                mergeable: written.digest.mergeable,
            },
        )
        .map_err(|e| e.to_string())?;
    Ok(Committed {
        layer: Layer::plain(blob.digest, blob.size),
        chain_id,
        snapshot: written.snapshot,
        lower: written.lower,
    })
}

/// A layer being written; see the module's comment.
pub(crate) struct PendingLayer {
    thread: Mutex<Option<JoinHandle<Result<Committed, String>>>>,
    /// The step's work dir, whose `upper/` (or `flat/`) becomes the snapshot.
    work: Mutex<Option<WorkDir>>,
    pub(super) settled: OnceLock<Result<LayerState, String>>,
}

impl PendingLayer {
    /// Starts writing the layer of `work`'s upper dir (over `base`'s when given) on top of
    /// the layers `parent` (their DiffIDs).
    pub(super) fn start(
        store: &Store,
        work: WorkDir,
        base: Option<StackBase>,
        options: WriteOptions,
        parent: Vec<Digest>,
        record: StepRecord,
    ) -> Result<PendingLayer, String> {
        let (store, dir) = (store.clone(), work.path().to_path_buf());
        let thread = std::thread::Builder::new()
            .name("layer-writer".into())
            .spawn(move || write_and_commit(&store, &dir, base, &options, &parent, record))
            .map_err(|e| format!("starting the layer writer: {e}"))?;
        Ok(PendingLayer {
            thread: Mutex::new(Some(thread)),
            work: Mutex::new(Some(work)),
            settled: OnceLock::new(),
        })
    }

    /// Waits for the layer and makes its snapshot; returns it and the step's work dir, done
    /// with. Once: later calls fail.
    pub(super) fn finish(&self, store: &Store) -> Result<(LayerState, WorkDir), String> {
        let committed = self.join().ok_or("the layer was committed already")??;
        let work = self
            .work
            .lock()
            .ok()
            .and_then(|mut work| work.take())
            .ok_or("the layer's work dir is gone")?;
        let dirs = store
            .commit_step_snapshot(
                &committed.chain_id,
                &committed.snapshot,
                committed.lower.as_ref(),
            )
            .map_err(|e| e.to_string())?;
        let layer = LayerState {
            layer: committed.layer,
            chain_id: committed.chain_id,
            dirs,
        };
        Ok((layer, work))
    }

    fn join(&self) -> Option<Result<Committed, String>> {
        let thread = self.thread.lock().ok()?.take()?;
        Some(
            thread
                .join()
                .unwrap_or_else(|_| Err("the layer writer panicked".into())),
        )
    }
}

impl Drop for PendingLayer {
    /// A build that failed before the layer was needed still waits for its writer (which
    /// leaves the layer committed, or removes its partial blob), then removes the work dir.
    fn drop(&mut self) {
        drop(self.join());
    }
}

impl std::fmt::Debug for PendingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLayer").finish_non_exhaustive()
    }
}
