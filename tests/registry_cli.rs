//! `rbuild push` and `rbuild pull` end to end against docker-registry (no auth, htpasswd,
//! token), with skopeo reading what rbuild pushed and pushing what rbuild pulls.

mod registry_support;

use registry_support::proxy::{Action, FaultProxy, Rule};
use registry_support::{Auth, PASSWORD, Registry, USER, ok, rbuild, sha256_hex};
use std::io::Read;
use std::path::Path;

fn login(registry: &Registry, home: &Path, root: &Path) {
    if registry.auth != Auth::None {
        ok(
            rbuild(
                home,
                root,
                &["login", "-u", USER, "--password-stdin", &registry.host],
                PASSWORD,
            ),
            "login",
        );
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json")
}

fn push_then_skopeo_reads_it(auth: Auth) {
    let registry = Registry::start(auth);
    let (dir, home, root) = registry_support::workspace();
    registry_support::import_busybox(dir.path(), &home, &root, "bb:1");
    login(&registry, &home, &root);
    let target = format!("{}/team/bb:v1", registry.host);
    let out = ok(rbuild(&home, &root, &["push", "bb:1", &target], ""), "push");
    assert!(out.contains("Pushed"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in {out}"))
        .to_string();

    let reference = format!("docker://{target}");
    let inspect = json(&registry.skopeo(&["inspect", &reference]));
    assert_eq!(inspect["Digest"], digest);
    // The config went up byte for byte: the same image ID as in the store.
    let local = json(&rbuild(&home, &root, &["image", "inspect", "bb:1"], "").stdout);
    let image_id = local[0]["Id"].as_str().expect("Id").to_string();
    let layout = dir.path().join("copy");
    registry.skopeo(&["copy", &reference, &format!("oci:{}:v1", layout.display())]);
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("blob in skopeo's copy")
    };
    let manifest = json(&blob(&digest));
    assert_eq!(manifest["config"]["digest"], image_id);
    // Every layer, gunzipped, is the tar the config's DiffID names.
    let config = json(&blob(&image_id));
    for (i, layer) in manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let packed = blob(layer["digest"].as_str().expect("digest"));
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut tar)
            .expect("gunzip");
        assert_eq!(
            config["rootfs"]["diff_ids"][i],
            format!("sha256:{}", sha256_hex(&tar))
        );
    }

    // Pushed again: the remembered compressed digest is found on the registry, nothing is
    // compressed or uploaded, and the manifest digest is the same.
    let again = ok(
        rbuild(&home, &root, &["push", "bb:1", &target], ""),
        "second push",
    );
    assert!(
        again.contains("Layer already exists") && !again.contains("Pushed"),
        "{again}"
    );
    assert!(again.contains(&digest), "{again}");

    // zstd on request.
    let zstd_target = format!("{}/team/bb:zstd", registry.host);
    ok(
        rbuild(
            &home,
            &root,
            &["push", "--compression", "zstd", "bb:1", &zstd_target],
            "",
        ),
        "zstd push",
    );
    let raw = json(&registry.skopeo(&["inspect", "--raw", &format!("docker://{zstd_target}")]));
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let zstd_copy = dir.path().join("zstd-copy");
    registry.skopeo(&[
        "copy",
        &format!("docker://{zstd_target}"),
        &format!("oci:{}:z", zstd_copy.display()),
    ]);
}

fn skopeo_push_then_pull(auth: Auth) {
    let registry = Registry::start(auth);
    let (dir, home, root) = registry_support::workspace();
    let tars = vec![
        std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox"),
        registry_support::tar_with_file("etc/motd", b"pushed by skopeo\n"),
    ];
    let layout = dir.path().join("layout");
    let manifest_digest = registry_support::write_oci_layout(&layout, "latest", &tars);
    let name = format!("{}/library/bb", registry.host);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{name}:latest"),
    ]);
    login(&registry, &home, &root);

    let out = ok(rbuild(&home, &root, &["pull", &name], ""), "pull");
    assert!(out.contains(&format!("Digest: {manifest_digest}")), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    // Each layer is kept as the registry sent it (one gzip stream, from skopeo), under its
    // compressed digest; no plain copy is made.
    let remote = json(&registry.skopeo(&["inspect", "--raw", &format!("docker://{name}:latest")]));
    let remote_layers = remote["layers"].as_array().expect("layers");
    assert_eq!(remote_layers.len(), tars.len());
    for (layer, tar) in remote_layers.iter().zip(&tars) {
        let digest = layer["digest"].as_str().expect("digest");
        let stored = std::fs::read(
            root.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("layer stored as sent");
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&stored[..])
            .read_to_end(&mut unpacked)
            .expect("gunzip");
        assert_eq!(&unpacked, tar);
        assert!(!root.join("blobs/sha256").join(sha256_hex(tar)).exists());
    }
    let stored_manifest = json(&registry.skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:{name}:latest", root.display()),
    ]));
    assert_eq!(stored_manifest["layers"], remote["layers"]);
    assert_eq!(
        stored_manifest["config"]["digest"],
        remote["config"]["digest"]
    );
    let local = json(&rbuild(&home, &root, &["image", "inspect", &name], "").stdout);
    let layers: Vec<String> = tars
        .iter()
        .map(|t| format!("sha256:{}", sha256_hex(t)))
        .collect();
    assert_eq!(local[0]["RootFS"]["Layers"], serde_json::json!(layers));
    ok(rbuild(&home, &root, &["system", "fsck"], ""), "fsck");
    // The store is an OCI layout skopeo reads.
    let via_layout = json(&registry.skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:{name}:latest", root.display()),
    ]));
    assert_eq!(via_layout["rootfs"]["diff_ids"], serde_json::json!(layers));

    // Pulled again, nothing is fetched.
    let again = ok(rbuild(&home, &root, &["pull", &name], ""), "second pull");
    assert!(
        again.contains("Already exists") && !again.contains("Pull complete"),
        "{again}"
    );
}

#[test]
fn no_auth_push_and_pull() {
    push_then_skopeo_reads_it(Auth::None);
    skopeo_push_then_pull(Auth::None);
}

#[test]
fn htpasswd_push_and_pull() {
    push_then_skopeo_reads_it(Auth::Htpasswd);
    skopeo_push_then_pull(Auth::Htpasswd);
}

#[test]
fn token_push_and_pull() {
    push_then_skopeo_reads_it(Auth::Token);
    skopeo_push_then_pull(Auth::Token);
}

#[test]
fn corrupted_pull_fails_clearly_and_leaves_the_store_consistent() {
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let tars = vec![std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox")];
    let layout = dir.path().join("layout");
    registry_support::write_oci_layout(&layout, "latest", &tars);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/bad/bb:latest", registry.host),
    ]);
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Rule::new("GET", "/blobs/sha256", Action::Corrupt, usize::MAX).with_min_length(0)],
    );
    let failed = rbuild(
        &home,
        &root,
        &["pull", &format!("{}/bad/bb", proxy.host)],
        "",
    );
    let text = String::from_utf8_lossy(&failed.stderr).to_string();
    assert!(!failed.status.success(), "a corrupted pull must fail");
    assert!(text.contains("digest mismatch"), "{text}");
    ok(
        rbuild(&home, &root, &["system", "fsck"], ""),
        "fsck after a failed pull",
    );
    assert!(
        !root
            .join("blobs/sha256")
            .join(sha256_hex(&tars[0]))
            .exists()
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "tmp/ left behind: {leftovers:?}");
    // The same pull without the corruption completes.
    ok(
        rbuild(
            &home,
            &root,
            &["pull", &format!("{}/bad/bb", registry.host)],
            "",
        ),
        "clean pull",
    );
}
