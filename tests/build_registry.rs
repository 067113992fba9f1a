//! Builds that meet a registry: a FROM image missing from the store is pulled on demand,
//! `--pull` pulls it again, and `--push` sends the result to the registry of every -t name.
//! docker-registry runs on 127.0.0.1, started by the test; skopeo reads what was pushed.

mod registry_support;

use registry_support::{Auth, Registry, ok_stdout};
use std::path::Path;
use std::process::Output;

/// rbuild with its own HOME and store, nothing on stdin.
fn rbuild(home: &Path, root: &Path, args: &[&str]) -> Output {
    registry_support::rbuild(home, root, args, "")
}

/// A registry holding the busybox base as `HOST/base/busybox:1` (imported and pushed by a
/// store of its own), a temp dir, and a HOME without credentials.
fn registry_with_base() -> (Registry, tempfile::TempDir, std::path::PathBuf, String) {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let publisher = dir.path().join("publisher");
    let tar = registry_support::busybox_tar(dir.path());
    let base = format!("{}/base/busybox:1", registry.host);
    ok_stdout(
        rbuild(
            &home,
            &publisher,
            &["import", tar.to_str().expect("utf-8"), &base],
        ),
        "import",
    );
    ok_stdout(
        rbuild(&home, &publisher, &["push", &base]),
        "push of the base",
    );
    (registry, dir, home, base)
}

#[test]
fn from_pulls_a_missing_base_and_push_sends_the_result() {
    let (registry, dir, home, base) = registry_with_base();
    let builder = dir.path().join("builder");

    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context).expect("ctx");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nRUN echo built-on-pulled-base > /proof\n"),
    )
    .expect("Dockerfile");
    let app = format!("{}/team/app:v1", registry.host);
    let id = ok_stdout(
        rbuild(
            &home,
            &builder,
            &[
                "build",
                "--push",
                "-t",
                &app,
                context.to_str().expect("utf-8"),
            ],
        ),
        "build with an on-demand pull and --push",
    );
    let id = id.trim();
    // The base arrived in the builder's store, and the image went to the registry.
    ok_stdout(
        rbuild(&home, &builder, &["image", "inspect", &base]),
        "inspect of the pulled base",
    );
    let config = registry.skopeo(&["inspect", "--config", &format!("docker://{app}")]);
    let config: serde_json::Value = serde_json::from_slice(&config).expect("config json");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
    let local = ok_stdout(
        rbuild(&home, &builder, &["image", "inspect", id]),
        "inspect",
    );
    let local: serde_json::Value = serde_json::from_str(&local).expect("inspect json");
    assert_eq!(
        local[0]["RootFS"]["Layers"], config["rootfs"]["diff_ids"],
        "the registry has the layers that were built"
    );

    // --pull fetches the base again and the build still uses its cache for the rest.
    let out = rbuild(
        &home,
        &builder,
        &[
            "build",
            "--pull",
            "--progress",
            "plain",
            "-t",
            "again:1",
            context.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("CACHED"), "{stderr}");

    // A base that is neither in the store nor in the registry: a clear error.
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}/nowhere/none:1\nRUN true\n", registry.host),
    )
    .expect("Dockerfile");
    let out = rbuild(
        &home,
        &builder,
        &["build", "-t", "x:1", context.to_str().expect("utf-8")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:1:1") && stderr.contains("nowhere/none"),
        "{stderr}"
    );
}

#[test]
fn cache_to_and_from_a_folder_and_a_registry() {
    let (registry, dir, home, base) = registry_with_base();
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context).expect("ctx");
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {base} AS tools\nRUN echo tool > /tool\n\
             FROM {base}\nRUN echo one > /one\nCOPY Dockerfile /copied\nCOPY --from=tools /tool /tool\nRUN echo two > /two\n"
        ),
    )
    .expect("Dockerfile");
    let ctx = context.to_str().expect("utf-8");
    let folder = dir.path().join("cache");
    let cache_ref = format!("{}/team/cache:main", registry.host);

    // The first builder exports its cache both ways.
    let first = ok_stdout(
        rbuild(
            &home,
            &dir.path().join("first"),
            &[
                "build",
                "--cache-to",
                &format!("type=local,dest={}", folder.display()),
                "--cache-to",
                &format!("type=registry,ref={cache_ref}"),
                "-t",
                "app:1",
                ctx,
            ],
        ),
        "build exporting its cache",
    );
    // Fresh stores start from those caches: every step is found, nothing runs.
    for (name, spec) in [
        (
            "from-folder",
            format!("type=local,src={}", folder.display()),
        ),
        ("from-registry", format!("type=registry,ref={cache_ref}")),
    ] {
        let store = dir.path().join(name);
        let out = rbuild(
            &home,
            &store,
            &[
                "build",
                "--cache-from",
                &spec,
                "--progress",
                "plain",
                "-t",
                "app:1",
                ctx,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{name}: {stderr}");
        // A multi-stage build from an empty store runs no step at all.
        assert_eq!(stderr.matches("CACHED").count(), 5, "{name}: {stderr}");
        assert!(!stderr.contains("cache miss"), "{name}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            first.trim(),
            "{name}: the same image as the first build"
        );
        let images = ok_stdout(
            rbuild(&home, &store, &["images", "--format", "{{.Repository}}"]),
            "images",
        );
        assert!(
            !images.contains("cache"),
            "{name}: the cache is not listed as an image: {images}"
        );
    }
    // A cache that does not exist yet is no error (the first build of a pipeline).
    let out = rbuild(
        &home,
        &dir.path().join("empty"),
        &[
            "build",
            "--cache-from",
            &format!("type=registry,ref={}/none/cache:1", registry.host),
            "-t",
            "x:1",
            ctx,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rbuild(
        &home,
        &dir.path().join("empty"),
        &["build", "--cache-to", "type=s3,bucket=x", "-t", "x:1", ctx],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cache-to"));
}
