//! RepoDigests as Docker keeps them: after pull and push against docker-registry, the image
//! lists `repo@sha256:<registry manifest digest>`, `images --digests` shows it, and a digest
//! reference resolves from the store once the registry is gone.

mod registry_support;

use registry_support::{Auth, Registry, ok, rbuild};
use std::path::Path;

fn repo_digests(home: &Path, root: &Path, image: &str) -> serde_json::Value {
    let out = ok(
        rbuild(home, root, &["image", "inspect", image], ""),
        "inspect",
    );
    let value: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    value[0]["RepoDigests"].clone()
}

#[test]
fn pull_and_push_record_repo_digests_that_resolve_offline() {
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let tars = vec![std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox")];
    let layout = dir.path().join("layout");
    let pulled_digest = registry_support::write_oci_layout(&layout, "latest", &tars);
    let repository = format!("{}/library/bb", registry.host);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{repository}:latest"),
    ]);

    ok(rbuild(&home, &root, &["pull", &repository], ""), "pull");
    let pulled_entry = format!("{repository}@{pulled_digest}");
    assert_eq!(
        repo_digests(&home, &root, &repository),
        serde_json::json!([pulled_entry])
    );
    let listing = ok(
        rbuild(&home, &root, &["images", "--digests"], ""),
        "images --digests",
    );
    let row = listing
        .lines()
        .find(|line| line.starts_with(&repository))
        .unwrap_or_else(|| panic!("no row for {repository}: {listing}"));
    assert!(
        row.split_whitespace().nth(2) == Some(pulled_digest.as_str()),
        "DIGEST column: {listing}"
    );

    // Pushed under another name: a second RepoDigest for the same image.
    let pushed = ok(
        rbuild(
            &home,
            &root,
            &[
                "push",
                "-q",
                &repository,
                &format!("{}/team/bb:v1", registry.host),
            ],
            "",
        ),
        "push",
    );
    let pushed_digest = pushed.trim();
    assert!(pushed_digest.starts_with("sha256:"), "{pushed}");
    let pushed_entry = format!("{}/team/bb@{pushed_digest}", registry.host);
    let mut expected = vec![pulled_entry.clone(), pushed_entry.clone()];
    expected.sort();
    assert_eq!(
        repo_digests(&home, &root, &repository),
        serde_json::json!(expected)
    );

    // The registry is gone: digest references resolve from the store, for pull and FROM.
    drop(registry);
    let offline = ok(
        rbuild(&home, &root, &["pull", &pulled_entry], ""),
        "offline pull",
    );
    assert!(offline.contains("Image is up to date"), "{offline}");
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {pushed_entry}\nENV FROM_DIGEST=1\n"),
    )
    .expect("Dockerfile");
    ok(
        rbuild(
            &home,
            &root,
            &["build", "-t", "child:1", context.to_str().expect("utf-8")],
            "",
        ),
        "offline build FROM repo@digest",
    );
    ok(rbuild(&home, &root, &["system", "fsck"], ""), "fsck");
}
