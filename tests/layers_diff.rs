//! Overlay diffs (issue 4): changes made through a real overlayfs mount over an extracted busybox
//! root filesystem; the upper dir written as a layer is what Docker would commit, and applying it
//! on the lower tree gives exactly the merged tree.

mod layers_support;
#[path = "support/tools.rs"]
mod tools;

use layers_support::{list_tar, require_root, set_xattr, snapshot};
use rbuild::snapshot::{ExtractOptions, WriteOptions, extract_layer, write_layer};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Unmounts the overlay when dropped, so a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Mounted {
    fn overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Mounted {
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting overlayfs on {}: {e}", merged.display()));
        Mounted(merged.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("unmounting {}: {e}", self.0.display());
        }
    }
}

/// security.capability granting cap_net_bind_service (VFS_CAP_REVISION_2, effective).
const NET_BIND_CAPABILITY: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The lower tree: busybox plus the files the changes act on.
fn make_lower(base: &Path, lower: &Path) {
    let busybox = fs::File::open(tools::busybox_tar(base)).unwrap();
    extract_layer(busybox, lower, &ExtractOptions::default()).unwrap();
    fs::create_dir_all(lower.join("data/dir-to-delete/sub")).unwrap();
    fs::create_dir_all(lower.join("dir-to-file")).unwrap();
    fs::create_dir_all(lower.join("recreated")).unwrap();
    for name in ["modify", "delete", "chmod", "chown", "file-to-dir"] {
        fs::write(lower.join("data").join(name), format!("lower {name}\n")).unwrap();
    }
    fs::write(lower.join("data/dir-to-delete/sub/f"), "x").unwrap();
    fs::write(lower.join("dir-to-file/inner"), "x").unwrap();
    fs::write(lower.join("recreated/old"), "old").unwrap();
}

/// Every kind of change, made through the merged dir.
fn change(merged: &Path) {
    let data = merged.join("data");
    fs::write(data.join("new"), "created\n").unwrap();
    fs::write(data.join("modify"), "modified\n").unwrap();
    fs::remove_file(data.join("delete")).unwrap();
    fs::remove_dir_all(data.join("dir-to-delete")).unwrap();
    fs::remove_dir_all(merged.join("dir-to-file")).unwrap();
    fs::write(merged.join("dir-to-file"), "now a file\n").unwrap();
    fs::remove_file(data.join("file-to-dir")).unwrap();
    fs::create_dir(data.join("file-to-dir")).unwrap();
    fs::write(data.join("file-to-dir/inside"), "inside\n").unwrap();
    fs::remove_dir_all(merged.join("recreated")).unwrap();
    fs::create_dir(merged.join("recreated")).unwrap();
    fs::write(merged.join("recreated/new"), "new\n").unwrap();
    fs::set_permissions(data.join("chmod"), fs::Permissions::from_mode(0o4750)).unwrap();
    std::os::unix::fs::lchown(data.join("chown"), Some(1000), Some(1000)).unwrap();
    fs::hard_link(data.join("new"), data.join("new-link")).unwrap();
    fs::hard_link(merged.join("bin/busybox"), merged.join("bin/bb-link")).unwrap();
    symlink("new", data.join("new-symlink")).unwrap();
    set_xattr(&data.join("new"), "user.comment", b"made in the container");
    fs::write(merged.join("usr/bin/ping"), "pretend ping\n").unwrap();
    set_xattr(
        &merged.join("usr/bin/ping"),
        "security.capability",
        &NET_BIND_CAPABILITY,
    );
}

#[test]
fn overlay_upper_dir_becomes_the_layer_docker_would_commit() {
    require_root();
    let base = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged, fresh] =
        ["lower", "upper", "work", "merged", "fresh"].map(|d| base.path().join(d));
    for dir in [&lower, &upper, &work, &merged, &fresh] {
        fs::create_dir(dir).unwrap();
    }
    make_lower(base.path(), &lower);
    let mut lower_tar = Vec::new();
    write_layer(&lower, &mut lower_tar, &WriteOptions::default()).unwrap();

    let merged_tree = {
        let _mount = Mounted::overlay(&lower, &upper, &work, &merged);
        change(&merged);
        snapshot(&merged)
    };

    let options = WriteOptions {
        source_date_epoch: None,
        overlay_upper: true,
    };
    let mut diff = Vec::new();
    write_layer(&upper, &mut diff, &options).unwrap();
    let entries = list_tar(&diff);
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("no entry {name} in {entries:#?}"))
    };
    // Deletions are empty regular `.wh.` files; recreated directories are opaque.
    for whiteout in [
        "data/.wh.delete",
        "data/.wh.dir-to-delete",
        "recreated/.wh..wh..opq",
        "data/file-to-dir/.wh..wh..opq",
    ] {
        let e = find(whiteout);
        assert_eq!((e.1, e.6), ('0', 0), "{whiteout}");
    }
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let opq = names
        .iter()
        .position(|n| *n == "recreated/.wh..wh..opq")
        .unwrap();
    assert_eq!(
        names.get(opq - 1),
        Some(&"recreated/"),
        "opaque marker right after its directory"
    );
    assert!(!names.contains(&"recreated/old") && !names.contains(&"dir-to-file/inner"));
    assert!(
        entries.iter().all(|e| e.1 != '3'),
        "no character devices: {entries:#?}"
    );
    assert_eq!(find("dir-to-file").1, '0');
    assert_eq!(find("data/file-to-dir/").1, '5');
    let chmod = find("data/chmod");
    assert_eq!(chmod.2, 0o4750);
    let chown = find("data/chown");
    assert_eq!((chown.3, chown.4), (1000, 1000));
    let symlink = find("data/new-symlink");
    assert_eq!((symlink.1, symlink.5.as_str()), ('2', "new"));
    let link = find("data/new-link");
    assert_eq!((link.1, link.5.as_str()), ('1', "data/new"));
    let (bb, busybox) = (find("bin/bb-link"), find("bin/busybox"));
    assert_eq!(
        (bb.1, busybox.1, busybox.5.as_str()),
        ('0', '1', "bin/bb-link")
    );
    assert!(
        !names.contains(&"bin/sh"),
        "unchanged files are not in the diff"
    );
    // xattrs travel as PAX records; overlay's own never do.
    let mut archive = tar::Archive::new(diff.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let records: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .unwrap()
            .map(|records| {
                records
                    .map(|r| r.unwrap())
                    .map(|r| (r.key().unwrap().to_string(), r.value_bytes().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            records.iter().all(|(k, _)| !k.contains(".overlay.")),
            "{name}: {records:?}"
        );
        match name.as_str() {
            "data/new" => assert_eq!(
                records,
                [(
                    "SCHILY.xattr.user.comment".into(),
                    b"made in the container".to_vec()
                )]
            ),
            "usr/bin/ping" => {
                assert_eq!(
                    records,
                    [(
                        "SCHILY.xattr.security.capability".into(),
                        NET_BIND_CAPABILITY.to_vec()
                    )]
                )
            }
            _ => {}
        }
    }

    // lower + diff = merged.
    extract_layer(lower_tar.as_slice(), &fresh, &ExtractOptions::default()).unwrap();
    let summary = extract_layer(diff.as_slice(), &fresh, &ExtractOptions::default()).unwrap();
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    let fresh_tree = snapshot(&fresh);
    for (path, node) in &merged_tree {
        assert_eq!(fresh_tree.get(path), Some(node), "{path}");
    }
    assert_eq!(
        fresh_tree.len(),
        merged_tree.len(),
        "extra paths: {:?}",
        fresh_tree
            .keys()
            .filter(|k| !merged_tree.contains_key(*k))
            .collect::<Vec<_>>()
    );
}
