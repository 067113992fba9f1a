//! shellcheck over RUN scripts, as hadolint does: each script gets the shell's shebang and an
//! `export NAME=1` line per variable in scope, and SCxxxx findings are mapped back to the
//! Dockerfile line and column. The scripts of all files are checked together, each distinct
//! script once, by one shellcheck process per core. With a cache folder, results are kept by
//! script content and shellcheck version, so an unchanged script is not checked again.

use super::Finding;
use super::check::ShellScript;
use super::rules::Severity;
use crate::dockerfile::LineIndex;
use crate::dockerfile::vars::BUILTIN_BUILD_ARGS;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

#[derive(Clone, Deserialize, Serialize)]
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

/// One distinct script (header included), the RUN scripts (file, script) that have exactly
/// this content, and shellcheck's comments on it.
struct Distinct {
    content: String,
    header_lines: usize,
    uses: Vec<(usize, usize)>,
    comments: Vec<Comment>,
}

/// shellcheck's comments kept by script content, for this shellcheck version and exclusions.
struct ResultCache {
    dir: PathBuf,
    version: Vec<u8>,
}

impl ResultCache {
    fn open(dir: &Path) -> Result<ResultCache, ShellcheckError> {
        let output = match Command::new("shellcheck").arg("--version").output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShellcheckError::Missing);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ResultCache {
            dir: dir.to_path_buf(),
            version: output.stdout,
        })
    }

    fn path(&self, content: &str) -> PathBuf {
        let mut hash = Sha256::new();
        hash.update(&self.version);
        hash.update([0]);
        hash.update(EXCLUDED);
        hash.update([0]);
        hash.update(content);
        self.dir
            .join(format!("{}.json", hex::encode(hash.finalize())))
    }

    fn get(&self, content: &str) -> Option<Vec<Comment>> {
        let bytes = std::fs::read(self.path(content)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Keeps the comments; a cache that cannot be written only costs a later re-check.
    fn put(&self, content: &str, comments: &[Comment]) {
        let path = self.path(content);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| serde_json::to_vec(comments).map_err(std::io::Error::other))
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Runs shellcheck over the scripts of several Dockerfiles: the findings of each file, in
/// order. With `cache`, results are looked up and kept in that folder.
pub fn run(
    files: &[FileScripts<'_>],
    cache: Option<&Path>,
) -> Result<Vec<Vec<Finding>>, ShellcheckError> {
    let mut distinct: Vec<Distinct> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (file, f) in files.iter().enumerate() {
        for (i, script) in f.scripts.iter().enumerate() {
            let header = header(script);
            let content = format!("{header}{}", script.text);
            if let Some(d) = index_of.get(&content).and_then(|&d| distinct.get_mut(d)) {
                d.uses.push((file, i));
                continue;
            }
            index_of.insert(content.clone(), distinct.len());
            distinct.push(Distinct {
                content,
                header_lines: header.lines().count(),
                uses: vec![(file, i)],
                comments: Vec::new(),
            });
        }
    }
    let cache = cache.map(ResultCache::open).transpose()?;
    let mut to_check = Vec::new();
    for (i, d) in distinct.iter_mut().enumerate() {
        match cache.as_ref().and_then(|c| c.get(&d.content)) {
            Some(comments) => d.comments = comments,
            None => to_check.push(i),
        }
    }
    if !to_check.is_empty() {
        for (i, comments) in check(&distinct, &to_check)? {
            if let Some(d) = distinct.get_mut(i) {
                d.comments = comments;
            }
        }
        if let Some(cache) = &cache {
            for d in to_check.iter().filter_map(|&i| distinct.get(i)) {
                cache.put(&d.content, &d.comments);
            }
        }
    }
    let indexes: Vec<LineIndex> = files.iter().map(|f| LineIndex::new(f.dockerfile)).collect();
    let mut findings: Vec<Vec<Finding>> = files.iter().map(|_| Vec::new()).collect();
    for d in &distinct {
        for c in &d.comments {
            for &(file, i) in &d.uses {
                let (Some(script), Some(index), Some(out)) = (
                    files.get(file).and_then(|f| f.scripts.get(i)),
                    indexes.get(file),
                    findings.get_mut(file),
                ) else {
                    continue;
                };
                if let Some(finding) = to_finding(c, script, d.header_lines, index) {
                    out.push(finding);
                }
            }
        }
    }
    Ok(findings)
}

/// Runs shellcheck over the scripts `which` of `distinct`, a process per core: the comments
/// on each, by index.
fn check(
    distinct: &[Distinct],
    which: &[usize],
) -> Result<HashMap<usize, Vec<Comment>>, ShellcheckError> {
    let dir = tempfile::tempdir()?;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut index_of_path: HashMap<String, usize> = HashMap::new();
    for &i in which {
        let Some(d) = distinct.get(i) else {
            continue;
        };
        let path = dir.path().join(format!("run{i}.sh"));
        std::fs::write(&path, &d.content)?;
        index_of_path.insert(path.to_string_lossy().into_owned(), i);
        paths.push(path);
    }
    // Every checked script gets an entry, so a clean script is remembered as clean.
    let mut comments: HashMap<usize, Vec<Comment>> =
        which.iter().map(|&i| (i, Vec::new())).collect();
    if paths.is_empty() {
        return Ok(comments);
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
            if let Some(list) = index_of_path.get(&c.file).and_then(|i| comments.get_mut(i)) {
                list.push(c);
            }
        }
    }
    Ok(comments)
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
