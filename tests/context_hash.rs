//! Content hashes: what changes them and what does not, the stat cache that spares a rebuild
//! from reading any file, and the report of changed paths.

mod context_support;

use context_support::write;
use rbuild::context::{Context, PathChange, SelectOptions, SourceHash, StatCache, hash_selection};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for index in 0..40 {
        write(
            dir.path(),
            &format!("src/mod{}/file{index}.txt", index % 4),
            &format!("content {index}\n"),
        );
    }
    write(dir.path(), "README.md", "readme\n");
    std::os::unix::fs::symlink("README.md", dir.path().join("src/readme-link")).unwrap();
    // Files younger than the file system's timestamp granularity are never trusted by the
    // cache ("racy clean"); let the fixture age past it.
    std::thread::sleep(Duration::from_millis(100));
    dir
}

fn hash(context_dir: &Path, source: &str, cache: &StatCache) -> SourceHash {
    let context = Context::open(context_dir, None).unwrap();
    let selection = context.select(source, &SelectOptions::default()).unwrap();
    hash_selection(&selection, cache).unwrap()
}

#[test]
fn rebuild_with_nothing_changed_reads_no_file() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = StatCache::open(cache_dir.path()).unwrap();
    let first = hash(dir.path(), ".", &cache);
    assert_eq!(cache.stats().files_read, 41);
    cache.save().unwrap();

    // A new process: the cache comes back from disk.
    let reopened = StatCache::open(cache_dir.path()).unwrap();
    let second = hash(dir.path(), ".", &reopened);
    assert_eq!(second, first);
    let stats = reopened.stats();
    assert_eq!(
        (stats.files_read, stats.bytes_read, stats.cache_hits),
        (0, 0, 41)
    );
}

#[test]
fn only_selected_files_are_read() {
    let dir = project();
    let cache = StatCache::in_memory();
    let one = hash(dir.path(), "src/mod1/file5.txt", &cache);
    assert_eq!(one.entries.len(), 1);
    assert_eq!(cache.stats().files_read, 1);
    assert_eq!(cache.stats().bytes_read, "content 5\n".len() as u64);
}

#[test]
fn digest_ignores_mtime_but_sees_content_mode_and_link_target() {
    let dir = project();
    let cache = StatCache::in_memory();
    let base = hash(dir.path(), "src", &cache);

    // A new mtime alone: the file is read again, the digest stays.
    let file = dir.path().join("src/mod2/file6.txt");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let touched = hash(dir.path(), "src", &cache);
    assert_eq!(touched.digest, base.digest);
    assert!(touched.changes_since(&base).is_empty());

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let chmodded = hash(dir.path(), "src", &cache);
    assert_ne!(chmodded.digest, base.digest);
    assert_eq!(
        chmodded.changes_since(&base),
        [PathChange::Changed("src/mod2/file6.txt".into())]
    );

    std::fs::remove_file(dir.path().join("src/readme-link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", dir.path().join("src/readme-link")).unwrap();
    let relinked = hash(dir.path(), "src", &cache);
    assert!(
        relinked
            .changes_since(&chmodded)
            .contains(&PathChange::Changed("src/readme-link".into()))
    );

    // The same tree elsewhere, written at another time, hashes the same.
    let copy = project();
    let other = hash(copy.path(), "src", &StatCache::in_memory());
    assert_eq!(other.digest, base.digest);
}

#[test]
fn changed_content_with_same_size_and_mtime_is_noticed() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = StatCache::open(cache_dir.path()).unwrap();
    let before = hash(dir.path(), ".", &cache);
    cache.save().unwrap();

    let file = dir.path().join("src/mod3/file7.txt");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "CONTENT 7\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    write(dir.path(), "src/new.txt", "new\n");
    std::fs::remove_file(dir.path().join("src/mod0/file0.txt")).unwrap();

    let reopened = StatCache::open(cache_dir.path()).unwrap();
    let after = hash(dir.path(), ".", &reopened);
    assert_ne!(after.digest, before.digest);
    assert_eq!(
        reopened.stats().files_read,
        2,
        "only the rewritten and the new file are read"
    );
    let changes: Vec<String> = after
        .changes_since(&before)
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        changes,
        [
            "file src/mod0/file0.txt removed",
            "file src/mod3/file7.txt changed",
            "file src/new.txt added"
        ]
    );
}

#[test]
fn source_hash_round_trips_through_json() {
    let dir = project();
    let hashed = hash(dir.path(), "*.md", &StatCache::in_memory());
    let json = serde_json::to_string(&hashed).unwrap();
    let back: SourceHash = serde_json::from_str(&json).unwrap();
    assert_eq!(back, hashed);
    assert!(hashed.digest.to_string().starts_with("sha256:"));
}

#[test]
fn corrupt_cache_file_is_ignored() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        cache_dir.path().join("context-stat-cache"),
        b"RBSTAT2\nshort",
    )
    .unwrap();
    let cache = StatCache::open(cache_dir.path()).unwrap();
    let hashed = hash(dir.path(), "README.md", &cache);
    assert_eq!(hashed.entries.len(), 1);
    assert_eq!(cache.stats().files_read, 1);
}

#[test]
fn a_file_selected_twice_in_one_build_is_read_once() {
    let dir = project();
    let cache = StatCache::in_memory();
    let first = hash(dir.path(), "src/mod1", &cache);
    let again = hash(dir.path(), "src/mod1", &cache);
    assert_eq!(again, first);
    let stats = cache.stats();
    assert_eq!((stats.files_read, stats.cache_hits), (10, 10));
}

#[test]
fn saved_cache_keeps_earlier_and_new_digests() {
    let dir = project();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = StatCache::open(cache_dir.path()).unwrap();
    hash(dir.path(), "src/mod0", &cache);
    cache.save().unwrap();

    // A second build reads only what the first did not, and saves the union.
    let second = StatCache::open(cache_dir.path()).unwrap();
    hash(dir.path(), ".", &second);
    assert_eq!(
        (second.stats().files_read, second.stats().cache_hits),
        (31, 10)
    );
    second.save().unwrap();

    let third = StatCache::open(cache_dir.path()).unwrap();
    hash(dir.path(), ".", &third);
    assert_eq!(
        (third.stats().files_read, third.stats().cache_hits),
        (0, 41)
    );
    // Nothing new: the file is left as it was.
    let before = std::fs::metadata(cache_dir.path().join("context-stat-cache")).unwrap();
    third.save().unwrap();
    let after = std::fs::metadata(cache_dir.path().join("context-stat-cache")).unwrap();
    assert_eq!(before.modified().unwrap(), after.modified().unwrap());
}

#[test]
fn entry_digests_are_hex_in_json() {
    let dir = project();
    let hashed = hash(dir.path(), "README.md", &StatCache::in_memory());
    let json = serde_json::to_value(&hashed).unwrap();
    let digest = json["entries"][0]["digest"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(
        digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let mut bad = json.clone();
    bad["entries"][0]["digest"] = "xyz".into();
    assert!(serde_json::from_value::<SourceHash>(bad).is_err());
}

#[test]
fn a_file_gone_between_select_and_hash_is_an_error_naming_it() {
    let dir = project();
    let context = Context::open(dir.path(), None).unwrap();
    let selection = context.select("src", &SelectOptions::default()).unwrap();
    std::fs::remove_file(dir.path().join("src/mod2/file10.txt")).unwrap();
    let error = hash_selection(&selection, &StatCache::in_memory()).unwrap_err();
    assert!(error.to_string().contains("src/mod2/file10.txt"), "{error}");
}
