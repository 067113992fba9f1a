//! Parse throughput over the official-images corpus (../shared/corpus/official-images, or
//! RBUILD_SHARED_DIR/corpus/...): all 403 files per iteration, reported in bytes per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;

fn corpus() -> Vec<String> {
    let shared = std::env::var_os("RBUILD_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("corpus/official-images");
    let mut files: Vec<String> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read_to_string(e.path()).expect("corpus file"))
        .collect();
    assert!(!files.is_empty(), "no corpus at {}", dir.display());
    files.sort();
    files
}

fn parse_corpus(c: &mut Criterion) {
    let files = corpus();
    let bytes: usize = files.iter().map(String::len).sum();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("official-images", |b| {
        b.iter(|| {
            for file in &files {
                black_box(rbuild::dockerfile::parse(black_box(file)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parse_corpus);
criterion_main!(benches);
