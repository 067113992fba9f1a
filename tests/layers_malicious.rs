//! Malicious layers (testdata/layers, made by make-malicious.py): every way out of the target
//! is refused with an error naming the entry, and nothing outside the target changes.

mod layers_support;

use layers_support::fingerprint;
use rbuild::snapshot::{
    ExtractOptions, OverlayXattrs, SnapshotError, WhiteoutHandling, extract_layer,
};
use std::fs;
use std::path::{Path, PathBuf};

const ABSOLUTE_ESCAPES: [&str; 2] = [
    "/tmp/rbuild-layers-escape-absolute",
    "/tmp/rbuild-layers-escape-symlink",
];

fn layer(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/layers")
        .join(name)
}

/// Extracts `layers` in order into DIR/target beside DIR/outside; returns the last result and
/// asserts that nothing outside the target changed.
fn extract_beside_outside(
    layers: &[&str],
    options: &ExtractOptions,
) -> (Result<(), SnapshotError>, PathBuf, tempfile::TempDir) {
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("target");
    fs::create_dir_all(base.path().join("outside/sub")).unwrap();
    fs::create_dir(&target).unwrap();
    fs::write(base.path().join("outside/secret"), "secret").unwrap();
    fs::write(base.path().join("outside/sub/file"), "file").unwrap();
    for path in ABSOLUTE_ESCAPES {
        let _ = fs::remove_file(path);
    }
    let outside_before = fingerprint(&base.path().join("outside"));
    let mut result = Ok(());
    for name in layers {
        let file = fs::File::open(layer(name)).unwrap();
        result = extract_layer(file, &target, options).map(|_| ());
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        fingerprint(&base.path().join("outside")),
        outside_before,
        "{layers:?} changed outside/"
    );
    let top: Vec<_> = fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 2, "{layers:?} created {top:?} beside the target");
    for path in ABSOLUTE_ESCAPES {
        assert!(!Path::new(path).exists(), "{layers:?} wrote {path}");
    }
    (result, target, base)
}

fn assert_refused(layers: &[&str], entry: &str, options: &ExtractOptions) {
    let (result, _, _base) = extract_beside_outside(layers, options);
    match result {
        Err(SnapshotError::Refused {
            entry: refused,
            reason,
        }) => {
            assert_eq!(refused, entry, "{layers:?}: refused {refused} ({reason})");
            let message = SnapshotError::Refused {
                entry: refused,
                reason,
            }
            .to_string();
            assert!(message.contains(entry), "{message}");
        }
        other => panic!("{layers:?}: expected entry {entry} refused, got {other:?}"),
    }
}

const ESCAPES: [(&[&str], &str); 13] = [
    (&["dotdot.tar"], "../escaped"),
    (&["dotdot-nested.tar"], "a/../../escaped"),
    (&["absolute.tar"], "/tmp/rbuild-layers-escape-absolute"),
    (&["symlink-relative.tar"], "link/pwned"),
    (
        &["symlink-absolute.tar"],
        "link/rbuild-layers-escape-symlink",
    ),
    (&["symlink-chain.tar"], "a/outside/pwned"),
    (
        &["symlink-lower-1.tar", "symlink-lower-2.tar"],
        "link/pwned",
    ),
    (&["hardlink-dotdot.tar"], "h"),
    (&["hardlink-absolute.tar"], "h"),
    (&["hardlink-through-symlink.tar"], "h"),
    (&["whiteout-through-symlink.tar"], "link/.wh.secret"),
    (&["opaque-through-symlink.tar"], "link/.wh..wh..opq"),
    (&["whiteout-dotdot.tar"], ".wh..."),
];

#[test]
fn every_escape_is_refused_when_whiteouts_are_applied() {
    for (layers, entry) in ESCAPES {
        assert_refused(layers, entry, &ExtractOptions::default());
    }
}

#[test]
fn every_escape_is_refused_when_whiteouts_are_kept_for_overlay() {
    layers_support::require_root();
    let options = ExtractOptions {
        whiteouts: WhiteoutHandling::Overlay(OverlayXattrs::Trusted),
        restore_owners: true,
    };
    for (layers, entry) in ESCAPES {
        assert_refused(layers, entry, &options);
    }
}

#[test]
fn symlinks_are_replaced_by_later_entries_never_written_through() {
    let (result, target, _base) = extract_beside_outside(
        &["overwrite-through-symlink.tar"],
        &ExtractOptions::default(),
    );
    result.unwrap();
    assert_eq!(fs::read_to_string(target.join("f")).unwrap(), "replaced");
    assert!(fs::symlink_metadata(target.join("d")).unwrap().is_dir());
    assert_eq!(
        fs::read_to_string(target.join("d/inner")).unwrap(),
        "inside"
    );
}

#[test]
fn symlinks_inside_the_target_are_followed() {
    // usrmerge-style layers: `bin -> usr/bin`, then an entry under bin/.
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder
        .append_data(&mut dir.clone(), "usr/", std::io::empty())
        .unwrap();
    builder
        .append_data(&mut dir, "usr/bin/", std::io::empty())
        .unwrap();
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder.append_link(&mut link, "bin", "usr/bin").unwrap();
    builder
        .append_link(&mut link, "usr/sbin", "../usr/./bin")
        .unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o755);
    file.set_size(2);
    builder
        .append_data(&mut file.clone(), "bin/sh", &b"sh"[..])
        .unwrap();
    builder
        .append_data(&mut file, "usr/sbin/init", &b"in"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let (target, _base) = {
        let base = tempfile::tempdir().unwrap();
        (base.path().to_path_buf(), base)
    };
    extract_layer(tar.as_slice(), &target, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(target.join("usr/bin/sh")).unwrap(), "sh");
    assert_eq!(
        fs::read_to_string(target.join("usr/bin/init")).unwrap(),
        "in"
    );
}
