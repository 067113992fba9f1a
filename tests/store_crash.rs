//! Crash safety and concurrency of the store: imports killed at random points leave a store
//! that passes fsck; several rbuild processes importing and pruning at once corrupt nothing.

mod store_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use store_support::*;

/// A layer tarball of about `megabytes` MiB whose content depends on `seed`.
fn tarball(path: &Path, megabytes: usize, seed: u64) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..megabytes {
        let mut data = vec![0u8; 1 << 20];
        for chunk in data.chunks_mut(8) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("data/{i:04}"), &data[..])
            .unwrap();
    }
    builder.finish().unwrap();
}

fn assert_fsck_clean(root: &Path, context: &str) {
    let out = rbuild_output(root, &["system", "fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0 problem(s)"),
        "fsck after {context}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn imports_killed_at_random_points_leave_a_store_that_passes_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tar = dir.path().join("layer.tar");
    tarball(&tar, 48, 1);
    let tar = tar.to_str().unwrap().to_string();

    // One undisturbed run tells how long an import takes, to spread the kills over it.
    let started = Instant::now();
    rbuild(&root, &["import", &tar, "probe:1"]);
    let full = started.elapsed();
    rbuild(&root, &["rmi", "probe:1"]);

    let mut state: u64 = 0x9e3779b97f4a7c15;
    for round in 0..30 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // 0% to 110% of a full import.
        let delay = full.mul_f64((state % 1100) as f64 / 1000.0);
        let mut child = Command::new(RBUILD)
            .args([
                "--root",
                root.to_str().unwrap(),
                "import",
                &tar,
                &format!("crash:{round}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        assert_fsck_clean(&root, &format!("a kill after {delay:?} (round {round})"));
    }

    let id = rbuild(&root, &["import", &tar, "final:1"]);
    assert_fsck_clean(&root, "the final import");
    assert_eq!(
        rbuild(&root, &["image", "inspect", "-f", "{{.Id}}", "final:1"]),
        id
    );
    // Garbage collection takes what the killed runs left behind, and nothing else.
    rbuild(&root, &["system", "prune", "-f"]);
    assert_fsck_clean(&root, "pruning");
    assert!(
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        std::fs::read_dir(root.join("leases"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(
        rbuild(&root, &["image", "inspect", "-f", "{{.Id}}", "final:1"]),
        id
    );
}

#[test]
fn concurrent_processes_import_tag_and_prune_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let workers = 4;
    let rounds = 5;
    let mut tars = Vec::new();
    for w in 0..workers {
        let path = dir.path().join(format!("w{w}.tar"));
        tarball(&path, 2, 100 + w as u64);
        tars.push(path);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let root = root.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || runs == 0 {
                let command = if runs % 2 == 0 {
                    vec!["image", "prune", "-f"]
                } else {
                    vec!["system", "prune", "-f"]
                };
                rbuild(&root, &command);
                runs += 1;
            }
            runs
        })
    };
    let importers: Vec<_> = tars
        .iter()
        .enumerate()
        .map(|(w, tar)| {
            let root = root.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let name = format!("w{w}:r{r}");
                    rbuild(&root, &["import", tar.to_str().unwrap(), &name]);
                    rbuild(&root, &["tag", &name, &format!("shared/w{w}:latest")]);
                }
            })
        })
        .collect();
    for importer in importers {
        importer.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let prunes = pruner.join().unwrap();
    assert!(prunes > 0);

    let listed = rbuild(&root, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for w in 0..workers {
        for r in 0..rounds {
            let name = format!("w{w}:r{r}");
            assert!(listed.lines().any(|l| l == name), "{name} lost:\n{listed}");
            rbuild(&root, &["image", "inspect", &name]);
        }
        assert!(listed.lines().any(|l| l == format!("shared/w{w}:latest")));
    }
    assert_fsck_clean(&root, "concurrent imports and prunes");
    // Every image still has its layer: save reads them all.
    rbuild(
        &root,
        &[
            "save",
            "-o",
            dir.path().join("all.tar").to_str().unwrap(),
            "w0:r0",
            "w3:r4",
        ],
    );
}
