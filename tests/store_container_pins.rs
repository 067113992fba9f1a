//! A running container pins its image: `rmi` refuses it unless forced (then only untags it),
//! prune keeps it, and the pin goes when the container ends, even when its rbuild process
//! is SIGKILLed.

mod store_support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use store_support::*;

/// `rbuild run --rm IMAGE` of a shell that says it runs (a file in a mounted directory)
/// and sleeps 30 s; killed on drop if still running.
struct RunningContainer {
    child: Child,
    ready: PathBuf,
}

impl RunningContainer {
    fn start(root: &Path, shared: &Path, image: &str) -> RunningContainer {
        let volume = format!("{}:/shared", shared.display());
        let child = Command::new(RBUILD)
            .arg("--root")
            .arg(root)
            .args(["run", "--rm", "-v", &volume, image])
            .args(["sh", "-c", "touch /shared/ready && exec sleep 30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rbuild run");
        RunningContainer {
            child,
            ready: shared.join("ready"),
        }
    }

    /// Waits until the container's command runs (its image pinned long before).
    fn wait_until_running(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.ready.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rbuild run ended ({status}) before its command ran");
            }
            assert!(
                Instant::now() < deadline,
                "the container's command did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to the rbuild process and waits for it to end.
    fn stop(mut self, signal: Signal) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill rbuild run");
        self.child.wait().expect("wait for rbuild run")
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn entries(dir: PathBuf) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The one container pinning an image.
fn pinning_container(root: &Path) -> String {
    let pins = entries(root.join("pins"));
    assert_eq!(pins.len(), 1, "pins: {pins:?}");
    pins.into_iter().next().unwrap_or_default()
}

fn imported_busybox(dir: &Path) -> (PathBuf, String) {
    require_root();
    let root = dir.join("root");
    let tar = busybox_tar(dir);
    let id = rbuild(&root, &["import", tar.to_str().unwrap(), "busybox:t"]);
    let short = id.trim()["sha256:".len()..][..12].to_string();
    (root, short)
}

#[test]
fn a_running_container_keeps_its_image_until_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (root, short) = imported_busybox(dir.path());
    let mut container = RunningContainer::start(&root, dir.path(), "busybox:t");
    container.wait_until_running();
    let id = pinning_container(&root);
    assert_eq!(id.len(), 64, "container ID {id:?}");
    assert_eq!(entries(root.join("containers")), vec![id.clone()]);

    let refused = rbuild_output(&root, &["rmi", "busybox:t"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "conflict: unable to remove repository reference \"busybox:t\" (must force) - container {} is using its referenced image {short}",
            &id[..12]
        )),
        "{stderr}"
    );
    assert_eq!(rbuild(&root, &["images", "-q", "busybox:t"]).trim(), short);

    // Forced: untagged, the image stays (dangling) while the container uses it, and prune
    // keeps it.
    assert_eq!(
        rbuild(&root, &["rmi", "-f", "busybox:t"]).trim(),
        "Untagged: busybox:t"
    );
    assert_eq!(
        rbuild(&root, &["images", "-q", "--filter", "dangling=true"]).trim(),
        short
    );
    rbuild(&root, &["image", "prune", "-a", "-f"]);
    assert_eq!(rbuild(&root, &["images", "-q"]).trim(), short);

    // The container ends (rbuild forwards SIGTERM to it): its pin goes with it.
    let status = container.stop(Signal::SIGTERM);
    assert_eq!(status.code(), Some(143), "exit status 128 + SIGTERM");
    assert!(entries(root.join("pins")).is_empty());
    assert!(entries(root.join("containers")).is_empty());
    let pruned = rbuild(&root, &["image", "prune", "-a", "-f"]);
    assert!(
        pruned.contains(&format!("deleted: sha256:{short}")),
        "{pruned}"
    );
    assert_eq!(rbuild(&root, &["images", "-q"]).trim(), "");
}

#[test]
fn a_killed_run_leaves_no_pin_that_blocks_rmi() {
    let dir = tempfile::tempdir().unwrap();
    let (root, short) = imported_busybox(dir.path());
    let mut container = RunningContainer::start(&root, dir.path(), "busybox:t");
    container.wait_until_running();
    pinning_container(&root);
    let status = container.stop(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    // Killed: its pin and lock file stay behind, no longer locked.
    assert_eq!(entries(root.join("pins")).len(), 1);
    // What the killed process left is found dead and removed by the next command.
    let removed = rbuild(&root, &["rmi", "busybox:t"]);
    assert!(removed.contains("Untagged: busybox:t"), "{removed}");
    assert!(
        removed.contains(&format!("Deleted: sha256:{short}")),
        "{removed}"
    );
    assert!(entries(root.join("pins")).is_empty());
    assert!(entries(root.join("containers")).is_empty());
    assert!(entries(root.join("snapshots")).is_empty());
    rbuild(&root, &["system", "fsck"]);
}
