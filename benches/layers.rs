//! Layer throughput: extracting a 1 GiB layer (plain and gzip) and writing one, with the peak
//! memory of the process printed at the end. Run: `cargo bench --bench layers`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbuild::snapshot::{ExtractOptions, WriteOptions, extract_layer, remove_tree, write_layer};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

const FILES: usize = 256;
const FILE_SIZE: usize = 4 << 20;

/// A tree of FILES files of FILE_SIZE bytes (1 GiB): half pseudo-random, half zeros per 4 KiB,
/// so gzip has something to do and something to skip.
fn make_tree(root: &Path) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; FILE_SIZE];
    for i in 0..FILES {
        let dir = root.join(format!("dir{:02}", i % 16));
        fs::create_dir_all(&dir).unwrap();
        for chunk in block.chunks_mut(4096) {
            let (random, _zeros) = chunk.split_at_mut(2048);
            for word in random.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
            }
        }
        fs::write(dir.join(format!("file{i:03}")), &block).unwrap();
    }
}

fn peak_rss_mib() -> i64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    usage.max_rss() / 1024
}

fn layers(c: &mut Criterion) {
    let work = tempfile::tempdir_in(
        std::env::var_os("LAYERS_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()),
    )
    .unwrap();
    let tree = work.path().join("tree");
    fs::create_dir(&tree).unwrap();
    make_tree(&tree);
    let plain = work.path().join("layer.tar");
    let digest = write_layer(
        &tree,
        BufWriter::new(File::create(&plain).unwrap()),
        &WriteOptions::default(),
    )
    .unwrap();
    let gzip = work.path().join("layer.tar.gz");
    {
        let mut encoder = flate2::write::GzEncoder::new(
            BufWriter::new(File::create(&gzip).unwrap()),
            flate2::Compression::fast(),
        );
        std::io::copy(&mut File::open(&plain).unwrap(), &mut encoder).unwrap();
        encoder.finish().unwrap().flush().unwrap();
    }
    let rss_after_setup = peak_rss_mib();

    let mut group = c.benchmark_group("layers");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Bytes(digest.size));
    let target = work.path().join("target");
    for (name, layer) in [("extract_1GiB_plain", &plain), ("extract_1GiB_gzip", &gzip)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                fs::create_dir(&target).unwrap();
                let input = BufReader::with_capacity(1 << 20, File::open(layer).unwrap());
                extract_layer(input, &target, &ExtractOptions::default()).unwrap();
                remove_tree(&target).unwrap();
            })
        });
    }
    group.bench_function("write_1GiB", |b| {
        b.iter(|| write_layer(&tree, std::io::sink(), &WriteOptions::default()).unwrap())
    });
    group.finish();
    eprintln!(
        "peak RSS: {rss_after_setup} MiB after setup, {} MiB after the benchmarks",
        peak_rss_mib()
    );
}

criterion_group!(benches, layers);
criterion_main!(benches);
