//! shellcheck over RUN scripts, as hadolint does: each script gets the shell's shebang and an
//! `export NAME=1` line per variable in scope, and SCxxxx findings are mapped back to the
//! Dockerfile line and column. The scripts of all files are checked together, by one
//! shellcheck process per core.

use super::Finding;
use super::check::ShellScript;
use super::rules::Severity;
use crate::dockerfile::LineIndex;
use crate::dockerfile::vars::BUILTIN_BUILD_ARGS;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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

/// The RUN scripts of one Dockerfile.
pub struct FileScripts<'a> {
    pub dockerfile: &'a str,
    pub scripts: &'a [ShellScript],
}

/// A script file written out for shellcheck: its header's length, and every RUN script with
/// this exact content (file, script), so identical scripts are checked once.
struct Written {
    header_lines: usize,
    uses: Vec<(usize, usize)>,
}

/// Runs shellcheck over the scripts of several Dockerfiles: the findings of each file, in order.
pub fn run(files: &[FileScripts<'_>]) -> Result<Vec<Vec<Finding>>, ShellcheckError> {
    let dir = tempfile::tempdir()?;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut path_of_content: HashMap<String, String> = HashMap::new();
    let mut written: HashMap<String, Written> = HashMap::new();
    for (file, f) in files.iter().enumerate() {
        for (i, script) in f.scripts.iter().enumerate() {
            let header = header(script);
            let content = format!("{header}{}", script.text);
            if let Some(w) = path_of_content
                .get(&content)
                .and_then(|path| written.get_mut(path))
            {
                w.uses.push((file, i));
                continue;
            }
            let path = dir.path().join(format!("f{file}-run{i}.sh"));
            std::fs::write(&path, &content)?;
            let name = path.to_string_lossy().into_owned();
            path_of_content.insert(content, name.clone());
            written.insert(
                name,
                Written {
                    header_lines: header.lines().count(),
                    uses: vec![(file, i)],
                },
            );
            paths.push(path);
        }
    }
    let mut findings: Vec<Vec<Finding>> = files.iter().map(|_| Vec::new()).collect();
    if paths.is_empty() {
        return Ok(findings);
    }
    let processes = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = paths.len().div_ceil(processes);
    let mut children = Vec::new();
    for group in paths.chunks(chunk) {
        let child = Command::new("shellcheck")
            .args(["-f", "json1", "-e", EXCLUDED])
            .args(group)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShellcheckError::Missing);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let indexes: Vec<LineIndex> = files.iter().map(|f| LineIndex::new(f.dockerfile)).collect();
    // Each output is read on its own thread, so no process stalls on a full pipe.
    let outputs: Vec<std::io::Result<std::process::Output>> = std::thread::scope(|scope| {
        let readers: Vec<_> = children
            .into_iter()
            .map(|child| scope.spawn(move || child.wait_with_output()))
            .collect();
        readers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("reader panicked")))
            })
            .collect()
    });
    for output in outputs {
        let parsed: Output = serde_json::from_slice(&output?.stdout)?;
        for c in parsed.comments {
            let Some(w) = written.get(&c.file) else {
                continue;
            };
            for &(file, i) in &w.uses {
                let (Some(script), Some(index), Some(out)) = (
                    files.get(file).and_then(|f| f.scripts.get(i)),
                    indexes.get(file),
                    findings.get_mut(file),
                ) else {
                    continue;
                };
                if let Some(finding) = to_finding(&c, script, w.header_lines, index) {
                    out.push(finding);
                }
            }
        }
    }
    Ok(findings)
}

/// The lines shellcheck reads before a script: the shebang of the shell in effect and the
/// variables in scope (with Docker's proxy variables) as exported.
fn header(script: &ShellScript) -> String {
    let shell = script.shell.rsplit('/').next().unwrap_or("sh");
    let shell = if shell.is_empty() { "sh" } else { shell };
    let mut header = format!("#!/bin/{shell}\n");
    let mut names: Vec<&str> = BUILTIN_BUILD_ARGS.to_vec();
    names.extend(script.exported.iter().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    for name in names {
        header.push_str(&format!("export {name}=1\n"));
    }
    header
}

/// A shellcheck comment as a finding at its place in the Dockerfile; `None` in the header.
fn to_finding(
    c: &Comment,
    script: &ShellScript,
    header_lines: usize,
    index: &LineIndex,
) -> Option<Finding> {
    let script_line = c.line.checked_sub(header_lines + 1)?;
    let line_start: usize = script
        .text
        .split_inclusive('\n')
        .take(script_line)
        .map(str::len)
        .sum();
    let derived = line_start + c.column.saturating_sub(1);
    let at = script.map.file_offset(derived);
    let span = index.span(at, at);
    let severity = match c.level.as_str() {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        "info" => Severity::Info,
        _ => Severity::Style,
    };
    Some(Finding {
        rule: format!("SC{}", c.code),
        buildkit: None,
        severity,
        message: c.message.clone(),
        line: span.line,
        column: span.column,
        end_line: span.line,
        end_column: span.column,
        instruction_line: script.instruction.line,
        fix: None,
    })
}
