//! Lint rules over typed instructions: hadolint rules and BuildKit checks, config, pragmas,
//! output formats.
//!
//! [`lint_all`] parses each Dockerfile with [`crate::dockerfile::parse`] (parse errors become
//! findings and the rest is still checked), runs every rule of [`rules::RULES`], runs
//! shellcheck over the RUN scripts of all files in one batch when asked, then applies inline
//! pragmas, the `# check=` directive and the [`Config`]. [`lint`] and [`lint_in_context`] do
//! it for one file. Each rule's documentation page is `docs/rules/<ID>.md` ([`Rule::page`]).

mod check;
pub mod config;
pub mod fix;
pub mod format;
pub mod rules;
pub mod shell;
pub mod shellcheck;

pub use config::{Config, ConfigError, LabelType};
pub use rules::{RULES, Rule, Severity};

use crate::context::Context;
use crate::dockerfile::values::CheckDirective;
use crate::dockerfile::{self, LineIndex};
use serde::Serialize;

/// One problem found in a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule id (`DL3006`, `SC2086`, or a BuildKit check name).
    pub rule: String,
    /// The BuildKit check this finding also is, if any.
    pub buildkit: Option<&'static str>,
    pub severity: Severity,
    pub message: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    /// The first line of the instruction the finding is in (where hadolint reports it).
    pub instruction_line: u32,
    /// A mechanical rewrite that resolves the finding.
    #[serde(skip)]
    pub fix: Option<Fix>,
}

/// Replace bytes `start..end` of the file with `replacement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub start: usize,
    pub end: usize,
    pub replacement: String,
}

/// The findings for one file, and notes about what could not be checked.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

impl Report {
    /// Whether any finding is at or above the threshold.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity >= threshold && f.severity != Severity::Ignore)
    }
}

/// The environments of base images (from the local store, say), so UndefinedVar knows what
/// a base image defines.
pub trait ImageEnv {
    /// The `Env` of the image `reference` names as (name, value) pairs; `None` when unknown.
    fn env(&self, reference: &str) -> Option<Vec<(String, String)>>;
}

/// One Dockerfile to lint, and what the linter may know beside its text.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub text: &'a str,
    /// The build context, for CopyIgnoredFile (COPY and ADD sources its `.dockerignore`
    /// excludes).
    pub context: Option<&'a Context>,
    /// Base images' environments, for UndefinedVar. Without it, UndefinedVar checks only
    /// stages whose base is `scratch` (or a stage that is).
    pub images: Option<&'a dyn ImageEnv>,
}

impl<'a> Source<'a> {
    /// A Dockerfile's text, with no context and no base images.
    pub fn text(text: &'a str) -> Source<'a> {
        Source {
            text,
            context: None,
            images: None,
        }
    }
}

/// Lints one Dockerfile's text.
pub fn lint(text: &str, config: &Config) -> Report {
    lint_in_context(text, config, None)
}

/// Lints one Dockerfile's text built in a context: COPY and ADD sources excluded by the
/// context's `.dockerignore` are reported (CopyIgnoredFile).
pub fn lint_in_context(text: &str, config: &Config, context: Option<&Context>) -> Report {
    let source = Source {
        context,
        ..Source::text(text)
    };
    lint_all(&[source], config).pop().unwrap_or_default()
}

/// Lints several Dockerfiles, one report each, in order. With shellcheck on, the RUN scripts
/// of all files go through shellcheck together: each distinct script once, a process per
/// core.
pub fn lint_all(sources: &[Source<'_>], config: &Config) -> Vec<Report> {
    let checked: Vec<(
        dockerfile::ParsedDockerfile,
        Vec<Finding>,
        Vec<check::ShellScript>,
    )> = sources
        .iter()
        .map(|source| {
            let parsed = dockerfile::parse(source.text);
            let (findings, scripts) = check::check(source, &parsed, config);
            (parsed, findings, scripts)
        })
        .collect();
    let wants_shellcheck = config.shellcheck && checked.iter().any(|(_, _, s)| !s.is_empty());
    let mut note = None;
    let mut shellcheck_findings: Vec<Vec<Finding>> = Vec::new();
    if wants_shellcheck {
        let batch: Vec<shellcheck::FileScripts<'_>> = sources
            .iter()
            .zip(&checked)
            .map(|(source, (_, _, scripts))| shellcheck::FileScripts {
                dockerfile: source.text,
                scripts,
            })
            .collect();
        match shellcheck::run(&batch, config.shellcheck_cache.as_deref()) {
            Ok(found) => shellcheck_findings = found,
            Err(e) => note = Some(format!("shellcheck skipped: {e}")),
        }
    }
    let mut shellcheck_findings = shellcheck_findings.into_iter();
    sources
        .iter()
        .zip(checked)
        .map(|(source, (parsed, mut findings, scripts))| {
            let mut notes = Vec::new();
            findings.extend(shellcheck_findings.next().unwrap_or_default());
            if let Some(note) = note.as_ref().filter(|_| !scripts.is_empty()) {
                notes.push(note.clone());
            }
            let pragmas = Pragmas::scan(source.text, &parsed);
            findings.extend(pragmas.pragma_findings.iter().cloned());
            let mut out: Vec<Finding> = findings
                .into_iter()
                .filter(|f| config.disable_ignore_pragma || !pragmas.ignores(f))
                .filter_map(|f| config.apply(f, &pragmas.check))
                .collect();
            out.sort_by(|a, b| (a.line, a.column, &a.rule).cmp(&(b.line, b.column, &b.rule)));
            out.dedup_by(|a, b| a.rule == b.rule && a.line == b.line && a.column == b.column);
            Report {
                findings: out,
                notes,
            }
        })
        .collect()
}

/// A `# hadolint ignore=...` pragma and the lines it covers.
#[derive(Clone, Debug)]
struct IgnorePragma {
    rules: Vec<String>,
    first_line: u32,
    last_line: u32,
}

#[derive(Clone, Debug, Default)]
struct Pragmas {
    ignores: Vec<IgnorePragma>,
    check: CheckDirective,
    /// DL1001 for each inline ignore (off by default).
    pragma_findings: Vec<Finding>,
}

impl Pragmas {
    fn scan(text: &str, parsed: &dockerfile::ParsedDockerfile) -> Pragmas {
        let mut out = Pragmas {
            check: parsed.directives.check_settings().unwrap_or_default(),
            ..Pragmas::default()
        };
        let index = LineIndex::new(text);
        let inside_node = |offset: usize| {
            parsed
                .nodes
                .iter()
                .any(|n| n.span.start <= offset && offset < n.span.end)
        };
        let last_line = u32::try_from(index.line_count()).unwrap_or(u32::MAX);
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let start = offset;
            offset += line.len();
            let trimmed = line.trim();
            let Some(comment) = trimmed.strip_prefix('#') else {
                continue;
            };
            if inside_node(start) {
                continue;
            }
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() != Some(&"hadolint") {
                continue;
            }
            let (scope, rest) = match words.get(1) {
                Some(&"global") => ("global", words.get(2..).unwrap_or_default()),
                Some(&"stage") => ("stage", words.get(2..).unwrap_or_default()),
                _ => ("next", words.get(1..).unwrap_or_default()),
            };
            let joined = rest.join("");
            let Some(list) = joined.strip_prefix("ignore=") else {
                continue;
            };
            let rules: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            let next = parsed.nodes.iter().find(|n| n.start_line > line_no);
            let (first_line, last) = match scope {
                "global" => (1, last_line),
                "stage" => {
                    let next_from = parsed.nodes.iter().find(|n| {
                        n.start_line > next.map_or(line_no, |x| x.start_line)
                            && n.keyword == Some(dockerfile::Keyword::From)
                    });
                    (
                        line_no,
                        next_from.map_or(last_line, |n| n.start_line.saturating_sub(1)),
                    )
                }
                _ => match next {
                    Some(n) => (n.start_line, n.end_line),
                    None => continue,
                },
            };
            if let Some(rule) = rules::find("DL1001") {
                let span = index.span(start, start + line.trim_end().len());
                out.pragma_findings.push(Finding {
                    rule: rule.id.to_string(),
                    buildkit: None,
                    severity: rule.severity,
                    message: rule.message.to_string(),
                    line: span.line,
                    column: span.column,
                    end_line: span.end_line,
                    end_column: span.end_column,
                    instruction_line: span.line,
                    fix: None,
                });
            }
            out.ignores.push(IgnorePragma {
                rules,
                first_line,
                last_line: last,
            });
        }
        out
    }

    fn ignores(&self, finding: &Finding) -> bool {
        self.ignores.iter().any(|p| {
            p.first_line <= finding.line
                && finding.line <= p.last_line
                && p.rules.iter().any(|r| names_finding(r, finding))
        })
    }
}

/// Whether `name` (an id or a BuildKit check name) names this finding's rule.
pub fn names_finding(name: &str, finding: &Finding) -> bool {
    finding.rule.eq_ignore_ascii_case(name)
        || finding
            .buildkit
            .is_some_and(|b| b.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<(String, u32)> {
        lint(text, &Config::default())
            .findings
            .into_iter()
            .map(|f| (f.rule, f.line))
            .collect()
    }

    #[test]
    fn ignore_pragmas() {
        let text = "FROM debian\n# hadolint ignore=DL3006\nFROM ubuntu\nFROM alpine\n";
        let found = ids(text);
        assert!(found.contains(&("DL3006".into(), 1)));
        assert!(!found.contains(&("DL3006".into(), 3)));
        assert!(found.contains(&("DL3006".into(), 4)));
        let global = ids("# hadolint global ignore=DL3006\nFROM debian\nFROM ubuntu\n");
        assert!(!global.iter().any(|(r, _)| r == "DL3006"));
    }

    #[test]
    fn check_directive() {
        let text = "# check=skip=StageNameCasing;error=true\nFROM debian:12 AS Build\nFROM debian:12 as x\n";
        let report = lint(text, &Config::default());
        assert!(!report.findings.iter().any(|f| f.rule == "StageNameCasing"));
        let casing = report.findings.iter().find(|f| f.rule == "FromAsCasing");
        assert_eq!(casing.map(|f| f.severity), Some(Severity::Error));
    }
}
