//! Variable scoping: ARG and ENV per stage, global ARGs, build-arg overrides, platform ARGs,
//! as BuildKit's Dockerfile frontend (`dockerfile2llb`) does it.
//!
//! [`Variables`] is a small state machine the caller drives while walking the instructions in
//! order: [`Variables::arg`] for each name of an ARG, [`Variables::begin_stage`] for each FROM,
//! [`Variables::env`] for each (expanded) pair of an ENV. At any point [`Variables::scope`] is
//! what the next instruction expands with, and [`Variables::global`] what FROM lines expand
//! with. It takes plain names and values, so it does not depend on the instruction types.
//!
//! The rules, each BuildKit's:
//! - ARGs before the first FROM are global: FROM lines see them (with the automatic platform
//!   ARGs), stages do not, unless a stage declares the name again; a bare `ARG name` in a stage
//!   then takes the global value.
//! - An ARG default is expanded with the scope it is declared in (for a stage: the base image's
//!   environment, earlier ARGs and ENVs), and only when no `--build-arg` overrides it; an
//!   override is taken as it is, and overrides only a declared ARG.
//! - ARG and ENV values live in one environment where the later definition wins, so an ENV
//!   after an ARG of the same name overrides it. ARG values are visible to RUN but are not part
//!   of the image's configuration; ENV values are both.
//! - A stage built FROM an earlier stage starts with that stage's variables and declared ARGs.
//! - The automatic ARGs (BUILDPLATFORM, BUILDOS, BUILDOSVERSION, BUILDARCH, BUILDVARIANT,
//!   TARGETPLATFORM, TARGETOS, TARGETOSVERSION, TARGETARCH, TARGETVARIANT, TARGETSTAGE) are
//!   global ARGs with values from the platforms and the target stage; `--build-arg` can
//!   override them, and a stage sees them only after `ARG NAME`.
//! - Every stage's environment has PATH (BuildKit adds Linux's default when the base image has
//!   none).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::expand::{ExpandError, Lexer, VarRef, Vars};

/// PATH of a stage whose base image sets none (BuildKit's `system.DefaultPathEnv` for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build arguments BuildKit accepts without an ARG declaration (for RUN's proxy settings).
pub const BUILTIN_BUILD_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    #[error("{instruction} before the first FROM: no build stage in current context")]
    NoStage { instruction: &'static str },
    #[error("stage {index} does not exist")]
    UnknownStage { index: usize },
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// An OCI platform in Go's names (`linux`, `amd64`, `arm64`, variant `v7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

impl Platform {
    /// Normalises the names as containerd does: `x86_64` is `amd64`, `aarch64` is `arm64`
    /// without a `v8` variant, 32-bit `arm` defaults to `v7`.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        let os = os.to_ascii_lowercase();
        let variant = variant.to_ascii_lowercase();
        let (architecture, variant) =
            match (architecture.to_ascii_lowercase().as_str(), variant.as_str()) {
                ("i386", _) => ("386".to_owned(), String::new()),
                ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64".to_owned(), String::new()),
                ("x86_64" | "x86-64", _) => ("amd64".to_owned(), variant),
                ("aarch64" | "arm64", "8" | "v8") => ("arm64".to_owned(), String::new()),
                ("aarch64", _) => ("arm64".to_owned(), variant),
                ("armhf", _) => ("arm".to_owned(), "v7".to_owned()),
                ("armel", _) => ("arm".to_owned(), "v6".to_owned()),
                ("arm", "") => ("arm".to_owned(), "v7".to_owned()),
                ("arm", "5" | "6" | "7" | "8") => ("arm".to_owned(), format!("v{variant}")),
                (other, _) => (other.to_owned(), variant),
            };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform this process runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86" => "386",
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, architecture, "")
    }

    /// Parses `os/arch[/variant]` (`linux/arm/v7`); `None` when a part is missing or empty.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return None;
        }
        Some(Platform::new(os, architecture, variant))
    }
}

/// `os/arch[/variant]`, as containerd's `platforms.Format`.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Where a variable of a scope was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The base image's configuration (or the default PATH).
    Image,
    /// An ARG, or an automatic platform ARG.
    Arg,
    /// An ENV.
    Env,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeVar {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

/// The variables visible at one point, in definition order; redefining a name replaces its
/// value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    vars: Vec<ScopeVar>,
}

impl Scope {
    pub fn get(&self, name: &str) -> Option<&ScopeVar> {
        self.vars.iter().find(|v| v.name == name)
    }

    pub fn set(&mut self, name: &str, value: &str, origin: Origin) {
        match self.vars.iter_mut().find(|v| v.name == name) {
            Some(var) => {
                var.value = value.to_owned();
                var.origin = origin;
            }
            None => self.vars.push(ScopeVar {
                name: name.to_owned(),
                value: value.to_owned(),
                origin,
            }),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &ScopeVar> {
        self.vars.iter()
    }

    /// `NAME=value` for each variable: the environment a RUN sees.
    pub fn env_list(&self) -> Vec<String> {
        self.vars
            .iter()
            .map(|v| format!("{}={}", v.name, v.value))
            .collect()
    }
}

impl Vars for Scope {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        Scope::get(self, name).map(|v| Cow::Borrowed(v.value.as_str()))
    }
}

/// Where an ARG's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgSource {
    /// `--build-arg`, taken as it is.
    BuildArg,
    /// The declaration's default, expanded.
    Default,
    /// A bare ARG in a stage taking the global ARG's value.
    Global,
    /// No value: the ARG is declared but unset.
    Unset,
}

/// One ARG name as declared, and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredArg {
    pub name: String,
    pub value: Option<String>,
    pub source: ArgSource,
}

/// The outcome of [`Variables::arg`]: the declaration, and the references of its expanded
/// default (empty when the default was not expanded), for the linter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgOutcome<'a> {
    pub declared: DeclaredArg,
    pub refs: Vec<VarRef<'a>>,
}

/// What a stage is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// An image (or scratch, with no variables), with its configuration's `Env` pairs.
    Image(Vec<(String, String)>),
    /// An earlier stage, by index (see [`Variables::find_stage`]).
    Stage(usize),
}

#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    scope: Scope,
    image_env: Scope,
    args: Vec<DeclaredArg>,
}

/// The ARG/ENV state machine of one build.
#[derive(Debug, Clone)]
pub struct Variables {
    lexer: Lexer,
    build_args: BTreeMap<String, String>,
    consumed: BTreeSet<String>,
    global: Scope,
    global_args: Vec<DeclaredArg>,
    stages: Vec<Stage>,
}

/// The automatic ARGs for these platforms and target stage.
fn automatic_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
) -> [(&'static str, String); 11] {
    [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone()),
        ("TARGETSTAGE", target_stage.to_owned()),
    ]
}

impl Variables {
    /// A build of a Dockerfile read with `lexer` (its escape character), with these
    /// `--build-arg`s, on `build` for `target`, whose target stage is `target_stage` (the
    /// `--target`, else the last stage's name, possibly empty).
    pub fn new(
        lexer: Lexer,
        build_args: impl IntoIterator<Item = (String, String)>,
        build: &Platform,
        target: &Platform,
        target_stage: &str,
    ) -> Variables {
        let build_args: BTreeMap<String, String> = build_args.into_iter().collect();
        let mut global = Scope::default();
        let mut consumed = BTreeSet::new();
        for (name, value) in automatic_args(build, target, target_stage) {
            let value = match build_args.get(name) {
                Some(overridden) => {
                    consumed.insert(name.to_owned());
                    overridden.clone()
                }
                None => value,
            };
            global.set(name, &value, Origin::Arg);
        }
        Variables {
            lexer,
            build_args,
            consumed,
            global,
            global_args: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// The variables the next instruction expands with: the current stage's, or the global
    /// ones before the first FROM.
    pub fn scope(&self) -> &Scope {
        self.stages.last().map_or(&self.global, |s| &s.scope)
    }

    /// The variables FROM lines expand with: automatic ARGs and global ARGs.
    pub fn global(&self) -> &Scope {
        &self.global
    }

    /// Declares ARG `name` with its `default` as written (unexpanded), in the current stage or,
    /// before the first FROM, globally.
    pub fn arg<'a>(
        &mut self,
        name: &str,
        default: Option<&'a str>,
    ) -> Result<ArgOutcome<'a>, VarsError> {
        let build_arg = self.build_args.get(name).cloned();
        if build_arg.is_some() {
            self.consumed.insert(name.to_owned());
        }
        let in_stage = !self.stages.is_empty();
        let (value, source, refs) = match (build_arg, default) {
            (Some(value), _) => (Some(value), ArgSource::BuildArg, Vec::new()),
            (None, Some(default)) => {
                let expansion = self.lexer.expand(default, self.scope())?;
                (Some(expansion.value), ArgSource::Default, expansion.refs)
            }
            (None, None) if in_stage => match self.global.get(name) {
                Some(global) => (Some(global.value.clone()), ArgSource::Global, Vec::new()),
                None => (None, ArgSource::Unset, Vec::new()),
            },
            (None, None) => (None, ArgSource::Unset, Vec::new()),
        };
        let declared = DeclaredArg {
            name: name.to_owned(),
            value,
            source,
        };
        match self.stages.last_mut() {
            Some(stage) => {
                if let Some(value) = &declared.value {
                    stage.scope.set(name, value, Origin::Arg);
                }
                stage.args.push(declared.clone());
            }
            None => {
                if let Some(value) = &declared.value {
                    self.global.set(name, value, Origin::Arg);
                }
                self.global_args.push(declared.clone());
            }
        }
        Ok(ArgOutcome { declared, refs })
    }

    /// Sets ENV `name` to `value` (both already expanded) in the current stage. Expand every
    /// pair of an ENV instruction before setting any (BuildKit expands them all first).
    pub fn env(&mut self, name: &str, value: &str) -> Result<(), VarsError> {
        let stage = self
            .stages
            .last_mut()
            .ok_or(VarsError::NoStage { instruction: "ENV" })?;
        stage.scope.set(name, value, Origin::Env);
        stage.image_env.set(name, value, Origin::Env);
        Ok(())
    }

    /// Starts a stage named `name` (`FROM ... AS name`) built from `base`.
    pub fn begin_stage(&mut self, name: Option<&str>, base: StageBase) -> Result<(), VarsError> {
        let mut stage = match base {
            StageBase::Stage(index) => {
                let base = self
                    .stages
                    .get(index)
                    .ok_or(VarsError::UnknownStage { index })?;
                Stage {
                    name: None,
                    ..base.clone()
                }
            }
            StageBase::Image(env) => {
                let mut image_env = Scope::default();
                for (k, v) in &env {
                    image_env.set(k, v, Origin::Image);
                }
                if image_env.get("PATH").is_none() {
                    image_env.set("PATH", DEFAULT_PATH, Origin::Image);
                }
                Stage {
                    name: None,
                    scope: image_env.clone(),
                    image_env,
                    args: Vec::new(),
                }
            }
        };
        stage.name = name.map(str::to_owned);
        self.stages.push(stage);
        Ok(())
    }

    /// The index of the stage named `name` so far (stage names ignore case).
    pub fn find_stage(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// The environment of the current stage's image configuration: the base image's, with
    /// ENVs applied (no ARGs).
    pub fn image_env(&self) -> Option<&Scope> {
        self.stages.last().map(|s| &s.image_env)
    }

    /// ARGs declared in the current stage and the stages it is built from, or the global ones
    /// before the first FROM.
    pub fn declared_args(&self) -> &[DeclaredArg] {
        self.stages.last().map_or(&self.global_args, |s| &s.args)
    }

    /// The global ARG declarations.
    pub fn global_args(&self) -> &[DeclaredArg] {
        &self.global_args
    }

    /// `--build-arg` names no ARG declared so far (BuildKit warns about them after the build),
    /// not counting [`BUILTIN_BUILD_ARGS`].
    pub fn unused_build_args(&self) -> Vec<&str> {
        self.build_args
            .keys()
            .map(String::as_str)
            .filter(|k| !self.consumed.contains(*k) && !BUILTIN_BUILD_ARGS.contains(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        Platform::new("linux", "amd64", "")
    }

    fn build(args: &[(&str, &str)]) -> Variables {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Variables::new(
            Lexer::new('\\'),
            args,
            &amd64(),
            &Platform::new("linux", "arm", "v7"),
            "final",
        )
    }

    fn value<'s>(scope: &'s Scope, name: &str) -> Option<&'s str> {
        scope.get(name).map(|v| v.value.as_str())
    }

    fn scratch() -> StageBase {
        StageBase::Image(Vec::new())
    }

    #[test]
    fn global_args_are_seen_by_from_lines_only() {
        let mut vars = build(&[]);
        vars.arg("VERSION", Some("1.2")).unwrap();
        assert_eq!(value(vars.global(), "VERSION"), Some("1.2"));
        assert_eq!(value(vars.scope(), "VERSION"), Some("1.2"));
        vars.begin_stage(None, scratch()).unwrap();
        assert_eq!(value(vars.scope(), "VERSION"), None);
        assert_eq!(value(vars.global(), "VERSION"), Some("1.2"));
    }

    #[test]
    fn a_bare_arg_in_a_stage_takes_the_global_value() {
        let mut vars = build(&[]);
        vars.arg("VERSION", Some("1.2")).unwrap();
        vars.begin_stage(None, scratch()).unwrap();
        let outcome = vars.arg("VERSION", None).unwrap();
        assert_eq!(outcome.declared.source, ArgSource::Global);
        assert_eq!(value(vars.scope(), "VERSION"), Some("1.2"));
        let outcome = vars.arg("OTHER", None).unwrap();
        assert_eq!(outcome.declared.source, ArgSource::Unset);
        assert_eq!(value(vars.scope(), "OTHER"), None);
    }

    #[test]
    fn global_defaults_expand_with_earlier_globals_and_platform_args() {
        let mut vars = build(&[]);
        vars.arg("BASE", Some("alpine")).unwrap();
        vars.arg("IMAGE", Some("${BASE}:3-$TARGETARCH")).unwrap();
        assert_eq!(value(vars.global(), "IMAGE"), Some("alpine:3-arm"));
    }

    #[test]
    fn stage_defaults_expand_with_the_stage_scope_not_the_global_one() {
        let mut vars = build(&[]);
        vars.arg("G", Some("global")).unwrap();
        vars.begin_stage(
            None,
            StageBase::Image(vec![("HOME".into(), "/root".into())]),
        )
        .unwrap();
        vars.env("E", "env").unwrap();
        let outcome = vars.arg("A", Some("$HOME:$E:$G")).unwrap();
        assert_eq!(outcome.declared.value.as_deref(), Some("/root:env:"));
        let unset: Vec<_> = outcome
            .refs
            .iter()
            .filter(|r| !r.set)
            .map(|r| r.name)
            .collect();
        assert_eq!(unset, ["G"]);
    }

    #[test]
    fn build_args_override_declared_args_only_and_are_not_expanded() {
        let mut vars = build(&[("A", "$raw"), ("UNDECLARED", "x"), ("HTTP_PROXY", "p")]);
        vars.begin_stage(None, scratch()).unwrap();
        assert_eq!(value(vars.scope(), "UNDECLARED"), None);
        // The default is not expanded when overridden, so its error goes unnoticed.
        let outcome = vars.arg("A", Some("${broken")).unwrap();
        assert_eq!(outcome.declared.source, ArgSource::BuildArg);
        assert_eq!(value(vars.scope(), "A"), Some("$raw"));
        assert_eq!(vars.unused_build_args(), ["UNDECLARED"]);
        assert!(vars.arg("B", Some("${broken")).is_err());
    }

    #[test]
    fn build_args_override_global_args_and_reach_bare_stage_args() {
        let mut vars = build(&[("VERSION", "2.0")]);
        vars.arg("VERSION", Some("1.2")).unwrap();
        assert_eq!(value(vars.global(), "VERSION"), Some("2.0"));
        vars.begin_stage(None, scratch()).unwrap();
        vars.arg("VERSION", None).unwrap();
        assert_eq!(value(vars.scope(), "VERSION"), Some("2.0"));
    }

    #[test]
    fn env_overrides_arg_and_only_env_reaches_the_image() {
        let mut vars = build(&[("V", "from-cli")]);
        vars.begin_stage(None, scratch()).unwrap();
        vars.arg("V", Some("default")).unwrap();
        vars.arg("ONLY_ARG", Some("a")).unwrap();
        assert_eq!(value(vars.scope(), "V"), Some("from-cli"));
        vars.env("V", "from-env").unwrap();
        assert_eq!(value(vars.scope(), "V"), Some("from-env"));
        let image = vars.image_env().unwrap();
        assert_eq!(value(image, "V"), Some("from-env"));
        assert_eq!(value(image, "ONLY_ARG"), None);
        assert!(vars.scope().env_list().contains(&"ONLY_ARG=a".to_owned()));
    }

    #[test]
    fn a_stage_from_a_stage_inherits_its_args_and_env() {
        let mut vars = build(&[]);
        vars.begin_stage(
            Some("Base"),
            StageBase::Image(vec![("PATH".into(), "/bin".into())]),
        )
        .unwrap();
        vars.arg("A", Some("1")).unwrap();
        vars.env("E", "2").unwrap();
        let base = vars.find_stage("base").unwrap();
        vars.begin_stage(Some("child"), StageBase::Stage(base))
            .unwrap();
        assert_eq!(value(vars.scope(), "A"), Some("1"));
        assert_eq!(value(vars.scope(), "E"), Some("2"));
        assert_eq!(value(vars.scope(), "PATH"), Some("/bin"));
        assert_eq!(vars.declared_args().len(), 1);
        assert_eq!(vars.find_stage("child"), Some(1));
        assert!(matches!(
            vars.begin_stage(None, StageBase::Stage(7)),
            Err(VarsError::UnknownStage { index: 7 })
        ));
    }

    #[test]
    fn platform_args_need_a_declaration_inside_a_stage() {
        let mut vars = build(&[("TARGETVARIANT", "v6")]);
        let global = vars.global();
        assert_eq!(value(global, "BUILDPLATFORM"), Some("linux/amd64"));
        assert_eq!(value(global, "BUILDOS"), Some("linux"));
        assert_eq!(value(global, "BUILDARCH"), Some("amd64"));
        assert_eq!(value(global, "BUILDVARIANT"), Some(""));
        assert_eq!(value(global, "TARGETPLATFORM"), Some("linux/arm/v7"));
        assert_eq!(value(global, "TARGETOS"), Some("linux"));
        assert_eq!(value(global, "TARGETARCH"), Some("arm"));
        assert_eq!(value(global, "TARGETVARIANT"), Some("v6"));
        assert_eq!(value(global, "TARGETSTAGE"), Some("final"));
        vars.begin_stage(None, scratch()).unwrap();
        assert_eq!(value(vars.scope(), "TARGETARCH"), None);
        vars.arg("TARGETARCH", None).unwrap();
        assert_eq!(value(vars.scope(), "TARGETARCH"), Some("arm"));
        assert!(vars.unused_build_args().is_empty());
    }

    #[test]
    fn every_stage_has_a_path() {
        let mut vars = build(&[]);
        vars.begin_stage(None, scratch()).unwrap();
        assert_eq!(value(vars.scope(), "PATH"), Some(DEFAULT_PATH));
        assert_eq!(value(vars.image_env().unwrap(), "PATH"), Some(DEFAULT_PATH));
    }

    #[test]
    fn env_needs_a_stage() {
        let mut vars = build(&[]);
        assert!(matches!(vars.env("A", "b"), Err(VarsError::NoStage { .. })));
    }

    #[test]
    fn platforms_use_go_names() {
        let host = Platform::host();
        assert_eq!(host.os, std::env::consts::OS);
        assert!(!host.architecture.is_empty() && host.architecture != "x86_64");
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::parse("linux"), None);
        assert_eq!(Platform::parse("linux/amd64/v2/x"), None);
    }
}
