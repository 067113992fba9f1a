//! Shared helpers of the store tests: the binary, a fresh store, the busybox rootfs, tools.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

/// Fails the test with a clear message when a tool the test drives is missing.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: run scripts/install-deps.sh (as root) first"
    );
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it compares owners, and starts daemons)"
    );
}

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

/// The offline busybox root filesystem tarball, written into `dir`.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    require_tool("busybox");
    let out = dir.join("busybox.tar");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scripts/busybox-rootfs.sh");
    let script = if script.exists() {
        script
    } else {
        PathBuf::from("/work/shared/scripts/busybox-rootfs.sh")
    };
    run("bash", &[script.to_str().unwrap(), out.to_str().unwrap()]);
    out
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
