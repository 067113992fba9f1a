//! Hashing a large build context shaped like ../shared/bench's bigctx (20,000 files in 200
//! folders, about 200 MB, plus 2,100 ignored files): cold (every file and folder read) and
//! warm (stat cache and listings loaded from disk, no file or folder read).
//!
//! Run: cargo bench --bench context

use criterion::{Criterion, criterion_group, criterion_main};
use rbuild::context::{Context, SelectOptions, StatCache, hash_selection};
use std::path::Path;

/// xorshift64*: deterministic sizes and bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn generate(root: &Path) {
    let mut rng = Rng(42);
    std::fs::write(root.join("Dockerfile"), "FROM busybox:bench\nCOPY . /src\n").unwrap();
    std::fs::write(
        root.join(".dockerignore"),
        "node_modules\n**/*.log\n!keep.log\n",
    )
    .unwrap();
    for package in 0..200 {
        let dir = root.join(format!("src/pkg{package:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for file in 0..100 {
            let size = [200, 1000, 4000, 10000, 40000][(rng.next() % 5) as usize];
            let bytes: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            std::fs::write(dir.join(format!("file{file:03}.dat")), bytes).unwrap();
        }
    }
    let junk = root.join("node_modules/junk");
    std::fs::create_dir_all(&junk).unwrap();
    for file in 0..2000 {
        std::fs::write(junk.join(format!("j{file}.js")), "x".repeat(1000)).unwrap();
    }
    for file in 0..100 {
        std::fs::write(root.join(format!("src/debug{file}.log")), "log\n").unwrap();
    }
    std::fs::write(root.join("keep.log"), "keep\n").unwrap();
    // Let the newest files age past the cache's timestamp granularity.
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn cpu_time() -> std::time::Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let micros = |t: nix::sys::time::TimeVal| {
        std::time::Duration::from_secs(t.tv_sec() as u64)
            + std::time::Duration::from_micros(t.tv_usec() as u64)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

/// Selects and hashes the whole context; with `cache_dir`, keeping listings there. Returns
/// the number of entries and of folders read.
fn hash_all(root: &Path, cache: &StatCache, cache_dir: Option<&Path>) -> (usize, u64) {
    let context = Context::open(root, None).unwrap();
    if let Some(cache_dir) = cache_dir {
        context.keep_listings_in(cache_dir);
    }
    let selection = context.select(".", &SelectOptions::default()).unwrap();
    let entries = hash_selection(&selection, cache).unwrap().entries.len();
    context.save_listings().unwrap();
    (entries, context.directories_read())
}

fn bench(c: &mut Criterion) {
    let context = tempfile::tempdir().unwrap();
    generate(context.path());
    let cache_dir = tempfile::tempdir().unwrap();
    let primed = StatCache::open(cache_dir.path()).unwrap();
    let (entries, _) = hash_all(context.path(), &primed, Some(cache_dir.path()));
    primed.save().unwrap();
    eprintln!("bigctx-like context: {entries} selected entries");
    // The machine is shared: CPU time (all threads) says more than wall time there.
    for (label, cold) in [("cold", true), ("warm", false)] {
        let before = cpu_time();
        let (cache, kept) = if cold {
            (StatCache::in_memory(), None)
        } else {
            (
                StatCache::open(cache_dir.path()).unwrap(),
                Some(cache_dir.path()),
            )
        };
        let (_, folders_read) = hash_all(context.path(), &cache, kept);
        eprintln!(
            "{label}: {:?} CPU time, {:?}, {folders_read} folders read",
            cpu_time() - before,
            cache.stats()
        );
    }

    let mut group = c.benchmark_group("context");
    group.sample_size(10);
    group.bench_function("hash_bigctx_cold", |b| {
        b.iter(|| hash_all(context.path(), &StatCache::in_memory(), None))
    });
    group.bench_function("hash_bigctx_warm", |b| {
        b.iter(|| {
            let cache = StatCache::open(cache_dir.path()).unwrap();
            let (entries, folders_read) = hash_all(context.path(), &cache, Some(cache_dir.path()));
            assert_eq!((cache.stats().files_read, folders_read), (0, 0));
            cache.save().unwrap();
            entries
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
