//! Layer writer → extractor round trips: every kind of file, long names, xattrs, hardlinks,
//! determinism, SOURCE_DATE_EPOCH, compression detection and whiteouts applied or kept.

mod layers_support;

use layers_support::{list_tar, set_xattr, snapshot};
use rbuild::snapshot::{
    Compression, ExtractOptions, OverlayXattrs, WhiteoutHandling, WriteOptions, extract_layer,
    write_layer,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

fn write(root: &Path, options: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let digest = write_layer(root, &mut out, options).unwrap();
    assert_eq!(digest.size, out.len() as u64);
    let expected = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
    );
    assert_eq!(digest.diff_id.to_string(), expected);
    out
}

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/deep")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/deep/big"), vec![7u8; 3 * 1024 * 1024 + 17]).unwrap();
    fs::set_permissions(root.join("etc/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("setuid"), "x").unwrap();
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::hard_link(root.join("etc/passwd"), root.join("passwd-link")).unwrap();
    symlink("etc/passwd", root.join("relative-link")).unwrap();
    symlink("/etc/passwd", root.join("absolute-link")).unwrap();
    let long_dir = root.join("l".repeat(120));
    fs::create_dir(&long_dir).unwrap();
    fs::write(long_dir.join("m".repeat(200)), "long").unwrap();
    symlink("t".repeat(150), root.join("long-target")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    set_xattr(
        &root.join("etc/passwd"),
        "user.note",
        b"\x00binary\xffvalue",
    );
}

#[test]
fn tree_round_trips_through_a_layer() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    // Old, distinct mtimes, so that restoring them (directories after their content) shows.
    let entries: Vec<_> = walkdir::WalkDir::new(src.path())
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        let t = nix::sys::time::TimeSpec::new(1_500_000_000 + i as i64 * 1000, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            entry.path(),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
    let tar = write(src.path(), &WriteOptions::default());
    let dst = tempfile::tempdir().unwrap();
    let summary = extract_layer(tar.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
    assert_eq!(summary.compression, Compression::Uncompressed);
    assert_eq!(summary.tar_size, tar.len() as u64);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(snapshot(dst.path()), snapshot(src.path()));
    // mtimes restored, directories and symlinks included.
    for entry in entries {
        let rel = entry.path().strip_prefix(src.path()).unwrap();
        let a = fs::symlink_metadata(entry.path()).unwrap();
        let b = fs::symlink_metadata(dst.path().join(rel)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(a.mtime(), b.mtime(), "{}", rel.display());
    }
}

#[test]
fn layer_tar_is_deterministic_and_docker_shaped() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let options = WriteOptions {
        source_date_epoch: Some(1_000_000),
        overlay_upper: false,
    };
    let first = write(src.path(), &options);
    // Touching every file changes mtimes, which the epoch clamps away.
    for entry in walkdir::WalkDir::new(src.path()).min_depth(1) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            fs::OpenOptions::new()
                .append(true)
                .open(entry.path())
                .unwrap()
                .write_all(b"")
                .unwrap();
        }
    }
    let second = write(src.path(), &options);
    assert_eq!(first, second);

    let entries = list_tar(&first);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| {
        n.trim_end_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    assert_eq!(names, sorted, "entries in path order");
    assert!(names.contains(&"etc/"), "directories end in /: {names:?}");
    let link = entries.iter().find(|e| e.0 == "passwd-link").unwrap();
    assert_eq!(
        (link.1, link.5.as_str()),
        ('1', "etc/passwd"),
        "hardlink to the first path"
    );
    let long = format!("{}/{}", "l".repeat(120), "m".repeat(200));
    assert!(names.contains(&long.as_str()), "long name via PAX");
    let target = entries.iter().find(|e| e.0 == "long-target").unwrap();
    assert_eq!(target.5, "t".repeat(150));
    let mut archive = tar::Archive::new(first.as_slice());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert!(h.mtime().unwrap() <= 1_000_000);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
    }
    // GNU tar reads it and agrees on the listing.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("l.tar"), &first).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(dir.path().join("l.tar"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, names);
}

#[test]
fn gzip_and_zstd_layers_are_detected_by_content() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let tar = write(src.path(), &WriteOptions::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let plain = extract_layer(
        tar.as_slice(),
        tempfile::tempdir().unwrap().path(),
        &ExtractOptions::default(),
    )
    .unwrap();
    for (bytes, expected) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
        let dst = tempfile::tempdir().unwrap();
        let summary =
            extract_layer(bytes.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
        assert_eq!(summary.compression, expected);
        assert_eq!(
            summary.diff_id, plain.diff_id,
            "DiffID is the uncompressed digest"
        );
        assert_eq!(snapshot(dst.path()), snapshot(src.path()));
    }
}

/// A tar built entry by entry, for layers our writer would never produce.
pub fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1);
        if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
            h.set_size(0);
            builder
                .append_link(&mut h, name, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            h.set_size(data.len() as u64);
            builder.append_data(&mut h, name, *data).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn whiteouts_delete_lower_content_and_opaque_dirs_keep_only_this_layer() {
    use tar::EntryType::{Directory, Regular};
    let dst = tempfile::tempdir().unwrap();
    let lower = tar_of(&[
        ("a/", Directory, b""),
        ("a/keep", Regular, b"1"),
        ("a/gone", Regular, b"2"),
        ("d/", Directory, b""),
        ("d/sub/", Directory, b""),
        ("d/sub/x", Regular, b"3"),
        ("o/", Directory, b""),
        ("o/old", Regular, b"4"),
        ("o/old-dir/", Directory, b""),
        ("o/old-dir/y", Regular, b"5"),
        ("o/.kept/", Directory, b""),
        ("o/.kept/lower", Regular, b"8"),
    ]);
    extract_layer(lower.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
    let upper = tar_of(&[
        ("a/.wh.gone", Regular, b""),
        (".wh.d", Regular, b""),
        ("o/", Directory, b""),
        ("o/.kept/", Directory, b""),
        ("o/.kept/upper", Regular, b"9"),
        ("o/.new-before-marker", Regular, b"6"),
        ("o/.wh..wh..opq", Regular, b""),
        ("o/new", Regular, b"7"),
        ("a/.wh.never-existed", Regular, b""),
        ("missing/.wh.x", Regular, b""),
    ]);
    extract_layer(upper.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
    let tree: Vec<String> = snapshot(dst.path()).into_keys().collect();
    assert_eq!(
        tree,
        [
            "a",
            "a/keep",
            "o",
            "o/.kept",
            "o/.kept/upper",
            "o/.new-before-marker",
            "o/new"
        ]
    );
}

#[test]
fn overlay_mode_keeps_whiteouts_as_overlay_whiteouts() {
    layers_support::require_root();
    use tar::EntryType::{Directory, Regular};
    let dst = tempfile::tempdir().unwrap();
    let upper = tar_of(&[
        ("a/", Directory, b""),
        ("a/.wh.gone", Regular, b""),
        ("o/", Directory, b""),
        ("o/.wh..wh..opq", Regular, b""),
        ("o/new", Regular, b"7"),
    ]);
    let options = ExtractOptions {
        whiteouts: WhiteoutHandling::Overlay(OverlayXattrs::Trusted),
        restore_owners: true,
    };
    extract_layer(upper.as_slice(), dst.path(), &options).unwrap();
    let tree = snapshot(dst.path());
    assert_eq!(tree["a/gone"].kind, "char");
    assert_eq!(tree["a/gone"].content, "0:0");
    assert_eq!(
        tree["o"].xattrs,
        [("trusted.overlay.opaque".to_string(), b"y".to_vec())]
    );
    // Written back as an upper dir, it is the same layer.
    let rewritten = write(
        dst.path(),
        &WriteOptions {
            source_date_epoch: None,
            overlay_upper: true,
        },
    );
    let names: Vec<String> = list_tar(&rewritten).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["a/", "a/.wh.gone", "o/", "o/.wh..wh..opq", "o/new"]);
}

#[test]
fn rootless_overlay_opaque_xattr_becomes_an_opaque_marker() {
    let upper = tempfile::tempdir().unwrap();
    fs::create_dir(upper.path().join("d")).unwrap();
    fs::write(upper.path().join("d/f"), "f").unwrap();
    set_xattr(&upper.path().join("d"), "user.overlay.opaque", b"y");
    set_xattr(&upper.path().join("d"), "user.kept", b"1");
    let options = WriteOptions {
        source_date_epoch: None,
        overlay_upper: true,
    };
    let tar = write(upper.path(), &options);
    let names: Vec<String> = list_tar(&tar).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["d/", "d/.wh..wh..opq", "d/f"]);
    let dst = tempfile::tempdir().unwrap();
    extract_layer(tar.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
    assert_eq!(
        layers_support::xattrs(&dst.path().join("d")),
        [("user.kept".to_string(), b"1".to_vec())]
    );
    // Not an upper dir: no marker (and overlay xattrs are never written either way).
    let plain = write(upper.path(), &WriteOptions::default());
    let names: Vec<String> = list_tar(&plain).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["d/", "d/f"]);
}

#[test]
fn sockets_are_left_out_as_docker_leaves_them_out() {
    let src = tempfile::tempdir().unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(src.path().join("daemon.sock")).unwrap();
    fs::write(src.path().join("file"), "f").unwrap();
    let names: Vec<String> = list_tar(&write(src.path(), &WriteOptions::default()))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["file"]);
}
