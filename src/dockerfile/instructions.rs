//! Syntax tree → typed instructions: arity checks and every flag validated into a Rust type.
//!
//! Values stay raw words (unexpanded, with spans). A value holding a `$` cannot be checked
//! before expansion: its `parsed` is `None` and the planner checks the expanded text with the
//! same function from [`super::values`].

use super::diagnostic::{Diagnostic, DiagnosticCode};
use super::span::Span;
use super::syntax::{Flag, Heredoc, Keyword, Node, Word};
use super::values::{
    Chmod, Mount, NetworkMode, PortSpec, SecurityMode, ValueError, parse_bool, parse_chmod,
    parse_digest, parse_go_duration, parse_mount, parse_network, parse_port, parse_security,
    parse_signal, parse_stage_name,
};
use serde::Serialize;
use std::time::Duration;

/// A raw word and, when it holds no variable, its checked value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Typed<T> {
    pub raw: Word,
    /// `None` when the word needs expansion first.
    pub parsed: Option<T>,
}

/// A typed instruction and the index of its node in [`super::ParsedDockerfile::nodes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instruction {
    pub node: usize,
    pub span: Span,
    pub kind: InstructionKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum InstructionKind {
    From(FromInstruction),
    Run(RunInstruction),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<Word>),
    Label(Vec<KeyValue>),
    Env(Vec<KeyValue>),
    Maintainer(Word),
    Expose(Vec<Typed<PortSpec>>),
    Add(AddInstruction),
    Copy(CopyInstruction),
    Volume(Vec<Word>),
    User(Word),
    Workdir(Word),
    Arg(Vec<ArgDeclaration>),
    Onbuild(OnbuildInstruction),
    Stopsignal(Typed<i32>),
    Healthcheck(Healthcheck),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FromInstruction {
    pub image: Word,
    pub platform: Option<Word>,
    /// The stage name after `AS` (as written; [`parse_stage_name`] lowercases it).
    pub name: Option<Word>,
}

/// Exec form (JSON array) or shell form (one string for the shell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    Exec(Vec<Word>),
    Shell(Word),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunInstruction {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Typed<Mount>>,
    pub network: Option<Typed<NetworkMode>>,
    pub security: Option<Typed<SecurityMode>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: Word,
    pub value: Word,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgDeclaration {
    pub name: Word,
    pub default: Option<Word>,
}

/// Sources and destination of COPY and ADD (exec or shell form), heredocs as inline files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    pub sources: Vec<Word>,
    pub dest: Word,
    pub heredocs: Vec<Heredoc>,
    pub json: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyInstruction {
    pub paths: SourcesAndDest,
    pub from: Option<Word>,
    pub chown: Option<Word>,
    pub chmod: Option<Typed<Chmod>>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Word>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddInstruction {
    pub paths: SourcesAndDest,
    pub chown: Option<Word>,
    pub chmod: Option<Typed<Chmod>>,
    pub link: bool,
    pub exclude: Vec<Word>,
    pub checksum: Option<Word>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnbuildInstruction {
    /// The trigger as written after ONBUILD (what goes into the image config).
    pub expression: String,
    pub instruction: Box<InstructionKind>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthcheckTest {
    None,
    Cmd(CommandLine),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    pub test: HealthcheckTest,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// Whether a word holds something word expansion would change.
fn needs_expansion(text: &str) -> bool {
    text.contains('$')
}

struct Checker<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    failed: bool,
}

impl Checker<'_> {
    fn error(&mut self, code: DiagnosticCode, span: Span, message: impl Into<String>) {
        self.failed = true;
        self.diagnostics
            .push(Diagnostic::error(code, span, message));
    }

    /// Checks the flags against the instruction's allowed ones; returns them by name.
    fn flags<'n>(
        &mut self,
        node: &'n Node,
        keyword: Keyword,
        allowed: &[(&str, FlagKind)],
    ) -> Vec<(&'n Flag, FlagKind)> {
        let mut seen: Vec<(&'n Flag, FlagKind)> = Vec::new();
        for flag in &node.flags {
            let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == flag.name) else {
                self.error(
                    DiagnosticCode::UnknownFlag,
                    flag.span,
                    format!("unknown flag: {} (for {})", flag.name, keyword.as_str()),
                );
                continue;
            };
            if kind != FlagKind::List && seen.iter().any(|(f, _)| f.name == flag.name) {
                self.error(
                    DiagnosticCode::DuplicateFlag,
                    flag.span,
                    format!("Duplicate flag specified: {}", flag.name),
                );
                continue;
            }
            if kind != FlagKind::Bool && flag.value.is_none() {
                self.error(
                    DiagnosticCode::InvalidFlagValue,
                    flag.span,
                    format!("Missing a value on flag: {}", flag.name),
                );
                continue;
            }
            seen.push((flag, kind));
        }
        seen
    }

    fn bool_flag(&mut self, flags: &[(&Flag, FlagKind)], name: &str) -> Option<bool> {
        let (flag, _) = flags.iter().find(|(f, _)| f.name == name)?;
        match flag.value.as_deref() {
            None | Some("") => Some(true),
            Some(v) => match parse_bool(&v.to_ascii_lowercase()) {
                Some(b) => Some(b),
                None => {
                    self.error(
                        DiagnosticCode::InvalidFlagValue,
                        flag.span,
                        format!("expecting boolean value for flag {name}, not: {v}"),
                    );
                    None
                }
            },
        }
    }

    fn typed<T>(
        &mut self,
        flag: &Flag,
        code: DiagnosticCode,
        parse: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Typed<T> {
        let raw = flag_word(flag);
        let parsed = if needs_expansion(&raw.text) {
            None
        } else {
            match parse(&raw.text) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.error(code, flag.span, format!("--{}: {e}", flag.name));
                    None
                }
            }
        };
        Typed { raw, parsed }
    }

    fn typed_word<T>(
        &mut self,
        word: &Word,
        code: DiagnosticCode,
        parse: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Typed<T> {
        let parsed = if needs_expansion(&word.text) {
            None
        } else {
            match parse(&word.text) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.error(code, word.span, e.to_string());
                    None
                }
            }
        };
        Typed {
            raw: word.clone(),
            parsed,
        }
    }

    fn duration_flag(&mut self, flags: &[(&Flag, FlagKind)], name: &str) -> Option<Duration> {
        let (flag, _) = flags.iter().find(|(f, _)| f.name == name)?;
        let value = flag.value.as_deref().unwrap_or_default();
        match parse_go_duration(value) {
            Ok(d) if d.is_zero() || d >= Duration::from_millis(1) => Some(d),
            Ok(_) => {
                self.error(
                    DiagnosticCode::InvalidDuration,
                    flag.span,
                    format!("Interval {name:?} cannot be less than 1ms"),
                );
                None
            }
            Err(e) => {
                self.error(
                    DiagnosticCode::InvalidDuration,
                    flag.span,
                    format!("--{name}: {e}"),
                );
                None
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlagKind {
    /// `--name=value` once.
    Value,
    /// `--name` or `--name=bool` once.
    Bool,
    /// `--name=value`, repeatable.
    List,
}

fn flag_word(flag: &Flag) -> Word {
    Word {
        text: flag.value.clone().unwrap_or_default(),
        span: flag.span,
    }
}

fn value_of<'f>(flags: &[(&'f Flag, FlagKind)], name: &str) -> Option<&'f Flag> {
    flags.iter().find(|(f, _)| f.name == name).map(|(f, _)| *f)
}

fn words_of(flags: &[(&Flag, FlagKind)], name: &str) -> Vec<Word> {
    flags
        .iter()
        .filter(|(f, _)| f.name == name)
        .map(|(f, _)| flag_word(f))
        .collect()
}

/// Types one node; `None` (with diagnostics) when it is not a valid instruction.
pub(crate) fn type_node(
    node: &Node,
    index: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Instruction> {
    if node.has_error {
        return None;
    }
    let mut checker = Checker {
        diagnostics,
        failed: false,
    };
    let kind = type_kind(node, &mut checker, false)?;
    (!checker.failed).then_some(Instruction {
        node: index,
        span: node.span,
        kind,
    })
}

fn command_line(node: &Node) -> Option<CommandLine> {
    if node.json {
        Some(CommandLine::Exec(node.args.clone()))
    } else {
        node.args.first().cloned().map(CommandLine::Shell)
    }
}

fn type_kind(node: &Node, c: &mut Checker, nested: bool) -> Option<InstructionKind> {
    let keyword = node.keyword?;
    let name = keyword.as_str();
    let args = &node.args;
    let whole = node.span;
    let missing = |c: &mut Checker, what: &str| {
        c.error(
            DiagnosticCode::MissingArguments,
            whole,
            format!("{name} requires {what}"),
        );
    };
    let no_flags: &[(&str, FlagKind)] = &[];
    let kind = match keyword {
        Keyword::From => {
            let flags = c.flags(node, keyword, &[("platform", FlagKind::Value)]);
            let platform = value_of(&flags, "platform").map(flag_word);
            match args.as_slice() {
                [image] => InstructionKind::From(FromInstruction {
                    image: image.clone(),
                    platform,
                    name: None,
                }),
                [image, as_word, stage] if as_word.text.eq_ignore_ascii_case("as") => {
                    if let Err(e) = parse_stage_name(&stage.text) {
                        c.error(DiagnosticCode::InvalidStageName, stage.span, e.to_string());
                    }
                    InstructionKind::From(FromInstruction {
                        image: image.clone(),
                        platform,
                        name: Some(stage.clone()),
                    })
                }
                [_, middle, _] => {
                    c.error(
                        DiagnosticCode::InvalidArguments,
                        middle.span,
                        format!(
                            "FROM expects `AS` before the stage name, found {:?}",
                            middle.text
                        ),
                    );
                    return None;
                }
                _ => {
                    missing(c, "either one or three arguments");
                    return None;
                }
            }
        }
        Keyword::Run => {
            let flags = c.flags(
                node,
                keyword,
                &[
                    ("mount", FlagKind::List),
                    ("network", FlagKind::Value),
                    ("security", FlagKind::Value),
                ],
            );
            let mounts = flags
                .iter()
                .filter(|(f, _)| f.name == "mount")
                .map(|(f, _)| c.typed(f, DiagnosticCode::InvalidMount, parse_mount))
                .collect();
            let network = value_of(&flags, "network")
                .map(|f| c.typed(f, DiagnosticCode::InvalidFlagValue, parse_network));
            let security = value_of(&flags, "security")
                .map(|f| c.typed(f, DiagnosticCode::InvalidFlagValue, parse_security));
            let Some(command) = command_line(node) else {
                missing(c, "at least one argument");
                return None;
            };
            InstructionKind::Run(RunInstruction {
                command,
                heredocs: node.heredocs.clone(),
                mounts,
                network,
                security,
            })
        }
        Keyword::Cmd | Keyword::Entrypoint => {
            c.flags(node, keyword, no_flags);
            let command = command_line(node).unwrap_or(CommandLine::Exec(Vec::new()));
            if keyword == Keyword::Cmd {
                InstructionKind::Cmd(command)
            } else {
                InstructionKind::Entrypoint(command)
            }
        }
        Keyword::Shell => {
            c.flags(node, keyword, no_flags);
            if !node.json {
                c.error(
                    DiagnosticCode::ShellNotJson,
                    whole,
                    "SHELL requires the arguments to be in JSON form",
                );
                return None;
            }
            if args.is_empty() {
                missing(c, "at least one argument");
                return None;
            }
            InstructionKind::Shell(args.clone())
        }
        Keyword::Env | Keyword::Label => {
            c.flags(node, keyword, no_flags);
            if args.is_empty() {
                missing(c, "at least one argument");
                return None;
            }
            if let Some(blank) = args.chunks_exact(3).find(|kv| kv[0].text.is_empty()) {
                c.error(
                    DiagnosticCode::InvalidArguments,
                    blank[0].span,
                    format!("{name} names can not be blank"),
                );
            }
            let pairs = args
                .chunks_exact(3)
                .map(|kv| KeyValue {
                    key: kv[0].clone(),
                    value: kv[1].clone(),
                })
                .collect();
            if keyword == Keyword::Env {
                InstructionKind::Env(pairs)
            } else {
                InstructionKind::Label(pairs)
            }
        }
        Keyword::Maintainer | Keyword::User | Keyword::Workdir => {
            c.flags(node, keyword, no_flags);
            let [word] = args.as_slice() else {
                missing(c, "exactly one argument");
                return None;
            };
            match keyword {
                Keyword::Maintainer => InstructionKind::Maintainer(word.clone()),
                Keyword::User => InstructionKind::User(word.clone()),
                _ => InstructionKind::Workdir(word.clone()),
            }
        }
        Keyword::Stopsignal => {
            c.flags(node, keyword, no_flags);
            let [word] = args.as_slice() else {
                missing(c, "exactly one argument");
                return None;
            };
            InstructionKind::Stopsignal(c.typed_word(
                word,
                DiagnosticCode::InvalidSignal,
                parse_signal,
            ))
        }
        Keyword::Expose => {
            c.flags(node, keyword, no_flags);
            if args.is_empty() {
                missing(c, "at least one argument");
                return None;
            }
            InstructionKind::Expose(
                args.iter()
                    .map(|w| c.typed_word(w, DiagnosticCode::InvalidPort, parse_port))
                    .collect(),
            )
        }
        Keyword::Volume => {
            c.flags(node, keyword, no_flags);
            if args.is_empty() {
                missing(c, "at least one argument");
                return None;
            }
            if let Some(empty) = args.iter().find(|w| w.text.trim().is_empty()) {
                c.error(
                    DiagnosticCode::InvalidArguments,
                    empty.span,
                    "VOLUME specified can not be an empty string",
                );
            }
            InstructionKind::Volume(args.clone())
        }
        Keyword::Arg => {
            c.flags(node, keyword, no_flags);
            if args.is_empty() {
                missing(c, "at least one argument");
                return None;
            }
            InstructionKind::Arg(
                args.iter()
                    .map(|w| match w.text.split_once('=') {
                        Some((name, value)) => {
                            let eq = w.span.start + name.len();
                            ArgDeclaration {
                                name: Word {
                                    text: name.to_string(),
                                    span: Span {
                                        end: eq,
                                        end_column: w.span.column + name.len() as u32,
                                        end_line: w.span.line,
                                        ..w.span
                                    },
                                },
                                default: Some(Word {
                                    text: value.to_string(),
                                    span: Span {
                                        start: eq + 1,
                                        column: w.span.column + name.len() as u32 + 1,
                                        line: w.span.line,
                                        ..w.span
                                    },
                                }),
                            }
                        }
                        None => ArgDeclaration {
                            name: w.clone(),
                            default: None,
                        },
                    })
                    .collect(),
            )
        }
        Keyword::Copy => {
            let flags = c.flags(
                node,
                keyword,
                &[
                    ("from", FlagKind::Value),
                    ("chown", FlagKind::Value),
                    ("chmod", FlagKind::Value),
                    ("link", FlagKind::Bool),
                    ("parents", FlagKind::Bool),
                    ("exclude", FlagKind::List),
                ],
            );
            let paths = sources_and_dest(node, c)?;
            InstructionKind::Copy(CopyInstruction {
                paths,
                from: value_of(&flags, "from").map(flag_word),
                chown: value_of(&flags, "chown").map(flag_word),
                chmod: value_of(&flags, "chmod")
                    .map(|f| c.typed(f, DiagnosticCode::InvalidChmod, parse_chmod)),
                link: c.bool_flag(&flags, "link").unwrap_or(false),
                parents: c.bool_flag(&flags, "parents").unwrap_or(false),
                exclude: words_of(&flags, "exclude"),
            })
        }
        Keyword::Add => {
            let flags = c.flags(
                node,
                keyword,
                &[
                    ("chown", FlagKind::Value),
                    ("chmod", FlagKind::Value),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::List),
                    ("checksum", FlagKind::Value),
                    ("keep-git-dir", FlagKind::Bool),
                    ("unpack", FlagKind::Bool),
                ],
            );
            let paths = sources_and_dest(node, c)?;
            InstructionKind::Add(AddInstruction {
                paths,
                chown: value_of(&flags, "chown").map(flag_word),
                chmod: value_of(&flags, "chmod")
                    .map(|f| c.typed(f, DiagnosticCode::InvalidChmod, parse_chmod)),
                link: c.bool_flag(&flags, "link").unwrap_or(false),
                exclude: words_of(&flags, "exclude"),
                checksum: value_of(&flags, "checksum").map(|f| {
                    c.typed(f, DiagnosticCode::InvalidFlagValue, parse_digest)
                        .raw
                }),
                keep_git_dir: c.bool_flag(&flags, "keep-git-dir").unwrap_or(false),
                unpack: c.bool_flag(&flags, "unpack"),
            })
        }
        Keyword::Onbuild => {
            c.flags(node, keyword, no_flags);
            if nested {
                c.error(
                    DiagnosticCode::InvalidOnbuild,
                    whole,
                    "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                );
                return None;
            }
            let Some(inner) = node.onbuild.as_deref() else {
                missing(c, "at least one argument");
                return None;
            };
            match inner.keyword {
                Some(Keyword::Onbuild) => {
                    c.error(
                        DiagnosticCode::InvalidOnbuild,
                        inner.keyword_text.span,
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    );
                    return None;
                }
                Some(k @ (Keyword::From | Keyword::Maintainer)) => {
                    c.error(
                        DiagnosticCode::InvalidOnbuild,
                        inner.keyword_text.span,
                        format!("{} isn't allowed as an ONBUILD trigger", k.as_str()),
                    );
                    return None;
                }
                _ => {}
            }
            let instruction = type_kind(inner, c, true)?;
            // BuildKit: the logical line without its leading `ONBUILD` (any case).
            let line = node.original.trim_start();
            let expression = line
                .get(..7)
                .filter(|k| k.eq_ignore_ascii_case("onbuild"))
                .and_then(|_| line.get(7..))
                .unwrap_or(line)
                .trim_start()
                .to_string();
            InstructionKind::Onbuild(OnbuildInstruction {
                expression,
                instruction: Box::new(instruction),
            })
        }
        Keyword::Healthcheck => {
            let flags = c.flags(
                node,
                keyword,
                &[
                    ("interval", FlagKind::Value),
                    ("timeout", FlagKind::Value),
                    ("start-period", FlagKind::Value),
                    ("start-interval", FlagKind::Value),
                    ("retries", FlagKind::Value),
                ],
            );
            let Some(kind_word) = args.first() else {
                missing(c, "at least one argument");
                return None;
            };
            let test = match kind_word.text.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if args.len() > 1 {
                        c.error(
                            DiagnosticCode::TooManyArguments,
                            whole,
                            "HEALTHCHECK NONE takes no arguments",
                        );
                    }
                    if !flags.is_empty() {
                        c.error(
                            DiagnosticCode::InvalidArguments,
                            whole,
                            "HEALTHCHECK NONE takes no flags",
                        );
                    }
                    HealthcheckTest::None
                }
                "CMD" => {
                    let command = if node.json {
                        CommandLine::Exec(args[1..].to_vec())
                    } else if let Some(w) = args.get(1) {
                        CommandLine::Shell(w.clone())
                    } else {
                        c.error(
                            DiagnosticCode::MissingArguments,
                            whole,
                            "Missing command after HEALTHCHECK CMD",
                        );
                        return None;
                    };
                    if matches!(&command, CommandLine::Exec(v) if v.is_empty()) {
                        c.error(
                            DiagnosticCode::MissingArguments,
                            whole,
                            "Missing command after HEALTHCHECK CMD",
                        );
                    }
                    HealthcheckTest::Cmd(command)
                }
                other => {
                    c.error(
                        DiagnosticCode::InvalidArguments,
                        kind_word.span,
                        format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
                    );
                    return None;
                }
            };
            let retries = value_of(&flags, "retries").and_then(|f| {
                let v = f.value.as_deref().unwrap_or_default();
                match v.parse::<i64>() {
                    Ok(n) if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                    Ok(_) => {
                        c.error(
                            DiagnosticCode::InvalidFlagValue,
                            f.span,
                            "--retries cannot be negative",
                        );
                        None
                    }
                    Err(_) => {
                        c.error(
                            DiagnosticCode::InvalidFlagValue,
                            f.span,
                            format!("--retries: invalid number {v:?}"),
                        );
                        None
                    }
                }
            });
            InstructionKind::Healthcheck(Healthcheck {
                test,
                interval: c.duration_flag(&flags, "interval"),
                timeout: c.duration_flag(&flags, "timeout"),
                start_period: c.duration_flag(&flags, "start-period"),
                start_interval: c.duration_flag(&flags, "start-interval"),
                retries,
            })
        }
    };
    Some(kind)
}

fn sources_and_dest(node: &Node, c: &mut Checker) -> Option<SourcesAndDest> {
    let args = &node.args;
    let name = node.keyword.map_or("", Keyword::as_str);
    // Heredocs count as sources: `COPY <<EOF /dest`.
    let (dest, sources) = match args.split_last() {
        Some((dest, sources)) if !sources.is_empty() => (dest, sources),
        _ => {
            let message = if args.is_empty() {
                format!("{name} requires at least two arguments")
            } else {
                format!(
                    "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
                )
            };
            c.error(DiagnosticCode::MissingArguments, node.span, message);
            return None;
        }
    };
    Some(SourcesAndDest {
        sources: sources.to_vec(),
        dest: dest.clone(),
        heredocs: node.heredocs.clone(),
        json: node.json,
    })
}
