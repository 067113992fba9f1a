//! The image and system commands: tag, rmi, images filters and formats, history, inspect,
//! prune, df, and fsck finding (and repairing) a corrupted store.

mod store_support;

use rbuild::image::Reference;
use rbuild::store::Store;
use std::fs;
use store_support::*;

#[test]
fn tag_list_remove_and_prune_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());
    let tar = tar.to_str().unwrap();
    let id = rbuild(&root, &["import", tar, "busybox:t"])
        .trim()
        .to_string();
    let short = &id["sha256:".len()..][..12];
    rbuild(&root, &["tag", "busybox:t", "localhost:5000/a/b:v1"]);
    rbuild(&root, &["tag", short, "other"]);

    let listed = rbuild(
        &root,
        &["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"],
    );
    let mut rows: Vec<&str> = listed.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            format!("busybox t {short}"),
            format!("localhost:5000/a/b v1 {short}"),
            format!("other latest {short}"),
        ]
    );
    assert_eq!(rbuild(&root, &["images", "-q"]).trim(), short);
    assert_eq!(rbuild(&root, &["images", "-q", "--no-trunc"]).trim(), id);
    let filtered = rbuild(
        &root,
        &[
            "images",
            "--filter",
            "reference=busy*",
            "--format",
            "{{.Repository}}",
        ],
    );
    assert_eq!(filtered.trim(), "busybox");
    let json_line = rbuild(&root, &["image", "ls", "--format", "json", "busybox:t"]);
    let row: serde_json::Value = serde_json::from_str(json_line.trim()).unwrap();
    assert_eq!(row["Tag"], "t");
    assert_eq!(row["ID"], short);

    let inspect: serde_json::Value =
        serde_json::from_str(&rbuild(&root, &["image", "inspect", "busybox:t"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    let mut tags: Vec<String> = inspect[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec!["busybox:t", "localhost:5000/a/b:v1", "other:latest"]
    );
    assert_eq!(
        rbuild(
            &root,
            &["image", "inspect", "-f", "{{json .Config}}", "other"]
        )
        .trim(),
        "{}"
    );
    let history = rbuild(&root, &["history", "--no-trunc", "-q", "other"]);
    assert_eq!(history.trim(), id);

    // By ID with several names: refused unless forced.
    let refused = rbuild_output(&root, &["rmi", short]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("referenced in multiple repositories")
    );
    // By name: untag only while other names remain.
    assert_eq!(
        rbuild(&root, &["rmi", "other"]).trim(),
        "Untagged: other:latest"
    );
    let missing = rbuild_output(&root, &["image", "inspect", "other"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image: other"));

    // A container uses the image (a pin): the last name cannot go unless forced.
    let manifest = Store::open(&root)
        .unwrap()
        .resolve(&Reference::parse("busybox:t").unwrap())
        .unwrap()
        .manifest_descriptor;
    Store::open(&root)
        .unwrap()
        .pin("c0ffee", &[manifest.digest().clone()])
        .unwrap();
    rbuild(&root, &["rmi", "localhost:5000/a/b:v1"]);
    let in_use = rbuild_output(&root, &["rmi", "busybox:t"]);
    assert!(!in_use.status.success());
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("container c0ffee is using"));
    rbuild(&root, &["rmi", "-f", "busybox:t"]);
    // Forced: untagged but kept (dangling) while pinned; prune keeps it too.
    assert_eq!(
        rbuild(&root, &["images", "-q", "--filter", "dangling=true"]).trim(),
        short
    );
    rbuild(&root, &["image", "prune", "-f"]);
    assert_eq!(rbuild(&root, &["images", "-q"]).trim(), short);
    Store::open(&root).unwrap().unpin("c0ffee").unwrap();
    let pruned = rbuild(&root, &["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {id}")), "{pruned}");
    // The layer blob and its snapshot (unpacked on import), about 2 MB each.
    assert!(pruned.contains("Total reclaimed space: 4."), "{pruned}");
    assert_eq!(rbuild(&root, &["images", "-q"]).trim(), "");
    let blobs = fs::read_dir(root.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "pruning collects every blob of the image");
    assert_eq!(fs::read_dir(root.join("snapshots")).unwrap().count(), 0);

    // rmi of the last name deletes the image and its blobs at once.
    let again = rbuild(&root, &["import", tar, "again"]);
    let removed = rbuild(&root, &["rmi", "again"]);
    assert_eq!(
        removed,
        format!("Untagged: again:latest\nDeleted: {}\n", again.trim())
    );
    assert_eq!(fs::read_dir(root.join("blobs/sha256")).unwrap().count(), 0);
    let df = rbuild(&root, &["system", "df"]);
    assert!(
        df.starts_with(
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          0 "
        ),
        "{df}"
    );
}

#[test]
fn fsck_reports_corruption_and_repair_drops_what_cannot_be_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = busybox_tar(dir.path());
    let tar = tar.to_str().unwrap();
    rbuild(&root, &["import", tar, "good"]);
    let layer = rbuild(
        &root,
        &[
            "image",
            "inspect",
            "-f",
            "{{index .RootFS.Layers 0}}",
            "good",
        ],
    );
    let layer = layer.trim();
    let blob = root
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&blob, bytes).unwrap();

    let out = rbuild_output(&root, &["system", "fsck"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("blob {layer} is corrupt")), "{text}");
    assert!(text.contains("image good:latest"), "{text}");

    let repaired = rbuild(&root, &["system", "fsck", "--repair"]);
    assert!(
        repaired.contains("after repair: 0 problem(s)"),
        "{repaired}"
    );
    rbuild(&root, &["system", "fsck"]);
    assert_eq!(rbuild(&root, &["images", "-q"]), "");
    // The store works on: the same import succeeds again.
    rbuild(&root, &["import", tar, "good"]);
    rbuild(&root, &["system", "fsck"]);
}

#[test]
fn import_change_sets_the_runtime_defaults_docker_import_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let tar = busybox_tar(dir.path());
    let tar = tar.to_str().unwrap();
    rbuild(
        &root,
        &[
            "import",
            "-c",
            r#"CMD ["sh", "-c", "echo $GREETING"]"#,
            "-c",
            "ENV GREETING=hi",
            "-c",
            "EXPOSE 8080/udp",
            "-c",
            "WORKDIR /srv",
            "-c",
            "USER nobody",
            "-c",
            "LABEL team=store",
            tar,
            "changed:1",
        ],
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&rbuild(&root, &["image", "inspect", "changed:1"])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["sh", "-c", "echo $GREETING"])
    );
    assert_eq!(config["Env"], serde_json::json!(["GREETING=hi"]));
    assert_eq!(config["ExposedPorts"], serde_json::json!({"8080/udp": {}}));
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["User"], "nobody");
    assert_eq!(config["Labels"]["team"], "store");
    // Without changes the config is empty, as docker import's.
    rbuild(&root, &["import", tar, "plain:1"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&rbuild(&root, &["image", "inspect", "plain:1"])).unwrap();
    assert!(
        inspect[0]["Config"]["Env"].is_null(),
        "{}",
        inspect[0]["Config"]
    );
    assert!(
        inspect[0]["Config"]["WorkingDir"].is_null() || inspect[0]["Config"]["WorkingDir"] == ""
    );
    // An instruction import cannot apply is refused, naming it.
    let out = rbuild_output(&root, &["import", "-c", "RUN rm -rf /", tar, "bad:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUN is not a valid change command"));
}
