//! The checks: one pass over the typed instructions, with stage and variable scope, RUN
//! scripts analysed as parsed shell. Produces raw findings; pragmas, config and severities
//! are applied by the caller.

use super::rules;
use super::shell::{Command, Script};
use super::{Config, Finding, Fix, ImageEnv, LabelType, Source};
use crate::context::Context;
use crate::dockerfile::expand::{FnVars, Lexer};
use crate::dockerfile::syntax::Node;
use crate::dockerfile::values::MountType;
use crate::dockerfile::vars::{BUILTIN_BUILD_ARGS, DEFAULT_PATH, Platform, Scope, Variables};
use crate::dockerfile::{
    CommandLine, DiagnosticCode, Instruction, InstructionKind, Keyword, LineIndex,
    ParsedDockerfile, Span, Word,
};
use std::collections::BTreeSet;

/// Archive suffixes hadolint knows (DL3010, DL3020).
const ARCHIVE_SUFFIXES: &[&str] = &[
    ".tar", ".Z", ".bz2", ".gz", ".lz", ".lzma", ".tZ", ".tb2", ".tbz", ".tbz2", ".tgz", ".tlz",
    ".tpz", ".txz", ".xz",
];

/// Values that switch a boolean environment setting on (pip's `PIP_NO_CACHE_DIR`).
const TRUTHY: &[&str] = &[
    "1", "true", "True", "TRUE", "on", "On", "ON", "yes", "Yes", "YES",
];

/// One build stage as far as the checks need it.
#[derive(Clone, Debug, Default)]
struct Stage {
    /// The stage name (`AS name`), lowercased as BuildKit does.
    name: Option<String>,
    line: u32,
    /// Variables in scope: ARG (with value when known) and ENV.
    vars: Vec<(String, Option<String>)>,
    workdir_set: bool,
    pip_no_cache: bool,
    /// Whether the base image's environment is known (scratch, a stage whose base is known,
    /// or an image found by [`ImageEnv`]): only then is a variable missing from `vars`
    /// undefined.
    env_known: bool,
    healthchecks: u32,
    cmds: u32,
    entrypoints: u32,
    has_user: bool,
    /// DL3002: the last USER of this stage when it is root.
    root_user_line: Option<Span>,
    /// DL3009: RUNs that updated apt lists without removing them.
    apt_lists_left: Vec<Span>,
    labels: BTreeSet<String>,
}

struct Checker<'a> {
    text: &'a str,
    parsed: &'a ParsedDockerfile,
    config: &'a Config,
    index: LineIndex,
    escape: char,
    findings: Vec<Finding>,
    global_args: Vec<(String, Option<String>)>,
    stages: Vec<Stage>,
    /// DL4006: a `SHELL` with `-o pipefail` (or a non-POSIX shell) is in effect.
    pipefail: bool,
    /// The shell in effect (`SHELL`), for shellcheck and for non-POSIX shells.
    shell: Vec<String>,
    /// DL3059: the previous instruction was a RUN with these flags and this many commands.
    previous_run: Option<(Vec<String>, usize)>,
    /// DL4001: RUN lines using curl and wget.
    curl_runs: Vec<Span>,
    wget_runs: Vec<Span>,
    /// DL3010: archives copied in (line, basename) and those extracted later.
    copied_archives: Vec<(Span, String)>,
    /// Scripts to hand to shellcheck: (script, where it starts, shell).
    scripts: Vec<ShellScript>,
    /// The first line of the instruction being checked.
    instruction_line: Option<u32>,
    /// The build context, for CopyIgnoredFile.
    context: Option<&'a Context>,
    /// Base images' environments, for UndefinedVar.
    images: Option<&'a dyn ImageEnv>,
    /// The automatic platform ARGs (names as the builder defines them; values unused).
    automatic_args: Scope,
}

/// A RUN script and how its offsets map back to the Dockerfile.
#[derive(Clone, Debug)]
pub struct ShellScript {
    pub text: String,
    pub map: OffsetMap,
    pub shell: String,
    /// Variables exported before the script (ARG/ENV names in scope).
    pub exported: Vec<String>,
    pub instruction: Span,
}

/// Maps byte offsets in a text derived from the Dockerfile (continuations and comment lines
/// dropped) back to offsets in the file.
#[derive(Clone, Debug, Default)]
pub struct OffsetMap {
    /// For every byte of the derived text, its offset in the file.
    file_offsets: Vec<usize>,
    end: usize,
}

impl OffsetMap {
    /// Aligns `derived` (a subsequence of `source[span]`) with the source.
    pub fn align(source: &str, start: usize, end: usize, derived: &str) -> OffsetMap {
        let src = source.get(start..end).unwrap_or("");
        let mut file_offsets = Vec::with_capacity(derived.len());
        let mut s = src.char_indices().peekable();
        for (_, dc) in derived.char_indices() {
            let mut found = None;
            while let Some(&(i, sc)) = s.peek() {
                s.next();
                if sc == dc {
                    found = Some(i);
                    break;
                }
            }
            let at = start + found.unwrap_or(src.len());
            file_offsets.extend(std::iter::repeat_n(at, dc.len_utf8()));
        }
        OffsetMap { file_offsets, end }
    }

    /// The identity map of a text found verbatim at `start` (a heredoc body).
    pub fn verbatim(start: usize, len: usize) -> OffsetMap {
        OffsetMap {
            file_offsets: (start..start + len).collect(),
            end: start + len,
        }
    }

    pub fn file_offset(&self, derived: usize) -> usize {
        self.file_offsets.get(derived).copied().unwrap_or(self.end)
    }
}

/// Runs every check over a parsed Dockerfile.
pub fn check(
    source: &Source<'_>,
    parsed: &ParsedDockerfile,
    config: &Config,
) -> (Vec<Finding>, Vec<ShellScript>) {
    let text = source.text;
    let host = Platform::host();
    let automatic_args = Variables::new(
        Lexer::new(parsed.directives.escape_char),
        Vec::new(),
        &host,
        &host,
        "",
    )
    .global()
    .clone();
    let mut checker = Checker {
        text,
        parsed,
        config,
        index: LineIndex::new(text),
        escape: parsed.directives.escape_char,
        findings: Vec::new(),
        global_args: Vec::new(),
        stages: Vec::new(),
        pipefail: false,
        shell: vec!["/bin/sh".into(), "-c".into()],
        previous_run: None,
        curl_runs: Vec::new(),
        wget_runs: Vec::new(),
        copied_archives: Vec::new(),
        scripts: Vec::new(),
        instruction_line: None,
        context: source.context,
        images: source.images,
        automatic_args,
    };
    checker.diagnostics();
    checker.casing();
    let aliases_used_as_base: BTreeSet<String> = parsed
        .instructions
        .iter()
        .filter_map(|i| match &i.kind {
            InstructionKind::From(f) => Some(f.image.text.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let mut seen_from = false;
    for instruction in &parsed.instructions {
        let Some(node) = parsed.nodes.get(instruction.node) else {
            continue;
        };
        if !seen_from
            && !matches!(
                instruction.kind,
                InstructionKind::From(_) | InstructionKind::Arg(_)
            )
        {
            checker.add("DL3061", instruction.span, None);
        }
        if matches!(instruction.kind, InstructionKind::From(_)) {
            seen_from = true;
        }
        checker.instruction_line = Some(instruction.span.line);
        checker.instruction(instruction, node);
    }
    // Instructions the front end could not type are still checked where the raw words
    // are enough (BuildKit itself warns on `EXPOSE 0.0.0.0:80:80` and builds).
    let typed: BTreeSet<usize> = parsed.instructions.iter().map(|i| i.node).collect();
    for (i, node) in parsed.nodes.iter().enumerate() {
        if typed.contains(&i) {
            continue;
        }
        checker.instruction_line = Some(node.span.line);
        match node.keyword {
            Some(Keyword::Expose) => {
                for word in &node.args {
                    checker.expose(word);
                }
            }
            Some(Keyword::Onbuild) => {
                let inner = node.onbuild.as_ref().and_then(|n| n.keyword);
                if matches!(
                    inner,
                    Some(Keyword::From | Keyword::Maintainer | Keyword::Onbuild)
                ) {
                    checker.add("DL3043", node.span, None);
                }
            }
            _ => {}
        }
    }
    checker.instruction_line = None;
    checker.finish(&aliases_used_as_base);
    let scripts = std::mem::take(&mut checker.scripts);
    (checker.findings, scripts)
}

impl Checker<'_> {
    fn add(&mut self, id: &'static str, span: Span, message: Option<String>) {
        self.add_fix(id, span, message, None);
    }

    fn add_fix(&mut self, id: &'static str, span: Span, message: Option<String>, fix: Option<Fix>) {
        let Some(rule) = rules::find(id) else {
            return;
        };
        self.findings.push(Finding {
            rule: rule.id.to_string(),
            buildkit: rule.buildkit,
            severity: rule.severity,
            message: message.unwrap_or_else(|| rule.message.to_string()),
            line: span.line,
            column: span.column,
            end_line: span.end_line,
            end_column: span.end_column,
            instruction_line: self.instruction_line.unwrap_or(span.line),
            fix,
        });
    }

    fn span_at(&self, start: usize, end: usize) -> Span {
        self.index.span(start, end)
    }

    /// Parse errors and warnings of the front end, as findings (the rest is still linted).
    fn diagnostics(&mut self) {
        for d in &self.parsed.diagnostics {
            match d.code {
                DiagnosticCode::EmptyContinuationLine => {
                    self.add("NoEmptyContinuation", d.span, None)
                }
                _ if d.severity == crate::dockerfile::Severity::Error => {
                    self.add("DL1000", d.span, Some(d.message.clone()))
                }
                _ => {}
            }
        }
    }

    /// ConsistentInstructionCasing and FromAsCasing, with fixes.
    fn casing(&mut self) {
        let nodes: Vec<&Node> = self
            .parsed
            .nodes
            .iter()
            .filter(|n| n.keyword.is_some())
            .collect();
        let upper = nodes
            .iter()
            .filter(|n| n.keyword_text.text == n.keyword_text.text.to_ascii_uppercase())
            .count();
        let lower = nodes
            .iter()
            .filter(|n| n.keyword_text.text == n.keyword_text.text.to_ascii_lowercase())
            .count();
        let majority_upper = upper >= lower;
        for node in nodes {
            let mut words = vec![&node.keyword_text];
            if let Some(inner) = &node.onbuild {
                words.push(&inner.keyword_text);
            }
            for w in words {
                let wanted = if majority_upper {
                    w.text.to_ascii_uppercase()
                } else {
                    w.text.to_ascii_lowercase()
                };
                if w.text != wanted {
                    let message = format!(
                        "Command '{}' should match the case of the command majority ({})",
                        w.text,
                        if majority_upper {
                            "uppercase"
                        } else {
                            "lowercase"
                        }
                    );
                    let fix = Fix {
                        start: w.span.start,
                        end: w.span.end,
                        replacement: wanted,
                    };
                    self.add_fix(
                        "ConsistentInstructionCasing",
                        w.span,
                        Some(message),
                        Some(fix),
                    );
                }
            }
            if node.keyword == Some(Keyword::From)
                && let Some(as_word) = node.args.get(1)
                && as_word.text.eq_ignore_ascii_case("as")
            {
                let keyword = &node.keyword_text.text;
                let from_upper = *keyword == keyword.to_ascii_uppercase();
                let from_lower = *keyword == keyword.to_ascii_lowercase();
                let as_upper = as_word.text == "AS";
                let as_lower = as_word.text == "as";
                if (from_upper && !as_upper) || (from_lower && !as_lower) {
                    let message = format!(
                        "'{}' and '{}' keywords' casing do not match",
                        as_word.text, keyword
                    );
                    // Match the casing FROM has once ConsistentInstructionCasing is fixed.
                    let wanted = if majority_upper { "AS" } else { "as" };
                    let fix = (as_word.text != wanted).then(|| Fix {
                        start: as_word.span.start,
                        end: as_word.span.end,
                        replacement: wanted.to_string(),
                    });
                    self.add_fix("FromAsCasing", as_word.span, Some(message), fix);
                }
            }
        }
    }

    fn stage(&mut self) -> Option<&mut Stage> {
        self.stages.last_mut()
    }

    /// Variables visible in the current stage, with the values the linter knows.
    fn lookup(&self, name: &str) -> Option<String> {
        match self.stages.last() {
            Some(stage) => stage
                .vars
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone()),
            None => self.global_value(name),
        }
    }

    fn global_value(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.build_args.get(name) {
            return Some(v.clone());
        }
        self.global_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    /// The automatic platform ARGs and the proxy build args, known without a declaration.
    fn builtin_arg(&self, name: &str) -> bool {
        self.automatic_args.get(name).is_some() || BUILTIN_BUILD_ARGS.contains(&name)
    }

    fn declared_in_stage(&self, name: &str) -> bool {
        self.builtin_arg(name)
            || self
                .stages
                .last()
                .is_some_and(|s| s.vars.iter().any(|(k, _)| k == name))
    }

    /// Expands a word with the variables in scope; `None` when it uses an unknown variable.
    fn expand(&self, text: &str, globals_only: bool) -> Option<String> {
        let vars = FnVars(|name: &str| {
            if globals_only {
                self.global_value(name)
            } else {
                self.lookup(name)
            }
        });
        let expansion = Lexer::new(self.escape).expand(text, &vars).ok()?;
        if expansion.unset().next().is_some() {
            return None;
        }
        Some(expansion.value)
    }

    /// UndefinedVar over the words of an instruction that BuildKit expands.
    fn undefined_vars(&mut self, words: &[&Word]) {
        let known_env = self.stages.last().is_some_and(|s| s.env_known);
        if !known_env {
            return;
        }
        for word in words {
            let vars = FnVars(|name: &str| {
                self.lookup(name)
                    .or(Some(String::new()))
                    .filter(|_| self.declared_in_stage(name))
            });
            let Ok(expansion) = Lexer::new(self.escape).expand(&word.text, &vars) else {
                continue;
            };
            let unset: Vec<String> = expansion.unset().map(|r| r.name.to_string()).collect();
            for name in unset {
                let message = format!("Usage of undefined variable '${name}'");
                self.add("UndefinedVar", word.span, Some(message));
            }
        }
    }

    fn instruction(&mut self, instruction: &Instruction, node: &Node) {
        let span = instruction.span;
        let is_run = matches!(instruction.kind, InstructionKind::Run(_));
        if !is_run {
            self.previous_run = None;
        }
        match &instruction.kind {
            InstructionKind::From(from) => self.from(from, span),
            InstructionKind::Run(run) => {
                let flags: Vec<String> = node.flags.iter().map(|f| f.text.clone()).collect();
                self.run(run, &flags, span, false);
            }
            InstructionKind::Cmd(cmd) => {
                self.count_in_stage("DL4003", span, |s| &mut s.cmds);
                self.json_args(cmd, node, "CMD", span);
            }
            InstructionKind::Entrypoint(cmd) => {
                self.count_in_stage("DL4004", span, |s| &mut s.entrypoints);
                self.json_args(cmd, node, "ENTRYPOINT", span);
            }
            InstructionKind::Healthcheck(_) => {
                self.count_in_stage("DL3012", span, |s| &mut s.healthchecks);
            }
            InstructionKind::Shell(words) => {
                self.shell = words.iter().map(|w| w.text.clone()).collect();
                let joined = self.shell.join(" ");
                let non_posix = ["pwsh", "powershell", "cmd"].iter().any(|s| {
                    self.shell
                        .first()
                        .is_some_and(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).starts_with(s))
                });
                let script = Script::parse(&joined, &|_| None);
                let pipefail = script.commands.iter().any(|c| {
                    c.is_any(&["bash", "zsh", "ash", "sh", "dash", "ksh", "mksh"])
                        && c.has_flag("o")
                        && c.has_arg("pipefail")
                }) || self.shell.iter().any(|w| w == "pipefail")
                    && self
                        .shell
                        .iter()
                        .any(|w| w == "-o" || w.starts_with("-") && w.ends_with('o'));
                self.pipefail = non_posix || pipefail;
            }
            InstructionKind::Label(pairs) => self.label(pairs, node, span),
            InstructionKind::Env(pairs) => self.env(pairs, node, span),
            InstructionKind::Maintainer(w) => {
                let fix = Fix {
                    start: node.span.start,
                    end: node.span.end,
                    replacement: format!(
                        "LABEL org.opencontainers.image.authors={}",
                        quote_label_value(&w.text)
                    ),
                };
                self.add_fix("DL4000", span, None, Some(fix));
            }
            InstructionKind::Expose(ports) => {
                let words: Vec<&Word> = ports.iter().map(|p| &p.raw).collect();
                self.undefined_vars(&words);
                for port in ports {
                    self.expose(&port.raw);
                }
            }
            InstructionKind::Add(add) => {
                let mut words: Vec<&Word> = add.paths.sources.iter().collect();
                words.push(&add.paths.dest);
                self.undefined_vars(&words);
                self.ignored_sources(&add.paths.sources, "Add");
                let all_remote_or_archive = add.paths.sources.iter().all(|s| {
                    let t = strip_quotes(&s.text);
                    is_archive(t)
                        || t.starts_with("http://")
                        || t.starts_with("https://")
                        || t.starts_with("git@")
                        || t.contains(".git#")
                        || t.ends_with(".git")
                }) && add.paths.heredocs.is_empty();
                if !all_remote_or_archive && add.checksum.is_none() {
                    self.add("DL3020", span, None);
                }
            }
            InstructionKind::Copy(copy) => self.copy(copy, span),
            InstructionKind::Volume(words) => {
                let words: Vec<&Word> = words.iter().collect();
                self.undefined_vars(&words);
            }
            InstructionKind::User(user) => self.user(user, span),
            InstructionKind::Workdir(dir) => {
                self.undefined_vars(&[dir]);
                let t = strip_quotes(&dir.text);
                let absolute = t.starts_with('/') || t.starts_with('$') || windows_absolute(t);
                if !absolute {
                    let message = format!(
                        "Relative workdir \"{}\" can have unexpected results if the base image changes",
                        dir.text
                    );
                    self.add("DL3000", dir.span, Some(message));
                }
                if let Some(stage) = self.stage() {
                    stage.workdir_set = true;
                }
            }
            InstructionKind::Arg(decls) => self.arg(decls, span),
            InstructionKind::Onbuild(onbuild) => match onbuild.instruction.as_ref() {
                InstructionKind::From(_)
                | InstructionKind::Maintainer(_)
                | InstructionKind::Onbuild(_) => self.add("DL3043", span, None),
                InstructionKind::Run(run) => {
                    let flags: Vec<String> = node
                        .onbuild
                        .as_ref()
                        .map(|n| n.flags.iter().map(|f| f.text.clone()).collect())
                        .unwrap_or_default();
                    self.run(run, &flags, span, true);
                }
                _ => {}
            },
            InstructionKind::Stopsignal(s) => self.undefined_vars(&[&s.raw]),
        }
    }

    /// InvalidDefinitionDescription: a comment right above an ARG or a named FROM describes
    /// it, so its first word must be the name (BuildKit looks at the nearest comment only; a
    /// blank line in between makes it no description).
    fn definition_description(&mut self, instruction: &str, keys: &[&str], span: Span) {
        let Some(first_key) = keys.first() else {
            return;
        };
        let Some((start, end)) = span
            .line
            .checked_sub(1)
            .and_then(|line| self.index.line_range(line))
        else {
            return;
        };
        let Some(comment) = self
            .text
            .get(start..end)
            .and_then(|l| l.trim().strip_prefix('#'))
        else {
            return;
        };
        let directives = &self.parsed.directives;
        let is_directive = [&directives.syntax, &directives.escape, &directives.check]
            .into_iter()
            .flatten()
            .any(|d| d.span.start <= start && start < d.span.end.max(d.span.start + 1));
        let inside_node = self
            .parsed
            .nodes
            .iter()
            .any(|n| n.span.start <= start && start < n.span.end);
        let described = comment.trim().split(' ').next().unwrap_or("");
        if is_directive || inside_node || keys.contains(&described) {
            return;
        }
        let example = if keys.len() > 1 {
            "<arg_key>"
        } else {
            first_key
        };
        let message = format!(
            "Comment for {instruction} should follow the format: `# {example} <description>`"
        );
        self.add("InvalidDefinitionDescription", span, Some(message));
    }

    /// Counts an instruction that must appear once per stage; `id` fires on a repeat.
    fn count_in_stage(&mut self, id: &'static str, span: Span, count: fn(&mut Stage) -> &mut u32) {
        let Some(stage) = self.stage() else {
            return;
        };
        let seen = count(stage);
        *seen += 1;
        if *seen > 1 {
            self.add(id, span, None);
        }
    }

    fn json_args(&mut self, cmd: &CommandLine, node: &Node, keyword: &str, span: Span) {
        let CommandLine::Shell(word) = cmd else {
            return;
        };
        let message = format!(
            "JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals"
        );
        let fix = exec_form(&word.text).map(|json| Fix {
            start: word.span.start,
            end: node.span.end.max(word.span.end),
            replacement: json,
        });
        self.add_fix(
            "DL3025",
            span,
            Some(message),
            fix.filter(|f| f.start < f.end),
        );
    }

    fn from(&mut self, from: &crate::dockerfile::FromInstruction, span: Span) {
        // Check the base image as the build would see it.
        let raw = &from.image.text;
        let expanded = self.expand(raw, true);
        if raw.contains('$') {
            let vars = FnVars(|name: &str| self.global_value(name));
            if let Ok(e) = Lexer::new(self.escape).expand(raw, &vars) {
                for r in e.unset() {
                    let declared = self.global_args.iter().any(|(k, _)| k == r.name)
                        || self.automatic_args.get(r.name).is_some()
                        || self.config.build_args.contains_key(r.name);
                    if !declared {
                        let message = format!("FROM argument '{}' is not declared", r.name);
                        self.add("UndefinedArgInFrom", from.image.span, Some(message));
                    }
                }
                if e.unset()
                    .all(|r| self.global_args.iter().any(|(k, _)| k == r.name))
                    && !valid_image_reference(&e.value)
                {
                    let message = format!(
                        "Default value for ARG {raw} results in empty or invalid base image name"
                    );
                    self.add("InvalidDefaultArgInFrom", from.image.span, Some(message));
                }
            }
        }
        let base = expanded.clone().unwrap_or_else(|| raw.clone());
        let base_lower = base.to_ascii_lowercase();
        let previous_stage = self
            .stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(base_lower.as_str()))
            .cloned();
        if expanded.is_some() && previous_stage.is_none() && base_lower != "scratch" {
            let image = ImageRef::parse(&base);
            if image.tag.is_none() && image.digest.is_none() {
                self.add("DL3006", from.image.span, None);
            }
            if image.tag.as_deref() == Some("latest") && image.digest.is_none() {
                self.add("DL3007", from.image.span, None);
            }
            if !self.config.trusted_registries.is_empty() {
                let allowed = match &image.registry {
                    Some(r) => self.config.trusted_registries.iter().any(|t| t == r),
                    None => self
                        .config
                        .trusted_registries
                        .iter()
                        .any(|t| t == "docker.io" || t == "hub.docker.com"),
                };
                if !allowed {
                    self.add("DL3026", from.image.span, None);
                }
            }
        }
        if let Some(platform) = &from.platform {
            let p = platform.text.as_str();
            if !p.is_empty() {
                self.add("DL3029", platform.span, None);
            }
            if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                self.add("DL3065", platform.span, None);
            } else if !p.contains('$') {
                let message = format!("FROM --platform flag should not use constant value \"{p}\"");
                self.add(
                    "FromPlatformFlagConstDisallowed",
                    platform.span,
                    Some(message),
                );
            }
        }
        let name = from.name.as_ref().map(|n| n.text.to_ascii_lowercase());
        if let Some(n) = &name {
            self.definition_description("FROM", &[n], span);
        }
        if let Some(n) = &from.name {
            if n.text != n.text.to_ascii_lowercase() {
                let message = format!("Stage name '{}' should be lowercase", n.text);
                self.add("StageNameCasing", n.span, Some(message));
            }
            let lower = n.text.to_ascii_lowercase();
            if lower == "scratch" || lower == "context" {
                self.add("DL3063", n.span, None);
            }
            if self
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                let message = format!(
                    "Duplicate stage name \"{}\", stage names should be unique",
                    n.text
                );
                self.add("DL3024", n.span, Some(message));
            }
        }
        let mut stage = Stage {
            name,
            line: span.line,
            ..Stage::default()
        };
        if let Some(parent) = previous_stage {
            stage.vars = parent.vars;
            stage.workdir_set = parent.workdir_set;
            stage.pip_no_cache = parent.pip_no_cache;
            stage.env_known = parent.env_known;
            stage.labels = parent.labels;
        } else {
            let image_env = if base_lower == "scratch" {
                Some(Vec::new())
            } else {
                expanded
                    .as_deref()
                    .and_then(|image| self.images.and_then(|images| images.env(image)))
            };
            if let Some(env) = image_env {
                stage.env_known = true;
                stage.vars = env.into_iter().map(|(k, v)| (k, Some(v))).collect();
                // The builder gives every stage a PATH.
                if !stage.vars.iter().any(|(k, _)| k == "PATH") {
                    stage.vars.push(("PATH".into(), Some(DEFAULT_PATH.into())));
                }
            }
        }
        self.stages.push(stage);
        self.pipefail = false;
        self.shell = vec!["/bin/sh".into(), "-c".into()];
    }

    fn arg(&mut self, decls: &[crate::dockerfile::ArgDeclaration], span: Span) {
        let keys: Vec<&str> = decls.iter().map(|d| d.name.text.as_str()).collect();
        self.definition_description("ARG", &keys, span);
        for decl in decls {
            let name = decl.name.text.clone();
            let sensitive = is_sensitive(&name);
            if sensitive {
                let message = format!(
                    "Do not use ARG or ENV instructions for sensitive data (ARG \"{name}\")"
                );
                self.add("DL3064", span, Some(message));
            }
            if let Some(d) = &decl.default {
                self.undefined_vars(&[d]);
            }
            if self.stages.is_empty() {
                let value = match self.config.build_args.get(&name) {
                    Some(v) => Some(v.clone()),
                    None => decl
                        .default
                        .as_ref()
                        .and_then(|d| self.expand(&d.text, true)),
                };
                self.global_args.push((name, value));
            } else {
                let value = match self.config.build_args.get(&name) {
                    Some(v) => Some(v.clone()),
                    None => match &decl.default {
                        Some(d) => self.expand(&d.text, false),
                        None => self.global_value(&name),
                    },
                };
                if let Some(stage) = self.stage() {
                    stage.vars.push((name, value));
                }
            }
        }
    }

    fn env(&mut self, pairs: &[crate::dockerfile::KeyValue], node: &Node, span: Span) {
        self.legacy_key_value(node, "ENV");
        let values: Vec<&Word> = pairs.iter().map(|p| &p.value).collect();
        self.undefined_vars(&values);
        // DL3044: a value refers to a variable defined in the same ENV and not before.
        let defined_before: BTreeSet<String> = self
            .stages
            .last()
            .map(|s| s.vars.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_else(|| self.global_args.iter().map(|(k, _)| k.clone()).collect());
        let self_reference = pairs.iter().enumerate().any(|(i, p)| {
            let name = &p.key.text;
            !defined_before.contains(name)
                && pairs
                    .iter()
                    .enumerate()
                    .any(|(j, other)| j != i && refers_to(&other.value.text, name))
        });
        if self_reference {
            self.add("DL3044", span, None);
        }
        let mut sensitive = None;
        for p in pairs {
            if is_sensitive(&p.key.text) {
                sensitive = Some(p.key.text.clone());
            }
        }
        if let Some(name) = sensitive {
            let message =
                format!("Do not use ARG or ENV instructions for sensitive data (ENV \"{name}\")");
            self.add("DL3064", span, Some(message));
        }
        for p in pairs {
            let value = self.expand(&p.value.text, false);
            if p.key.text == "PIP_NO_CACHE_DIR" {
                let on = value.as_deref().is_some_and(|v| TRUTHY.contains(&v));
                if let Some(stage) = self.stage() {
                    stage.pip_no_cache = on;
                }
            }
            if let Some(stage) = self.stage() {
                stage.vars.push((p.key.text.clone(), value));
            } else {
                self.global_args.push((p.key.text.clone(), value));
            }
        }
    }

    fn label(&mut self, pairs: &[crate::dockerfile::KeyValue], node: &Node, span: Span) {
        self.legacy_key_value(node, "LABEL");
        let mut words: Vec<&Word> = pairs.iter().map(|p| &p.key).collect();
        words.extend(pairs.iter().map(|p| &p.value));
        self.undefined_vars(&words);
        let invalid_key = pairs.iter().any(|p| !valid_label_key(&p.key.text));
        if invalid_key {
            self.add("DL3048", span, None);
        }
        let schema = &self.config.label_schema;
        let mut found = Vec::new();
        for p in pairs {
            let key = strip_quotes(&p.key.text).to_string();
            let value = strip_quotes(&p.value.text).to_string();
            if self.config.strict_labels && !schema.contains_key(&key) {
                found.push(("DL3050", None));
            }
            if let Some(kind) = schema.get(&key) {
                if value.is_empty() {
                    found.push(("DL3051", Some(format!("label `{key}` is empty."))));
                }
                let problem = match kind {
                    LabelType::Url if !valid_url(&value) => {
                        Some(("DL3052", format!("Label `{key}` is not a valid URL.")))
                    }
                    LabelType::Rfc3339 if !valid_rfc3339(&value) => Some((
                        "DL3053",
                        format!(
                            "Label `{key}` is not a valid time format - must be conform to RFC3339."
                        ),
                    )),
                    LabelType::Spdx if !valid_spdx(&value) => Some((
                        "DL3054",
                        format!("Label `{key}` is not a valid SPDX identifier."),
                    )),
                    LabelType::GitHash if !valid_git_hash(&value) => {
                        Some(("DL3055", format!("Label `{key}` is not a valid git hash.")))
                    }
                    LabelType::SemVer if !valid_semver(&value) => Some((
                        "DL3056",
                        format!("Label `{key}` does not conform to semantic versioning."),
                    )),
                    LabelType::Email if !valid_email(&value) => Some((
                        "DL3058",
                        format!(
                            "Label `{key}` is not a valid email format - must be conform to RFC5322."
                        ),
                    )),
                    _ => None,
                };
                if let Some((id, message)) = problem {
                    found.push((id, Some(message)));
                }
            }
            if let Some(stage) = self.stage() {
                stage.labels.insert(key);
            }
        }
        let mut reported = BTreeSet::new();
        for (id, message) in found {
            if id == "DL3050" && !reported.insert(id) {
                continue;
            }
            self.add(id, span, message);
        }
    }

    /// LegacyKeyValueFormat: `ENV k v` / `LABEL k v`, fixed to `k=v`.
    fn legacy_key_value(&mut self, node: &Node, keyword: &str) {
        // Node args come in (key, value, separator) triplets; an empty separator is legacy.
        for triplet in node.args.chunks(3) {
            let [key, value, separator] = triplet else {
                continue;
            };
            if !separator.text.is_empty() {
                continue;
            }
            let message = format!(
                "\"{keyword} key=value\" should be used instead of legacy \"{keyword} key value\" format"
            );
            let fix = Fix {
                start: key.span.start,
                end: value.span.end.max(key.span.end),
                replacement: format!("{}={}", key.text, quote_env_value(&value.text)),
            };
            self.add_fix("LegacyKeyValueFormat", node.span, Some(message), Some(fix));
        }
    }

    fn expose(&mut self, raw: &Word) {
        let text = raw.text.as_str();
        if text.contains('$') {
            return;
        }
        let (ports, proto) = text.split_once('/').unwrap_or((text, ""));
        if proto != proto.to_ascii_lowercase() {
            let message =
                format!("Defined protocol '{text}' in EXPOSE instruction should be lowercase");
            self.add("ExposeProtoCasing", raw.span, Some(message));
        }
        if ports.contains(':') {
            let message = format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{text}'"
            );
            self.add("ExposeInvalidFormat", raw.span, Some(message));
        }
        let out_of_range = ports
            .rsplit(':')
            .next()
            .unwrap_or(ports)
            .split('-')
            .any(|p| p.parse::<u64>().is_ok_and(|n| n > 65535));
        if out_of_range {
            self.add("DL3011", raw.span, None);
        }
    }

    fn copy(&mut self, copy: &crate::dockerfile::CopyInstruction, span: Span) {
        let mut words: Vec<&Word> = copy.paths.sources.iter().collect();
        words.push(&copy.paths.dest);
        if let Some(c) = &copy.chown {
            words.push(c);
        }
        self.undefined_vars(&words);
        if copy.from.is_none() {
            self.ignored_sources(&copy.paths.sources, "Copy");
        }
        let dest = strip_quotes(&copy.paths.dest.text);
        if copy.paths.sources.len() > 1 && !dest.ends_with('/') {
            self.add("DL3021", span, None);
        }
        if let Some(from) = &copy.from {
            let name = from.text.to_ascii_lowercase();
            let current = self.stages.last().and_then(|s| s.name.clone());
            if current.as_deref() == Some(name.as_str()) {
                self.add("DL3023", span, None);
            }
            let known = self
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(name.as_str()));
            let index = name.parse::<usize>().is_ok();
            // An image reference (has a tag, digest or path) is allowed by BuildKit.
            let image = name.contains([':', '/', '@', '$']);
            if !known && !index && !image {
                self.add("DL3022", span, None);
            }
            if copy
                .paths
                .sources
                .iter()
                .any(|s| strip_quotes(&s.text) == "/")
            {
                self.add("DL3067", span, None);
            }
        } else {
            // DL3010: local archives copied in, extracted by a later RUN.
            let archives: Vec<String> = if is_archive(dest) {
                vec![basename(dest).to_string()]
            } else {
                copy.paths
                    .sources
                    .iter()
                    .map(|s| basename(strip_quotes(&s.text)).to_string())
                    .filter(|b| is_archive(b))
                    .collect()
            };
            for a in archives {
                self.copied_archives.push((span, a));
            }
        }
        let workdir_set = self.stages.last().is_some_and(|s| s.workdir_set);
        let relative = !(dest.starts_with('/') || dest.starts_with('$') || windows_absolute(dest));
        if !workdir_set && relative && copy.paths.heredocs.is_empty() {
            self.add("DL3045", span, None);
        }
    }

    /// CopyIgnoredFile: a plain source path the context's `.dockerignore` leaves out.
    fn ignored_sources(&mut self, sources: &[Word], verb: &str) {
        let Some(context) = self.context.filter(|c| c.ignore_file().is_some()) else {
            return;
        };
        for source in sources {
            let Some(path) = self.expand(&source.text, false) else {
                continue;
            };
            let remote = path.contains("://") || path.starts_with("git@");
            let glob = path.contains(['*', '?', '[']);
            if remote || glob {
                continue;
            }
            if context.is_ignored(&path).unwrap_or(false) {
                let message = format!(
                    "Attempting to {verb} file \"{path}\" that is excluded by .dockerignore"
                );
                self.add("CopyIgnoredFile", source.span, Some(message));
            }
        }
    }

    fn user(&mut self, user: &Word, span: Span) {
        self.undefined_vars(&[user]);
        let text = user.text.as_str();
        let expanded = self.expand(text, false).unwrap_or_else(|| text.to_string());
        let uid = expanded.split(':').next().unwrap_or("");
        if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_digit()) {
            self.add("DL3066", span, None);
        }
        let root = expanded == "root"
            || expanded == "0"
            || expanded.starts_with("root:")
            || expanded.starts_with("0:");
        if let Some(stage) = self.stage() {
            stage.has_user = true;
            stage.root_user_line = root.then_some(span);
        }
    }

    /// The scripts a RUN runs: its command line, or heredoc bodies run by a shell.
    fn run_scripts(&self, run: &crate::dockerfile::RunInstruction) -> Vec<(String, OffsetMap)> {
        let mut out = Vec::new();
        match &run.command {
            CommandLine::Shell(word) => {
                let line = word.text.trim();
                let marker_only = !run.heredocs.is_empty()
                    && line
                        .split_ascii_whitespace()
                        .all(|w| w.starts_with("<<") || w.contains("<<"));
                let first = line.split_ascii_whitespace().next().unwrap_or("");
                let shell_reads_heredoc = ["sh", "bash", "ash", "dash", "zsh"]
                    .contains(&first.rsplit('/').next().unwrap_or(first))
                    && line
                        .split_ascii_whitespace()
                        .nth(1)
                        .is_some_and(|w| w.starts_with("<<"));
                if !marker_only {
                    let map =
                        OffsetMap::align(self.text, word.span.start, word.span.end, &word.text);
                    out.push((word.text.clone(), map));
                }
                if marker_only || shell_reads_heredoc {
                    for h in &run.heredocs {
                        let body = h.body().into_owned();
                        if let Some(shebang) = body.lines().next().filter(|l| l.starts_with("#!")) {
                            let interpreter = shebang.trim_start_matches("#!").trim();
                            let shell_like = ["sh", "bash", "ash", "dash", "zsh", "ksh"]
                                .iter()
                                .any(|s| interpreter.split(['/', ' ']).any(|part| part == *s));
                            if !shell_like {
                                continue;
                            }
                        }
                        let map = OffsetMap::verbatim(h.body_span.start, body.len());
                        out.push((body, map));
                    }
                }
            }
            CommandLine::Exec(words) => {
                let joined = words
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let start = words.first().map_or(0, |w| w.span.start);
                let end = words.last().map_or(start, |w| w.span.end);
                let map = OffsetMap::align(self.text, start, end, &joined);
                out.push((joined, map));
            }
        }
        out
    }

    fn run(
        &mut self,
        run: &crate::dockerfile::RunInstruction,
        flags: &[String],
        span: Span,
        onbuild: bool,
    ) {
        let non_posix = self.shell.first().is_some_and(|s| {
            ["pwsh", "powershell", "cmd"]
                .iter()
                .any(|p| s.rsplit(['/', '\\']).next().unwrap_or(s).starts_with(p))
        });
        if non_posix {
            return;
        }
        let scripts = self.run_scripts(run);
        let mounts: Vec<(MountType, String)> = run
            .mounts
            .iter()
            .filter_map(|m| m.parsed.as_ref())
            .map(|m| (m.kind, m.target.clone().unwrap_or_default()))
            .collect();
        let cached = |dir: &str| {
            mounts.iter().any(|(kind, target)| {
                matches!(kind, MountType::Cache | MountType::Tmpfs)
                    && (target.trim_end_matches('/') == dir
                        || dir.starts_with(&format!("{}/", target.trim_end_matches('/')))
                        || target.starts_with(dir))
            })
        };
        let mut total_commands = 0;
        let mut combined = Script::default();
        for (text, map) in &scripts {
            let lookup = |name: &str| self.lookup(name);
            let script = Script::parse(text, &lookup);
            total_commands += script.direct_commands().count();
            for c in &script.commands {
                let mut c = c.clone();
                let at = map.file_offset(c.offset);
                c.offset = at;
                for a in &mut c.args {
                    a.offset = map.file_offset(a.offset);
                }
                combined.commands.push(c);
            }
            combined.has_pipes |= script.has_pipes;
            if self.config.shellcheck {
                let exported = self
                    .stages
                    .last()
                    .map(|s| s.vars.iter().map(|(k, _)| k.clone()).collect())
                    .unwrap_or_default();
                self.scripts.push(ShellScript {
                    text: text.clone(),
                    map: map.clone(),
                    shell: self.shell.first().cloned().unwrap_or_default(),
                    exported,
                    instruction: span,
                });
            }
        }
        let script = combined;
        let at = |c: &Command| c.offset;

        // DL3059: consecutive RUNs with the same flags, each a single command (hadolint 2.15
        // leaves RUNs that chain commands alone: those were split on purpose).
        if !onbuild {
            if let Some((previous_flags, previous_count)) = &self.previous_run
                && previous_flags.as_slice() == flags
                && total_commands <= 1
                && *previous_count <= 1
            {
                self.add("DL3059", span, None);
            }
            self.previous_run = Some((flags.to_vec(), total_commands));
        }

        let mut hits: Vec<(&'static str, usize)> = Vec::new();
        let mut hit = |id: &'static str, offset: usize| hits.push((id, offset));

        for c in &script.commands {
            let o = at(c);
            if c.is_any(&[
                "free", "kill", "mount", "ps", "service", "shutdown", "ssh", "top", "vim",
            ]) {
                hit("DL3001", o);
            }
            if c.is("cd") {
                hit("DL3003", o);
            }
            if c.is("sudo") {
                hit("DL3004", o);
            }
            if c.is("apt") {
                hit("DL3027", o);
            }
            if c.is("apt-get") && c.has_arg("install") {
                let unpinned = first_unpinned(c, "install", &["t", "target-release"], |p| {
                    p.contains('=') || p.contains('/') || p.ends_with(".deb")
                });
                if let Some(u) = unpinned {
                    hit("DL3008", u);
                }
                if !c.has_any_flag(&["y", "yes", "q", "assume-yes"]) {
                    hit("DL3014", o);
                }
                if !(c.has_flag("no-install-recommends")
                    || c.has_arg("APT::Install-Recommends=false"))
                {
                    hit("DL3015", o);
                }
            }
            if c.is("apk") && c.has_arg("add") {
                let valued = ["t", "virtual", "repository", "X"];
                let unpinned = first_unpinned(c, "add", &valued, |p| {
                    p.contains('=') || p.contains('~') || p.ends_with(".apk")
                });
                if let Some(u) = unpinned {
                    hit("DL3018", u);
                }
                // `--no-network` installs from local files only: nothing is cached.
                if !c.has_any_flag(&["no-cache", "no-network"]) && !cached("/var/cache/apk") {
                    hit("DL3019", o);
                }
            }
            if pip_install(c) {
                if pip_unpinned(c) {
                    hit("DL3013", o);
                }
                let wrapper = c.basename().contains("pipx")
                    || c.basename().contains("pipenv")
                    || c.has_arg_sequence(&["-m", "pipx"])
                    || c.has_arg_sequence(&["-m", "pipenv"]);
                let no_cache = c.has_arg("--no-cache-dir")
                    || self.stages.last().is_some_and(|s| s.pip_no_cache)
                    || cached("/root/.cache/pip")
                    || cached("/root/.cache");
                if !no_cache && !wrapper {
                    hit("DL3042", o);
                }
            }
            if c.is("npm") && c.has_arg("install") && npm_unpinned(c) {
                hit("DL3016", o);
            }
            if c.is("gem") && c.has_any_arg(&["install", "i"]) && gem_unpinned(c) {
                hit("DL3028", o);
            }
            if c.is("yum") {
                let pinned = |p: &str| p.contains('-') || p.ends_with(".rpm");
                for id in rpm_install_problems(c, "DL3030", "DL3033", pinned) {
                    hit(id, o);
                }
            }
            if c.is("zypper") {
                if c.has_any_arg(&[
                    "install",
                    "in",
                    "remove",
                    "rm",
                    "source-install",
                    "si",
                    "patch",
                ]) && !c.has_any_flag(&["no-confirm", "y"])
                {
                    hit("DL3034", o);
                }
                if c.has_any_arg(&["dist-upgrade", "dup"]) {
                    hit("DL3035", o);
                }
                if c.has_any_arg(&["install", "in"]) {
                    let bad = c
                        .args_no_flags()
                        .iter()
                        .filter(|a| a.text != "install" && a.text != "in")
                        .any(|a| {
                            !(a.text.contains('=')
                                || a.text.contains('>')
                                || a.text.contains('<')
                                || a.text.ends_with(".rpm"))
                        });
                    if bad {
                        hit("DL3037", o);
                    }
                }
            }
            if c.is_any(&["dnf", "microdnf"]) {
                let group = c.has_arg("group");
                let pinned = |p: &str| group || dnf_version_fixed(p);
                for id in rpm_install_problems(c, "DL3038", "DL3041", pinned) {
                    hit(id, o);
                }
            }
            if c.is("useradd")
                && !c.has_any_flag(&["l", "no-log-init"])
                && c.has_any_flag(&["u", "uid"])
                && c.flag_values("u")
                    .iter()
                    .chain(c.flag_values("uid").iter())
                    .any(|u| u.len() > 5)
            {
                hit("DL3046", o);
            }
            if c.is("wget")
                && !c.has_flag("progress")
                && !c.has_any_flag(&[
                    "q",
                    "quiet",
                    "o",
                    "output-file",
                    "a",
                    "append-output",
                    "no-verbose",
                ])
                && !c.has_arg("-nv")
            {
                hit("DL3047", o);
            }
            if c.is("go") && c.has_arg("install") {
                let bad = c
                    .args_no_flags()
                    .iter()
                    .filter(|a| a.text != "install")
                    .any(|a| {
                        !a.text.contains('@')
                            && !a.text.starts_with('.')
                            && !a.text.starts_with('/')
                    });
                if bad {
                    hit("DL3062", o);
                }
            }
            if c.is("ln") && c.has_arg("/bin/sh") {
                hit("DL4005", o);
            }
        }
        // Clean-up rules: the package manager's cache must be removed in the same RUN, or
        // live in a cache or tmpfs mount.
        let first =
            |pred: &dyn Fn(&Command) -> bool| script.commands.iter().find(|c| pred(c)).map(at);
        let position = |pred: &dyn Fn(&Command) -> bool| script.commands.iter().position(pred);
        let removes = |dir: &str| {
            script
                .commands
                .iter()
                .any(|c| c.is("rm") && c.arg_texts().any(|a| a.starts_with(dir)))
        };
        if let Some(o) = first(&|c| c.is("yum") && c.has_arg("install"))
            && !script.any(|c| c.is("yum") && c.has_arg("clean") && c.has_arg("all"))
            && !removes("/var/cache/yum")
            && !cached("/var/cache/yum")
        {
            hit("DL3032", o);
        }
        let zypper_install = position(&|c| c.is("zypper") && c.has_any_arg(&["install", "in"]));
        let zypper_clean = position(&|c| c.is("zypper") && c.has_any_arg(&["clean", "cc"]));
        if let Some(i) = zypper_install
            && zypper_clean.is_none_or(|j| j <= i)
            && !cached("/var/cache/zypp")
            && let Some(c) = script.commands.get(i)
        {
            hit("DL3036", at(c));
        }
        for dnf in ["dnf", "microdnf"] {
            let install = position(&|c| c.is(dnf) && c.has_arg("install"));
            let clean = position(&|c| {
                (c.is(dnf) && c.has_arg("clean") && c.has_arg("all"))
                    || (c.is("rm")
                        && c.arg_texts().any(|a| {
                            a.starts_with("/var/cache/yum") || a.starts_with("/var/cache/dnf")
                        }))
            });
            if let Some(i) = install
                && clean.is_none_or(|j| j <= i)
                && !cached("/var/cache/dnf")
                && !cached("/var/cache/yum")
                && let Some(c) = script.commands.get(i)
            {
                hit("DL3040", at(c));
            }
        }
        if let Some(o) = first(&|c| c.is("yarn") && c.has_arg("install"))
            && !script.any(|c| c.is("yarn") && c.has_arg("cache") && c.has_arg("clean"))
            && !cached("/usr/local/share/.cache/yarn")
            && !mounts.iter().any(|(_, t)| t.contains(".cache/yarn"))
        {
            hit("DL3060", o);
        }
        if script.any(|c| c.is("apt-get") && c.has_arg("update")) {
            let cleaned = removes("/var/lib/apt/lists")
                || script.any(|c| c.is("apt-get") && c.has_arg("dist-clean"))
                || cached("/var/lib/apt/lists")
                || (cached("/var/lib/apt") && cached("/var/cache/apt"));
            if !cleaned
                && !onbuild
                && let Some(stage) = self.stage()
            {
                stage.apt_lists_left.push(span);
            }
        }
        if script.has_pipes && !self.pipefail {
            hit("DL4006", span.start);
        }
        // DL4001 and DL3010 look across RUNs.
        if script.any(|c| c.is("curl")) {
            self.curl_runs.push(span);
        }
        if script.any(|c| c.is("wget")) {
            self.wget_runs.push(span);
        }
        let extracted: Vec<usize> = self
            .copied_archives
            .iter()
            .enumerate()
            .filter(|(_, (_, archive))| {
                script.any(|c| {
                    let extracts = (c.is("tar")
                        && c.arg_texts().any(|a| {
                            a == "--extract"
                                || a == "--get"
                                || (a.starts_with('-') && !a.starts_with("--") && a.contains('x'))
                        }))
                        || c.is_any(&[
                            "unzip",
                            "gunzip",
                            "bunzip2",
                            "unlzma",
                            "unxz",
                            "zgz",
                            "uncompress",
                            "zcat",
                            "gzcat",
                        ]);
                    extracts
                        && c.args_no_flags()
                            .iter()
                            .any(|a| basename(strip_quotes(&a.text)) == archive)
                })
            })
            .map(|(i, _)| i)
            .collect();
        for i in extracted.into_iter().rev() {
            let (copy_span, _) = self.copied_archives.remove(i);
            self.add("DL3010", copy_span, None);
        }
        for (id, offset) in hits {
            let mut s = if offset == span.start {
                span
            } else {
                self.span_at(offset, offset)
            };
            if offset != span.start {
                s.end_line = s.line;
                s.end_column = s.column;
            }
            self.add(id, s, None);
        }
    }

    fn finish(&mut self, aliases_used_as_base: &BTreeSet<String>) {
        let last = self.stages.len().saturating_sub(1);
        let stages = std::mem::take(&mut self.stages);
        for (i, stage) in stages.iter().enumerate() {
            let used_later = stage
                .name
                .as_ref()
                .is_some_and(|n| aliases_used_as_base.contains(n));
            if i == last || used_later {
                for s in &stage.apt_lists_left {
                    self.add("DL3009", *s, None);
                }
            }
            if let Some(s) = stage.root_user_line {
                self.add("DL3002", s, None);
            }
        }
        // DL3057: stages without HEALTHCHECK (off by default).
        for stage in &stages {
            if stage.healthchecks == 0 {
                let span = Span {
                    line: stage.line,
                    column: 1,
                    end_line: stage.line,
                    end_column: 1,
                    ..Span::default()
                };
                self.add("DL3057", span, None);
            }
        }
        // DL3049: labels required by the schema, missing from the final stage.
        if let Some(final_stage) = stages.last() {
            let missing: Vec<String> = self
                .config
                .label_schema
                .keys()
                .filter(|k| !final_stage.labels.contains(*k))
                .cloned()
                .collect();
            for key in missing {
                let span = Span {
                    line: final_stage.line,
                    column: 1,
                    end_line: final_stage.line,
                    end_column: 1,
                    ..Span::default()
                };
                self.add("DL3049", span, Some(format!("Label `{key}` is missing.")));
            }
        }
        if !self.curl_runs.is_empty() && !self.wget_runs.is_empty() {
            let spans = std::mem::take(&mut self.wget_runs);
            for s in spans {
                self.add("DL4001", s, None);
            }
        }
        self.stages = stages;
    }
}

/// Where the first package `subcommand` installs without a version is; `valued_flags` take a
/// value that is no package, `pinned` tells a package with a version.
fn first_unpinned(
    c: &Command,
    subcommand: &str,
    valued_flags: &[&str],
    pinned: impl Fn(&str) -> bool,
) -> Option<usize> {
    let packages = c.drop_flag_values(valued_flags);
    packages
        .args_no_flags()
        .iter()
        .filter(|a| a.text != subcommand)
        .find(|a| !pinned(&a.text))
        .map(|a| a.offset)
}

fn pip_install(c: &Command) -> bool {
    (c.basename().starts_with("pip") && c.has_arg("install"))
        || (c.basename().starts_with("python") && c.has_arg_sequence(&["-m", "pip", "install"]))
}

fn pip_unpinned(c: &Command) -> bool {
    if c.has_any_flag(&["constraint", "c"]) || c.has_any_arg(&["--requirement", "-r", "."]) {
        return false;
    }
    let dropped = c.drop_flag_values(&[
        "abi",
        "b",
        "build",
        "e",
        "editable",
        "extra-index-url",
        "f",
        "find-links",
        "i",
        "index-url",
        "implementation",
        "no-binary",
        "only-binary",
        "platform",
        "prefix",
        "progress-bar",
        "proxy",
        "python-version",
        "root",
        "src",
        "t",
        "target",
        "trusted-host",
        "upgrade-strategy",
    ]);
    let args: Vec<&str> = dropped
        .args_no_flags()
        .iter()
        .map(|a| a.text.as_str())
        .collect();
    let packages = args
        .iter()
        .skip_while(|a| **a != "install")
        .skip_while(|a| **a == "install");
    let vcs = ["git+", "git", "hg+", "svn", "bzr+"];
    packages.into_iter().any(|p| {
        let has_version = ["==", ">=", "<=", ">", "<", "!=", "~=", "==="]
            .iter()
            .any(|s| p.contains(s));
        let is_vcs = vcs.iter().any(|v| p.starts_with(v));
        let fixed = has_version
            || (is_vcs && p.contains('@'))
            || p.ends_with(".whl")
            || p.ends_with(".tar.gz")
            || (!is_vcs && p.contains('/'));
        !fixed
    })
}

fn npm_unpinned(c: &Command) -> bool {
    let args: Vec<&str> = c.args_no_flags().iter().map(|a| a.text.as_str()).collect();
    if args.first() != Some(&"install") {
        return false;
    }
    args.iter().skip(1).any(|p| {
        let fixed = if ["git://", "git+ssh://", "git+http://", "git+https://"]
            .iter()
            .any(|g| p.starts_with(g))
        {
            p.contains('#')
        } else if [".tar", ".tar.gz", ".tgz"].iter().any(|s| p.ends_with(s))
            || ["/", "./", "../", "~/"].iter().any(|s| p.starts_with(s))
        {
            true
        } else {
            let unscoped = if p.starts_with('@') {
                p.split_once('/').map_or("", |(_, r)| r)
            } else {
                p
            };
            unscoped.contains('@')
        };
        !fixed
    })
}

fn gem_unpinned(c: &Command) -> bool {
    if c.has_any_arg(&["-v", "--version"]) || c.has_arg_prefix("--version=") {
        return false;
    }
    c.args_no_flags()
        .iter()
        .map(|a| a.text.as_str())
        .filter(|a| !["install", "i", "--"].contains(a))
        .any(|p| !p.contains(':'))
}

/// yum and dnf installs: `confirm` without `-y`, `version` when a package has no version
/// (`pinned` tells one; a module needs `name:stream`).
fn rpm_install_problems(
    c: &Command,
    confirm: &'static str,
    version: &'static str,
    pinned: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if c.has_any_arg(&["install", "groupinstall", "localinstall"])
        && !c.has_any_flag(&["y", "assumeyes"])
    {
        out.push(confirm);
    }
    if c.has_arg("install") {
        let module = c.has_arg("module");
        let unpinned = c
            .args_no_flags()
            .iter()
            .filter(|a| a.text != "install" && a.text != "module")
            .any(|a| {
                if module {
                    !a.text.contains(':')
                } else {
                    !pinned(&a.text)
                }
            });
        if unpinned {
            out.push(version);
        }
    }
    out
}

/// DL3041: `name-version` where the part after the first dash looks like a version.
fn dnf_version_fixed(package: &str) -> bool {
    let parts: Vec<&str> = package.split('-').collect();
    if parts.len() <= 1 {
        return false;
    }
    if package.ends_with(".rpm") {
        return true;
    }
    let rest = parts.get(1..).unwrap_or_default();
    rest.iter().all(|p| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".~^_:+".contains(c))
    }) && rest
        .iter()
        .any(|p| p.starts_with(|c: char| c.is_ascii_digit()))
}

/// A parsed image reference: `[registry/]name[:tag][@digest]`.
struct ImageRef {
    registry: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    fn parse(image: &str) -> ImageRef {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (image, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest.get(last_slash..).and_then(|n| n.rfind(':')) {
            Some(i) => (
                rest.get(..last_slash + i).unwrap_or(rest),
                rest.get(last_slash + i + 1..).map(str::to_string),
            ),
            None => (rest, None),
        };
        let registry = name.split_once('/').and_then(|(first, _)| {
            (first.contains('.') || first.contains(':') || first == "localhost")
                .then(|| first.to_string())
        });
        ImageRef {
            registry,
            tag,
            digest,
        }
    }
}

fn valid_image_reference(image: &str) -> bool {
    if image.is_empty() || image.ends_with(':') || image.ends_with('@') || image.ends_with('/') {
        return false;
    }
    image
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !image.starts_with(['/', ':', '@', '-', '.'])
}

fn strip_quotes(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn is_archive(path: &str) -> bool {
    ARCHIVE_SUFFIXES.iter().any(|s| path.ends_with(s))
}

fn windows_absolute(path: &str) -> bool {
    let mut chars = path.chars();
    matches!((chars.next(), chars.next()), (Some(d), Some(':')) if d.is_ascii_alphabetic())
}

/// Whether `text` uses `$name` or `${name}` (not `$nameX`).
fn refers_to(text: &str, name: &str) -> bool {
    if text.contains(&format!("${{{name}}}")) {
        return true;
    }
    let needle = format!("${name}");
    text.match_indices(&needle).any(|(i, _)| {
        !text
            .get(i + needle.len()..)
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

const SENSITIVE_NAMES: &[&str] = &[
    "ACCESS_TOKEN",
    "APPLICATION_KEY",
    "APP_SECRET",
    "AUTH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BITTREX_API_KEY",
    "BITTREX_API_SECRET",
    "CF_PASSWORD",
    "CF_USERNAME",
    "CIRCLE_TOKEN",
    "CI_DEPLOY_PASSWORD",
    "CI_DEPLOY_USER",
    "DOCKERHUB_PASSWORD",
    "DOCKER_EMAIL",
    "DOCKER_PASSWORD",
    "DOCKER_USERNAME",
    "FACEBOOK_ACCESS_TOKEN",
    "FACEBOOK_APP_ID",
    "FACEBOOK_APP_SECRET",
    "FIREBASE_API_TOKEN",
    "FIREBASE_TOKEN",
    "FOSSA_API_KEY",
    "GH_ENTERPRISE_TOKEN",
    "GH_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "GITHUB_TOKEN",
    "HEROKU_API_KEY",
    "HEROKU_API_USER",
    "NPM_AUTH_TOKEN",
    "NPM_TOKEN",
    "OKTA_AUTHN_GROUPID",
    "OKTA_CLIENT_ORGURL",
    "OKTA_CLIENT_TOKEN",
    "OKTA_OAUTH2_CLIENTID",
    "OKTA_OAUTH2_CLIENTSECRET",
    "OPENAI_API_KEY",
    "OS_PASSWORD",
    "OS_USERNAME",
    "POSTGRES_PASSWORD",
    "SLACK_TOKEN",
    "STRIPE_API_KEY",
    "STRIPE_DEVICE_NAME",
    "TRAVIS_OS_NAME",
    "TRAVIS_SECURE_ENV_VARS",
    "TRAVIS_SUDO",
    "VAULT_CLIENT_KEY",
    "VAULT_TOKEN",
];

/// hadolint's DL3064 test (which covers BuildKit's SecretsUsedInArgOrEnv words).
fn is_sensitive(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let lower = name.to_ascii_lowercase();
    SENSITIVE_NAMES.contains(&upper.as_str())
        || [
            "api_key",
            "client_key",
            "password",
            "private",
            "secret",
            "token",
            "username",
        ]
        .iter()
        .any(|s| lower.contains(s))
}

fn valid_label_key(key: &str) -> bool {
    let key = strip_quotes(key);
    let first_ok = key.starts_with(|c: char| c.is_ascii_lowercase());
    let last_ok = key.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let chars_ok = key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let reserved = ["com.docker.", "io.docker.", "org.dockerproject."]
        .iter()
        .any(|p| key.starts_with(p));
    let doubled = key.contains("..") || key.contains("--");
    // Variables in keys are checked after expansion by the build; skip them here.
    key.contains('$') || (first_ok && last_ok && chars_ok && !reserved && !doubled)
}

fn valid_url(v: &str) -> bool {
    match v.split_once(':') {
        Some((scheme, rest)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
                && !v.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn valid_rfc3339(v: &str) -> bool {
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b.get(4) != Some(&b'-')
        || !digits(5..7)
        || b.get(7) != Some(&b'-')
        || !digits(8..10)
    {
        return false;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || !digits(11..13)
        || b.get(13) != Some(&b':')
        || !digits(14..16)
        || b.get(16) != Some(&b':')
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = v.get(19..).unwrap_or("");
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = frac.get(n..).unwrap_or("");
    }
    match rest {
        "Z" | "z" => true,
        r => {
            let rb = r.as_bytes();
            rb.len() == 6
                && matches!(rb.first(), Some(b'+' | b'-'))
                && rb
                    .get(1..3)
                    .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
                && rb.get(3) == Some(&b':')
                && rb
                    .get(4..6)
                    .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
        }
    }
}

/// SPDX license identifiers hadolint accepts are the SPDX list; we accept the shape of an
/// identifier (letters, digits, `.`, `-`, `+`) and reject free text.
fn valid_spdx(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
}

fn valid_git_hash(v: &str) -> bool {
    (v.len() == 40 || v.len() == 7)
        && v.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn valid_semver(v: &str) -> bool {
    let (core, _) = v.split_once(['-', '+']).unwrap_or((v, ""));
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

fn valid_email(v: &str) -> bool {
    match v.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The exec form of a shell-form command line when that is exact: plain words only, no
/// quotes, variables, globs or shell operators.
fn exec_form(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_ascii_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let plain = |w: &&str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    };
    if !words.iter().all(plain) {
        return None;
    }
    serde_json::to_string(&words)
        .ok()
        .map(|json| json.replace("\",\"", "\", \""))
}

fn quote_label_value(v: &str) -> String {
    let t = v.trim();
    if t.starts_with('"') && t.ends_with('"') && t.len() >= 2 {
        t.to_string()
    } else {
        format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The value of a legacy `ENV k v` as a `k=v` value: kept as is when it is one plain word,
/// else double-quoted (the legacy form takes the rest of the line literally).
fn quote_env_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !"\"'\\".contains(c));
    if plain {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let r = ImageRef::parse("localhost:5000/a/b:1.0@sha256:abc");
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(r.digest.is_some());
        let r = ImageRef::parse("debian");
        assert!(r.tag.is_none() && r.registry.is_none());
        let r = ImageRef::parse("localhost:5000/x");
        assert!(r.tag.is_none());
    }

    #[test]
    fn exec_form_only_when_exact() {
        assert_eq!(
            exec_form("nginx -g daemon").as_deref(),
            Some(r#"["nginx", "-g", "daemon"]"#)
        );
        assert_eq!(exec_form("echo $HOME"), None);
        assert_eq!(exec_form("a && b"), None);
    }

    #[test]
    fn value_checks() {
        assert!(valid_rfc3339("2024-01-02T03:04:05Z"));
        assert!(valid_rfc3339("2024-01-02T03:04:05.12+01:00"));
        assert!(!valid_rfc3339("2024-01-02"));
        assert!(valid_semver("1.2.3-rc.1"));
        assert!(!valid_semver("1.2"));
        assert!(valid_git_hash("abcdef0"));
        assert!(!valid_git_hash("xyz"));
        assert!(refers_to("${A}/x", "A") && refers_to("$A/x", "A") && !refers_to("$AB", "A"));
    }

    #[test]
    fn offsets_map_through_continuations() {
        let source = "RUN a \\\n  b";
        let map = OffsetMap::align(source, 4, source.len(), "a   b");
        assert_eq!(map.file_offset(0), 4);
        assert_eq!(map.file_offset(4), 10);
    }
}
