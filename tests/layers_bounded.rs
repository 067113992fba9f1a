//! Layers that try to exhaust memory, descriptors or disk — a 10,000-deep tree, a sparse
//! 10 GiB file, a tar bomb of 1,000,000 empty files — are handled in bounded memory. The big
//! layers are generated while being extracted, never stored.

use rbuild::snapshot::{ExtractOptions, extract_layer, remove_tree};
use std::fs;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::thread;

/// Peak memory this test process may reach: the layers are far larger, the extractor's state is not.
const MAX_PEAK_RSS_BYTES: i64 = 256 << 20;

fn assert_peak_memory_bounded() {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let peak = usage.max_rss() * 1024;
    assert!(peak < MAX_PEAK_RSS_BYTES, "peak RSS {peak} bytes");
}

/// Streams the tar that `make` builds into the extractor through a pipe.
fn extract_streamed(
    target: &std::path::Path,
    make: impl FnOnce(&mut tar::Builder<BufWriter<std::io::PipeWriter>>) + Send + 'static,
) -> rbuild::snapshot::ExtractSummary {
    let (reader, writer) = std::io::pipe().unwrap();
    let producer = thread::spawn(move || {
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, writer));
        make(&mut builder);
        builder.into_inner().unwrap();
    });
    let summary = extract_layer(reader, target, &ExtractOptions::default()).unwrap();
    producer.join().unwrap();
    summary
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(size);
    h.set_mtime(1);
    h
}

#[test]
fn ten_thousand_deep_tree() {
    const DEPTH: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let summary = extract_streamed(dir.path(), |builder| {
        let mut path = String::new();
        for _ in 0..DEPTH {
            path.push_str("d/");
            builder
                .append_data(
                    &mut header(tar::EntryType::Directory, 0),
                    &path,
                    std::io::empty(),
                )
                .unwrap();
        }
        path.push_str("leaf");
        builder
            .append_data(
                &mut header(tar::EntryType::Regular, 6),
                &path,
                &b"bottom"[..],
            )
            .unwrap();
        builder
            .append_data(&mut header(tar::EntryType::Regular, 3), "top", &b"top"[..])
            .unwrap();
    });
    assert_eq!(summary.entries, DEPTH as u64 + 2);
    // Walk down by descriptor: the path is far longer than PATH_MAX.
    let mut current = nix::fcntl::open(
        dir.path(),
        nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    for _ in 0..DEPTH {
        current = nix::fcntl::openat(
            &current,
            "d",
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
    }
    let leaf = nix::fcntl::openat(
        &current,
        "leaf",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let mut content = String::new();
    fs::File::from(leaf).read_to_string(&mut content).unwrap();
    assert_eq!(content, "bottom");
    assert_eq!(fs::read_to_string(dir.path().join("top")).unwrap(), "top");
    remove_tree(&dir.path().join("d")).unwrap();
    assert!(!dir.path().join("d").exists());
    assert_peak_memory_bounded();
}

#[test]
fn sparse_ten_gib_file_is_written_sparse() {
    const SIZE: u64 = 10 << 30;
    let src = tempfile::tempdir().unwrap();
    let sparse = src.path().join("sparse");
    {
        let mut f = fs::File::create(&sparse).unwrap();
        std::io::Write::write_all(&mut f, b"head").unwrap();
        f.seek(SeekFrom::Start(SIZE - 4)).unwrap();
        std::io::Write::write_all(&mut f, b"tail").unwrap();
    }
    // The tar crate writes GNU sparse entries for files with holes: a few KiB for 10 GiB.
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_path_with_name(&sparse, "big").unwrap();
    let tar = builder.into_inner().unwrap();
    assert!(tar.len() < 1 << 20, "sparse tar is {} bytes", tar.len());
    let dst = tempfile::tempdir().unwrap();
    extract_layer(tar.as_slice(), dst.path(), &ExtractOptions::default()).unwrap();
    let out = dst.path().join("big");
    let meta = fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), SIZE);
    assert!(
        meta.blocks() * 512 < 16 << 20,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    let mut f = fs::File::open(&out).unwrap();
    let mut buf = [0u8; 4];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"head");
    f.seek(SeekFrom::Start(SIZE / 2)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [0; 4]);
    f.seek(SeekFrom::Start(SIZE - 4)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"tail");
    assert_peak_memory_bounded();
}

#[test]
fn tar_bomb_of_a_million_empty_files() {
    const DIRS: usize = 1000;
    const FILES_PER_DIR: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let summary = extract_streamed(dir.path(), |builder| {
        for d in 0..DIRS {
            let name = format!("{d:03}/");
            builder
                .append_data(
                    &mut header(tar::EntryType::Directory, 0),
                    &name,
                    std::io::empty(),
                )
                .unwrap();
            for f in 0..FILES_PER_DIR {
                let name = format!("{d:03}/{f:03}");
                builder
                    .append_data(
                        &mut header(tar::EntryType::Regular, 0),
                        &name,
                        std::io::empty(),
                    )
                    .unwrap();
            }
        }
    });
    assert_eq!(summary.entries, (DIRS * (FILES_PER_DIR + 1)) as u64);
    let files: usize = (0..DIRS)
        .map(|d| {
            fs::read_dir(dir.path().join(format!("{d:03}")))
                .unwrap()
                .count()
        })
        .sum();
    assert_eq!(files, DIRS * FILES_PER_DIR);
    for d in 0..DIRS {
        remove_tree(&dir.path().join(format!("{d:03}"))).unwrap();
    }
    assert_peak_memory_bounded();
}
