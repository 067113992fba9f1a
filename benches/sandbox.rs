//! Start-to-exit of `true` in the sandbox (root only), in the two shapes rbuild uses:
//! - `run`: what `rbuild run --rm` does: network `none`, upper and work dirs on tmpfs
//!   ([`sandbox::scratch_dir`]), for the embedded runtime, runc and crun;
//! - `step`: what a build's RUN step does: network `host` (the build default), upper and work
//!   dirs on disk (the store's file system; `SANDBOX_BENCH_DIR`, default /var/tmp).
//!
//! Prints the median wall time of 100 single runs and the CPU time a run costs (this process
//! and its children, user + system: a figure that stays meaningful on a loaded machine), then
//! criterion's figures.
//!
//!     cargo bench --bench sandbox

#[path = "../tests/sandbox_support/mod.rs"]
mod sandbox_support;

use criterion::{Criterion, criterion_group, criterion_main};
use rbuild::sandbox::{self, Network, Runtime};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// CPU time used so far by this process and its reaped children.
fn cpu_time() -> Duration {
    let used = |who| {
        nix::sys::resource::getrusage(who).map_or(Duration::ZERO, |usage| {
            let time = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            time(usage.user_time()) + time(usage.system_time())
        })
    };
    used(nix::sys::resource::UsageWho::RUSAGE_SELF)
        + used(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

/// (median wall time, mean CPU time) of 100 runs.
fn measure_100(request: &sandbox::Request) -> (Duration, Duration) {
    let cpu_before = cpu_time();
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            let status = sandbox::run(request, &mut |_, _| {}).expect("true runs");
            assert!(status.success());
            start.elapsed()
        })
        .collect();
    let cpu = (cpu_time() - cpu_before) / 100;
    times.sort();
    (times[50], cpu)
}

fn runtime_name(runtime: &Runtime) -> String {
    match runtime {
        Runtime::Embedded => "embedded".to_string(),
        Runtime::External(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn bench_true(c: &mut Criterion) {
    sandbox_support::require_root();
    let on_tmpfs = tempfile::tempdir_in(sandbox::scratch_dir()).expect("scratch dir");
    let disk_dir = std::env::var_os("SANDBOX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let on_disk = tempfile::tempdir_in(&disk_dir).expect("scratch dir on disk");
    let mut cases = Vec::new();
    for runtime in sandbox_support::runtimes() {
        let request = sandbox_support::request(on_tmpfs.path(), &runtime, &["true"]);
        cases.push((format!("run/{}", runtime_name(&runtime)), request));
    }
    let mut step = sandbox_support::request(on_disk.path(), &Runtime::Embedded, &["true"]);
    step.network = Network::Host;
    cases.push(("step/embedded".to_string(), step));

    let mut group = c.benchmark_group("sandbox_true");
    group.sample_size(100);
    for (name, request) in &cases {
        // The first run pays for page cache and the kernel's first overlay mount.
        sandbox::run(request, &mut |_, _| {}).expect("true runs");
        let (median, cpu) = measure_100(request);
        println!("sandbox_true/{name}: median of 100 runs {median:?}, CPU {cpu:?} a run");
        group.bench_function(name, |b| {
            b.iter(|| sandbox::run(request, &mut |_, _| {}).expect("true runs"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_true);
criterion_main!(benches);
