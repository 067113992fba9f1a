//! Import + extract throughput: a 1 GiB layer (RBUILD_BENCH_LAYER_MIB to change) is imported
//! into a fresh store as `rbuild import` does it (written as a blob and, from the same bytes on
//! a second thread, hashed and unpacked as the snapshot; both synced, checked, renamed), the
//! image stored and its layer directories asked for, reported in bytes per second of layer.
//! At the end the peak resident memory of the whole process is printed (getrusage), which
//! bounds the import's.
//!
//!   cargo bench --bench import

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rbuild::image::ImageConfig;
use rbuild::store::{Layer, Store};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A layer of `mib` MiB: one file per MiB of pseudo-random (incompressible) data in 64
/// directories, streamed to disk so generating it costs no memory.
fn write_layer(path: &Path, mib: usize) {
    let file = File::create(path).expect("create layer");
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut data = vec![0u8; 1 << 20];
    for i in 0..mib {
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("d{:02}/f{i:05}", i % 64), &data[..])
            .expect("append");
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .expect("finish layer");
}

/// How a benchmark stores the layer file.
type ImportFn = fn(&Store, File) -> Layer;

fn import_and_extract(c: &mut Criterion) {
    let mib: usize = std::env::var("RBUILD_BENCH_LAYER_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let work = tempfile::tempdir_in(
        std::env::var_os("RBUILD_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()),
    )
    .expect("bench dir");
    let layer = work.path().join("layer.tar");
    write_layer(&layer, mib);
    let size = std::fs::metadata(&layer).expect("layer").len();

    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    // `rbuild import`: unpacked on the way in. The peer is the path of a loaded or pulled
    // layer first run: stored, then extracted from the blob by `layer_dirs`.
    let imports: [(&str, ImportFn); 2] = [
        ("import+extract", |store, file| {
            store.import_base_layer(file).expect("import")
        }),
        ("import, then extract from the blob", |store, file| {
            store.import_layer(file).expect("import")
        }),
    ];
    for (name, import) in imports {
        group.bench_function(format!("{name} {mib} MiB layer"), |b| {
            b.iter_batched(
                || {
                    // The last iteration's store was just deleted: its freed blocks are
                    // discarded (`discard` mounts) at the next journal commit, here and not
                    // in the next import's sync.
                    let dir = File::open(work.path()).expect("bench dir");
                    nix::unistd::syncfs(&dir).expect("syncfs");
                    let root = tempfile::tempdir_in(work.path()).expect("store dir");
                    let store = Store::open(root.path().join("root")).expect("store");
                    (root, store)
                },
                |(root, store)| {
                    let imported = import(&store, File::open(&layer).expect("open layer"));
                    let mut config = ImageConfig {
                        architecture: "amd64".into(),
                        os: "linux".into(),
                        ..Default::default()
                    };
                    config.rootfs.diff_ids = vec![imported.diff_id.clone()];
                    let image = store
                        .put_image(&config.to_canonical_json().expect("config"), &[imported])
                        .expect("put image");
                    let dirs = store.layer_dirs(&image).expect("extract");
                    (root, dirs)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    println!(
        "peak RSS of the benchmark process: {} MiB",
        usage.max_rss() / 1024
    );
}

criterion_group!(benches, import_and_extract);
criterion_main!(benches);
