//! Kept directory listings: an unchanged context is walked without reading its directories,
//! and any entry added, removed or replaced is seen.

mod context_support;

use context_support::write;
use rbuild::context::{Context, FileKind, SelectOptions, Selection};
use std::path::Path;
use std::time::Duration;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for index in 0..30 {
        write(
            dir.path(),
            &format!("src/mod{}/file{index}.txt", index % 3),
            "x\n",
        );
    }
    write(dir.path(), ".dockerignore", "**/*.log\n");
    write(dir.path(), "src/mod1/debug.log", "noise\n");
    // Directories changed within the timestamp granularity are never remembered; let the
    // fixture age past it.
    std::thread::sleep(Duration::from_millis(100));
    dir
}

/// Selects "." with listings kept in `cache_dir`, saves them, and returns the selected
/// paths with their kinds and the number of directories read.
fn walk(context_dir: &Path, cache_dir: &Path) -> (Vec<(String, FileKind)>, u64) {
    let context = Context::open(context_dir, None).unwrap();
    context.keep_listings_in(cache_dir);
    let selection = context.select(".", &SelectOptions::default()).unwrap();
    context.save_listings().unwrap();
    (entries(&selection), context.directories_read())
}

fn entries(selection: &Selection) -> Vec<(String, FileKind)> {
    selection
        .matches
        .iter()
        .flat_map(|m| m.entries.iter().map(|e| (e.path.clone(), e.kind)))
        .collect()
}

#[test]
fn unchanged_context_is_walked_without_reading_a_directory() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let (first, read) = walk(dir.path(), cache_dir.path());
    assert_eq!(read, 5, "the root, src and its three folders");
    assert!(!first.iter().any(|(path, _)| path.ends_with(".log")));

    let (second, read) = walk(dir.path(), cache_dir.path());
    assert_eq!(read, 0);
    assert_eq!(second, first);

    // Without kept listings the walk is the same.
    let plain = Context::open(dir.path(), None).unwrap();
    let selection = plain.select(".", &SelectOptions::default()).unwrap();
    assert_eq!(entries(&selection), first);
}

#[test]
fn added_removed_and_replaced_entries_are_seen() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let (before, _) = walk(dir.path(), cache_dir.path());
    write(dir.path(), "src/mod2/new.txt", "new\n");
    std::fs::remove_file(dir.path().join("src/mod0/file3.txt")).unwrap();
    std::fs::remove_file(dir.path().join("src/mod1/file4.txt")).unwrap();
    std::fs::create_dir(dir.path().join("src/mod1/file4.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let (after, read) = walk(dir.path(), cache_dir.path());
    assert_eq!(read, 4, "the three changed folders and the new one");
    let mut expected = before.clone();
    expected.retain(|(path, _)| path != "src/mod0/file3.txt");
    for (path, kind) in expected.iter_mut() {
        if path == "src/mod1/file4.txt" {
            *kind = FileKind::Dir;
        }
    }
    let at = expected
        .iter()
        .position(|(path, _)| path.as_str() > "src/mod2/new.txt")
        .unwrap_or(expected.len());
    expected.insert(at, ("src/mod2/new.txt".into(), FileKind::File));
    assert_eq!(after, expected);

    // What was read is remembered in turn.
    let (again, read) = walk(dir.path(), cache_dir.path());
    assert_eq!((again, read), (after, 0));
}

#[test]
fn unreadable_listings_file_is_ignored() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let (good, _) = walk(dir.path(), cache_dir.path());
    let file = cache_dir.path().join("context-listings");
    let mut bytes = std::fs::read(&file).unwrap();
    for cut in [bytes.len() - 1, 20, 9] {
        std::fs::write(&file, &bytes[..cut]).unwrap();
        let (walked, read) = walk(dir.path(), cache_dir.path());
        assert_eq!((walked, read), (good.clone(), 5), "cut at {cut}");
        std::fs::write(&file, &bytes[..cut]).unwrap();
    }
    // A huge entry count must not send the reader far past the end.
    bytes[8 + 48..8 + 52].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let (walked, read) = walk(dir.path(), cache_dir.path());
    assert_eq!((walked, read), (good, 5));
}
