//! A context sent as a tar stream (`rbuild build -`): extracted, then used like a directory;
//! archives that try to write outside the extraction directory are refused.

use rbuild::context::{Context, ContextError, SelectOptions, StatCache, hash_selection};
use std::path::Path;

fn header(kind: tar::EntryType, name: &[u8], size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    // Raw name bytes: the builder's path checks would refuse the malicious ones.
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    header
}

/// One archive member: type, name, link target (empty for none), contents.
type Member<'a> = (tar::EntryType, &'a [u8], &'a [u8], &'a [u8]);

fn archive(entries: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (kind, name, link, data) in entries {
        let mut header = header(*kind, name, data.len() as u64);
        if !link.is_empty() {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            header.set_cksum();
        }
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn extract(bytes: &[u8], parent: &Path) -> Result<Context, ContextError> {
    Context::from_tar(bytes, parent, Some(Path::new("Dockerfile")))
}

#[test]
fn tar_context_is_selected_and_hashed_like_a_directory() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let bytes = archive(&[
        (Regular, b"Dockerfile", b"", b"FROM scratch\n"),
        (
            Regular,
            b"Dockerfile.dockerignore",
            b"",
            b"*.tmp\napp/*.tmp\n",
        ),
        (Directory, b"app/", b"", b""),
        (Regular, b"app/main.py", b"", b"print('hi')\n"),
        (Regular, b"app/scratch.tmp", b"", b"x"),
        (Symlink, b"app/link", b"main.py", b""),
    ]);
    let parent = tempfile::tempdir().unwrap();
    let context = extract(&bytes, parent.path()).unwrap();
    assert!(
        context
            .root()
            .starts_with(parent.path().canonicalize().unwrap())
    );
    let selection = context.select("app", &SelectOptions::default()).unwrap();
    let paths: Vec<&str> = selection.matches[0]
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["", "link", "main.py"]);
    let hashed = hash_selection(&selection, &StatCache::in_memory()).unwrap();
    assert_eq!(hashed.entries.len(), 3);
    let root = context.root().to_path_buf();
    drop(context);
    assert!(
        !root.exists(),
        "the extracted context is removed with the context"
    );
}

#[test]
fn escaping_entries_are_refused_and_nothing_lands_outside() {
    use tar::EntryType::{Link, Regular, Symlink};
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot", archive(&[(Regular, b"../evil", b"", b"x")])),
        (
            "nested dot-dot",
            archive(&[(Regular, b"a/../../evil", b"", b"x")]),
        ),
        ("absolute", archive(&[(Regular, b"/evil", b"", b"x")])),
        (
            "through a symlink",
            archive(&[
                (Symlink, b"up", b"..", b""),
                (Regular, b"up/evil", b"", b"x"),
            ]),
        ),
        (
            "through an absolute symlink",
            archive(&[
                (Symlink, b"out", b"/tmp", b""),
                (Regular, b"out/evil", b"", b"x"),
            ]),
        ),
        (
            "hard link out",
            archive(&[(Link, b"evil", b"../../etc/passwd", b"")]),
        ),
    ];
    for (what, bytes) in cases {
        let outer = tempfile::tempdir().unwrap();
        let parent = outer.path().join("inner");
        std::fs::create_dir(&parent).unwrap();
        let result = extract(&bytes, &parent);
        assert!(
            matches!(result, Err(ContextError::UnsafeTarEntry { .. })),
            "{what}: {result:?}"
        );
        assert!(!outer.path().join("evil").exists(), "{what}");
        assert!(!parent.join("evil").exists(), "{what}");
    }
}

#[test]
fn symlink_in_place_of_a_file_is_replaced_not_written_through() {
    use tar::EntryType::{Regular, Symlink};
    let outer = tempfile::tempdir().unwrap();
    let victim = outer.path().join("victim");
    std::fs::write(&victim, "safe").unwrap();
    let target = victim.to_str().unwrap().as_bytes().to_vec();
    let bytes = archive(&[
        (Symlink, b"f", &target, b""),
        (Regular, b"f", b"", b"overwritten"),
    ]);
    let parent = outer.path().join("inner");
    std::fs::create_dir(&parent).unwrap();
    let context = extract(&bytes, &parent).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "safe");
    assert_eq!(
        std::fs::read_to_string(context.root().join("f")).unwrap(),
        "overwritten"
    );
}

#[test]
fn gzip_and_zstd_compressed_streams_are_accepted() {
    use std::io::Write;
    use tar::EntryType::Regular;
    let plain = archive(&[(Regular, b"Dockerfile", b"", b"FROM scratch\n")]);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&plain).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(plain.as_slice(), 3).unwrap();
    for (what, bytes) in [("gzip", gzip), ("zstd", zstd)] {
        let parent = tempfile::tempdir().unwrap();
        let context = extract(&bytes, parent.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(context.root().join("Dockerfile")).unwrap(),
            "FROM scratch\n",
            "{what}"
        );
    }
}
