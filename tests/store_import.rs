//! `rbuild import` of the busybox root filesystem, read back by skopeo and umoci.

mod store_support;

use rbuild::image::sha256_digest;
use std::fs;
use std::io::Write;
use store_support::*;

#[test]
fn imported_busybox_is_read_by_skopeo_and_umoci_and_equals_the_tarball() {
    require_root();
    require_tool("skopeo");
    require_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());

    let id = rbuild(&root, &["import", tar.to_str().unwrap(), "busybox:t"]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let layout = format!("oci:{}:busybox:t", root.display());
    let inspected: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", &layout])).unwrap();
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1);
    let config: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &layout])).unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    let expected_diff_id = sha256_digest(&fs::read(&tar).unwrap()).to_string();
    assert_eq!(config["rootfs"]["diff_ids"][0], expected_diff_id.as_str());

    // The image ID is the digest of the config skopeo reads.
    let raw_config = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--config", &layout])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(sha256_digest(&raw_config).to_string(), id);

    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:busybox:t", root.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let expected = dir.path().join("expected");
    fs::create_dir(&expected).unwrap();
    run(
        "tar",
        &[
            "--numeric-owner",
            "-xpf",
            tar.to_str().unwrap(),
            "-C",
            expected.to_str().unwrap(),
        ],
    );
    assert_eq!(
        tree_listing(&bundle.join("rootfs")),
        tree_listing(&expected)
    );
    // Unpacked on the way in, as the snapshot of its ChainID (its DiffID, a base layer).
    let snapshot = root
        .join("snapshots")
        .join(&expected_diff_id["sha256:".len()..]);
    assert_eq!(tree_listing(&snapshot), tree_listing(&expected));

    let images = rbuild(&root, &["images"]);
    let mut lines = images.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("REPOSITORY   TAG       IMAGE ID")
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox      t         "), "{row}");
    assert!(row.contains(&id["sha256:".len()..][..12]));
    assert_eq!(
        rbuild(
            &root,
            &["image", "inspect", "-f", "{{.Id}} {{.Os}}", "busybox:t"]
        )
        .trim(),
        format!("{id} linux")
    );
    let report = rbuild(&root, &["system", "fsck"]);
    assert!(report.contains("0 problem(s)"), "{report}");
}

#[test]
fn compressed_tarballs_and_stdin_give_the_same_layer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());
    let plain = fs::read(&tar).unwrap();
    let gz_path = dir.path().join("rootfs.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let zst_path = dir.path().join("rootfs.tar.zst");
    fs::write(&zst_path, zstd::encode_all(&plain[..], 3).unwrap()).unwrap();

    let layer_of = |reference: &str| {
        rbuild(
            &root,
            &[
                "image",
                "inspect",
                "-f",
                "{{json .RootFS.Layers}}",
                reference,
            ],
        )
    };
    rbuild(&root, &["import", tar.to_str().unwrap(), "plain"]);
    rbuild(
        &root,
        &["import", "-m", "gzipped", gz_path.to_str().unwrap(), "gz"],
    );
    rbuild(&root, &["import", zst_path.to_str().unwrap(), "zst"]);
    let stdin = std::process::Command::new(RBUILD)
        .args(["--root", root.to_str().unwrap(), "import", "-", "stdin:1"])
        .stdin(fs::File::open(&gz_path).unwrap())
        .output()
        .unwrap();
    assert!(
        stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&stdin.stderr)
    );
    let expected = layer_of("plain");
    for name in ["gz", "zst", "stdin:1"] {
        assert_eq!(layer_of(name), expected, "{name}");
    }
    let history = rbuild(&root, &["history", "gz"]);
    assert!(history.contains("gzipped"), "{history}");
    let listed = rbuild(&root, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(
        names,
        vec!["gz:latest", "plain:latest", "stdin:1", "zst:latest"]
    );

    let missing = rbuild_output(
        &root,
        &["import", dir.path().join("nope.tar").to_str().unwrap()],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.tar"));
    let bad_ref = rbuild_output(&root, &["import", tar.to_str().unwrap(), "Bad:Ref"]);
    assert!(!bad_ref.status.success());
    assert!(String::from_utf8_lossy(&bad_ref.stderr).contains("invalid reference format"));
}
