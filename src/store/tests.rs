use super::*;
use crate::image::{ImageConfig, Reference, sha256_digest};
use std::io::{Read, Write};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

fn tmp_entries(store: &Store) -> Vec<String> {
    fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn open_creates_an_oci_layout() {
    let (_dir, store) = store();
    let layout = fs::read_to_string(store.root().join("oci-layout")).unwrap();
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    assert!(store.index().unwrap().manifests().is_empty());
    // Opening again keeps what is there.
    Store::open(store.root()).unwrap();
}

/// Where the filesystem has the top-directory flag (ext4, as here), the store sets it on the
/// directories whose trees come and go; the probe tells a filesystem without it.
#[test]
fn snapshots_and_tmp_are_top_directories_where_the_filesystem_has_them() {
    let (dir, store) = store();
    let topdir = |path: &std::path::Path| {
        let file = File::open(path).unwrap();
        let mut flags: libc::c_long = 0;
        // SAFETY: the ioctl writes one c_long at a pointer that outlives it.
        unsafe { get_inode_flags(std::os::fd::AsRawFd::as_raw_fd(&file), &mut flags) }
            .ok()
            .map(|_| flags & FS_TOPDIR_FL != 0)
    };
    let probe = dir.path().join("probe");
    fs::create_dir(&probe).unwrap();
    let probe_fd = File::open(&probe).unwrap();
    // SAFETY: as above, reading the flag from a c_long that outlives the call.
    let settable =
        unsafe { set_inode_flags(std::os::fd::AsRawFd::as_raw_fd(&probe_fd), &FS_TOPDIR_FL) }
            .is_ok();
    if !settable {
        eprintln!(
            "skipped: {} has no top-directory flag",
            dir.path().display()
        );
        return;
    }
    assert_eq!(topdir(&probe), Some(true), "the probe took the flag");
    for sub in ["snapshots", "tmp"] {
        assert_eq!(topdir(&store.root().join(sub)), Some(true), "{sub}");
    }
    assert_eq!(topdir(&store.root().join("blobs")), Some(false));
}

#[test]
fn blob_writer_checks_digest_and_leaves_nothing_behind() {
    let (_dir, store) = store();
    let good = sha256_digest(b"hello");
    let mut w = store.blob_writer(Some(&good)).unwrap();
    w.write_all(b"hello").unwrap();
    let blob = w.commit().unwrap();
    assert_eq!(
        blob,
        CommittedBlob {
            digest: good.clone(),
            size: 5
        }
    );
    assert_eq!(store.read_blob(&good).unwrap(), b"hello");

    let wrong = sha256_digest(b"other");
    let mut w = store.blob_writer(Some(&wrong)).unwrap();
    w.write_all(b"hello!").unwrap();
    match w.commit() {
        Err(StoreError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256_digest(b"hello!"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!store.has_blob(&wrong));
    assert!(!store.has_blob(&sha256_digest(b"hello!")));

    let mut w = store.blob_writer(None).unwrap();
    w.write_all(b"abandoned").unwrap();
    drop(w);
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
}

#[test]
fn resumed_writer_continues_a_partial_blob() {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_digest(&data);
    let mut w = store.resume_blob_writer(&digest).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&data[..123_456]).unwrap();
    drop(w);
    let mut w = store.resume_blob_writer(&digest).unwrap();
    assert_eq!(w.offset(), 123_456);
    w.write_all(&data[123_456..]).unwrap();
    assert_eq!(w.commit().unwrap().size, data.len() as u64);
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    assert!(tmp_entries(&store).is_empty());

    // A corrupt partial is discarded on commit, so the next attempt starts over.
    let other = sha256_digest(b"x");
    let mut w = store.resume_blob_writer(&other).unwrap();
    w.write_all(b"y").unwrap();
    assert!(w.commit().is_err());
    assert_eq!(store.resume_blob_writer(&other).unwrap().offset(), 0);
}

#[test]
fn stale_temporaries_spare_recent_partial_downloads_only() {
    let (_dir, store) = store();
    let (recent, old) = (sha256_digest(b"recent"), sha256_digest(b"old"));
    for digest in [&recent, &old] {
        let mut w = store.resume_blob_writer(digest).unwrap();
        w.write_all(b"part").unwrap();
        drop(w);
    }
    let old_path = store
        .tmp_dir()
        .join(format!("partial-sha256-{}", old.digest()));
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&old_path)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    assert_eq!(store.remove_stale_temporaries().unwrap().0, 1);
    assert!(!old_path.exists());
    assert_eq!(store.resume_blob_writer(&recent).unwrap().offset(), 4);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn one_file_tar(name: &str, body: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, body).unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn import_layer_stores_uncompressed_and_remembers_compressed_digest() {
    let (_dir, store) = store();
    let tar = one_file_tar("etc/hello", b"hi\n");
    let gz = gzip(&tar);
    let layer = store.import_layer(&gz[..]).unwrap();
    assert_eq!(layer.diff_id, sha256_digest(&tar));
    assert_eq!(layer.blob.size(), tar.len() as u64);
    let compressed = layer.compressed.clone().unwrap();
    assert_eq!(compressed.digest(), &sha256_digest(&gz));
    assert_eq!(compressed.size(), gz.len() as u64);
    assert_eq!(
        store.compressed_forms(&layer.diff_id).unwrap(),
        vec![compressed]
    );
    assert_eq!(store.read_blob(&layer.diff_id).unwrap(), tar);

    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let again = store.import_layer(&zst[..]).unwrap();
    assert_eq!(again.diff_id, layer.diff_id);
    assert_eq!(store.compressed_forms(&layer.diff_id).unwrap().len(), 2);

    let plain = store.import_layer(&tar[..]).unwrap();
    assert_eq!(plain.compressed, None);
}

fn config_for(layers: &[Layer]) -> Vec<u8> {
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    config.to_canonical_json().unwrap()
}

#[test]
fn images_are_tagged_resolved_and_left_dangling_when_untagged() {
    let (_dir, store) = store();
    let layer = store.import_layer(&one_file_tar("a", b"1")[..]).unwrap();
    let config = config_for(std::slice::from_ref(&layer));
    let image = store
        .put_image(&config, std::slice::from_ref(&layer))
        .unwrap();
    assert_eq!(image.id(), &sha256_digest(&config));
    assert_eq!(store.images().unwrap().len(), 1);
    assert!(store.images().unwrap()[0].names.is_empty());

    let name = Reference::parse("busybox:t").unwrap();
    store.tag(&name, &image.manifest_descriptor).unwrap();
    let entries = store.images().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].names, vec!["busybox:t".to_string()]);
    let resolved = store
        .resolve(&Reference::parse("docker.io/library/busybox:t").unwrap())
        .unwrap();
    assert_eq!(resolved.id(), image.id());
    assert_eq!(resolved.manifest.layers()[0].digest(), &layer.diff_id);
    let short = &image.id().digest()[..12];
    assert_eq!(store.find_image(short).unwrap().id(), image.id());
    assert_eq!(store.find_image("busybox:t").unwrap().id(), image.id());
    assert!(matches!(
        store.find_image("nope"),
        Err(StoreError::ImageNotFound(_))
    ));

    // A second image takes the name: the first stays, dangling.
    let layer2 = store.import_layer(&one_file_tar("b", b"2")[..]).unwrap();
    let image2 = store
        .put_image(
            &config_for(std::slice::from_ref(&layer2)),
            std::slice::from_ref(&layer2),
        )
        .unwrap();
    store.tag(&name, &image2.manifest_descriptor).unwrap();
    let entries = store.images().unwrap();
    assert_eq!(entries.len(), 2);
    let dangling: Vec<_> = entries.iter().filter(|e| e.names.is_empty()).collect();
    assert_eq!(dangling.len(), 1);
    assert_eq!(
        dangling[0].manifest.digest(),
        image.manifest_descriptor.digest()
    );

    assert_eq!(
        store.untag(&name).unwrap().map(|d| d.digest().clone()),
        Some(image2.manifest_descriptor.digest().clone())
    );
    assert!(store.images().unwrap().iter().all(|e| e.names.is_empty()));
    store
        .forget_image(image.manifest_descriptor.digest())
        .unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn put_image_refuses_config_that_does_not_match_layers() {
    let (_dir, store) = store();
    let layer = store.import_layer(&one_file_tar("a", b"1")[..]).unwrap();
    assert!(store.put_image(&config_for(&[]), &[layer]).is_err());
}

#[test]
fn garbage_collection_removes_exactly_the_unreferenced() {
    let (_dir, store) = store();
    let kept = store.import_layer(&one_file_tar("a", b"1")[..]).unwrap();
    let image = store
        .put_image(
            &config_for(std::slice::from_ref(&kept)),
            std::slice::from_ref(&kept),
        )
        .unwrap();
    store
        .tag(
            &Reference::parse("keep").unwrap(),
            &image.manifest_descriptor,
        )
        .unwrap();
    let orphan = store.import_layer(&one_file_tar("b", b"2")[..]).unwrap();
    // Written by this (live) process: its lease keeps the orphan.
    assert!(store.collect_garbage().unwrap().blobs.is_empty());
    // A fresh process without a lease: the orphan goes, the image stays.
    drop(store);
    let store = Store::open(_dir.path().join("root")).unwrap();
    let leftover = store.root().join("tmp/blob-leftover");
    fs::write(&leftover, b"partial").unwrap();
    let report = store.collect_garbage().unwrap();
    assert_eq!(report.blobs, vec![orphan.diff_id.clone()]);
    assert_eq!(report.temporary_files, 1);
    assert!(!leftover.exists());
    assert!(store.compressed_forms(&orphan.diff_id).unwrap().is_empty());
    let resolved = store.resolve(&Reference::parse("keep").unwrap()).unwrap();
    assert!(store.has_blob(resolved.id()));
    assert!(store.has_blob(&kept.diff_id));
    assert!(store.has_blob(resolved.manifest_descriptor.digest()));
    assert_eq!(store.collect_garbage().unwrap(), GcReport::default());
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut header = tar::Header::new_ustar();
        match body {
            Some(body) => {
                header.set_size(body.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append_data(&mut header, name, *body).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                header.set_cksum();
                builder
                    .append_data(&mut header, name, std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn layer_dirs_are_extracted_once_by_chain_id_with_overlay_whiteouts() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (dir, store) = store();
    let base = store
        .import_layer(&tar_of(&[("etc/", None), ("etc/a", Some(b"a")), ("etc/b", Some(b"b"))])[..])
        .unwrap();
    let top = store
        .import_layer(
            &tar_of(&[
                ("etc/", None),
                ("etc/.wh.a", Some(b"")),
                ("etc/c", Some(b"c")),
            ])[..],
        )
        .unwrap();
    let layers = [base.clone(), top.clone()];
    let image = store.put_image(&config_for(&layers), &layers).unwrap();
    store
        .tag(
            &Reference::parse("two").unwrap(),
            &image.manifest_descriptor,
        )
        .unwrap();
    let dirs = store.layer_dirs(&image).unwrap();
    let chain = image.config.chain_ids();
    assert_eq!(
        dirs,
        vec![
            store.snapshot_path(&chain[0]).unwrap(),
            store.snapshot_path(&chain[1]).unwrap()
        ]
    );
    assert_eq!(fs::read(dirs[0].join("etc/a")).unwrap(), b"a");
    assert_eq!(fs::read(dirs[1].join("etc/c")).unwrap(), b"c");
    assert!(
        !dirs[1].join("etc/b").exists(),
        "a snapshot holds its own layer only"
    );
    let whiteout = fs::symlink_metadata(dirs[1].join("etc/a")).unwrap();
    if nix::unistd::geteuid().is_root() {
        assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    }
    let inode = fs::metadata(&dirs[0]).unwrap().ino();

    // A second image on the same base shares its snapshot; nothing is extracted again.
    let other = store
        .import_layer(&tar_of(&[("x", Some(b"x"))])[..])
        .unwrap();
    let layers2 = [base.clone(), other];
    let image2 = store.put_image(&config_for(&layers2), &layers2).unwrap();
    let dirs2 = store.layer_dirs(&image2).unwrap();
    assert_eq!(dirs2[0], dirs[0]);
    assert_eq!(fs::metadata(&dirs2[0]).unwrap().ino(), inode);
    assert_eq!(store.layer_dirs(&image).unwrap(), dirs);

    // Pruned and collected by a fresh process: the untagged image's own snapshot goes,
    // shared ones stay. While this process lived, its lease kept the image from pruning.
    assert!(store.prune_images(false).unwrap().is_empty());
    drop(store);
    let store = Store::open(dir.path().join("root")).unwrap();
    let pruned = store.prune_images(false).unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].id.as_ref(), Some(image2.id()));
    let report = store.collect_garbage().unwrap();
    assert_eq!(report.snapshots, vec![image2.config.chain_ids()[1].clone()]);
    assert!(dirs[0].is_dir() && dirs[1].is_dir());
}

#[test]
fn a_corrupt_layer_blob_is_not_unpacked() {
    let (_dir, store) = store();
    let layer = store
        .import_layer(&tar_of(&[("f", Some(b"1"))])[..])
        .unwrap();
    let image = store
        .put_image(
            &config_for(std::slice::from_ref(&layer)),
            std::slice::from_ref(&layer),
        )
        .unwrap();
    let path = store.blob_path(&layer.diff_id).unwrap();
    fs::write(&path, tar_of(&[("f", Some(b"2"))])).unwrap();
    assert!(matches!(
        store.layer_dirs(&image),
        Err(StoreError::DiffIdMismatch(_))
    ));
    assert!(!store.snapshot_path(&layer.diff_id).unwrap().exists());
    assert!(tmp_entries(&store).is_empty());
    let report = store.fsck(false).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    let repaired = store.fsck(true).unwrap();
    assert_eq!(repaired.repaired.len(), 2, "{:?}", repaired.repaired);
    assert!(store.fsck(false).unwrap().is_clean());
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn a_base_layer_is_unpacked_as_it_is_imported() {
    let (_dir, store) = store();
    let tar = tar_of(&[("etc/", None), ("etc/a", Some(b"a"))]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let layer = store.import_base_layer(&gz[..]).unwrap();
    assert_eq!(layer.diff_id, sha256_digest(&tar));
    assert_eq!(store.read_blob(&layer.diff_id).unwrap(), tar);
    assert_eq!(
        layer.compressed.as_ref().map(|c| c.digest().clone()),
        Some(sha256_digest(&gz))
    );
    let snapshot = store.snapshot_path(&layer.diff_id).unwrap();
    assert_eq!(fs::read(snapshot.join("etc/a")).unwrap(), b"a");
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
}

#[test]
fn a_base_layer_the_extractor_refuses_is_not_stored() {
    let (dir, store) = store();
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"x"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    match store.import_base_layer(&tar[..]) {
        Err(StoreError::Snapshot(crate::snapshot::SnapshotError::Refused { entry, .. })) => {
            assert_eq!(entry, "../escape");
        }
        other => panic!("expected a refused entry, got {other:?}"),
    }
    assert!(!dir.path().join("escape").exists());
    assert!(!store.has_blob(&sha256_digest(&tar)));
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
    assert_eq!(
        fs::read_dir(store.root().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
}

/// A layer as pull stores it: the gzip blob as sent, listed under its compressed digest.
fn pulled_layer(store: &Store, tar: &[u8], diff_id: Digest) -> Layer {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    let blob = store.put_blob(&gz.finish().unwrap(), None).unwrap();
    let layer = Layer {
        diff_id,
        blob: oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageLayerGzip,
            blob.size,
            blob.digest,
        ),
        compressed: None,
    };
    store
        .record_claimed_layer(&layer.diff_id, &layer.blob)
        .unwrap();
    layer
}

#[test]
fn a_compressed_layer_is_kept_as_is_and_checked_when_unpacked() {
    let (dir, store) = store();
    let tar = tar_of(&[("etc/", None), ("etc/a", Some(b"a"))]);
    let layer = pulled_layer(&store, &tar, sha256_digest(&tar));
    let layers = [layer.clone()];
    let image = store.put_image(&config_for(&layers), &layers).unwrap();
    assert_eq!(image.manifest.layers(), std::slice::from_ref(&layer.blob));
    assert_eq!(image.layers().unwrap(), layers);
    assert!(!store.has_blob(&layer.diff_id), "no plain copy is made");
    assert_eq!(
        store.find_layer(&layer.diff_id).unwrap(),
        Some(layer.clone())
    );
    // Only an unpack proves the claim; then push may reuse the blob.
    assert!(store.compressed_forms(&layer.diff_id).unwrap().is_empty());
    let dirs = store.layer_dirs(&image).unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/a")).unwrap(), b"a");
    assert_eq!(
        store.compressed_forms(&layer.diff_id).unwrap(),
        vec![layer.blob.clone()]
    );
    let mut read = Vec::new();
    store
        .layer_tar(&layer.blob)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, tar);
    assert!(store.fsck(false).unwrap().is_clean());
    // Kept while the image is; gone with it, with the records of its forms (by a fresh
    // process: this one's lease keeps what it wrote).
    drop(store);
    let store = Store::open(dir.path().join("root")).unwrap();
    assert!(store.collect_garbage().unwrap().blobs.is_empty());
    store
        .forget_image(image.manifest_descriptor.digest())
        .unwrap();
    let report = store.collect_garbage().unwrap();
    assert!(report.blobs.contains(layer.blob.digest()));
    assert_eq!(store.find_layer(&layer.diff_id).unwrap(), None);
    for dir in ["compressed/sha256", "claimed/sha256"] {
        assert_eq!(
            fs::read_dir(store.root().join(dir)).unwrap().count(),
            0,
            "{dir}"
        );
    }
}

#[test]
fn a_compressed_layer_whose_tar_is_not_its_diff_id_is_refused_on_unpack() {
    let (_dir, store) = store();
    let promised = tar_of(&[("f", Some(b"promised"))]);
    let layer = pulled_layer(
        &store,
        &tar_of(&[("f", Some(b"sent"))]),
        sha256_digest(&promised),
    );
    let layers = [layer.clone()];
    let image = store.put_image(&config_for(&layers), &layers).unwrap();
    match store.layer_dirs(&image) {
        Err(error @ StoreError::DiffIdMismatch(_)) => {
            let message = error.to_string();
            assert!(
                message.contains(&layer.blob.digest().to_string())
                    && message.contains(&layer.diff_id.to_string()),
                "{message}"
            );
        }
        other => panic!("expected a DiffID mismatch, got {other:?}"),
    }
    let chain_id = &image.config.chain_ids()[0];
    assert!(!store.snapshot_path(chain_id).unwrap().exists());
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
    assert!(store.compressed_forms(&layer.diff_id).unwrap().is_empty());
    let report = store.fsck(false).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("not the config's DiffID"));
}
