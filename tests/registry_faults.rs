//! Push and pull through a fault-injecting proxy in front of a real docker-registry: dropped
//! connections mid-blob, 500s, 429 with Retry-After, a manifest cut short, corrupted bytes.
//! Transient faults are ridden out with the right digests; the rest fail with a clear error.

mod registry_support;

use rbuild::registry::compress::{Compression, compress_file};
use rbuild::registry::{BlobPush, Client, ClientOptions, Error, FileSink};
use registry_support::proxy::{Action, FaultProxy, Rule};
use registry_support::{Auth, Registry};
use std::time::Duration;

fn quick_client(host: &str, chunk_size: u64, max_attempts: u32) -> Client {
    Client::new(
        host,
        ClientOptions {
            backoff: Duration::from_millis(10),
            chunk_size,
            max_attempts,
            ..ClientOptions::default()
        },
    )
    .expect("client")
}

/// skopeo pushes a busybox image (about 1 MB of gzip) plus a small layer; returns the tars.
fn seed_image(registry: &Registry, dir: &std::path::Path) -> Vec<Vec<u8>> {
    let tars = vec![
        std::fs::read(registry_support::busybox_tar(dir)).expect("busybox tar"),
        registry_support::tar_with_file("etc/motd", b"hello\n"),
    ];
    let layout = dir.join("layout");
    registry_support::write_oci_layout(&layout, "latest", &tars);
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/faults/pull:latest", registry.host),
    ]);
    tars
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_rides_out_dropped_blobs_errors_and_a_short_manifest() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().expect("temp dir");
    let tars = seed_image(&registry, dir.path());
    let proxy = FaultProxy::start(
        &registry.host,
        vec![
            Rule::new("GET", "/manifests/", Action::CutResponse { after: 40 }, 1),
            Rule::new(
                "GET",
                "/manifests/",
                Action::Status {
                    status: 500,
                    retry_after: None,
                },
                1,
            ),
            Rule::new(
                "GET",
                "/blobs/sha256",
                Action::Status {
                    status: 429,
                    retry_after: Some(1),
                },
                1,
            ),
            Rule::new(
                "GET",
                "/blobs/sha256",
                Action::CutResponse { after: 100_000 },
                3,
            ),
        ],
    );
    let client = quick_client(&proxy.host, 64 << 20, 6);
    let (_, image, _) = client
        .resolve_image("faults/pull", "latest")
        .await
        .expect("resolve");
    let mut config = Vec::new();
    client
        .get_blob(
            "faults/pull",
            image.config().digest(),
            Some(image.config().size()),
            &mut config,
            &mut |_| {},
        )
        .await
        .expect("config");
    let config: serde_json::Value = serde_json::from_slice(&config).expect("config json");
    for (i, layer) in image.layers().iter().enumerate() {
        let mut blob = Vec::new();
        client
            .get_blob(
                "faults/pull",
                layer.digest(),
                Some(layer.size()),
                &mut blob,
                &mut |_| {},
            )
            .await
            .expect("layer despite faults");
        let (_, mut reader) = rbuild::snapshot::decompress(blob.as_slice()).expect("compressed");
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut tar).expect("decompressing");
        assert_eq!(
            config["rootfs"]["diff_ids"][i],
            format!("sha256:{}", registry_support::sha256_hex(&tar))
        );
        assert_eq!(tar, tars[i]);
    }
    let fired = proxy.fired();
    assert!(
        fired.iter().all(|n| *n >= 1),
        "every fault fired: {fired:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_rides_out_cut_uploads_errors_and_rate_limits() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = FaultProxy::start(
        &registry.host,
        vec![
            Rule::new(
                "POST",
                "/blobs/uploads/",
                Action::Status {
                    status: 429,
                    retry_after: Some(1),
                },
                1,
            ),
            // A PATCH chunk cut mid-body: the client asks the session what arrived and resumes.
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                Action::CutRequest { after: 30_000 },
                2,
            )
            .with_min_length(60_000),
            // A monolithic PUT cut mid-body: the client starts that upload over.
            Rule::new(
                "PUT",
                "/blobs/uploads/",
                Action::CutRequest { after: 20_000 },
                1,
            )
            .with_min_length(40_000),
            Rule::new(
                "PUT",
                "/manifests/",
                Action::Status {
                    status: 500,
                    retry_after: None,
                },
                2,
            ),
        ],
    );
    let busybox = std::fs::read(registry_support::busybox_tar(dir.path())).expect("busybox");
    let raw = dir.path().join("layer.tar");
    std::fs::write(&raw, &busybox).expect("layer");
    let (gz, zst) = (dir.path().join("layer.gz"), dir.path().join("layer.zst"));
    let gz_info = compress_file(&raw, &gz, Compression::Gzip).expect("gzip");
    let zst_info = compress_file(&raw, &zst, Compression::Zstd).expect("zstd");
    // Chunked for the gzip layer (256 KiB chunks); the zstd one fits in one monolithic PUT.
    let chunk = 256 << 10;
    assert!(gz_info.size > chunk && zst_info.size <= 4 << 20);
    let client = quick_client(&proxy.host, chunk, 6);
    let big_chunks = quick_client(&proxy.host, 4 << 20, 6);
    let outcome = client
        .push_blob(
            "faults/push",
            &gz_info.digest,
            gz_info.size,
            &gz,
            None,
            &mut |_| {},
        )
        .await
        .expect("chunked push despite faults");
    assert_eq!(outcome, BlobPush::Uploaded);
    let outcome = big_chunks
        .push_blob(
            "faults/push",
            &zst_info.digest,
            zst_info.size,
            &zst,
            None,
            &mut |_| {},
        )
        .await
        .expect("monolithic push despite faults");
    assert_eq!(outcome, BlobPush::Uploaded);
    let diff_id = rbuild::image::sha256_digest(&busybox);
    let config = serde_json::json!({
        "architecture": rbuild::image::config::host_platform().1, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string(), diff_id.to_string()]},
    })
    .to_string();
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, &config).expect("config");
    let config_digest = rbuild::image::sha256_digest(config.as_bytes());
    client
        .push_blob(
            "faults/push",
            &config_digest,
            config.len() as u64,
            &config_path,
            None,
            &mut |_| {},
        )
        .await
        .expect("config");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": [
            {"mediaType": Compression::Gzip.layer_media_type(), "size": gz_info.size, "digest": gz_info.digest.to_string()},
            {"mediaType": Compression::Zstd.layer_media_type(), "size": zst_info.size, "digest": zst_info.digest.to_string()},
        ],
    })
    .to_string();
    let digest = client
        .put_manifest(
            "faults/push",
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .await
        .expect("manifest despite 500s");
    let fired = proxy.fired();
    assert!(
        fired.iter().all(|n| *n >= 1),
        "every fault fired: {fired:?}"
    );

    // Straight from the registry, skopeo finds the image whole.
    let reference = format!("docker://{}/faults/push:v1", registry.host);
    let inspect: serde_json::Value =
        serde_json::from_slice(&registry.skopeo(&["inspect", &reference])).expect("inspect");
    assert_eq!(inspect["Digest"], digest.to_string());
    let copy = dir.path().join("copy");
    registry.skopeo(&["copy", &reference, &format!("oci:{}:v1", copy.display())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_blob_and_endless_errors_fail_clearly() {
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().expect("temp dir");
    seed_image(&registry, dir.path());
    let proxy = FaultProxy::start(
        &registry.host,
        vec![
            Rule::new("GET", "/blobs/sha256", Action::Corrupt, usize::MAX),
            Rule::new(
                "GET",
                "/manifests/broken",
                Action::Status {
                    status: 503,
                    retry_after: None,
                },
                usize::MAX,
            ),
        ],
    );
    let client = quick_client(&proxy.host, 64 << 20, 3);
    let direct = quick_client(&registry.host, 64 << 20, 3);
    let (_, image, _) = direct
        .resolve_image("faults/pull", "latest")
        .await
        .expect("resolve");
    let layer = &image.layers()[0];
    let mut sink = FileSink::open(&dir.path().join("partial")).expect("sink");
    let error = client
        .get_blob(
            "faults/pull",
            layer.digest(),
            Some(layer.size()),
            &mut sink,
            &mut |_| {},
        )
        .await
        .expect_err("corrupted bytes must be refused");
    assert!(matches!(error, Error::DigestMismatch { .. }), "{error}");
    assert!(
        error.to_string().contains(&layer.digest().to_string()),
        "{error}"
    );

    let error = client
        .get_manifest("faults/pull", "broken")
        .await
        .expect_err("503 forever");
    let text = error.to_string();
    assert!(
        text.contains("503") && text.contains("injected fault"),
        "{text}"
    );
    assert_eq!(proxy.fired()[1], 3, "retried up to max_attempts");
}
