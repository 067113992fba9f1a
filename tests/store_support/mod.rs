//! Shared helpers of the store tests: the binary, a fresh store, the busybox rootfs, tools.

#![allow(dead_code)]

// Also loaded by tests/support in binaries that use both: one source, compiled twice.
#[allow(clippy::duplicate_mod)]
#[path = "../support/tools.rs"]
mod tools;
use std::path::Path;
use std::process::{Command, Output};
#[allow(unused_imports)] // each test binary uses a different part
pub use tools::{busybox_tar, require_root, require_tool};

pub const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

/// Runs rbuild on a store; panics with its output unless it succeeds.
pub fn rbuild(root: &Path, args: &[&str]) -> String {
    let out = rbuild_output(root, args);
    assert!(
        out.status.success(),
        "rbuild {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn rbuild_output(root: &Path, args: &[&str]) -> Output {
    Command::new(RBUILD)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run rbuild")
}

/// Runs a command; panics with its output unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tree's content as comparable lines: path, type, mode, owner, size, content hash or link.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let meta = entry.path().symlink_metadata().unwrap();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!(
                "link->{}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            format!(
                "file:{}",
                rbuild::image::sha256_digest(&std::fs::read(entry.path()).unwrap())
            )
        } else {
            format!("special:{:o}:{}", meta.mode(), meta.rdev())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        lines.push(format!(
            "{rel} {what} mode={mode:o} uid={} gid={}",
            meta.uid(),
            meta.gid()
        ));
    }
    lines
}
