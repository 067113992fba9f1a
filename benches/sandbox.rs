//! Start-to-exit of `true` in the sandbox: the embedded runtime against runc (root only).
//! Prints the median of 100 single runs per runtime, then criterion's figures.
//!
//!     cargo bench --bench sandbox

#[path = "../tests/sandbox_support/mod.rs"]
mod sandbox_support;

use criterion::{Criterion, criterion_group, criterion_main};
use rbuild::sandbox::{self, Runtime};
use std::time::{Duration, Instant};

fn median_of_100(request: &sandbox::Request) -> Duration {
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            let status = sandbox::run(request, &mut |_, _| {}).expect("true runs");
            assert!(status.success());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[50]
}

fn bench_true(c: &mut Criterion) {
    sandbox_support::require_root();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut group = c.benchmark_group("sandbox_true");
    group.sample_size(100);
    for runtime in sandbox_support::runtimes() {
        let name = match &runtime {
            Runtime::Embedded => "embedded".to_string(),
            Runtime::External(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let request = sandbox_support::request(scratch.path(), &runtime, &["true"]);
        println!(
            "sandbox_true/{name}: median of 100 runs {:?}",
            median_of_100(&request)
        );
        group.bench_function(&name, |b| {
            b.iter(|| sandbox::run(&request, &mut |_, _| {}).expect("true runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_true);
criterion_main!(benches);
