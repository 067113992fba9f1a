//! A layer written over an earlier one (`write_layer_over`: the entries that changed from a
//! tree, the rest copied from the earlier tar) is byte for byte the layer of the whole tree.

mod layers_support;

use layers_support::set_xattr;
use rbuild::snapshot::{BaseLayer, WriteOptions, write_layer, write_layer_over};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

fn layer_of(root: &Path) -> Vec<u8> {
    written(root).0
}

/// The layer of `root`, and whether it is mergeable.
fn written(root: &Path) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let digest = write_layer(root, &mut out, &WriteOptions::default()).unwrap();
    (out, digest.mergeable)
}

/// Names that sort differently by component than by whole path ("a/x" before "a-b"), long
/// names and link targets (PAX records), an xattr, a large file.
fn first_tree(root: &Path) {
    for dir in ["a/x", "a-b", "c/deep/er"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (index, file) in ["a/x/1", "a/x/2", "a/z", "a-b/k", "c/deep/er/f", "top"]
        .iter()
        .enumerate()
    {
        fs::write(root.join(file), format!("content {index}\n")).unwrap();
    }
    fs::write(root.join("c/big"), vec![9u8; 2 * 1024 * 1024 + 3]).unwrap();
    let long = root.join("c").join("n".repeat(150));
    fs::write(&long, "long name").unwrap();
    symlink("t".repeat(120), root.join("a/long-target")).unwrap();
    set_xattr(&root.join("a/z"), "user.note", b"kept");
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let path = entry.unwrap().into_path();
        set_mtime(&path, 1_600_000_000);
    }
}

fn set_mtime(path: &Path, seconds: i64) {
    let time = nix::sys::time::TimeSpec::new(seconds, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Copies `paths` of `from` into `to` with their parent directories, all with their metadata.
fn copy_with_parents(from: &Path, to: &Path, paths: &[&str]) {
    let status = Command::new("cp")
        .args(["-a", "--parents"])
        .args(paths)
        .arg(to)
        .current_dir(from)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn changed_entries_over_a_base_make_the_same_layer_as_the_whole_tree() {
    let work = tempfile::tempdir().unwrap();
    let (tree, delta) = (work.path().join("tree"), work.path().join("delta"));
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&delta).unwrap();
    first_tree(&tree);
    let base_path = work.path().join("base.tar");
    let (bytes, mergeable) = written(&tree);
    assert!(mergeable);
    fs::write(&base_path, bytes).unwrap();
    let base = BaseLayer::new(base_path);

    // Same size and mtime, other content; a new file in an old directory and a new
    // directory; a directory's mode changed.
    fs::write(tree.join("a/x/1"), "CONTENT 0\n").unwrap();
    set_mtime(&tree.join("a/x/1"), 1_600_000_000);
    fs::write(tree.join("a/x/15"), "new\n").unwrap();
    fs::create_dir(tree.join("a/y")).unwrap();
    fs::write(tree.join("a/y/new"), "new dir\n").unwrap();
    fs::set_permissions(tree.join("c/deep"), fs::Permissions::from_mode(0o700)).unwrap();
    for dir in ["a/x", "a", "c/deep"] {
        set_mtime(&tree.join(dir), 1_700_000_000);
    }
    copy_with_parents(&tree, &delta, &["a/x/1", "a/x/15", "a/y", "c/deep"]);
    // `c/deep` was copied whole; its content is unchanged and comes from the base.
    fs::remove_dir_all(delta.join("c/deep/er")).unwrap();
    // Copying into them changed the times of the delta's own directories.
    for dir in ["a/x", "a", "c/deep"] {
        set_mtime(&delta.join(dir), 1_700_000_000);
    }
    set_mtime(&delta.join("c"), 1_600_000_000);

    let mut over = Vec::new();
    let digest = write_layer_over(&delta, &base, &mut over, &WriteOptions::default()).unwrap();
    let whole = layer_of(&tree);
    assert!(
        over == whole,
        "the merged layer differs from the whole tree's"
    );
    assert_eq!(digest.size, whole.len() as u64);
}

#[test]
fn a_layer_with_hard_links_or_whiteouts_is_not_a_base() {
    let work = tempfile::tempdir().unwrap();
    let (tree, delta) = (work.path().join("tree"), work.path().join("delta"));
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&delta).unwrap();
    fs::write(tree.join("file"), "x").unwrap();
    fs::write(delta.join("other"), "y").unwrap();
    let over = |bytes: Vec<u8>| {
        let path = work.path().join("base.tar");
        fs::write(&path, bytes).unwrap();
        let mut out = Vec::new();
        write_layer_over(
            &delta,
            &BaseLayer::new(path),
            &mut out,
            &WriteOptions::default(),
        )
        .map(|_| out)
    };

    fs::hard_link(tree.join("file"), tree.join("link")).unwrap();
    let (linked, mergeable) = written(&tree);
    assert!(!mergeable, "hard links make a layer unmergeable");
    let error = over(linked).unwrap_err().to_string();
    assert!(error.contains("Link"), "{error}");

    fs::remove_file(tree.join("link")).unwrap();
    fs::write(tree.join(".wh.gone"), "").unwrap();
    let error = over(layer_of(&tree)).unwrap_err().to_string();
    assert!(error.contains("whiteout"), "{error}");

    fs::remove_file(tree.join(".wh.gone")).unwrap();
    let (plain, mergeable) = written(&tree);
    assert!(mergeable);
    assert!(over(plain.clone()).is_ok());
    // Cut inside an entry: an error, not a short layer.
    let cut = plain[..BLOCK_AND_A_BIT].to_vec();
    assert!(over(cut).is_err());
    // A tar larger than the readers' chunks, read across chunk boundaries.
    fs::write(tree.join("big"), vec![3u8; 9 * 1024 * 1024 + 5]).unwrap();
    let (big, _) = written(&tree);
    let merged = over(big).unwrap();
    fs::copy(delta.join("other"), tree.join("other")).unwrap();
    set_mtime(&tree.join("other"), mtime_of(&delta.join("other")));
    assert!(merged == layer_of(&tree), "merged across chunks differs");
}

const BLOCK_AND_A_BIT: usize = 700;

fn mtime_of(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().mtime()
}
