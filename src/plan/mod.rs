//! Instructions + build args + target → the build graph: stages, the steps each runs with
//! every word expanded, the image configuration each ends with, and which stages the target
//! needs. Pure: base images come in through a resolver the caller supplies (the store, or a
//! pull), so nothing here does I/O.
//!
//! BuildKit's dockerfile2llb is the model: FROM expands in the global scope, every other
//! instruction with its stage's scope at that point, ONBUILD triggers of a base image run first
//! in the stage that uses it, and stages the target does not reach are never planned (nor their
//! base images resolved).

mod config;
mod steps;

use crate::dockerfile::expand::Lexer;
use crate::dockerfile::values::{Chmod, Mount, NetworkMode};
use crate::dockerfile::vars::{Platform, StageBase, Variables, VarsError};
use crate::dockerfile::{InstructionKind, ParsedDockerfile, Span};
use crate::image::{ContainerConfig, ImageConfig};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// An error in the Dockerfile found while planning, at the instruction's position.
#[derive(Debug, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct PlanError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl PlanError {
    pub(crate) fn at(span: Span, message: impl Into<String>) -> PlanError {
        PlanError {
            line: span.line,
            column: span.column,
            message: message.into(),
        }
    }
}

/// What the build is asked for, apart from the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--build-arg`s with their values resolved.
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// `--label`s, set on the target stage's image.
    pub labels: Vec<(String, String)>,
}

/// Looks up the configuration of a base image by its (expanded) reference.
pub type Resolver<'a> = dyn FnMut(&str) -> Result<ImageConfig, String> + 'a;

/// The build graph.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every stage in file order; those the target does not need have `needed == false` and
    /// no steps.
    pub stages: Vec<Stage>,
    /// Index of the stage whose image is the result.
    pub target: usize,
    /// `--build-arg`s that no ARG consumed (BuildKit warns about them).
    pub unused_build_args: Vec<String>,
}

impl Plan {
    /// Indices of the stages `stage` reads from: its base and every `--from`.
    pub fn dependencies(&self, stage: usize) -> BTreeSet<usize> {
        self.stages
            .get(stage)
            .map(|s| s.dependencies.clone())
            .unwrap_or_default()
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Base {
    Scratch,
    /// An image by reference, as written after expansion.
    Image(String),
    /// An earlier stage.
    Stage(usize),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// `FROM … AS name`, lowercased.
    pub name: Option<String>,
    pub base: Base,
    pub needed: bool,
    /// Stages this one reads from (base, COPY --from, RUN --mount from).
    pub dependencies: BTreeSet<usize>,
    /// The base image's configuration (for `Base::Image`), as resolved.
    pub base_config: Option<ImageConfig>,
    /// The FROM step as BuildKit shows it: `[build 1/4] FROM busybox`.
    pub from_name: String,
    pub steps: Vec<Step>,
    /// The configuration the stage's image ends with.
    pub config: ContainerConfig,
    /// Stage-level image metadata (`author` from MAINTAINER).
    pub author: Option<String>,
    /// One history entry per instruction, in order, as docker build writes them.
    pub history: Vec<HistoryEntry>,
}

impl Stage {
    /// The name BuildKit shows for this stage: its name, or `stage-N`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// A history entry; `step` names the step whose layer it describes (empty_layer when the step
/// made no change, or when there is no step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub created_by: String,
    pub step: Option<usize>,
}

/// One step that changes the file system.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Position of the instruction in the Dockerfile.
    pub line: u32,
    pub column: u32,
    /// As BuildKit shows it: `[build 2/4] RUN make`.
    pub name: String,
    /// The instruction as written (for errors).
    pub text: String,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Run(RunOp),
    Copy(CopyOp),
    /// WORKDIR: create the directory (and parents) when missing, owned by `user`.
    Mkdir {
        path: String,
        user: String,
    },
}

/// A RUN with everything expanded.
#[derive(Debug, Clone, Serialize)]
pub struct RunOp {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Names in `env` that come from ARGs (build args), not ENV.
    pub arg_names: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub mounts: Vec<RunMount>,
    /// `--network`, when given.
    pub network: Option<NetworkMode>,
    /// Files the command needs (a `#!` heredoc script), bind-mounted read-only.
    pub files: Vec<InlineFile>,
    /// `HTTP_PROXY=…` and friends from the predefined proxy build args, in both cases as
    /// BuildKit sets them: in the step's environment, never in its cache key or the history.
    #[serde(skip)]
    pub proxy_env: Vec<String>,
}

/// A `RUN --mount` after expansion, with its `from` resolved.
#[derive(Debug, Clone, Serialize)]
pub struct RunMount {
    pub mount: Mount,
    pub from: Option<Source>,
}

/// Where COPY sources or a bind mount come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    Context,
    Stage(usize),
    Image(String),
}

/// A file given inline: a heredoc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    pub name: String,
    pub content: String,
}

/// A COPY or ADD with everything expanded.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOp {
    pub from: Source,
    pub sources: Vec<String>,
    pub inline: Vec<InlineFile>,
    /// Absolute; a trailing `/` kept (it means "a directory").
    pub dest: String,
    pub chown: Option<String>,
    #[serde(skip)]
    pub chmod: Option<Chmod>,
    /// The `--chmod` text, for the cache key.
    pub chmod_text: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// ADD's extras; `None` for COPY.
    pub add: Option<AddOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddOptions {
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// `--unpack`: `None` means archives from the context are unpacked, URLs are not.
    pub unpack: Option<bool>,
}

/// Plans the build of `parsed` (which must have no errors).
pub fn plan(
    parsed: &ParsedDockerfile,
    options: &PlanOptions,
    resolve: &mut Resolver<'_>,
) -> Result<Plan, PlanError> {
    let outline = steps::outline(parsed)?;
    let target = match &options.target {
        Some(name) => outline
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()))
            .ok_or_else(|| PlanError {
                line: 0,
                column: 0,
                message: format!("target stage {name:?} could not be found"),
            })?,
        None => outline.stages.len().saturating_sub(1),
    };
    // ONBUILD triggers of a base image can read from stages nothing else needs (BuildKit
    // resolves stages again when triggers add dependencies): plan again with those needed too.
    let mut resolved: HashMap<String, ImageConfig> = HashMap::new();
    let mut resolve_once = |reference: &str| -> Result<ImageConfig, String> {
        if let Some(config) = resolved.get(reference) {
            return Ok(config.clone());
        }
        let config = resolve(reference)?;
        resolved.insert(reference.to_owned(), config.clone());
        Ok(config)
    };
    let mut also_needed = BTreeSet::new();
    loop {
        let plan = plan_stages(
            parsed,
            options,
            &outline,
            target,
            &also_needed,
            &mut resolve_once,
        )?;
        let missing: BTreeSet<usize> = plan
            .stages
            .iter()
            .filter(|s| s.needed)
            .flat_map(|s| s.dependencies.iter().copied())
            .filter(|d| plan.stages.get(*d).is_some_and(|s| !s.needed))
            .collect();
        if missing.is_empty() {
            return Ok(plan);
        }
        also_needed.extend(missing);
    }
}

/// One planning pass: the stages `target` and `also_needed` need are planned, others skipped.
fn plan_stages(
    parsed: &ParsedDockerfile,
    options: &PlanOptions,
    outline: &steps::Outline<'_>,
    target: usize,
    also_needed: &BTreeSet<usize>,
    resolve: &mut Resolver<'_>,
) -> Result<Plan, PlanError> {
    let target_name = outline.stages[target].name.clone().unwrap_or_default();
    let lexer = Lexer::new(parsed.directives.escape_char);
    let host = Platform::host();
    let mut vars = Variables::new(
        lexer,
        options.build_args.iter().cloned(),
        &host,
        &host,
        &target_name,
    );
    for declaration in &outline.global_args {
        vars.arg(&declaration.0, declaration.1.as_deref())
            .map_err(|e| PlanError::at(declaration.2, e.to_string()))?;
    }
    let bases = steps::bases(outline, &vars, &lexer)?;
    let mut needed = steps::needed_stages(outline, &bases, target);
    for extra in also_needed {
        needed.extend(steps::needed_stages(outline, &bases, *extra));
    }
    let mut stages: Vec<Stage> = Vec::with_capacity(outline.stages.len());
    for (index, outlined) in outline.stages.iter().enumerate() {
        let base = bases[index].clone();
        let is_needed = needed.contains(&index);
        let (base_config, start) = if !is_needed {
            (None, config::StageStart::empty())
        } else {
            match &base {
                Base::Scratch => (None, config::StageStart::scratch()),
                Base::Image(reference) => {
                    let image = resolve(reference)
                        .map_err(|message| PlanError::at(outlined.from_span, message))?;
                    let start = config::StageStart::from_image(&image);
                    (Some(image), start)
                }
                Base::Stage(parent) => (None, config::StageStart::from_stage(&stages[*parent])),
            }
        };
        let stage_base = match &base {
            Base::Stage(parent) => StageBase::Stage(*parent),
            _ => StageBase::Image(start.env_pairs()),
        };
        vars.begin_stage(outlined.name.as_deref(), stage_base)
            .map_err(|e| vars_error(outlined.from_span, e))?;
        let mut stage = Stage {
            index,
            name: outlined.name.clone(),
            base: base.clone(),
            needed: is_needed,
            dependencies: BTreeSet::new(),
            base_config,
            from_name: String::new(),
            steps: Vec::new(),
            config: ContainerConfig::default(),
            author: None,
            history: Vec::new(),
        };
        if is_needed {
            let labels = if index == target {
                options.labels.as_slice()
            } else {
                &[]
            };
            steps::plan_stage(
                &mut stage, outlined, outline, start, &mut vars, lexer, labels,
            )?;
        }
        stages.push(stage);
    }
    let proxy_env = proxy_env(&options.build_args);
    for stage in &mut stages {
        for step in &mut stage.steps {
            if let Op::Run(run) = &mut step.op {
                run.proxy_env = proxy_env.clone();
            }
        }
    }
    let unused_build_args = vars
        .unused_build_args()
        .into_iter()
        .map(str::to_owned)
        .collect();
    Ok(Plan {
        stages,
        target,
        unused_build_args,
    })
}

/// The configuration `docker import --change` makes: the instructions (CMD, ENTRYPOINT, ENV,
/// EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR) applied to an empty configuration, which,
/// unlike a scratch stage, gets no default PATH or WorkingDir.
pub fn config_changes(changes: &[String]) -> Result<ContainerConfig, PlanError> {
    const ALLOWED: [&str; 9] = [
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "LABEL",
        "ONBUILD",
        "USER",
        "VOLUME",
        "WORKDIR",
    ];
    let text = format!("FROM scratch\n{}\n", changes.join("\n"));
    let parsed = crate::dockerfile::parse(&text);
    if let Some(error) = parsed.errors().next() {
        return Err(PlanError::at(error.span, error.message.clone()));
    }
    for instruction in parsed.instructions.iter().skip(1) {
        let name = keyword(&instruction.kind);
        if !ALLOWED.contains(&name) {
            return Err(PlanError::at(
                instruction.span,
                format!(
                    "{name} is not a valid change command (expected one of {})",
                    ALLOWED.join(", ")
                ),
            ));
        }
    }
    let planned = plan(&parsed, &PlanOptions::default(), &mut |_| {
        Err("an import change cannot name an image".to_owned())
    })?;
    let mut config = planned
        .stages
        .into_iter()
        .next()
        .map(|stage| stage.config)
        .unwrap_or_default();
    let set_by_change = |keyword: &str| {
        changes
            .iter()
            .any(|c| c.trim_start().to_ascii_uppercase().starts_with(keyword))
    };
    if !set_by_change("WORKDIR") {
        config.working_dir = None;
    }
    if let Some(env) = &mut config.env {
        let default_path = format!("PATH={}", crate::dockerfile::vars::DEFAULT_PATH);
        env.retain(|pair| *pair != default_path);
        if env.is_empty() {
            config.env = None;
        }
    }
    Ok(config)
}

/// The environment BuildKit gives every RUN from the proxy build args (any case of
/// http_proxy, https_proxy, ftp_proxy, no_proxy, all_proxy): upper and lower case both.
fn proxy_env(build_args: &[(String, String)]) -> Vec<String> {
    let mut sorted: Vec<&(String, String)> = build_args.iter().collect();
    sorted.sort();
    let mut env = Vec::new();
    for name in [
        "http_proxy",
        "https_proxy",
        "ftp_proxy",
        "no_proxy",
        "all_proxy",
    ] {
        // The last of the spellings in sorted order wins, as BuildKit's loop over sorted keys.
        let value = sorted
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back();
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            env.push(format!("{}={value}", name.to_ascii_uppercase()));
            env.push(format!("{name}={value}"));
        }
    }
    env
}

fn vars_error(span: Span, error: VarsError) -> PlanError {
    PlanError::at(span, error.to_string())
}

/// The keyword of an instruction, upper case, for messages and history.
pub(crate) fn keyword(kind: &InstructionKind) -> &'static str {
    match kind {
        InstructionKind::From(_) => "FROM",
        InstructionKind::Run(_) => "RUN",
        InstructionKind::Cmd(_) => "CMD",
        InstructionKind::Entrypoint(_) => "ENTRYPOINT",
        InstructionKind::Shell(_) => "SHELL",
        InstructionKind::Label(_) => "LABEL",
        InstructionKind::Env(_) => "ENV",
        InstructionKind::Maintainer(_) => "MAINTAINER",
        InstructionKind::Expose(_) => "EXPOSE",
        InstructionKind::Add(_) => "ADD",
        InstructionKind::Copy(_) => "COPY",
        InstructionKind::Volume(_) => "VOLUME",
        InstructionKind::User(_) => "USER",
        InstructionKind::Workdir(_) => "WORKDIR",
        InstructionKind::Arg(_) => "ARG",
        InstructionKind::Onbuild(_) => "ONBUILD",
        InstructionKind::Stopsignal(_) => "STOPSIGNAL",
        InstructionKind::Healthcheck(_) => "HEALTHCHECK",
    }
}
