//! Start-to-exit of `true` in the sandbox (root only), in the two shapes rbuild uses:
//! - `run`: what `rbuild run --rm` does: network `none`, upper and work dirs on tmpfs
//!   ([`sandbox::scratch_dir`]), for the embedded runtime, runc and crun;
//! - `step`: what a build's RUN step does: network `host` (the build default), fresh upper and
//!   work dirs on disk (the store's file system; `SANDBOX_BENCH_DIR`, default /var/tmp), made
//!   outside the timed part.
//!
//! Prints the median wall time of 100 single runs and the CPU time a run costs (this process
//! and its children, user + system: a figure that stays meaningful on a loaded machine), then
//! criterion's figures.
//!
//!     cargo bench --bench sandbox

#[path = "../tests/sandbox_support/mod.rs"]
mod sandbox_support;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
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

/// (median wall time, mean CPU time) of 100 runs, each of a request made (untimed) by `make`.
fn measure_100(make: &dyn Fn() -> sandbox::Request) -> (Duration, Duration) {
    let mut cpu = Duration::ZERO;
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let request = make();
            let cpu_before = cpu_time();
            let start = Instant::now();
            let status = sandbox::run(&request, &mut |_, _| {}).expect("true runs");
            let elapsed = start.elapsed();
            cpu += cpu_time() - cpu_before;
            assert!(status.success());
            elapsed
        })
        .collect();
    times.sort();
    (times[50], cpu / 100)
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
    let mut cases: Vec<(String, Box<dyn Fn() -> sandbox::Request>)> = Vec::new();
    for runtime in sandbox_support::runtimes() {
        let request = sandbox_support::request(on_tmpfs.path(), &runtime, &["true"]);
        cases.push((
            format!("run/{}", runtime_name(&runtime)),
            Box::new(move || request.clone()),
        ));
    }
    // As the build engine does: fresh upper and work dirs for every step.
    let steps = std::cell::Cell::new(0u32);
    let disk = on_disk.path().to_path_buf();
    cases.push((
        "step/embedded".to_string(),
        Box::new(move || {
            steps.set(steps.get() + 1);
            let scratch = disk.join(steps.get().to_string());
            let mut step = sandbox_support::request(&scratch, &Runtime::Embedded, &["true"]);
            step.network = Network::Host;
            step
        }),
    ));

    let mut group = c.benchmark_group("sandbox_true");
    group.sample_size(100);
    for (name, make) in &cases {
        // The first run pays for page cache and the kernel's first overlay mount.
        sandbox::run(&make(), &mut |_, _| {}).expect("true runs");
        let (median, cpu) = measure_100(make.as_ref());
        println!("sandbox_true/{name}: median of 100 runs {median:?}, CPU {cpu:?} a run");
        group.bench_function(name, |b| {
            b.iter_batched(
                make,
                |request| sandbox::run(&request, &mut |_, _| {}).expect("true runs"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_true);
criterion_main!(benches);
