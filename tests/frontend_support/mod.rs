//! Shared by the frontend tests: where the shared reference data lives.

use std::path::PathBuf;

/// `../shared` beside the repository (RBUILD_SHARED_DIR overrides it, e.g. in a git worktree
/// placed elsewhere).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("RBUILD_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}
