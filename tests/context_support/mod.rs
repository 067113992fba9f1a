//! Shared helpers of the context tests: contexts written file by file into temporary folders.

use std::path::Path;

/// Writes `content` to `path` under `root`, creating its parent folders.
pub fn write(root: &Path, path: &str, content: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}
