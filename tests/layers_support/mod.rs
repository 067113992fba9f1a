//! Helpers shared by the layer tests: tree snapshots for comparison, xattrs, root checks.
#![allow(dead_code)] // each test binary uses a different subset

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Everything a layer must preserve about one file, mtimes aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The tree under `root` as path → node; file contents as sha256, links as targets, devices as
/// major:minor, hardlinked files numbered by inode group.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = meta.file_type();
        let (kind, content) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(entry.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_file() {
            let mut content = hex::encode(Sha256::digest(fs::read(entry.path()).unwrap()));
            if meta.nlink() > 1 {
                let first = inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_insert_with(|| rel.clone());
                content = format!("{content} linked-with {first}");
            }
            ("file", content)
        } else if ft.is_char_device() {
            (
                "char",
                format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev())),
            )
        } else if ft.is_block_device() {
            (
                "block",
                format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev())),
            )
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        nodes.insert(
            rel,
            Node {
                kind,
                mode,
                uid: meta.uid(),
                gid: meta.gid(),
                content,
                xattrs: xattrs(entry.path()),
            },
        );
    }
    nodes
}

/// The extended attributes of a path (not following a final symlink), sorted.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let key = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(n >= 0, "lgetxattr {}", path.display());
        value.truncate(n as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    out.sort();
    out
}

pub fn set_xattr(path: &Path, key: &str, value: &[u8]) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {key} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (owners, device nodes, trusted xattrs, overlay mounts); run it as root"
    );
}

/// Entries of a layer tar as (name, type byte, mode, uid, gid, link target, size), in order.
pub fn list_tar(bytes: &[u8]) -> Vec<(String, char, u32, u64, u64, String, u64)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type().as_byte() as char,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default(),
                e.size(),
            )
        })
        .collect()
}

/// Every path under `dir` with its size and mtime: what a test compares to show nothing outside
/// a target changed.
pub fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, i64, u32)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.path().to_string_lossy().into_owned(),
                (m.len(), m.mtime(), m.mode()),
            )
        })
        .collect()
}
