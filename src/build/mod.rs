//! Executes a plan: the scheduler runs every needed stage on its own thread as soon as the
//! stages it reads from are done; each step is looked up in the cache by its key and run only
//! on a miss; progress goes out as [`Event`]s.
//!
//! A step's key is sha256 over its parent's key and what the step does after expansion (the
//! serialised op), plus for COPY/ADD the content hashes of its sources and for `--from` the key
//! of the stage read. Secrets' values never enter a key. A miss is explained by comparing with
//! the inputs the same step position had at its last build.

pub mod cache_io;
mod fsop;
pub mod options;
mod pending;
mod reasons;
mod run;

use crate::context::{Context, ContextError, FileKind, StatCache};
use crate::image::{History, ImageConfig, RootFs, chain_ids, host_platform, sha256_digest};
use crate::plan::{Base, Op, Plan, Source, Stage, Step};
use crate::progress::{Event, StepId};
use crate::sandbox::Runtime;
use crate::store::{CacheRecord, Image, Layer, Store, StoreError};
use oci_spec::image::Digest;
use options::{HostEntry, NetworkMode, Secret};
use pending::PendingLayer;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Version of the cache key format; bump to invalidate every key.
const KEY_FORMAT: &str = "rbuild-build-cache-v1";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A step failed; `location` is `file:line:col`-ready (`line:col`).
    #[error("{name} (line {line}): {message}")]
    Step {
        name: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("{0}")]
    Other(String),
}

/// How to build, beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--no-cache-filter`: run every step of these stages.
    pub no_cache_filter: Vec<String>,
    /// `--network` for RUN steps without their own.
    pub network: NetworkMode,
    pub secrets: Vec<Secret>,
    pub add_hosts: Vec<HostEntry>,
    pub runtime: Option<Runtime>,
    /// Clamp layer mtimes (SOURCE_DATE_EPOCH) for reproducible layers.
    pub source_date_epoch: Option<u64>,
    /// `--ssh default`: the agent socket forwarded to `RUN --mount=type=ssh`.
    pub ssh_agent: Option<PathBuf>,
    /// A stable name for this Dockerfile, so a miss can be compared with its last build.
    pub position_prefix: String,
}

/// The file system after some steps: layers (base first) and the key that names it.
#[derive(Debug, Clone)]
pub(crate) struct FsState {
    pub layers: Vec<LayerState>,
    /// The top layer while its tar is being written: its directories, and the writer.
    pub pending: Option<(Vec<PathBuf>, Arc<PendingLayer>)>,
    pub key: Digest,
    /// When the last step that made this state ran (from the cache when it was cached).
    pub created: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct LayerState {
    pub layer: Layer,
    pub chain_id: Digest,
    /// Its snapshot, lowest directory first (see [`Store::snapshot_dirs`]).
    pub dirs: Vec<PathBuf>,
}

impl FsState {
    /// Every layer's directories, lowest first.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let pending = self.pending.iter().flat_map(|(dirs, _)| dirs.clone());
        self.layers
            .iter()
            .flat_map(|l| l.dirs.clone())
            .chain(pending)
            .collect()
    }

    /// Its layers, the pending one included.
    fn layer_count(&self) -> usize {
        self.layers.len() + usize::from(self.pending.is_some())
    }

    fn chain_id(&self) -> Option<&Digest> {
        self.layers.last().map(|l| &l.chain_id)
    }
}

/// A finished stage.
#[derive(Debug)]
struct StageOutput {
    fs: FsState,
    config: ImageConfig,
}

/// A finished stage, or `Err` when it failed (its error is reported by its own thread).
type StageOutcome = Result<Arc<StageOutput>, ()>;

/// What every stage thread shares.
struct Shared<'a> {
    store: &'a Store,
    context: &'a Context,
    stat_cache: &'a StatCache,
    options: &'a BuildOptions,
    events: &'a (dyn Fn(Event) + Sync),
    /// Step id of each stage's FROM; its steps follow.
    first_step: Vec<StepId>,
    results: Mutex<Vec<Option<StageOutcome>>>,
    done: Condvar,
    /// Keys of the steps done so far.
    keys: Mutex<Vec<Digest>>,
    /// Finished steps' work dirs go here to be removed off the critical path (removing
    /// directories waits for the disk, e.g. ext4's `discard`).
    trash: Mutex<Option<std::sync::mpsc::Sender<crate::store::WorkDir>>>,
    /// RUN steps' work dirs (with overlay's `work/`), used again by later RUN steps: a step
    /// then creates only its upper dir, which becomes a snapshot, and removes nothing.
    run_dirs: Mutex<Vec<crate::store::WorkDir>>,
}

/// The result of a build: the target's image config and layers, not yet stored as an image.
#[derive(Debug)]
pub struct Built {
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
    /// The cache key of every step the build ran or found cached (for `--cache-to`).
    pub cache_keys: Vec<Digest>,
    /// Still removing the build's work dirs while the image is stored; done when dropped.
    _remover: Remover,
}

/// The thread that removes a build's work dirs; joined on drop.
#[derive(Debug)]
struct Remover(Option<std::thread::JoinHandle<()>>);

impl Drop for Remover {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl Built {
    /// Stores the image under `names` (unnamed when empty).
    pub fn store(
        &self,
        store: &Store,
        names: &[crate::image::Reference],
    ) -> Result<Image, BuildError> {
        Ok(store.put_image_as(&self.config, &self.layers, names)?)
    }
}

/// Runs the plan; returns the target stage's image config and layers (in the store; the image
/// itself is stored by [`Built::store`]).
pub fn build(
    store: &Store,
    context: &Context,
    plan: &Plan,
    options: &BuildOptions,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Built, BuildError> {
    // What an interrupted build left behind (its work dirs) goes first.
    store.remove_stale_temporaries()?;
    let cache_dir = store.root().join("cache/context");
    std::fs::create_dir_all(&cache_dir)
        .map_err(|e| BuildError::Other(format!("{}: {e}", cache_dir.display())))?;
    let stat_cache = StatCache::open(&cache_dir)?;
    context.keep_listings_in(&cache_dir);
    let mut first_step = Vec::with_capacity(plan.stages.len());
    let mut next = 0;
    for stage in &plan.stages {
        first_step.push(next);
        if stage.needed {
            next += 1 + stage.steps.len();
        }
    }
    let (trash, garbage) = std::sync::mpsc::channel::<crate::store::WorkDir>();
    let remover = Remover(Some(std::thread::spawn(move || {
        garbage.into_iter().for_each(drop)
    })));
    let shared = Shared {
        store,
        context,
        stat_cache: &stat_cache,
        options,
        events,
        first_step,
        results: Mutex::new(vec![None; plan.stages.len()]),
        done: Condvar::new(),
        keys: Mutex::new(Vec::new()),
        trash: Mutex::new(Some(trash)),
        run_dirs: Mutex::new(Vec::new()),
    };
    let mut first_error: Option<BuildError> = None;
    std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .stages
            .iter()
            .filter(|s| s.needed)
            .map(|stage| {
                let shared = &shared;
                (stage.index, scope.spawn(move || shared.run_stage(stage)))
            })
            .collect();
        for (index, handle) in handles {
            let outcome = handle
                .join()
                .unwrap_or_else(|_| Err(BuildError::Other(format!("stage {index} panicked"))));
            if let Err(error) = outcome
                && first_error.is_none()
            {
                first_error = Some(error);
            }
        }
    });
    let _ = stat_cache.save();
    let _ = context.save_listings();
    if let Ok(mut run_dirs) = shared.run_dirs.lock()
        && let Ok(trash) = shared.trash.lock()
        && let Some(trash) = trash.as_ref()
    {
        for dir in run_dirs.drain(..) {
            let _ = trash.send(dir);
        }
    }
    // Closing the channel ends the remover once it has removed everything.
    if let Ok(mut trash) = shared.trash.lock() {
        trash.take();
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let output = shared
        .result(plan.target)
        .ok_or_else(|| BuildError::Other("the target stage did not finish".into()))?;
    let layers: Vec<Layer> = output.fs.layers.iter().map(|l| l.layer.clone()).collect();
    let config = output
        .config
        .to_canonical_json()
        .map_err(|e| BuildError::Other(e.to_string()))?;
    let cache_keys = shared.keys.into_inner().unwrap_or_default();
    Ok(Built {
        config,
        layers,
        cache_keys,
        _remover: remover,
    })
}

impl Shared<'_> {
    fn emit(&self, event: Event) {
        (self.events)(event);
    }

    fn result(&self, stage: usize) -> Option<Arc<StageOutput>> {
        let results = self.results.lock().ok()?;
        results.get(stage).cloned().flatten().and_then(Result::ok)
    }

    /// Blocks until stage `index` is done; `None` when it failed.
    fn wait_for(&self, index: usize) -> Option<Arc<StageOutput>> {
        let mut results = self.results.lock().ok()?;
        loop {
            match results.get(index) {
                Some(Some(outcome)) => return outcome.clone().ok(),
                Some(None) => results = self.done.wait(results).ok()?,
                None => return None,
            }
        }
    }

    /// A work dir for a RUN step: one a finished step left (its upper dir gone into the
    /// snapshots, or removed here), or a new one with overlay's `work/`.
    fn run_dir(&self) -> Result<crate::store::WorkDir, StoreError> {
        let reused = self.run_dirs.lock().ok().and_then(|mut dirs| dirs.pop());
        if let Some(dir) = reused {
            // Left when the step changed nothing, or its snapshot existed already.
            let upper = dir.path().join("upper");
            if upper.exists() {
                crate::snapshot::remove_tree(&upper)
                    .map_err(|e| StoreError::Invalid(format!("{}: {e}", upper.display())))?;
            }
            return Ok(dir);
        }
        let dir = self.store.work_dir("run-")?;
        let work = dir.path().join("work");
        std::fs::create_dir(&work).map_err(|source| StoreError::Io { path: work, source })?;
        Ok(dir)
    }

    /// The output of stage `index`, waiting for it: a stage reads another only when a step
    /// needs it, so it starts (and copies from a finished stage) while others still run.
    fn stage_result(&self, index: usize) -> Result<Arc<StageOutput>, BuildError> {
        self.wait_for(index)
            .ok_or_else(|| BuildError::Other(format!("stage {index} failed")))
    }

    fn finish(&self, index: usize, outcome: StageOutcome) {
        if let Ok(mut results) = self.results.lock()
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(outcome);
        }
        self.done.notify_all();
    }

    fn failed_elsewhere(&self) -> bool {
        self.results
            .lock()
            .map(|r| r.iter().any(|o| matches!(o, Some(Err(())))))
            .unwrap_or(true)
    }

    fn run_stage(&self, stage: &Stage) -> Result<(), BuildError> {
        let outcome = self.stage_output(stage);
        self.finish(
            stage.index,
            outcome.as_ref().map(|o| o.clone()).map_err(|_| ()),
        );
        outcome.map(|_| ())
    }

    fn stage_output(&self, stage: &Stage) -> Result<Arc<StageOutput>, BuildError> {
        let from_step = self.first_step[stage.index];
        let started = Instant::now();
        self.emit(Event::Started {
            step: from_step,
            name: stage.from_name.clone(),
        });
        let (mut fs, mut config) = match self.base_of(stage) {
            Ok(base) => base,
            Err(error) => {
                self.emit(Event::Failed {
                    step: from_step,
                    error: error.to_string(),
                });
                return Err(error);
            }
        };
        self.emit(Event::done(from_step, started.elapsed()));
        let no_cache = self.options.no_cache
            || stage.name.as_ref().is_some_and(|n| {
                self.options
                    .no_cache_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(n))
            });
        let mut made_layer = vec![false; stage.steps.len()];
        let mut step_times: Vec<Option<String>> = vec![None; stage.steps.len()];
        let base_created = fs.created.clone();
        for (number, step) in stage.steps.iter().enumerate() {
            if self.failed_elsewhere() {
                return Err(BuildError::Other("another stage failed".into()));
            }
            let id = from_step + 1 + number;
            let position = format!(
                "{}\0{}\0{number}",
                self.options.position_prefix,
                stage.display_name()
            );
            match self.step(step, id, &position, &fs, no_cache) {
                Ok(next) => {
                    made_layer[number] = next.layer_count() > fs.layer_count();
                    step_times[number] = next.created.clone();
                    fs = next;
                }
                Err(error) => {
                    // The steps that finished stay in the cache, a COPY whose layer was
                    // still being written included.
                    let _ = self.settle(&fs);
                    let shown = match &error {
                        BuildError::Step { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    self.emit(Event::Failed {
                        step: id,
                        error: shown,
                    });
                    return Err(error);
                }
            }
        }
        // Times come from the steps (cached steps keep theirs), so a rebuild from the cache
        // gives the same configuration, hence the same image ID.
        let base_created = base_created.unwrap_or_else(|| self.now());
        let mut last = base_created.clone();
        let mut entry_times = Vec::with_capacity(stage.history.len());
        for entry in &stage.history {
            if let Some(Some(created)) = entry.step.and_then(|s| step_times.get(s)) {
                last = created.clone();
            }
            entry_times.push(last.clone());
        }
        config.created = Some(last);
        if stage.author.is_some() {
            config.author = stage.author.clone();
        }
        config.config = Some(stage.config.clone());
        let fs = self.settle(&fs)?;
        config.rootfs = RootFs {
            diff_ids: fs.layers.iter().map(|l| l.layer.diff_id.clone()).collect(),
            ..RootFs::default()
        };
        for (entry, created) in stage.history.iter().zip(entry_times) {
            let empty_layer = !entry
                .step
                .is_some_and(|s| made_layer.get(s).copied().unwrap_or(false));
            config.history.push(History {
                created: Some(created),
                created_by: Some(entry.created_by.clone()),
                comment: Some("buildkit.dockerfile.v0".into()),
                empty_layer,
                ..History::default()
            });
        }
        Ok(Arc::new(StageOutput { fs, config }))
    }

    /// The file system and image config a stage starts from.
    fn base_of(&self, stage: &Stage) -> Result<(FsState, ImageConfig), BuildError> {
        match &stage.base {
            Base::Scratch => {
                let (os, architecture, variant) = host_platform();
                Ok((
                    FsState {
                        layers: Vec::new(),
                        pending: None,
                        key: key_of(&[KEY_FORMAT, "scratch"]),
                        created: None,
                    },
                    ImageConfig {
                        architecture,
                        os,
                        variant,
                        ..ImageConfig::default()
                    },
                ))
            }
            Base::Image(reference) => {
                let image = self.store.find_image(reference)?;
                let fs = self.image_fs(&image)?;
                let mut config = image.config.clone();
                config.extra.remove("container");
                config.extra.remove("container_config");
                config.extra.remove("docker_version");
                Ok((fs, config))
            }
            Base::Stage(parent) => {
                let output = self.stage_result(*parent)?;
                Ok((output.fs.clone(), output.config.clone()))
            }
        }
    }

    /// An image's layers, unpacked.
    fn image_fs(&self, image: &Image) -> Result<FsState, BuildError> {
        let snapshots = self.store.layer_snapshots(image)?;
        let diff_ids = &image.config.rootfs.diff_ids;
        let chains = chain_ids(diff_ids);
        let layers = image
            .layers()?
            .into_iter()
            .zip(chains)
            .zip(snapshots)
            .map(|((layer, chain_id), dirs)| LayerState {
                layer,
                chain_id,
                dirs,
            })
            .collect();
        Ok(FsState {
            layers,
            pending: None,
            key: key_of(&[KEY_FORMAT, "image", image.id().as_ref()]),
            created: image.config.created.clone(),
        })
    }

    /// The file system of a `--from` source.
    fn source_fs(&self, source: &Source) -> Result<Option<FsState>, BuildError> {
        match source {
            Source::Context => Ok(None),
            Source::Stage(index) => Ok(Some(self.stage_result(*index)?.fs.clone())),
            Source::Image(reference) => {
                let image = self.store.find_image(reference)?;
                Ok(Some(self.image_fs(&image)?))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        step: &Step,
        id: StepId,
        position: &str,
        fs: &FsState,
        no_cache: bool,
    ) -> Result<FsState, BuildError> {
        let started = Instant::now();
        self.emit(Event::Started {
            step: id,
            name: step.name.clone(),
        });
        let fail = |message: String| BuildError::Step {
            name: step.name.clone(),
            line: step.line,
            column: step.column,
            message,
        };
        // What the step reads besides its parent: sources and mounted stages.
        let mut sources = Vec::new();
        let mut source_states: Vec<Option<FsState>> = Vec::new();
        let mut selections = Vec::new();
        let mut remote = fsop::RemoteSources::default();
        match &step.op {
            Op::Copy(copy) => {
                let state = self.source_fs(&copy.from)?;
                if copy.from == Source::Context {
                    for source in copy.sources.iter().filter(|s| !fsop::is_url(s)) {
                        let selection = self
                            .context
                            .select(
                                source,
                                &crate::context::SelectOptions {
                                    excludes: copy.excludes.clone(),
                                    parents: copy.parents,
                                },
                            )
                            .map_err(|e| fail(context_error_message(e)))?;
                        let hash = crate::context::hash_selection(&selection, self.stat_cache)
                            .map_err(|e| fail(e.to_string()))?;
                        sources.push(hash);
                        // Kept for the copy on a miss: the context is walked once.
                        selections.push(selection);
                    }
                    // Remote ADD sources are keyed by what they hold now.
                    remote = fsop::remote_identities(copy).map_err(fail)?;
                    for (source, identity) in &remote.identities {
                        sources.push(crate::context::SourceHash {
                            source: source.clone(),
                            digest: sha256_digest(identity.as_bytes()),
                            entries: Vec::new(),
                        });
                    }
                }
                source_states.push(state);
            }
            Op::Run(run) => {
                for mount in &run.mounts {
                    if let Some(from) = &mount.from {
                        source_states.push(self.source_fs(from)?);
                    } else if mount.mount.kind == crate::dockerfile::values::MountType::Bind {
                        let source = mount.mount.source.clone().unwrap_or_default();
                        let selection = self
                            .context
                            .select(&source, &crate::context::SelectOptions::default())
                            .map_err(|e| fail(context_error_message(e)))?;
                        sources.push(
                            crate::context::hash_selection(&selection, self.stat_cache)
                                .map_err(|e| fail(e.to_string()))?,
                        );
                    }
                }
            }
            Op::Mkdir { .. } => {}
        }
        let network = match &step.op {
            Op::Run(run) => format!(
                "{:?}",
                run.network.map_or(self.options.network, convert_network)
            ),
            _ => String::new(),
        };
        let inputs_json = serde_json::json!({
            "parent": fs.key.to_string(),
            "instruction": step.text,
            "op": &step.op,
            "network": network,
            // Digests only: a context of many files must not make every lookup slow. The
            // entries go into the record on a miss, to explain the next one.
            "sources": sources.iter().map(|s| [s.source.as_str(), s.digest.as_ref()]).collect::<Vec<_>>(),
            "from": source_states.iter().map(|s| s.as_ref().map(|s| s.key.to_string())).collect::<Vec<_>>(),
        });
        let key = key_of(&[KEY_FORMAT, &inputs_json.to_string()]);
        let previous = self.store.last_key_at(position)?;
        let cached = if no_cache {
            None
        } else {
            self.cached(&key, fs)?
        };
        let hit = cached.is_some();
        let next = match cached {
            Some(next) => {
                self.emit(Event::Cached { step: id });
                next
            }
            None => {
                let earlier = previous
                    .as_ref()
                    .filter(|_| !no_cache)
                    .and_then(|key| reasons::earlier(self.store, key));
                let reason = if no_cache {
                    "--no-cache".to_owned()
                } else {
                    reasons::explain(previous.as_ref(), earlier.as_ref(), &inputs_json, &sources)
                };
                self.emit(Event::CacheMiss { step: id, reason });
                let copied = match &step.op {
                    Op::Run(run) => fsop::Copied {
                        dir: run::execute(self, run, fs, &source_states, id).map_err(fail)?,
                        stack_on: None,
                        bytes: 0,
                    },
                    Op::Copy(copy) => {
                        let source = source_states.first().cloned().flatten();
                        let base = earlier
                            .as_ref()
                            .filter(|_| copy.from == Source::Context)
                            .and_then(|earlier| {
                                self.copy_base(earlier, &inputs_json, &sources, &selections)
                            });
                        fsop::copy(self, copy, fs, source, selections, base, remote)
                            .map_err(fail)?
                    }
                    Op::Mkdir { path, user } => fsop::Copied {
                        dir: fsop::mkdir(self.store, fs, path, user).map_err(fail)?,
                        stack_on: None,
                        bytes: 0,
                    },
                };
                let fsop::Copied {
                    dir: upper,
                    stack_on,
                    bytes,
                } = copied;
                let record_error =
                    |e: serde_json::Error| BuildError::Other(format!("cache record: {e}"));
                let inputs = serde_json::value::to_raw_value(&inputs_json).map_err(record_error)?;
                if !sources.is_empty() {
                    let entries = serde_json::to_string(&sources).map_err(record_error)?;
                    self.store.put_cache_sources(&key, &entries)?;
                }
                // A COPY's layer is written on a thread of its own; an empty one is no layer.
                let behind = matches!(step.op, Op::Copy(_))
                    && (stack_on.is_some() || !is_empty_dir(&upper.path().join("upper")));
                if behind {
                    let record = pending::StepRecord {
                        key: key.clone(),
                        created: Some(self.now()),
                        inputs,
                    };
                    // A large layer is written while the next steps run; a small one
                    // (the whole of a stacked one counts) before, so that the step is
                    // done, and cached, when its DONE shows.
                    let layer_bytes = bytes + stack_on.as_ref().map_or(0, |s| s.layer.size());
                    let next = self.commit_behind(fs, upper, stack_on, record)?;
                    if layer_bytes < WRITTEN_BEHIND_MIN {
                        self.settle(&next)?
                    } else {
                        next
                    }
                } else {
                    let (next, mergeable) = self.commit(fs, upper.path().join("upper"), &key)?;
                    if matches!(step.op, Op::Run(_)) {
                        if let Ok(mut run_dirs) = self.run_dirs.lock() {
                            run_dirs.push(upper);
                        }
                    } else {
                        self.discard(upper);
                    }
                    let made = next.layers.len() > fs.layer_count();
                    self.store.put_cache_record(
                        &key,
                        &CacheRecord {
                            diff_id: made
                                .then(|| next.layers.last().map(|l| l.layer.diff_id.clone()))
                                .flatten(),
                            size: next.layers.last().map_or(0, |l| l.layer.blob.size()),
                            chain_id: next.chain_id().cloned(),
                            created: next.created.clone(),
                            inputs,
                            mergeable,
                        },
                    )?;
                    next
                }
            }
        };
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(key.clone());
        }
        if previous.as_ref() != Some(&key) {
            self.store.set_last_key_at(position, &key)?;
        }
        if !hit {
            self.emit(Event::done(id, started.elapsed()));
        }
        Ok(next)
    }

    /// The last result of this COPY step to start from, when all that changed since is some
    /// of its context files: same parent, instruction and options, every source a directory,
    /// no entry removed or of another kind. `None` sends it the whole way.
    fn copy_base(
        &self,
        earlier: &reasons::Earlier,
        now: &serde_json::Value,
        sources: &[crate::context::SourceHash],
        selections: &[crate::context::Selection],
    ) -> Option<fsop::CopyBase> {
        let record = &earlier.record;
        // A step that changed nothing names its parent's snapshot, not a result of its own.
        record.diff_id.as_ref()?;
        if ["parent", "instruction", "op", "network", "from"]
            .iter()
            .any(|field| earlier.inputs[field] != now[field])
        {
            return None;
        }
        if selections
            .iter()
            .any(|s| s.matches.iter().any(|m| m.kind != FileKind::Dir))
            || earlier.sources.len() != sources.len()
        {
            return None;
        }
        let mut changed = std::collections::HashSet::new();
        for (was, is) in earlier.sources.iter().zip(sources) {
            if was.source != is.source {
                return None;
            }
            let changes = is.changes_since(was);
            // An entry now of another type (an empty directory become a file) is not
            // replaced in place. Few changes are looked up one by one, many through maps.
            let many = changes.len() > 16;
            let (kinds_was, kinds_is) = (
                EntryKinds::new(&was.entries, many),
                EntryKinds::new(&is.entries, many),
            );
            for change in changes {
                match change {
                    crate::context::PathChange::Removed(_) => return None,
                    crate::context::PathChange::Added(path) => {
                        changed.insert(path);
                    }
                    crate::context::PathChange::Changed(path) => {
                        if kinds_was.of(&path) != kinds_is.of(&path) {
                            return None;
                        }
                        changed.insert(path);
                    }
                }
            }
        }
        let chain_id = record.chain_id.clone()?;
        let dirs = self.store.snapshot_dirs(&chain_id).ok()??;
        // Stacked on the last result when its layer tar can give the new layer the entries
        // that did not change (mtimes clamped otherwise would differ).
        let stack_on = (record.mergeable && self.options.source_date_epoch.is_none())
            .then(|| self.store.blob_path(record.diff_id.as_ref()?).ok())
            .flatten()
            .filter(|tar| tar.is_file())
            .map(|tar| fsop::StackBase {
                chain_id,
                flatten: dirs.len() >= crate::store::MAX_STACK,
                dirs: dirs.clone(),
                layer: crate::snapshot::BaseLayer::new(tar),
            });
        Some(fsop::CopyBase {
            dirs,
            changed,
            stack_on,
        })
    }

    /// The state after a step found in the cache, when its layer is still in the store.
    fn cached(&self, key: &Digest, fs: &FsState) -> Result<Option<FsState>, BuildError> {
        let Some(record) = self.store.cache_record(key)? else {
            return Ok(None);
        };
        let fs = &self.settle(fs)?;
        let mut next = FsState {
            layers: fs.layers.clone(),
            pending: None,
            key: key.clone(),
            created: record.created.or_else(|| fs.created.clone()),
        };
        if let (Some(diff_id), Some(chain_id)) = (record.diff_id, record.chain_id) {
            let Some(layer) = self.store.find_layer(&diff_id)? else {
                return Ok(None);
            };
            let dirs = self.store.layer_snapshot(&chain_id, &layer)?;
            next.layers.push(LayerState {
                layer,
                chain_id,
                dirs,
            });
        }
        Ok(Some(next))
    }

    /// The time a step ran: now, or SOURCE_DATE_EPOCH when set.
    fn now(&self) -> String {
        match self.options.source_date_epoch {
            Some(epoch) => crate::image::time::format_rfc3339(epoch as i64, 0),
            None => crate::image::time::now_rfc3339(),
        }
    }

    /// Turns an upper dir into a layer on top of `fs` (nothing when it is empty). Says
    /// whether the layer is [`crate::snapshot::LayerDigest::mergeable`].
    fn commit(
        &self,
        fs: &FsState,
        upper: PathBuf,
        key: &Digest,
    ) -> Result<(FsState, bool), BuildError> {
        let fs = self.settle(fs)?;
        let mut next = FsState {
            layers: fs.layers.clone(),
            pending: None,
            key: key.clone(),
            created: Some(self.now()),
        };
        if is_empty_dir(&upper) {
            return Ok((next, false));
        }
        let written = pending::write_step_layer(self.store, &upper, None, &self.write_options())
            .map_err(BuildError::Other)?;
        let mergeable = written.digest.mergeable;
        next.layers.push(self.commit_layer(&fs, written)?);
        Ok((next, mergeable))
    }

    /// As [`Shared::commit`] for a COPY that made a layer (an upper dir not empty, or one
    /// stacked on `stack_on`, over whose layer it is written): the layer is written on a
    /// thread of its own while the next steps run ([`pending`]), and the step's cache record
    /// once the layer is committed.
    fn commit_behind(
        &self,
        fs: &FsState,
        work: crate::store::WorkDir,
        stack_on: Option<fsop::StackBase>,
        record: pending::StepRecord,
    ) -> Result<FsState, BuildError> {
        let fs = self.settle(fs)?;
        let upper = work.path().join("upper");
        let mut next = FsState {
            layers: fs.layers.clone(),
            pending: None,
            key: record.key.clone(),
            created: record.created.clone(),
        };
        let mut dirs = stack_on.as_ref().map_or_else(Vec::new, |s| s.dirs.clone());
        dirs.push(upper);
        let parent = fs.layers.iter().map(|l| l.layer.diff_id.clone()).collect();
        let pending = PendingLayer::start(
            self.store,
            work,
            stack_on,
            self.write_options(),
            parent,
            record,
        )
        .map_err(BuildError::Other)?;
        next.pending = Some((dirs, Arc::new(pending)));
        Ok(next)
    }

    /// `fs` with its pending layer in place (waiting for it to be written).
    fn settle(&self, fs: &FsState) -> Result<FsState, BuildError> {
        let Some((_, pending)) = &fs.pending else {
            return Ok(fs.clone());
        };
        let top = pending
            .settled
            .get_or_init(|| {
                let (layer, work) = pending.finish(self.store)?;
                self.discard(work);
                Ok(layer)
            })
            .clone()
            .map_err(BuildError::Other)?;
        let mut settled = FsState {
            pending: None,
            ..fs.clone()
        };
        settled.layers.push(top);
        Ok(settled)
    }

    /// Commits a written layer on top of `fs` (settled): the blob and its snapshot.
    fn commit_layer(
        &self,
        fs: &FsState,
        written: pending::Written,
    ) -> Result<LayerState, BuildError> {
        let mut diff_ids: Vec<Digest> = fs.layers.iter().map(|l| l.layer.diff_id.clone()).collect();
        diff_ids.push(written.digest.diff_id.clone());
        let chain_id = chain_ids(&diff_ids)
            .pop()
            .ok_or_else(|| BuildError::Other("no chain id".into()))?;
        let (blob, dirs) = self.store.commit_step(
            written.writer,
            &written.digest.diff_id,
            &chain_id,
            &written.snapshot,
            written.lower.as_ref(),
        )?;
        Ok(LayerState {
            layer: Layer::plain(blob.digest, blob.size),
            chain_id,
            dirs,
        })
    }

    fn write_options(&self) -> crate::snapshot::WriteOptions {
        crate::snapshot::WriteOptions {
            source_date_epoch: self.options.source_date_epoch,
            overlay_upper: true,
        }
    }

    /// Hands a finished step's work dir to the remover thread.
    fn discard(&self, work: crate::store::WorkDir) {
        if let Ok(trash) = self.trash.lock()
            && let Some(trash) = trash.as_ref()
        {
            // Were the remover gone, the value would come back and drop here.
            let _ = trash.send(work);
        }
    }
}

/// Bytes of a COPY's layer from which it is written while the next steps run ([`pending`]):
/// about 30 ms of tar writing.
const WRITTEN_BEHIND_MIN: u64 = 16 << 20;

/// The kind of a source's entries by path: looked up one by one, or through a map when many
/// are.
struct EntryKinds<'e> {
    entries: &'e [crate::context::EntryDigest],
    map: Option<std::collections::HashMap<&'e str, FileKind>>,
}

impl<'e> EntryKinds<'e> {
    fn new(entries: &'e [crate::context::EntryDigest], mapped: bool) -> EntryKinds<'e> {
        let map = mapped.then(|| entries.iter().map(|e| (e.path.as_str(), e.kind)).collect());
        EntryKinds { entries, map }
    }

    fn of(&self, path: &str) -> Option<FileKind> {
        match &self.map {
            Some(map) => map.get(path).copied(),
            None => self.entries.iter().find(|e| e.path == path).map(|e| e.kind),
        }
    }
}

/// Whether `dir` holds nothing (or cannot be read: then there is nothing to commit).
fn is_empty_dir(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

fn convert_network(mode: crate::dockerfile::values::NetworkMode) -> NetworkMode {
    match mode {
        crate::dockerfile::values::NetworkMode::Default => NetworkMode::Default,
        crate::dockerfile::values::NetworkMode::None => NetworkMode::None,
        crate::dockerfile::values::NetworkMode::Host => NetworkMode::Host,
    }
}

/// BuildKit's wording for a source that is not in the context (or the stage copied from).
pub(super) fn context_error_message(error: ContextError) -> String {
    match error {
        ContextError::NotFound(path) => format!(
            "failed to compute cache key: \"{}\": not found",
            path.trim_start_matches('/')
        ),
        other => other.to_string(),
    }
}

/// sha256 over NUL-separated parts.
fn key_of(parts: &[&str]) -> Digest {
    sha256_digest(parts.join("\0").as_bytes())
}
