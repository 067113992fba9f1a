//! save/load against Docker Engine: our archives load and run in dockerd; archives dockerd
//! writes load into rbuild with the config byte for byte; skopeo reads our archives.

mod store_support;
mod support;

use rbuild::image::sha256_digest;
use std::fs;
use std::path::Path;
use store_support::*;
use support::dockerd::Dockerd;

/// The config file of the first image of a `docker save` archive, as bytes.
fn archive_config(archive: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("unpacked");
    fs::create_dir_all(&out).unwrap();
    run(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
        ],
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    fs::read(out.join(manifest[0]["Config"].as_str().unwrap())).unwrap()
}

#[test]
fn docker_archives_round_trip_between_rbuild_and_docker_engine() {
    let docker = Dockerd::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());

    // rbuild → Docker: our save loads into dockerd and runs there.
    let id = rbuild(&root, &["import", tar.to_str().unwrap(), "busybox:t"]);
    let ours = dir.path().join("ours.tar");
    rbuild(&root, &["save", "-o", ours.to_str().unwrap(), "busybox:t"]);
    let loaded = docker.docker(&["load", "-i", ours.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: busybox:t"), "{loaded}");
    assert_eq!(
        docker
            .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox:t"])
            .trim(),
        id.trim()
    );
    let hello = docker.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:t",
        "/bin/echo",
        "hello from rbuild",
    ]);
    assert_eq!(hello.trim(), "hello from rbuild");

    // Docker → rbuild: an image docker saved (legacy layout) keeps its config byte for byte.
    docker.docker(&[
        "import",
        "-m",
        "made by docker",
        tar.to_str().unwrap(),
        "dimg:1",
    ]);
    let theirs = dir.path().join("theirs.tar");
    docker.docker(&["save", "-o", theirs.to_str().unwrap(), "dimg:1"]);
    let docker_id = docker.docker(&["image", "inspect", "-f", "{{.Id}}", "dimg:1"]);
    let other_root = dir.path().join("other-root");
    let out = rbuild(&other_root, &["load", "-i", theirs.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: dimg:1");
    let config = archive_config(&theirs, dir.path());
    let rbuild_id = rbuild(
        &other_root,
        &["image", "inspect", "-f", "{{.Id}}", "dimg:1"],
    );
    assert_eq!(rbuild_id.trim(), docker_id.trim());
    assert_eq!(sha256_digest(&config).to_string(), rbuild_id.trim());
    let stored = fs::read(
        other_root
            .join("blobs/sha256")
            .join(rbuild_id.trim().trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(stored, config, "the config must be kept byte for byte");
    let history = rbuild(&other_root, &["history", "dimg:1"]);
    assert!(history.contains("made by docker"), "{history}");

    // And back again: saved by rbuild, loaded by docker under a new name, same image ID.
    rbuild(&other_root, &["tag", "dimg:1", "dimg:again"]);
    let again = dir.path().join("again.tar");
    rbuild(
        &other_root,
        &["save", "-o", again.to_str().unwrap(), "dimg:again"],
    );
    docker.docker(&["load", "-i", again.to_str().unwrap()]);
    assert_eq!(
        docker
            .docker(&["image", "inspect", "-f", "{{.Id}}", "dimg:again"])
            .trim(),
        docker_id.trim()
    );
}

#[test]
fn skopeo_reads_our_docker_and_oci_archives() {
    require_tool("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());
    let id = rbuild(&root, &["import", tar.to_str().unwrap(), "busybox:t"]);
    let docker_archive = dir.path().join("docker.tar");
    rbuild(
        &root,
        &["save", "-o", docker_archive.to_str().unwrap(), "busybox:t"],
    );
    let copy = dir.path().join("copy");
    run(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", docker_archive.display()),
            &format!("oci:{}:copied", copy.display()),
        ],
    );
    // skopeo compresses the layer on the way; the uncompressed content (DiffID) is ours.
    let copied: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:copied", copy.display()),
        ],
    ))
    .unwrap();
    let our_layer = rbuild(
        &root,
        &[
            "image",
            "inspect",
            "-f",
            "{{index .RootFS.Layers 0}}",
            "busybox:t",
        ],
    );
    assert_eq!(copied["rootfs"]["diff_ids"][0], our_layer.trim());

    let oci_archive = dir.path().join("oci.tar");
    rbuild(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oci_archive.to_str().unwrap(),
            "busybox:t",
        ],
    );
    let config = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--config",
            &format!("oci-archive:{}", oci_archive.display()),
        ])
        .output()
        .unwrap();
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );
    assert_eq!(sha256_digest(&config.stdout).to_string(), id.trim());

    // Both layouts load back into a fresh store as the same image.
    for archive in [&docker_archive, &oci_archive] {
        let fresh = tempfile::tempdir().unwrap();
        let out = rbuild(fresh.path(), &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(
            out.trim(),
            "Loaded image: busybox:t",
            "{}",
            archive.display()
        );
        assert_eq!(
            rbuild(
                fresh.path(),
                &["image", "inspect", "-f", "{{.Id}}", "busybox:t"]
            ),
            id
        );
    }
}
