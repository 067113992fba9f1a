//! Lint the whole official-images corpus (403 files) in one process, shellcheck off (the
//! figure to set beside hadolint, whose ShellCheck runs in-process) and on.
//! Run: `cargo bench --bench lint`; compare: `time hadolint --no-fail $(find ../shared/corpus/official-images -type f)`.

use criterion::{Criterion, criterion_group, criterion_main};
use rbuild::lint::{Config, lint};
use std::path::PathBuf;

fn corpus_files() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/official-images");
    let root = if root.is_dir() {
        root
    } else {
        PathBuf::from("/work/shared/corpus/official-images")
    };
    let mut texts = Vec::new();
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(file.path()) {
                texts.push(text);
            }
        }
    }
    texts
}

fn bench(c: &mut Criterion) {
    let texts = corpus_files();
    assert_eq!(texts.len(), 403, "corpus not found");
    let config = Config::default();
    let mut group = c.benchmark_group("lint");
    group.sample_size(10);
    group.bench_function("corpus_403_files", |b| {
        b.iter(|| texts.iter().map(|t| lint(t, &config).findings.len()).sum::<usize>())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
