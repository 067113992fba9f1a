//! Lint the whole official-images corpus (403 files) in one call, as `rbuild lint` does:
//! shellcheck off, and on (its scripts batched: each distinct script once, a process per core).
//! Run: `cargo bench --bench lint`; compare: `time hadolint --no-fail $(find ../shared/corpus/official-images -type f)`.

use criterion::{Criterion, criterion_group, criterion_main};
use rbuild::lint::{Config, Source, lint_all, shellcheck};
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
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
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
    let sources: Vec<Source<'_>> = texts.iter().map(|t| Source::text(t)).collect();
    let mut group = c.benchmark_group("lint");
    group.sample_size(10);
    for shellcheck in [false, true] {
        if shellcheck && !shellcheck::available() {
            eprintln!("shellcheck is not installed: the shellcheck-on figure is skipped");
            continue;
        }
        let config = Config {
            shellcheck,
            ..Config::default()
        };
        let name = if shellcheck {
            "corpus_403_files_shellcheck"
        } else {
            "corpus_403_files"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                lint_all(&sources, &config)
                    .iter()
                    .map(|r| r.findings.len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
