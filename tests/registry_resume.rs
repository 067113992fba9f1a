//! A pull killed mid-blob continues in the next process: the partial compressed blob stays in
//! the store's tmp/ (garbage collection keeps it), the next pull asks for the rest with a
//! Range request, and the layer is stored as sent, under its digest. A corrupt partial is discarded
//! and the blob fetched whole.

mod registry_support;

use registry_support::proxy::{Action, FaultProxy, Rule};
use registry_support::{Auth, Registry, ok, rbuild};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes gzip cannot shrink, so the compressed blob is as large as the layer.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An rbuild process killed (SIGKILL) when dropped, should the test fail first.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const STALL_AFTER: usize = 4 << 20;

/// Starts `rbuild pull image` on `root`, waits until the stalled blob's partial file holds
/// a good part of the bytes relayed, and kills the process. Returns the partial file.
fn pull_killed_mid_blob(
    proxy: &FaultProxy,
    layer_path: &'static str,
    home: &Path,
    root: &Path,
    image: &str,
) -> PathBuf {
    if let Ok(mut rules) = proxy.rules.lock() {
        rules.push(Arc::new(Rule::new(
            "GET",
            layer_path,
            Action::Stall { after: STALL_AFTER },
            1,
        )));
    }
    let child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(["pull", "-q", image])
        .env("HOME", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running rbuild pull");
    let mut running = Running(child);
    let hex = layer_path.trim_start_matches("/blobs/sha256:");
    let partial = root.join("tmp").join(format!("partial-sha256-{hex}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held = std::fs::metadata(&partial).map_or(0, |m| m.len());
        if held >= 2 << 20 {
            break;
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("rbuild pull ended ({status}) before it was killed mid-blob");
        }
        assert!(
            Instant::now() < deadline,
            "the partial download never reached 2 MiB ({held} bytes in {})",
            partial.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(running);
    partial
}

fn range_requests_for(proxy: &FaultProxy, layer_path: &str) -> Vec<String> {
    proxy.requests_where(|head| {
        head.starts_with("GET ")
            && head.contains(layer_path)
            && head.to_ascii_lowercase().contains("\r\nrange: bytes=")
    })
}

#[test]
fn a_pull_killed_mid_blob_resumes_in_the_next_process() {
    let registry = Registry::start(Auth::None);
    let (dir, home, _) = registry_support::workspace();
    let tar = registry_support::tar_with_file("noise", &noise(8 << 20));
    let layout = dir.path().join("layout");
    let manifest_digest =
        registry_support::write_oci_layout(&layout, "latest", std::slice::from_ref(&tar));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(manifest_digest.trim_start_matches("sha256:")),
        )
        .expect("layout manifest"),
    )
    .expect("manifest json");
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let layer_path: &'static str = Box::leak(format!("/blobs/{layer_digest}").into_boxed_str());
    registry.skopeo(&[
        "copy",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/resume/noise:latest", registry.host),
    ]);
    let proxy = FaultProxy::start(&registry.host, vec![]);
    let image = format!("{}/resume/noise:latest", proxy.host);
    // Stored as sent: the gzip blob under its digest.
    let hex = layer_digest.trim_start_matches("sha256:").to_string();
    let sent = std::fs::read(layout.join("blobs/sha256").join(&hex)).expect("layout layer");
    let stored_layer = |root: &Path| root.join("blobs/sha256").join(&hex);

    // Killed mid-blob: the partial survives garbage collection, which removes the rest.
    let root = dir.path().join("root");
    let partial = pull_killed_mid_blob(&proxy, layer_path, &home, &root, &image);
    let held = std::fs::metadata(&partial).expect("partial kept").len();
    ok(
        rbuild(&home, &root, &["system", "prune", "-f"], ""),
        "prune",
    );
    assert_eq!(
        std::fs::metadata(&partial).map(|m| m.len()).ok(),
        Some(held),
        "garbage collection removed or changed the resumable partial"
    );
    assert!(range_requests_for(&proxy, layer_path).is_empty());

    // The next pull asks for the rest only, and stores the right layer.
    ok(rbuild(&home, &root, &["pull", &image], ""), "second pull");
    let ranges = range_requests_for(&proxy, layer_path);
    assert!(
        ranges.iter().any(|head| head
            .to_ascii_lowercase()
            .contains(&format!("bytes={held}-"))),
        "no Range request from byte {held}: {ranges:?}"
    );
    assert_eq!(
        std::fs::read(stored_layer(&root)).expect("layer stored"),
        sent
    );
    assert!(!partial.exists(), "the partial outlived the pull");
    ok(rbuild(&home, &root, &["system", "fsck"], ""), "fsck");

    // A partial whose bytes went bad is discarded and the blob fetched whole.
    let root = dir.path().join("root-corrupt");
    let partial = pull_killed_mid_blob(&proxy, layer_path, &home, &root, &image);
    let mut bytes = std::fs::read(&partial).expect("partial");
    let middle = bytes.len() / 2;
    if let Some(byte) = bytes.get_mut(middle) {
        *byte ^= 0xff;
    }
    std::fs::write(&partial, &bytes).expect("corrupting the partial");
    ok(
        rbuild(&home, &root, &["pull", &image], ""),
        "pull over a corrupt partial",
    );
    assert_eq!(
        std::fs::read(stored_layer(&root)).expect("layer stored"),
        sent
    );
    assert!(!partial.exists(), "the corrupt partial outlived the pull");
    ok(rbuild(&home, &root, &["system", "fsck"], ""), "fsck");
}
