//! shellcheck over RUN scripts, as hadolint does: each script gets the shell's shebang and an
//! `export NAME=1` line per variable in scope, and SCxxxx findings are mapped back to the
//! Dockerfile line and column. All scripts of a file go to one shellcheck process.

use super::check::ShellScript;
use super::rules::Severity;
use super::Finding;
use crate::dockerfile::LineIndex;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ShellcheckError {
    #[error("shellcheck is not installed (not found on PATH)")]
    Missing,
    #[error("could not run shellcheck: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected shellcheck output: {0}")]
    Output(#[from] serde_json::Error),
}

/// shellcheck checks excluded as hadolint excludes them: SC2187 (ash is not supported) and
/// SC1090 (needs a directive a Dockerfile cannot carry).
const EXCLUDED: &str = "SC2187,SC1090";

/// Proxy variables Docker passes to every RUN.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

#[derive(Deserialize)]
struct Output {
    comments: Vec<Comment>,
}

#[derive(Deserialize)]
struct Comment {
    file: String,
    line: usize,
    column: usize,
    level: String,
    code: u32,
    message: String,
}

/// Whether shellcheck can be run.
pub fn available() -> bool {
    Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs shellcheck over the scripts of one Dockerfile.
pub fn run(dockerfile: &str, scripts: &[ShellScript]) -> Result<Vec<Finding>, ShellcheckError> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    let mut headers = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        let shell = script.shell.rsplit('/').next().unwrap_or("sh");
        let shell = if shell.is_empty() { "sh" } else { shell };
        let mut header = format!("#!/bin/{shell}\n");
        let mut names: Vec<&str> = PROXY_VARS.to_vec();
        names.extend(script.exported.iter().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        for name in names {
            header.push_str(&format!("export {name}=1\n"));
        }
        let path = dir.path().join(format!("run{i}.sh"));
        std::fs::write(&path, format!("{header}{}", script.text))?;
        files.push(path);
        headers.push(header.lines().count());
    }
    let output = match Command::new("shellcheck")
        .args(["-f", "json1", "-e", EXCLUDED])
        .args(&files)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ShellcheckError::Missing),
        Err(e) => return Err(e.into()),
    };
    let parsed: Output = serde_json::from_slice(&output.stdout)?;
    let index = LineIndex::new(dockerfile);
    let mut findings = Vec::new();
    for c in parsed.comments {
        let Some(i) = files
            .iter()
            .position(|f| f.to_string_lossy() == c.file)
        else {
            continue;
        };
        let (Some(script), Some(header)) = (scripts.get(i), headers.get(i)) else {
            continue;
        };
        let Some(script_line) = c.line.checked_sub(header + 1) else {
            continue;
        };
        let line_start: usize = script
            .text
            .split_inclusive('\n')
            .take(script_line)
            .map(str::len)
            .sum();
        let derived = line_start + c.column.saturating_sub(1);
        let span = index.span(script.map.file_offset(derived), script.map.file_offset(derived));
        let severity = match c.level.as_str() {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            _ => Severity::Style,
        };
        findings.push(Finding {
            rule: format!("SC{}", c.code),
            buildkit: None,
            severity,
            message: c.message,
            line: span.line,
            column: span.column,
            end_line: span.line,
            end_column: span.column,
            instruction_line: script.instruction.line,
            fix: None,
        });
    }
    Ok(findings)
}
