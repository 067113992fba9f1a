//! Pulled images as containerd keeps them: layers stored exactly as the registry sent them,
//! their tar checked against the config's DiffID when first unpacked. Against docker-registry
//! on 127.0.0.1 with images pushed by skopeo (one gzip stream per layer): the pulled image is
//! read by umoci, runs, serves as a FROM base, saves and loads (into rbuild and Docker
//! Engine), pushes again without being inflated, and a layer whose tar is not the DiffID its
//! config names is refused at unpack.

mod registry_support;
mod support;

use registry_support::{Auth, Registry, ok, ok_stdout, rbuild, require_tool};
use std::path::Path;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json")
}

const MOTD: &[u8] = b"pushed by skopeo\n";

/// busybox plus a layer adding /etc/motd, pushed by skopeo to `HOST/library/bb:latest`
/// with a config naming the DiffIDs of `claimed` (the layers' own when `None`).
fn skopeo_pushed(registry: &Registry, dir: &Path, claimed: Option<&[Vec<u8>]>) -> String {
    let tars = vec![
        std::fs::read(registry_support::busybox_tar(dir)).expect("busybox"),
        registry_support::tar_with_file("etc/motd", MOTD),
    ];
    let layout = dir.join("layout");
    registry_support::write_oci_layout_claiming(&layout, "latest", &tars, claimed.unwrap_or(&tars));
    let name = format!("{}/library/bb", registry.host);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{name}:latest"),
    ]);
    name
}

/// The layer digests of a manifest on the registry.
fn remote_layers(registry: &Registry, reference: &str) -> serde_json::Value {
    let raw = json(&registry.skopeo(&["inspect", "--raw", &format!("docker://{reference}")]));
    raw["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].clone())
        .collect()
}

fn image_id(home: &Path, root: &Path, image: &str) -> String {
    ok_stdout(
        rbuild(
            home,
            root,
            &["image", "inspect", "-f", "{{.Id}}", image],
            "",
        ),
        "image inspect",
    )
    .trim()
    .to_string()
}

/// The content of `path` in `image`, read by running `cat` in it.
fn cat_in(home: &Path, root: &Path, image: &str, path: &str) -> String {
    ok_stdout(
        rbuild(home, root, &["run", "--rm", image, "cat", path], ""),
        &format!("cat {path} in {image}"),
    )
}

/// The images' size `system df` reports, in bytes (from Docker's 3-digit human form).
fn df_images_size(home: &Path, root: &Path) -> f64 {
    let out = ok_stdout(
        rbuild(home, root, &["system", "df", "--format", "{{.Size}}"], ""),
        "system df",
    );
    let first = out.lines().next().unwrap_or_default();
    let split = first
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(first.len());
    let (number, unit) = first.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?} in {out}"),
    };
    number.parse::<f64>().expect("a size") * scale
}

#[test]
fn a_pulled_image_is_read_by_umoci_runs_and_is_a_base_for_builds() {
    require_tool("umoci", "umoci");
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let name = skopeo_pushed(&registry, dir.path(), None);
    ok(rbuild(&home, &root, &["pull", &name], ""), "pull");
    // On disk: the compressed blobs only, until the image is first used.
    let raw = json(&registry.skopeo(&["inspect", "--raw", &format!("docker://{name}:latest")]));
    let compressed: u64 = raw["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["size"].as_u64())
        .sum();
    let pulled = df_images_size(&home, &root);
    assert!(
        (pulled - compressed as f64).abs() / (compressed as f64) < 0.01,
        "df {pulled} vs {compressed} bytes of compressed layers"
    );

    // The store stays an OCI layout: umoci unpacks the pulled (gzip) layers.
    let bundle = dir.path().join("bundle");
    let unpacked = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{name}:latest", root.display()))
        .arg(&bundle)
        .output()
        .expect("umoci");
    assert!(
        unpacked.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/motd")).expect("motd"),
        MOTD
    );

    // Unpacked on first use (the DiffIDs checked), then run.
    let out = cat_in(&home, &root, &name, "/etc/motd");
    assert_eq!(out.as_bytes(), MOTD);
    // Unpacked now: the snapshots count too (busybox is about twice its gzip size).
    let unpacked = df_images_size(&home, &root);
    assert!(
        unpacked > 2.0 * pulled,
        "df {unpacked} after the first run, {pulled} before"
    );
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context).expect("ctx");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {name}\nRUN cat /etc/motd /etc/motd > /twice\n"),
    )
    .expect("Dockerfile");
    ok(
        rbuild(
            &home,
            &root,
            &["build", "-t", "on-pulled", context.to_str().expect("utf-8")],
            "",
        ),
        "build FROM the pulled image",
    );
    let twice = cat_in(&home, &root, "on-pulled", "/twice");
    assert_eq!(twice.as_bytes(), [MOTD, MOTD].concat());
    ok(rbuild(&home, &root, &["system", "fsck"], ""), "fsck");
}

#[test]
fn a_layer_whose_tar_is_not_its_diff_id_is_refused_at_unpack() {
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let claimed = vec![
        std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox"),
        registry_support::tar_with_file("etc/motd", b"what the config promised\n"),
    ];
    let name = skopeo_pushed(&registry, dir.path(), Some(&claimed));
    // The blobs match the manifest: the pull itself succeeds.
    ok(rbuild(&home, &root, &["pull", &name], ""), "pull");
    let run = rbuild(&home, &root, &["run", "--rm", &name, "true"], "");
    let text = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(!run.status.success(), "a lying layer must not run");
    let lying_diff_id = format!("sha256:{}", registry_support::sha256_hex(&claimed[1]));
    assert!(
        text.contains("refused") && text.contains(&lying_diff_id),
        "{text}"
    );
    // Only the base layer, which matches, was kept unpacked; nothing is left in tmp/.
    let snapshots: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .expect("snapshots")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        snapshots,
        vec![std::ffi::OsString::from(registry_support::sha256_hex(
            &claimed[0]
        ))]
    );
    let leftovers = std::fs::read_dir(root.join("tmp")).expect("tmp").count();
    assert_eq!(leftovers, 0);
    // fsck inflates what no unpack proved, and finds the lie.
    let fsck = rbuild(&home, &root, &["system", "fsck"], "");
    assert!(!fsck.status.success());
    let report =
        String::from_utf8_lossy(&fsck.stdout).to_string() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(report.contains(&lying_diff_id), "{report}");
}

#[test]
fn a_pulled_image_saves_loads_and_pushes_its_blobs_as_they_are() {
    require_tool("skopeo", "skopeo");
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let name = skopeo_pushed(&registry, dir.path(), None);
    ok(rbuild(&home, &root, &["pull", &name], ""), "pull");
    let id = image_id(&home, &root, &name);

    // Pushed to another repository: the same compressed blobs, nothing inflated or redone,
    // and mounted from the repository they were pulled from (the registry has them).
    let copy = format!("{}/other/bb:1", registry.host);
    let pushed = ok(rbuild(&home, &root, &["push", &name, &copy], ""), "push");
    assert_eq!(pushed.matches("Mounted").count(), 2, "{pushed}");
    assert_eq!(
        remote_layers(&registry, &copy),
        remote_layers(&registry, &format!("{name}:latest"))
    );
    let compressed_on_push = std::fs::read_dir(root.join("compressed/sha256"))
        .expect("compressed")
        .count();
    assert_eq!(compressed_on_push, 0, "push compressed nothing");

    // Saved (Docker and OCI archives) and loaded into a fresh store: the same image ID,
    // and it runs there.
    for format in ["docker", "oci"] {
        let archive = dir.path().join(format!("{format}.tar"));
        let archive = archive.to_str().expect("utf-8");
        ok(
            rbuild(
                &home,
                &root,
                &["save", "--format", format, "-o", archive, &name],
                "",
            ),
            "save",
        );
        let other = dir.path().join(format!("loaded-{format}"));
        ok(rbuild(&home, &other, &["load", "-i", archive], ""), "load");
        assert_eq!(image_id(&home, &other, &name), id, "{format}");
        let motd = cat_in(&home, &other, &name, "/etc/motd");
        assert_eq!(motd.as_bytes(), MOTD);
    }
    let inspected = json(&registry.skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}/docker.tar", dir.path().display()),
    ]));
    assert_eq!(
        inspected["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_saved_pulled_image_loads_and_runs_in_docker_engine() {
    let docker = support::dockerd::Dockerd::start();
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let name = skopeo_pushed(&registry, dir.path(), None);
    ok(rbuild(&home, &root, &["pull", &name], ""), "pull");
    let id = image_id(&home, &root, &name);
    // The archive holds the gzip blobs as pulled; Docker inflates them and checks the DiffIDs.
    let archive = dir.path().join("pulled.tar");
    let archive = archive.to_str().expect("utf-8");
    ok(
        rbuild(&home, &root, &["save", "-o", archive, &name], ""),
        "save",
    );
    docker.docker(&["load", "-i", archive]);
    assert_eq!(
        docker
            .docker(&["image", "inspect", "-f", "{{.Id}}", &name])
            .trim(),
        id
    );
    let motd = docker.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "cat",
        "/etc/motd",
    ]);
    assert_eq!(motd.as_bytes(), MOTD);
}
