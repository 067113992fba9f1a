//! The distribution client against Debian's docker-registry (distribution 2.8), three ways
//! (no auth, htpasswd, token), with skopeo as the reference on the other side.

mod registry_support;

use oci_spec::image::Digest;
use rbuild::registry::auth::Credential;
use rbuild::registry::compress::{Compression, compress_file};
use rbuild::registry::{BlobPush, Client, ClientOptions};
use registry_support::{Auth, PASSWORD, Registry, USER};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;

fn client(registry: &Registry, options: ClientOptions) -> Client {
    let credential = match registry.auth {
        Auth::None => None,
        _ => Some(Credential::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        }),
    };
    Client::new(
        &registry.host,
        ClientOptions {
            credential,
            ..options
        },
    )
    .expect("client")
}

struct PushedImage {
    manifest: Vec<u8>,
    manifest_digest: Digest,
    layer_digests: Vec<Digest>,
}

/// Pushes an image of two layers (busybox gzip, a small file zstd) to `repository:tag`.
async fn push_image(
    client: &Client,
    dir: &Path,
    repository: &str,
    tag: &str,
) -> (PushedImage, Vec<BlobPush>) {
    let layers = [
        (
            std::fs::read(registry_support::busybox_tar(dir)).expect("busybox tar"),
            Compression::Gzip,
        ),
        (
            registry_support::tar_with_file("hello.txt", b"hello from rbuild\n"),
            Compression::Zstd,
        ),
    ];
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut outcomes = Vec::new();
    let mut layer_digests = Vec::new();
    for (i, (tar, compression)) in layers.iter().enumerate() {
        let raw = dir.join(format!("layer{i}.tar"));
        let packed = dir.join(format!("layer{i}.tar.{}", compression.name()));
        std::fs::write(&raw, tar).expect("layer");
        let info = compress_file(&raw, &packed, *compression).expect("compress");
        outcomes.push(
            client
                .push_blob(
                    repository,
                    &info.digest,
                    info.size,
                    &packed,
                    None,
                    &mut |_| {},
                )
                .await
                .expect("push layer"),
        );
        diff_ids.push(format!("sha256:{}", registry_support::sha256_hex(tar)));
        descriptors.push(serde_json::json!({
            "mediaType": compression.layer_media_type(), "size": info.size, "digest": info.digest.to_string(),
        }));
        layer_digests.push(info.digest);
    }
    let config = serde_json::json!({
        "architecture": rbuild::image::config::host_platform().1, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, &config).expect("config");
    let config_digest = rbuild::image::sha256_digest(config.as_bytes());
    outcomes.push(
        client
            .push_blob(
                repository,
                &config_digest,
                config.len() as u64,
                &config_path,
                None,
                &mut |_| {},
            )
            .await
            .expect("push config"),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": descriptors,
    })
    .to_string()
    .into_bytes();
    let manifest_digest = client
        .put_manifest(
            repository,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .await
        .expect("push manifest");
    (
        PushedImage {
            manifest,
            manifest_digest,
            layer_digests,
        },
        outcomes,
    )
}

async fn client_push_is_read_by_skopeo(auth: Auth) {
    let registry = Registry::start(auth);
    let dir = tempfile::tempdir().expect("temp dir");
    let client = client(&registry, ClientOptions::default());
    let (image, outcomes) = push_image(&client, dir.path(), "team/app", "v1").await;
    assert!(
        outcomes.iter().all(|o| *o == BlobPush::Uploaded),
        "{outcomes:?}"
    );

    // skopeo sees exactly the manifest we pushed, under the digest we computed.
    let reference = format!("docker://{}/team/app:v1", registry.host);
    let raw = registry.skopeo(&["inspect", "--raw", &reference]);
    assert_eq!(raw, image.manifest);
    let inspect: serde_json::Value =
        serde_json::from_slice(&registry.skopeo(&["inspect", &reference])).expect("inspect json");
    assert_eq!(inspect["Digest"], image.manifest_digest.to_string());
    let layers: Vec<String> = inspect["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect();
    let expected: Vec<String> = image.layer_digests.iter().map(|d| d.to_string()).collect();
    assert_eq!(layers, expected);

    // skopeo copies it back to an OCI layout unchanged (every blob verified by skopeo).
    let layout = dir.path().join("copy");
    registry.skopeo(&["copy", &reference, &format!("oci:{}:v1", layout.display())]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index json");
    assert_eq!(
        index["manifests"][0]["digest"],
        image.manifest_digest.to_string()
    );
    for digest in &image.layer_digests {
        assert!(layout.join("blobs/sha256").join(digest.digest()).is_file());
    }

    // A second push finds every blob in place.
    let (_, outcomes) = push_image(&client, dir.path(), "team/app", "v2").await;
    assert!(
        outcomes.iter().all(|o| *o == BlobPush::Existed),
        "{outcomes:?}"
    );

    // Another repository gets the layer by cross-repository mount, not by upload.
    let layer = dir.path().join("layer0.tar.gzip");
    let size = std::fs::metadata(&layer).expect("layer").len();
    let outcome = client
        .push_blob(
            "other/app",
            &image.layer_digests[0],
            size,
            &layer,
            Some("team/app"),
            &mut |_| {},
        )
        .await
        .expect("mount");
    assert_eq!(outcome, BlobPush::Mounted);

    // Chunked upload (PATCH chunks with Content-Range, then PUT) of the same layer elsewhere.
    let chunked = client_with_chunks(&registry, 64 << 10);
    let mut reported = Vec::new();
    let outcome = chunked
        .push_blob(
            "chunked/app",
            &image.layer_digests[0],
            size,
            &layer,
            None,
            &mut |n| reported.push(n),
        )
        .await
        .expect("chunked upload");
    assert_eq!(outcome, BlobPush::Uploaded);
    assert!(
        reported.len() > 2 && reported.last() == Some(&size),
        "{reported:?}"
    );
    assert_eq!(
        chunked
            .blob_size("chunked/app", &image.layer_digests[0])
            .await
            .expect("HEAD"),
        Some(size)
    );
}

fn client_with_chunks(registry: &Registry, chunk_size: u64) -> Client {
    client(
        registry,
        ClientOptions {
            chunk_size,
            ..ClientOptions::default()
        },
    )
}

async fn skopeo_push_is_pulled_by_client(auth: Auth) {
    let registry = Registry::start(auth);
    let dir = tempfile::tempdir().expect("temp dir");
    let tars = vec![
        std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox tar"),
        registry_support::tar_with_file("etc/motd", b"pushed by skopeo\n"),
    ];
    let layout = dir.path().join("layout");
    let manifest_digest = registry_support::write_oci_layout(&layout, "latest", &tars);
    let reference = format!("docker://{}/library/bb:latest", registry.host);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &reference,
    ]);

    let client = client(&registry, ClientOptions::default());
    let (manifest, image, index) = client
        .resolve_image("library/bb", "latest")
        .await
        .expect("resolve");
    assert!(index.is_none());
    assert_eq!(manifest.digest.to_string(), manifest_digest);
    let config_bytes = {
        let mut sink = Vec::new();
        client
            .get_blob(
                "library/bb",
                image.config().digest(),
                Some(image.config().size()),
                &mut sink,
                &mut |_| {},
            )
            .await
            .expect("config");
        sink
    };
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).expect("config json");
    for (i, layer) in image.layers().iter().enumerate() {
        let mut blob = Vec::new();
        client
            .get_blob(
                "library/bb",
                layer.digest(),
                Some(layer.size()),
                &mut blob,
                &mut |_| {},
            )
            .await
            .expect("layer");
        let (_, mut reader) = rbuild::snapshot::decompress(blob.as_slice()).expect("compressed");
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut tar).expect("decompressing");
        assert_eq!(
            config["rootfs"]["diff_ids"][i],
            format!("sha256:{}", registry_support::sha256_hex(&tar))
        );
        assert_eq!(tar, tars[i]);
    }

    // Pinned by digest, the manifest is checked against it.
    let by_digest = client
        .get_manifest("library/bb", &manifest_digest)
        .await
        .expect("by digest");
    assert_eq!(by_digest.bytes, manifest.bytes);
    // A blob the repository lacks is a clear 404, and a wrong digest is refused.
    let missing =
        Digest::from_str("sha256:0000000000000000000000000000000000000000000000000000000000000000")
            .expect("digest");
    assert_eq!(
        client
            .blob_size("library/bb", &missing)
            .await
            .expect("HEAD"),
        None
    );
    let error = client
        .get_blob("library/bb", &missing, None, &mut Vec::new(), &mut |_| {})
        .await
        .expect_err("missing blob");
    assert!(error.to_string().contains("404"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_auth_push_and_pull() {
    client_push_is_read_by_skopeo(Auth::None).await;
    skopeo_push_is_pulled_by_client(Auth::None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_push_and_pull() {
    client_push_is_read_by_skopeo(Auth::Htpasswd).await;
    skopeo_push_is_pulled_by_client(Auth::Htpasswd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_push_and_pull() {
    client_push_is_read_by_skopeo(Auth::Token).await;
    skopeo_push_is_pulled_by_client(Auth::Token).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_cache_serves_each_scope_once() {
    let registry = Registry::start(Auth::Token);
    let dir = tempfile::tempdir().expect("temp dir");
    let client = client(&registry, ClientOptions::default());
    push_image(&client, dir.path(), "cached/app", "v1").await;
    let issued = registry
        .token_server
        .as_ref()
        .expect("token server")
        .issued
        .load(Ordering::SeqCst);
    // One token for push scope plus one for the pull-only HEADs: not one per request.
    assert!(issued <= 3, "{issued} tokens for one push");
    client
        .get_manifest("cached/app", "v1")
        .await
        .expect("manifest");
    client
        .get_manifest("cached/app", "v1")
        .await
        .expect("manifest");
    let after = registry
        .token_server
        .as_ref()
        .expect("token server")
        .issued
        .load(Ordering::SeqCst);
    assert!(
        after <= issued + 1,
        "{after} tokens after two manifest GETs (was {issued})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_anonymous_push_fail_clearly() {
    for auth in [Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth);
        let wrong = Client::new(
            &registry.host,
            ClientOptions {
                credential: Some(Credential::Basic {
                    username: USER.into(),
                    password: "wrong".into(),
                }),
                ..ClientOptions::default()
            },
        )
        .expect("client");
        let error = wrong.check_login().await.expect_err("wrong password");
        let text = error.to_string();
        assert!(
            text.contains("401") || text.contains("invalid username"),
            "{auth:?}: {text}"
        );
        let right = client(&registry, ClientOptions::default());
        right.check_login().await.expect("right password");
        let anonymous = Client::new(&registry.host, ClientOptions::default()).expect("client");
        let error = anonymous
            .put_manifest(
                "x/y",
                "v1",
                "application/vnd.oci.image.manifest.v1+json",
                b"{}",
            )
            .await
            .expect_err("anonymous push");
        assert!(error.to_string().contains("401"), "{auth:?}: {error}");
    }
}
