//! `rbuild lint [flags] PATH...|-`: lint Dockerfiles (files, stdin, folders searched
//! recursively), print findings in a format, exit 1 when a finding reaches the threshold.

use clap::Args;
use rbuild::context::Context;
use rbuild::lint::format::{FileReport, Format};
use rbuild::lint::{self, Config, ImageEnv, LabelType, Severity, Source};
use rbuild::store::{Store, StoreError};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct LintArgs {
    /// Dockerfiles, folders (searched for Dockerfile, Containerfile, *.Dockerfile and
    /// Dockerfile.*, honouring .gitignore) or `-` for standard input.
    #[arg(default_value = "Dockerfile")]
    paths: Vec<PathBuf>,
    /// Config file (default: hadolint's lookup: ./.hadolint.yaml, $XDG_CONFIG_HOME/hadolint.yaml,
    /// ~/.config/hadolint.yaml, ~/.hadolint/hadolint.yaml, ~/hadolint/config.yaml, ~/.hadolint.yaml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Output format: tty, json, sarif, checkstyle, gitlab, gnu.
    #[arg(short, long)]
    format: Option<String>,
    /// Do not report this rule (id or BuildKit check name); repeatable.
    #[arg(long, value_name = "RULE")]
    ignore: Vec<String>,
    /// Report this rule as an error; repeatable.
    #[arg(long, value_name = "RULE")]
    error: Vec<String>,
    /// Report this rule as a warning; repeatable.
    #[arg(long, value_name = "RULE")]
    warning: Vec<String>,
    /// Report this rule as info; repeatable.
    #[arg(long, value_name = "RULE")]
    info: Vec<String>,
    /// Report this rule as style; repeatable.
    #[arg(long, value_name = "RULE")]
    style: Vec<String>,
    /// Registry allowed in FROM (DL3026); repeatable.
    #[arg(long, value_name = "REGISTRY")]
    trusted_registry: Vec<String>,
    /// Label required with a type (LABEL:text|url|semver|hash|rfc3339|spdx|email); repeatable.
    #[arg(long, value_name = "LABEL:TYPE")]
    require_label: Vec<String>,
    /// Report labels not in the label schema (DL3050).
    #[arg(long)]
    strict_labels: bool,
    /// Lowest severity that makes the exit status 1: error, warning, info, style, none.
    #[arg(short = 't', long, value_name = "SEVERITY")]
    failure_threshold: Option<String>,
    /// Exit 0 even when findings reach the threshold.
    #[arg(long)]
    no_fail: bool,
    /// Ignore `# hadolint ignore=...` pragmas.
    #[arg(long)]
    disable_ignore_pragma: bool,
    /// Value of a build argument, used when expanding variables; repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    build_arg: Vec<String>,
    /// Do not run shellcheck over RUN scripts.
    #[arg(long)]
    no_shellcheck: bool,
    /// Check every RUN script with shellcheck again, ignoring the results kept in
    /// $XDG_CACHE_HOME/rbuild/shellcheck (default ~/.cache/rbuild/shellcheck).
    #[arg(long)]
    no_cache: bool,
    /// Rewrite files with the mechanical fixes (casing, key=value, MAINTAINER, exec form).
    #[arg(long)]
    fix: bool,
    /// With --fix: print a diff instead of writing.
    #[arg(long, requires = "fix")]
    diff: bool,
    /// No colour in tty output.
    #[arg(long)]
    no_color: bool,
    /// Print the documentation page of a rule (id or BuildKit check name) and exit.
    #[arg(long, value_name = "RULE")]
    explain: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum LintCliError {
    #[error(transparent)]
    Config(#[from] lint::ConfigError),
    #[error("--{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Walk { path: String, source: ignore::Error },
    #[error("--root: {0}")]
    Store(#[from] StoreError),
    #[error("--explain {0:?}: no such rule (see docs/rules/README.md)")]
    UnknownRule(String),
}

/// Base images' environments from the local store, for UndefinedVar.
struct StoreImages(Store);

impl ImageEnv for StoreImages {
    fn env(&self, reference: &str) -> Option<Vec<(String, String)>> {
        let image = self.0.find_image(reference).ok()?;
        let env = image.config.config.and_then(|c| c.env).unwrap_or_default();
        Some(
            env.iter()
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        )
    }
}

/// `root`: the store given by `--root` or `RBUILD_ROOT`; only then are base images looked up.
pub fn run(root: Option<PathBuf>, args: LintArgs) -> ExitCode {
    match run_inner(root, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rbuild lint: {e}");
            ExitCode::from(2)
        }
    }
}

fn flag_error(flag: &'static str, value: &str, reason: &'static str) -> LintCliError {
    LintCliError::Flag {
        flag,
        value: value.to_string(),
        reason,
    }
}

fn config_from(args: &LintArgs) -> Result<Config, LintCliError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match Config::search_paths(&cwd).into_iter().find(|p| p.is_file()) {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            }
        }
    };
    config.ignored.extend(args.ignore.iter().cloned());
    for (list, severity) in [
        (&args.error, Severity::Error),
        (&args.warning, Severity::Warning),
        (&args.info, Severity::Info),
        (&args.style, Severity::Style),
    ] {
        config
            .overrides
            .extend(list.iter().map(|r| (r.clone(), severity)));
    }
    config
        .trusted_registries
        .extend(args.trusted_registry.iter().cloned());
    for spec in &args.require_label {
        let (label, kind) = spec.split_once(':').unwrap_or((spec.as_str(), "text"));
        let kind = LabelType::parse(kind).ok_or_else(|| {
            flag_error(
                "require-label",
                spec,
                "type must be text, url, semver, hash, rfc3339, spdx or email",
            )
        })?;
        config.label_schema.insert(label.to_string(), kind);
    }
    config.strict_labels |= args.strict_labels;
    config.no_fail |= args.no_fail;
    config.disable_ignore_pragma |= args.disable_ignore_pragma;
    if let Some(t) = &args.failure_threshold {
        config.failure_threshold = Severity::parse(t).ok_or_else(|| {
            flag_error(
                "failure-threshold",
                t,
                "must be error, warning, info, style or none",
            )
        })?;
    }
    for kv in &args.build_arg {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| flag_error("build-arg", kv, "must be NAME=VALUE"))?;
        config.build_args.insert(k.to_string(), v.to_string());
    }
    if args.format.is_some() {
        config.format.clone_from(&args.format);
    }
    config.shellcheck = !args.no_shellcheck;
    if !args.no_cache {
        config.shellcheck_cache = shellcheck_cache_dir();
    }
    Ok(config)
}

/// Where shellcheck's results are kept: `$XDG_CACHE_HOME/rbuild/shellcheck`, else
/// `~/.cache/rbuild/shellcheck`.
fn shellcheck_cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|cache| cache.join("rbuild/shellcheck"))
}

/// Whether a file name is a Dockerfile by the usual conventions.
pub fn is_dockerfile_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "dockerfile"
        || lower == "containerfile"
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
        || lower.starts_with("dockerfile.")
        || lower.starts_with("containerfile.")
}

/// The files to lint: files as given, folders walked (honouring .gitignore), `-` as stdin.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LintCliError> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" || !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        let walker = ignore::WalkBuilder::new(path)
            .require_git(false)
            .hidden(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for entry in walker {
            let entry = entry.map_err(|source| LintCliError::Walk {
                path: path.display().to_string(),
                source,
            })?;
            let is_file = entry.file_type().is_some_and(|t| t.is_file());
            if is_file && is_dockerfile_name(&entry.file_name().to_string_lossy()) {
                found.push(entry.into_path());
            }
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, LintCliError> {
    let shown = path.display().to_string();
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| LintCliError::Io {
                path: shown.clone(),
                source,
            })?;
        buf
    } else {
        std::fs::read(path).map_err(|source| LintCliError::Io {
            path: shown.clone(),
            source,
        })?
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn run_inner(root: Option<PathBuf>, args: LintArgs) -> Result<ExitCode, LintCliError> {
    if let Some(name) = &args.explain {
        let pages: Vec<&str> = lint::rules::named(name).map(|r| r.page).collect();
        if pages.is_empty() {
            return Err(LintCliError::UnknownRule(name.clone()));
        }
        let _ = std::io::stdout()
            .lock()
            .write_all(pages.join("\n").as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = config_from(&args)?;
    let format_name = config.format.clone().unwrap_or_else(|| "tty".to_string());
    let format = Format::parse(&format_name).ok_or_else(|| {
        flag_error(
            "format",
            &format_name,
            "must be tty, json, sarif, checkstyle, gitlab or gnu",
        )
    })?;
    let mut shellcheck_note = None;
    if config.shellcheck && !lint::shellcheck::available() {
        config.shellcheck = false;
        shellcheck_note = Some("shellcheck not installed: SC checks skipped");
    }
    let files = collect(&args.paths)?;
    let mut texts = Vec::with_capacity(files.len());
    for path in &files {
        texts.push(read(path)?);
    }
    // The context a build would use by default: the Dockerfile's folder.
    let contexts: Vec<Option<Context>> = files
        .iter()
        .map(|path| {
            (path.as_os_str() != "-")
                .then(|| {
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                    Context::open(dir.unwrap_or(Path::new(".")), Some(path)).ok()
                })
                .flatten()
        })
        .collect();
    // Linting reads a store; it does not create one where there is none.
    let images = root
        .filter(|r| r.is_dir())
        .map(Store::open)
        .transpose()?
        .map(StoreImages);
    let sources: Vec<Source<'_>> = texts
        .iter()
        .zip(&contexts)
        .map(|(text, context)| Source {
            text,
            context: context.as_ref(),
            images: images.as_ref().map(|i| i as &dyn ImageEnv),
        })
        .collect();
    let reports = lint::lint_all(&sources, &config);
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                "-".to_string()
            } else {
                p.display().to_string()
            }
        })
        .collect();
    if args.fix {
        let mut out = std::io::stdout().lock();
        for ((name, text), report) in names.iter().zip(&texts).zip(&reports) {
            let fixed = lint::fix::apply(text, &report.findings);
            if args.diff || name == "-" {
                let shown = if args.diff {
                    lint::fix::diff(name, text, &fixed)
                } else {
                    fixed
                };
                let _ = out.write_all(shown.as_bytes());
            } else if fixed != *text {
                std::fs::write(name, fixed).map_err(|source| LintCliError::Io {
                    path: name.clone(),
                    source,
                })?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let file_reports: Vec<FileReport<'_>> = names
        .iter()
        .zip(&texts)
        .zip(&reports)
        .map(|((path, text), report)| FileReport { path, text, report })
        .collect();
    let colour = !args.no_color && std::io::stdout().is_terminal();
    let rendered = lint::format::render(format, &file_reports, colour);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(rendered.as_bytes());
    if format == Format::Tty
        && let Some(note) = shellcheck_note
    {
        eprintln!("rbuild lint: note: {note}");
    }
    let failed = reports.iter().any(|r| r.fails(config.failure_threshold));
    Ok(if failed && !config.no_fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
