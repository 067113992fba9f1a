//! The planning passes: split the file into stages, resolve each stage's base, find the
//! stages the target needs, and turn each needed stage's instructions into steps and config.

use super::config::{self, StageStart};
use super::{
    AddOptions, Base, CopyOp, HistoryEntry, InlineFile, Op, PlanError, RunMount, RunOp, Source,
    Stage, Step, keyword,
};
use crate::dockerfile::expand::Lexer;
use crate::dockerfile::values::{self, Mount};
use crate::dockerfile::vars::Variables;
use crate::dockerfile::{
    CommandLine, HealthcheckTest, Heredoc, Instruction, InstructionKind, KeyValue, Span, Typed,
    Word,
};
use std::collections::{BTreeSet, HashMap};

/// A stage as written: its FROM and the instructions after it.
pub(super) struct OutlinedStage<'p> {
    pub name: Option<String>,
    pub from_image: &'p Word,
    pub from_span: Span,
    pub from_text: &'p str,
    pub instructions: Vec<(&'p Instruction, &'p str)>,
}

pub(super) struct Outline<'p> {
    /// ARGs before the first FROM: name, default as written, position.
    pub global_args: Vec<(String, Option<String>, Span)>,
    pub stages: Vec<OutlinedStage<'p>>,
}

/// Splits the instructions into stages; only ARG may come before the first FROM.
pub(super) fn outline(
    parsed: &crate::dockerfile::ParsedDockerfile,
) -> Result<Outline<'_>, PlanError> {
    let mut outline = Outline {
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for instruction in &parsed.instructions {
        let original = parsed
            .node_of(instruction)
            .map_or("", |node| node.original.as_str());
        match (&instruction.kind, outline.stages.last_mut()) {
            (InstructionKind::From(from), _) => {
                let name = match &from.name {
                    Some(word) => Some(
                        values::parse_stage_name(&word.text)
                            .map_err(|e| PlanError::at(word.span, e.0))?,
                    ),
                    None => None,
                };
                if let Some(name) = &name
                    && outline.stages.iter().any(|s| s.name.as_ref() == Some(name))
                {
                    return Err(PlanError::at(
                        instruction.span,
                        format!("duplicate stage name {name:?}"),
                    ));
                }
                outline.stages.push(OutlinedStage {
                    name,
                    from_image: &from.image,
                    from_span: instruction.span,
                    from_text: original,
                    instructions: Vec::new(),
                });
            }
            (InstructionKind::Arg(declarations), None) => {
                for declaration in declarations {
                    outline.global_args.push((
                        declaration.name.text.clone(),
                        declaration.default.as_ref().map(|w| w.text.clone()),
                        instruction.span,
                    ));
                }
            }
            (kind, None) => {
                return Err(PlanError::at(
                    instruction.span,
                    format!(
                        "{} before the first FROM: no build stage in current context",
                        keyword(kind)
                    ),
                ));
            }
            (_, Some(stage)) => stage.instructions.push((instruction, original)),
        }
    }
    if outline.stages.is_empty() {
        return Err(PlanError {
            line: 1,
            column: 1,
            message: "the Dockerfile has no FROM instruction (file with no instructions?)"
                .to_owned(),
        });
    }
    Ok(outline)
}

/// Each stage's base: FROM expanded with the global scope, then matched against the names of
/// the stages before it.
pub(super) fn bases(
    outline: &Outline<'_>,
    vars: &Variables,
    lexer: &Lexer,
) -> Result<Vec<Base>, PlanError> {
    let mut bases = Vec::with_capacity(outline.stages.len());
    for (index, stage) in outline.stages.iter().enumerate() {
        let image = lexer
            .expand_word(&stage.from_image.text, vars.global())
            .map_err(|e| PlanError::at(stage.from_image.span, e.to_string()))?;
        if image.is_empty() {
            return Err(PlanError::at(
                stage.from_image.span,
                format!("base name ({}) should not be blank", stage.from_image.text),
            ));
        }
        let lower = image.to_ascii_lowercase();
        let earlier = outline.stages[..index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        bases.push(match earlier {
            Some(parent) => Base::Stage(parent),
            None if lower == "scratch" => Base::Scratch,
            None => Base::Image(image),
        });
    }
    Ok(bases)
}

/// Resolves a `--from` (COPY, RUN --mount) to a stage by name or index, else an image.
fn source_of(outline: &Outline<'_>, from: &str) -> Source {
    let lower = from.to_ascii_lowercase();
    if let Some(index) = outline
        .stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Source::Stage(index);
    }
    match from.parse::<usize>() {
        Ok(index) if index < outline.stages.len() => Source::Stage(index),
        _ => Source::Image(from.to_owned()),
    }
}

/// The `from` values a stage's instructions name, as written (enough to find dependencies:
/// BuildKit does not expand COPY --from, and a mount's `from` may only end in a variable).
fn named_sources<'p>(stage: &OutlinedStage<'p>) -> Vec<String> {
    let mut names = Vec::new();
    for (instruction, _) in &stage.instructions {
        match &instruction.kind {
            InstructionKind::Copy(copy) => names.extend(copy.from.iter().map(|w| w.text.clone())),
            InstructionKind::Run(run) => {
                for mount in &run.mounts {
                    if let Some(from) = mount.parsed.as_ref().and_then(|m| m.from.clone()) {
                        names.push(from);
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// The stages the target needs, itself included.
pub(super) fn needed_stages(
    outline: &Outline<'_>,
    bases: &[Base],
    target: usize,
) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut pending = vec![target];
    while let Some(index) = pending.pop() {
        if !needed.insert(index) {
            continue;
        }
        if let Some(Base::Stage(parent)) = bases.get(index) {
            pending.push(*parent);
        }
        if let Some(stage) = outline.stages.get(index) {
            for name in named_sources(stage) {
                if let Source::Stage(dep) = source_of(outline, &name) {
                    pending.push(dep);
                }
            }
        }
    }
    needed
}

/// The instructions a stage runs: its base's ONBUILD triggers, then its own.
enum Pending<'p> {
    Own(&'p Instruction, &'p str),
    Trigger(Box<Instruction>, String),
}

/// Plans one needed stage: steps, final config and history.
pub(super) fn plan_stage(
    stage: &mut Stage,
    outlined: &OutlinedStage<'_>,
    outline: &Outline<'_>,
    start: StageStart,
    vars: &mut Variables,
    lexer: Lexer,
    labels: &[(String, String)],
) -> Result<(), PlanError> {
    let mut pending: Vec<Pending<'_>> = Vec::new();
    for trigger in &start.triggers {
        let parsed = crate::dockerfile::parse(trigger);
        if let Some(error) = parsed.errors().next() {
            return Err(PlanError::at(
                outlined.from_span,
                format!(
                    "ONBUILD trigger {trigger:?} of the base image: {}",
                    error.message
                ),
            ));
        }
        for instruction in parsed.instructions {
            if matches!(
                instruction.kind,
                InstructionKind::From(_) | InstructionKind::Onbuild(_)
            ) {
                return Err(PlanError::at(
                    outlined.from_span,
                    format!(
                        "ONBUILD trigger {trigger:?}: {} is not allowed as a trigger",
                        keyword(&instruction.kind)
                    ),
                ));
            }
            pending.push(Pending::Trigger(Box::new(instruction), trigger.clone()));
        }
    }
    pending.extend(
        outlined
            .instructions
            .iter()
            .map(|(instruction, text)| Pending::Own(instruction, text)),
    );
    let total = 1 + pending
        .iter()
        .filter(|p| {
            let kind = match p {
                Pending::Own(i, _) => &i.kind,
                Pending::Trigger(i, _) => &i.kind,
            };
            matches!(
                kind,
                InstructionKind::Run(_)
                    | InstructionKind::Copy(_)
                    | InstructionKind::Add(_)
                    | InstructionKind::Workdir(_)
            )
        })
        .count();
    stage.from_name = format!(
        "[{} 1/{total}] {}",
        stage.display_name(),
        outlined.from_text.trim()
    );
    let mut planner = StagePlanner {
        stage,
        outline,
        vars,
        lexer,
        config_cmd_set: false,
        total,
    };
    planner.stage.config = start.config;
    if planner.stage.config.env.is_none() || !has_path(&planner.stage.config) {
        // BuildKit makes sure PATH is always set.
        planner.sync_env();
    }
    for item in &pending {
        let (instruction, text) = match item {
            Pending::Own(i, t) => (*i, *t),
            Pending::Trigger(i, t) => (i.as_ref(), t.as_str()),
        };
        // Trigger instructions report errors at the FROM that pulled them in.
        let span = match item {
            Pending::Own(..) => instruction.span,
            Pending::Trigger(..) => outlined.from_span,
        };
        planner.instruction(instruction, text, span)?;
    }
    if !labels.is_empty() {
        let map = planner
            .stage
            .config
            .labels
            .get_or_insert_with(Default::default);
        for (k, v) in labels {
            map.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

fn has_path(config: &crate::image::ContainerConfig) -> bool {
    config
        .env
        .iter()
        .flatten()
        .any(|pair| pair.starts_with("PATH="))
}

struct StagePlanner<'s, 'o, 'p> {
    stage: &'s mut Stage,
    outline: &'o Outline<'p>,
    vars: &'s mut Variables,
    lexer: Lexer,
    /// Whether this stage set CMD (an ENTRYPOINT clears only an inherited CMD).
    config_cmd_set: bool,
    total: usize,
}

impl StagePlanner<'_, '_, '_> {
    fn expand(&self, word: &Word) -> Result<String, PlanError> {
        self.lexer
            .expand_word(&word.text, self.vars.scope())
            .map_err(|e| PlanError::at(word.span, e.to_string()))
    }

    fn expand_text(&self, text: &str, span: Span) -> Result<String, PlanError> {
        self.lexer
            .expand_word(text, self.vars.scope())
            .map_err(|e| PlanError::at(span, e.to_string()))
    }

    /// The config's Env from the variables' image environment (base env, PATH, ENVs).
    fn sync_env(&mut self) {
        if let Some(scope) = self.vars.image_env() {
            self.stage.config.env = Some(scope.env_list());
        }
    }

    fn cwd(&self) -> String {
        self.stage
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_owned())
    }

    fn shell(&self) -> Vec<String> {
        self.stage
            .config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()])
    }

    fn history(&mut self, created_by: String, step: Option<usize>) {
        self.stage.history.push(HistoryEntry { created_by, step });
    }

    fn push_step(&mut self, span: Span, text: &str, op: Op) -> usize {
        let number = self.stage.steps.len() + 2;
        let name = format!(
            "[{} {number}/{}] {}",
            self.stage.display_name(),
            self.total,
            text.trim()
        );
        self.stage.steps.push(Step {
            line: span.line,
            column: span.column,
            name,
            text: text.trim().to_owned(),
            op,
        });
        self.stage.steps.len() - 1
    }

    fn command(&self, command: &CommandLine) -> Vec<String> {
        match command {
            CommandLine::Exec(words) => words.iter().map(|w| w.text.clone()).collect(),
            CommandLine::Shell(word) => {
                let mut args = self.shell();
                args.push(word.text.clone());
                args
            }
        }
    }

    /// Records a `--from` stage as a dependency; only a stage defined before this one can be
    /// read (a later one would wait for this stage forever).
    fn add_source(&mut self, source: &Source, span: Span) -> Result<(), PlanError> {
        if let Source::Stage(index) = source {
            if *index >= self.stage.index {
                let name = |i: usize| {
                    self.outline
                        .stages
                        .get(i)
                        .and_then(|s| s.name.clone())
                        .unwrap_or_else(|| format!("stage-{i}"))
                };
                return Err(PlanError::at(
                    span,
                    format!(
                        "cannot read from stage {:?}: it needs to be defined before the current stage {:?}",
                        name(*index),
                        name(self.stage.index)
                    ),
                ));
            }
            self.stage.dependencies.insert(*index);
        }
        Ok(())
    }

    fn instruction(
        &mut self,
        instruction: &Instruction,
        text: &str,
        span: Span,
    ) -> Result<(), PlanError> {
        match &instruction.kind {
            // The outline splits stages on FROM: it never reaches a stage's planner.
            InstructionKind::From(_) => {}
            InstructionKind::Arg(declarations) => {
                let mut shown = Vec::new();
                for declaration in declarations {
                    let outcome = self
                        .vars
                        .arg(
                            &declaration.name.text,
                            declaration.default.as_ref().map(|w| w.text.as_str()),
                        )
                        .map_err(|e| PlanError::at(span, e.to_string()))?;
                    shown.push(match outcome.declared.value {
                        Some(value) => format!("{}={value}", declaration.name.text),
                        None => declaration.name.text.clone(),
                    });
                }
                self.history(format!("ARG {}", shown.join(" ")), None);
            }
            InstructionKind::Env(pairs) => {
                let expanded = self.expand_pairs(pairs)?;
                for (k, v) in &expanded {
                    self.vars
                        .env(k, v)
                        .map_err(|e| PlanError::at(span, e.to_string()))?;
                }
                self.sync_env();
                let shown: Vec<String> = expanded.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.history(format!("ENV {}", shown.join(" ")), None);
            }
            InstructionKind::Label(pairs) => {
                let expanded = self.expand_pairs(pairs)?;
                let labels = self
                    .stage
                    .config
                    .labels
                    .get_or_insert_with(Default::default);
                for (k, v) in &expanded {
                    labels.insert(k.clone(), v.clone());
                }
                let shown: Vec<String> = expanded.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.history(format!("LABEL {}", shown.join(" ")), None);
            }
            InstructionKind::Maintainer(word) => {
                self.stage.author = Some(word.text.clone());
                self.history(format!("MAINTAINER {}", word.text), None);
            }
            InstructionKind::Expose(ports) => {
                let mut shown = Vec::new();
                for port in ports {
                    for text in self
                        .lexer
                        .expand_words(&port.raw.text, self.vars.scope())
                        .map_err(|e| PlanError::at(port.raw.span, e.to_string()))?
                    {
                        let spec = values::parse_port(&text)
                            .map_err(|e| PlanError::at(port.raw.span, e.0))?;
                        let protocol = format!("{:?}", spec.protocol).to_ascii_lowercase();
                        for number in spec.start..=spec.end {
                            let key = format!("{number}/{protocol}");
                            shown.push(key.clone());
                            config::add_to_set(&mut self.stage.config.exposed_ports, key);
                        }
                    }
                }
                // Current BuildKit lists the ports as written (`EXPOSE [80/tcp 53/udp]`).
                self.history(format!("EXPOSE {}", config::go_list(&shown)), None);
            }
            InstructionKind::Volume(words) => {
                let mut shown = Vec::new();
                for word in words {
                    let path = self.expand(word)?;
                    if path.is_empty() {
                        return Err(PlanError::at(
                            word.span,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    shown.push(path.clone());
                    config::add_to_set(&mut self.stage.config.volumes, path);
                }
                self.history(format!("VOLUME {}", config::go_list(&shown)), None);
            }
            InstructionKind::User(word) => {
                let user = self.expand(word)?;
                self.stage.config.user = Some(user.clone());
                self.history(format!("USER {user}"), None);
            }
            InstructionKind::Workdir(word) => {
                let path = config::absolute(&self.cwd(), &self.expand(word)?);
                self.stage.config.working_dir = Some(path.clone());
                let step = if path == "/" {
                    None
                } else {
                    let user = self.stage.config.user.clone().unwrap_or_default();
                    Some(self.push_step(
                        span,
                        text,
                        Op::Mkdir {
                            path: path.clone(),
                            user,
                        },
                    ))
                };
                self.history(format!("WORKDIR {path}"), step);
            }
            InstructionKind::Cmd(command) => {
                let args = self.command(command);
                self.history(format!("CMD {}", config::go_quoted_list(&args)), None);
                // An empty list is left out of the config (Go's omitempty), as BuildKit does.
                self.stage.config.cmd = (!args.is_empty()).then_some(args);
                // BuildKit marks every CMD so (a Windows-only hint, kept for equal configs).
                self.stage.config.args_escaped = true;
                self.config_cmd_set = true;
            }
            InstructionKind::Entrypoint(command) => {
                let args = self.command(command);
                self.history(
                    format!("ENTRYPOINT {}", config::go_quoted_list(&args)),
                    None,
                );
                self.stage.config.entrypoint = (!args.is_empty()).then_some(args);
                if !self.config_cmd_set {
                    self.stage.config.cmd = None;
                }
            }
            InstructionKind::Shell(words) => {
                let shell: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
                self.history(format!("SHELL {}", config::go_list(&shell)), None);
                self.stage.config.shell = Some(shell);
            }
            InstructionKind::Stopsignal(signal) => {
                let text = self.expand(&signal.raw)?;
                values::parse_signal(&text).map_err(|e| PlanError::at(signal.raw.span, e.0))?;
                self.history(format!("STOPSIGNAL {text}"), None);
                self.stage.config.stop_signal = Some(text);
            }
            InstructionKind::Healthcheck(check) => {
                let test = match &check.test {
                    HealthcheckTest::None => vec!["NONE".to_owned()],
                    HealthcheckTest::Cmd(CommandLine::Exec(words)) => {
                        std::iter::once("CMD".to_owned())
                            .chain(words.iter().map(|w| w.text.clone()))
                            .collect()
                    }
                    HealthcheckTest::Cmd(CommandLine::Shell(word)) => {
                        vec!["CMD-SHELL".to_owned(), word.text.clone()]
                    }
                };
                self.history(config::health_history(&test, check), None);
                self.stage.config.healthcheck = Some(config::health_config(test, check));
            }
            InstructionKind::Onbuild(onbuild) => {
                self.stage
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(onbuild.expression.clone());
                // docker build writes no history entry for ONBUILD.
            }
            InstructionKind::Run(run) => {
                let op = self.run_op(run)?;
                let created_by = format!("RUN {} # buildkit", self.run_history(&op.args));
                let step = self.push_step(span, text, Op::Run(op));
                self.history(created_by, Some(step));
            }
            InstructionKind::Copy(copy) => {
                let from = copy
                    .from
                    .as_ref()
                    .map_or(Source::Context, |w| source_of(self.outline, &w.text));
                self.add_source(&from, span)?;
                let (op, written_dest) = self.copy_op(
                    from,
                    &copy.paths,
                    copy.chown.as_ref(),
                    copy.chmod.as_ref(),
                    CopyFlags {
                        link: copy.link,
                        parents: copy.parents,
                        excludes: &copy.exclude,
                        add: None,
                    },
                )?;
                if op.from == Source::Context
                    && op
                        .sources
                        .iter()
                        .any(|s| s.starts_with("http://") || s.starts_with("https://"))
                {
                    return Err(PlanError::at(span, "source can't be a URL for COPY"));
                }
                let created_by = copy_history("COPY", &op, &written_dest);
                let step = self.push_step(span, text, Op::Copy(op));
                self.history(created_by, Some(step));
            }
            InstructionKind::Add(add) => {
                let checksum = match &add.checksum {
                    Some(word) => {
                        let text = self.expand(word)?;
                        values::parse_digest(&text).map_err(|e| PlanError::at(word.span, e.0))?;
                        Some(text)
                    }
                    None => None,
                };
                let (op, written_dest) = self.copy_op(
                    Source::Context,
                    &add.paths,
                    add.chown.as_ref(),
                    add.chmod.as_ref(),
                    CopyFlags {
                        link: add.link,
                        parents: false,
                        excludes: &add.exclude,
                        add: Some(AddOptions {
                            checksum,
                            keep_git_dir: add.keep_git_dir,
                            unpack: add.unpack,
                        }),
                    },
                )?;
                let has_checksum = op.add.as_ref().is_some_and(|a| a.checksum.is_some());
                let is_http = |s: &String| s.starts_with("http://") || s.starts_with("https://");
                if has_checksum && !op.sources.iter().all(is_http) {
                    return Err(PlanError::at(
                        span,
                        "checksum can't be specified for non-HTTP(S) sources",
                    ));
                }
                let created_by = copy_history("ADD", &op, &written_dest);
                let step = self.push_step(span, text, Op::Copy(op));
                self.history(created_by, Some(step));
            }
        }
        Ok(())
    }

    /// ENV and LABEL pairs, all expanded with the scope from before the instruction.
    fn expand_pairs(&self, pairs: &[KeyValue]) -> Result<Vec<(String, String)>, PlanError> {
        pairs
            .iter()
            .map(|pair| Ok((self.expand(&pair.key)?, self.expand(&pair.value)?)))
            .collect()
    }

    fn run_op(&mut self, run: &crate::dockerfile::RunInstruction) -> Result<RunOp, PlanError> {
        let mut files = Vec::new();
        let args = match (&run.command, run.heredocs.as_slice()) {
            (CommandLine::Shell(word), [only]) if is_just_heredoc(&word.text, only) => {
                let content = heredoc_body(only);
                if content.starts_with("#!") {
                    let path = format!("/dev/pipes/{}", only.name);
                    files.push(InlineFile {
                        name: path.clone(),
                        content,
                    });
                    // As BuildKit: the shell runs the script, the kernel reads its `#!`.
                    let mut args = self.shell();
                    args.push(path);
                    args
                } else {
                    let mut args = self.shell();
                    args.push(content);
                    args
                }
            }
            (CommandLine::Shell(word), heredocs) if !heredocs.is_empty() => {
                let mut script = word.text.clone();
                for heredoc in heredocs {
                    script.push('\n');
                    script.push_str(&heredoc.content);
                    script.push_str(&heredoc.name);
                }
                let mut args = self.shell();
                args.push(script);
                args
            }
            (command, _) => self.command(command),
        };
        let mut mounts = Vec::new();
        for mount in &run.mounts {
            let parsed: Mount = match &mount.parsed {
                Some(parsed) if !mount.raw.text.contains('$') => parsed.clone(),
                _ => {
                    let text = self.expand_text(&mount.raw.text, mount.raw.span)?;
                    values::parse_mount(&text).map_err(|e| PlanError::at(mount.raw.span, e.0))?
                }
            };
            let from = parsed.from.as_deref().map(|f| source_of(self.outline, f));
            if let Some(from) = &from {
                self.add_source(from, mount.raw.span)?;
            }
            mounts.push(RunMount {
                mount: parsed,
                from,
            });
        }
        let network = match &run.network {
            Some(Typed {
                parsed: Some(mode), ..
            }) => Some(*mode),
            Some(Typed { raw, .. }) => {
                Some(values::parse_network(&raw.text).map_err(|e| PlanError::at(raw.span, e.0))?)
            }
            None => None,
        };
        Ok(RunOp {
            args,
            env: self.vars.scope().env_list(),
            arg_names: self
                .vars
                .scope()
                .iter()
                .filter(|v| v.origin == crate::dockerfile::vars::Origin::Arg)
                .map(|v| v.name.clone())
                .collect(),
            cwd: self.cwd(),
            user: self.stage.config.user.clone().unwrap_or_default(),
            mounts,
            network,
            files,
            proxy_env: Vec::new(),
        })
    }

    fn copy_op(
        &mut self,
        from: Source,
        paths: &crate::dockerfile::SourcesAndDest,
        chown: Option<&Word>,
        chmod: Option<&Typed<values::Chmod>>,
        flags: CopyFlags<'_>,
    ) -> Result<(CopyOp, String), PlanError> {
        let heredoc_names: HashMap<&str, &Heredoc> = paths
            .heredocs
            .iter()
            .map(|h| (h.name.as_str(), h))
            .collect();
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for word in &paths.sources {
            let marker = word.text.trim_start_matches("<<").trim_start_matches('-');
            let marker = marker.trim_matches(|c| c == '"' || c == '\'');
            match heredoc_names.get(marker) {
                Some(heredoc) if word.text.starts_with("<<") => {
                    let body = heredoc_body(heredoc);
                    let content = if heredoc.expand {
                        Lexer::heredoc()
                            .expand_word(&body, self.vars.scope())
                            .map_err(|e| PlanError::at(heredoc.body_span, e.to_string()))?
                    } else {
                        body
                    };
                    inline.push(InlineFile {
                        name: heredoc.name.clone(),
                        content,
                    });
                }
                _ => sources.push(self.expand(word)?),
            }
        }
        let written_dest = self.expand(&paths.dest)?;
        let mut dest = config::absolute(&self.cwd(), &written_dest);
        if (written_dest.ends_with('/') || written_dest == "." || written_dest.is_empty())
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let chown = chown
            .map(|w| self.expand(w))
            .transpose()?
            .filter(|c| !c.is_empty());
        let (chmod, chmod_text) = match chmod {
            Some(typed) => {
                let text = self.expand(&typed.raw)?;
                let parsed =
                    values::parse_chmod(&text).map_err(|e| PlanError::at(typed.raw.span, e.0))?;
                (Some(parsed), Some(text))
            }
            None => (None, None),
        };
        let excludes = flags
            .excludes
            .iter()
            .map(|w| self.expand(w))
            .collect::<Result<Vec<_>, _>>()?;
        let op = CopyOp {
            from,
            sources,
            inline,
            dest,
            chown,
            chmod,
            chmod_text,
            link: flags.link,
            parents: flags.parents,
            excludes,
            add: flags.add,
        };
        Ok((op, written_dest))
    }

    /// The command of a RUN as docker build writes it into the history: the stage's declared
    /// ARGs first (`|2 A=1 B=2`, values as the step sees them), then the arguments.
    fn run_history(&self, args: &[String]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for declared in self.vars.declared_args() {
            let value = self
                .vars
                .scope()
                .get(&declared.name)
                .map(|v| v.value.clone())
                .or_else(|| declared.value.clone())
                .unwrap_or_default();
            match pairs.iter_mut().find(|(name, _)| *name == declared.name) {
                Some(pair) => pair.1 = value,
                None => pairs.push((declared.name.clone(), value)),
            }
        }
        let mut words: Vec<String> = Vec::new();
        if !pairs.is_empty() {
            words.push(format!("|{}", pairs.len()));
            words.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        words.extend(args.iter().cloned());
        words.join(" ")
    }
}

struct CopyFlags<'a> {
    link: bool,
    parents: bool,
    excludes: &'a [Word],
    add: Option<AddOptions>,
}

/// `COPY a.txt <<EOF ./ # buildkit`: sources and destination as written (expanded).
fn copy_history(keyword: &str, op: &CopyOp, written_dest: &str) -> String {
    let mut parts: Vec<String> = op.sources.clone();
    parts.extend(op.inline.iter().map(|f| format!("<<{}", f.name)));
    parts.push(written_dest.to_owned());
    format!("{keyword} {} # buildkit", parts.join(" "))
}

/// Whether a shell-form RUN is nothing but one heredoc (`RUN <<EOF`): it then runs as a script.
fn is_just_heredoc(command: &str, heredoc: &Heredoc) -> bool {
    let trimmed = command.trim();
    let marker = trimmed.trim_start_matches("<<").trim_start_matches('-');
    trimmed.starts_with("<<") && marker.trim_matches(|c| c == '"' || c == '\'') == heredoc.name
}

/// A heredoc's body, with leading tabs removed for `<<-`.
fn heredoc_body(heredoc: &Heredoc) -> String {
    if !heredoc.chomp {
        return heredoc.content.clone();
    }
    heredoc
        .content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}
