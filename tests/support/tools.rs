//! Checks for what a test needs (root, tools) and the offline busybox base image: one copy,
//! included by every area's support module.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails the test with a clear message unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it mounts, runs sandboxes, compares owners or starts daemons)"
    );
}

/// Fails the test with a clear message when a tool it drives is missing.
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

/// Writes the offline busybox root filesystem tarball (../shared/scripts/busybox-rootfs.sh)
/// into `dir` and returns its path.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    require_tool("busybox");
    let out = dir.join("busybox.tar");
    // ../shared beside the checkout (or beside a worktree's parent).
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = ["../shared", "../../shared"]
        .iter()
        .map(|shared| here.join(shared).join("scripts/busybox-rootfs.sh"))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "../shared/scripts/busybox-rootfs.sh not found beside {}",
                here.display()
            )
        });
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}
