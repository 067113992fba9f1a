//! Output formats: tty, json, sarif (2.1.0), checkstyle, gitlab (Code Quality), gnu.

use super::rules::{self, Severity};
use super::{Finding, Report};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tty,
    Json,
    Sarif,
    Checkstyle,
    Gitlab,
    Gnu,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "tty" => Format::Tty,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "checkstyle" => Format::Checkstyle,
            "gitlab" | "gitlab_codeclimate" | "codeclimate" => Format::Gitlab,
            "gnu" => Format::Gnu,
            _ => return None,
        })
    }
}

/// One linted file: its name as shown, its text and its report.
pub struct FileReport<'a> {
    pub path: &'a str,
    pub text: &'a str,
    pub report: &'a Report,
}

/// Renders the reports of all files in a format.
pub fn render(format: Format, files: &[FileReport<'_>], colour: bool) -> String {
    match format {
        Format::Tty => tty(files, colour),
        Format::Json => json_format(files),
        Format::Sarif => sarif(files).to_string(),
        Format::Checkstyle => checkstyle(files),
        Format::Gitlab => gitlab(files),
        Format::Gnu => gnu(files),
    }
}

/// Every finding of every file, with its file.
fn each_finding<'a>(
    files: &'a [FileReport<'a>],
) -> impl Iterator<Item = (&'a FileReport<'a>, &'a Finding)> {
    files
        .iter()
        .flat_map(|file| file.report.findings.iter().map(move |f| (file, f)))
}

fn rule_label(f: &Finding) -> String {
    match f.buildkit {
        Some(bk) if bk != f.rule => format!("{} ({bk})", f.rule),
        _ => f.rule.clone(),
    }
}

fn tty(files: &[FileReport<'_>], colour: bool) -> String {
    let mut out = String::new();
    for file in files {
        let lines: Vec<&str> = file.text.lines().collect();
        for f in &file.report.findings {
            let (on, off) = match (colour, f.severity) {
                (false, _) => ("", ""),
                (true, Severity::Error) => ("\x1b[1;31m", "\x1b[0m"),
                (true, Severity::Warning) => ("\x1b[1;33m", "\x1b[0m"),
                (true, Severity::Info) => ("\x1b[1;36m", "\x1b[0m"),
                (true, _) => ("\x1b[1;37m", "\x1b[0m"),
            };
            let _ = writeln!(
                out,
                "{}:{}:{} {on}{}{off} {} {}",
                file.path,
                f.line,
                f.column,
                f.severity.as_str(),
                rule_label(f),
                f.message
            );
            if let Some(line) = (f.line as usize).checked_sub(1).and_then(|i| lines.get(i)) {
                let width = line
                    .chars()
                    .take((f.column as usize).saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect::<String>();
                let _ = writeln!(out, "  {line}\n  {width}{on}^{off}");
            }
        }
        for note in &file.report.notes {
            let _ = writeln!(out, "{}: note: {note}", file.path);
        }
    }
    out
}

fn gnu(files: &[FileReport<'_>]) -> String {
    let mut out = String::new();
    for file in files {
        for f in &file.report.findings {
            let _ = writeln!(
                out,
                "{}:{}:{}: {}: {} {}",
                file.path,
                f.line,
                f.column,
                f.severity.as_str(),
                f.rule,
                f.message
            );
        }
    }
    out
}

fn json_format(files: &[FileReport<'_>]) -> String {
    let items: Vec<Value> = each_finding(files)
        .map(|(file, f)| {
            json!({
                "file": file.path,
                "line": f.line,
                "column": f.column,
                "end_line": f.end_line,
                "end_column": f.end_column,
                "instruction_line": f.instruction_line,
                "level": f.severity.as_str(),
                "code": f.rule,
                "buildkit": f.buildkit,
                "message": f.message,
            })
        })
        .collect();
    Value::Array(items).to_string()
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Style => "note",
        Severity::Ignore => "none",
    }
}

/// SARIF 2.1.0: one run, the rules that were found with their documentation.
pub fn sarif(files: &[FileReport<'_>]) -> Value {
    let mut ids: Vec<&str> = files
        .iter()
        .flat_map(|f| f.report.findings.iter().map(|x| x.rule.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let rules_json: Vec<Value> = ids
        .iter()
        .map(|id| match rules::find(id) {
            Some(rule) => {
                let mut r = json!({
                    "id": rule.id,
                    "shortDescription": {"text": rule.message},
                    "helpUri": rule.doc_url(),
                    "help": {"text": rule.message, "markdown": rule.page},
                    "defaultConfiguration": {"level": sarif_level(rule.severity)},
                });
                if let Some(bk) = rule.buildkit {
                    r["name"] = json!(bk);
                }
                r
            }
            None => json!({
                "id": id,
                "helpUri": format!("https://www.shellcheck.net/wiki/{id}"),
            }),
        })
        .collect();
    let results: Vec<Value> = each_finding(files)
        .map(|(file, f)| {
            json!({
                "ruleId": f.rule,
                "level": sarif_level(f.severity),
                "message": {"text": f.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file.path},
                        "region": {
                            "startLine": f.line.max(1),
                            "startColumn": f.column.max(1),
                            "endLine": f.end_line.max(f.line).max(1),
                            "endColumn": f.end_column.max(1),
                        }
                    }
                }]
            })
        })
        .collect();
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rbuild lint",
                "informationUri": "https://github.com/hadolint/hadolint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules_json,
            }},
            "results": results,
        }]
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn checkstyle(files: &[FileReport<'_>]) -> String {
    let mut out =
        String::from("<?xml version='1.0' encoding='UTF-8'?>\n<checkstyle version='4.3'>\n");
    for file in files {
        let _ = writeln!(out, "<file name='{}'>", xml_escape(file.path));
        for f in &file.report.findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                _ => "info",
            };
            let _ = writeln!(
                out,
                "<error line='{}' column='{}' severity='{severity}' message='{}' source='{}'/>",
                f.line,
                f.column,
                xml_escape(&f.message),
                xml_escape(&f.rule)
            );
        }
        out.push_str("</file>\n");
    }
    out.push_str("</checkstyle>\n");
    out
}

fn gitlab(files: &[FileReport<'_>]) -> String {
    let items: Vec<Value> = each_finding(files)
        .map(|(file, f)| {
            let severity = match f.severity {
                Severity::Error => "blocker",
                Severity::Warning => "major",
                Severity::Info => "minor",
                _ => "info",
            };
            let mut h = Sha256::new();
            h.update(format!("{}:{}:{}:{}", file.path, f.line, f.rule, f.message));
            let fingerprint = hex::encode(h.finalize());
            json!({
                "type": "issue",
                "check_name": f.rule,
                "description": f.message,
                "categories": ["Style"],
                "fingerprint": fingerprint,
                "severity": severity,
                "location": {"path": file.path, "lines": {"begin": f.line, "end": f.end_line.max(f.line)}},
            })
        })
        .collect();
    Value::Array(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{Config, lint};

    #[test]
    fn tty_and_gnu_lines() {
        let text = "FROM debian\n";
        let report = lint(text, &Config::default());
        let files = [FileReport {
            path: "Dockerfile",
            text,
            report: &report,
        }];
        let out = render(Format::Tty, &files, false);
        assert!(
            out.starts_with("Dockerfile:1:6 warning DL3006 Always tag"),
            "{out}"
        );
        assert!(out.contains("  FROM debian\n       ^\n"), "{out}");
        let gnu = render(Format::Gnu, &files, false);
        assert!(gnu.starts_with("Dockerfile:1:6: warning: DL3006 "), "{gnu}");
        let cs = render(Format::Checkstyle, &files, false);
        assert!(cs.contains("source='DL3006'"), "{cs}");
    }
}
