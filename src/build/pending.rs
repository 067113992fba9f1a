//! A COPY's layer tar written on a thread of its own while the next steps already run on the
//! COPY's files (its upper dir, where it was made): a large COPY's tar costs as much as the
//! RUN that follows it, and the RUN needs the files, not the tar. The layer becomes a snapshot
//! and gets its cache record when a later step needs its DiffID ([`super::Shared::settle`]),
//! by which time no mount uses the upper dir's old path.

use super::LayerState;
use super::fsop::StackBase;
use crate::snapshot::{BaseLayer, LayerDigest, WriteOptions};
use crate::store::{BlobWriter, Store, WorkDir};
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
    pub sources: Box<serde_json::value::RawValue>,
}

/// A layer being written; see the module's comment.
pub(crate) struct PendingLayer {
    thread: Mutex<Option<JoinHandle<Result<Written, String>>>>,
    /// The step's work dir, whose `upper/` the layer is made of.
    pub(super) work: Mutex<Option<WorkDir>>,
    pub(super) record: StepRecord,
    pub(super) settled: OnceLock<Result<LayerState, String>>,
}

impl PendingLayer {
    /// Starts writing the layer of `work`'s upper dir, over `base`'s when given.
    pub(super) fn start(
        store: &Store,
        work: WorkDir,
        base: Option<StackBase>,
        options: WriteOptions,
        record: StepRecord,
    ) -> Result<PendingLayer, String> {
        let store = store.clone();
        let (upper, flat) = (work.path().join("upper"), work.path().join("flat"));
        let thread = std::thread::Builder::new()
            .name("layer-writer".into())
            .spawn(move || write_copy_layer(&store, &upper, &flat, base, &options))
            .map_err(|e| format!("starting the layer writer: {e}"))?;
        Ok(PendingLayer {
            thread: Mutex::new(Some(thread)),
            work: Mutex::new(Some(work)),
            record,
            settled: OnceLock::new(),
        })
    }

    /// Waits for the tar (once: later calls get `None`).
    pub(super) fn join(&self) -> Option<Result<Written, String>> {
        let thread = self.thread.lock().ok()?.take()?;
        Some(
            thread
                .join()
                .unwrap_or_else(|_| Err("the layer writer panicked".into())),
        )
    }
}

impl Drop for PendingLayer {
    /// A build that failed before the layer was needed still waits for its writer, which
    /// then removes its partial blob, and removes the work dir.
    fn drop(&mut self) {
        drop(self.join());
    }
}

impl std::fmt::Debug for PendingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLayer")
            .field("key", &self.record.key)
            .finish_non_exhaustive()
    }
}
