//! Push uploads a layer while it compresses (one streamed PATCH, the digest on the closing
//! PUT), and when that stream is cut it pushes the layer again from the compressed file.

mod registry_support;

use registry_support::proxy::{Action, FaultProxy, Rule};
use registry_support::{Auth, Registry, ok, rbuild};

/// The request heads the proxy saw for `method` on paths containing `path`, lowercased.
fn heads(proxy: &FaultProxy, method: &str, path: &str) -> Vec<String> {
    proxy
        .requests_where(|head| head.starts_with(&format!("{method} ")) && head.contains(path))
        .iter()
        .map(|head| head.to_ascii_lowercase())
        .collect()
}

#[test]
fn push_streams_layers_while_compressing_and_recovers_a_cut_stream() {
    let registry = Registry::start(Auth::None);
    let (dir, home, root) = registry_support::workspace();
    let tar = registry_support::import_busybox(dir.path(), &home, &root, "bb:1");
    let proxy = FaultProxy::start(
        &registry.host,
        vec![Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Action::CutRequest { after: 64 << 10 },
            1,
        )],
    );

    // The first stream is cut: the layer goes again from the file, and the image is whole.
    let target = format!("{}/stream/cut:1", proxy.host);
    ok(rbuild(&home, &root, &["push", "bb:1", &target], ""), "push");
    assert_eq!(proxy.fired(), vec![1], "the stream was not cut");
    let inspect: serde_json::Value = serde_json::from_slice(&registry.skopeo(&[
        "inspect",
        &format!("docker://{}/stream/cut:1", registry.host),
    ]))
    .expect("skopeo inspect");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));

    // Without faults, one streamed PATCH (no length known in advance) carries the layer,
    // and the PUT that closes its upload carries none (the config goes in one PUT).
    // A fresh store, which remembers no compressed form.
    let fresh = dir.path().join("fresh");
    let target = format!("{}/stream/whole:1", proxy.host);
    ok(
        rbuild(
            &home,
            &fresh,
            &["import", tar.to_str().expect("utf-8"), "bb:2"],
            "",
        ),
        "import",
    );
    let refused = rbuild(
        &home,
        &fresh,
        &["push", "--compression-level", "13", "bb:2", &target],
        "",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("--compression-level 13"),
        "{stderr}"
    );
    let before = heads(&proxy, "PATCH", "/stream/whole/").len();
    ok(
        rbuild(
            &home,
            &fresh,
            &["push", "--compression-level", "9", "bb:2", &target],
            "",
        ),
        "push",
    );
    let patches = heads(&proxy, "PATCH", "/stream/whole/");
    assert_eq!(patches.len() - before, 1, "{patches:?}");
    assert!(
        patches
            .iter()
            .all(|head| head.contains("transfer-encoding: chunked")),
        "{patches:?}"
    );
    let puts = heads(&proxy, "PUT", "/stream/whole/blobs/uploads/");
    assert!(
        puts.iter().any(|head| head.contains("content-length: 0")),
        "{puts:?}"
    );
    registry.skopeo(&[
        "copy",
        &format!("docker://{}/stream/whole:1", registry.host),
        &format!("oci:{}:copied", dir.path().join("copy").display()),
    ]);
}
