//! Word expansion throughput: BuildKit's envVarTest words and a typical download URL.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbuild::dockerfile::expand::Lexer;

/// The input column of `../shared/conformance/buildkit/shell/envVarTest` (`../../shared` from
/// a worktree under `wt/`).
fn env_var_test_words() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = ["../shared", "../../shared"]
        .iter()
        .map(|up| root.join(up).join("conformance/buildkit/shell/envVarTest"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("envVarTest not found beside {}", root.display()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|w| w.trim().to_owned())
        .collect()
}

fn bench(c: &mut Criterion) {
    let scope = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("NAME", "node"),
        ("VERSION", "22.11.0-bookworm"),
        ("TARGETARCH", "amd64"),
    ];
    let lexer = Lexer::new('\\');
    let words = env_var_test_words();
    let bytes: usize = words.iter().map(String::len).sum();
    let mut group = c.benchmark_group("expand");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("buildkit-cases", |b| {
        b.iter(|| {
            for word in &words {
                let _ = black_box(lexer.expand(black_box(word), &scope[..]));
            }
        })
    });
    let url = "https://nodejs.org/dist/v${VERSION%%-*}/${NAME}-v${VERSION%%-*}-linux-${TARGETARCH/amd64/x64}.tar.xz";
    group.throughput(Throughput::Bytes(url.len() as u64));
    group.bench_function("download-url", |b| {
        b.iter(|| lexer.expand_word(black_box(url), &scope[..]))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
