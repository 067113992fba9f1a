//! Shared by the sandbox tests: a busybox root filesystem as a read-only lowerdir, requests
//! with a fresh upper dir, and a runner collecting output lines.
#![allow(dead_code)]

use rbuild::sandbox::{
    self, ExitStatus, Limits, Network, OutputStream, Request, Rootfs, Runtime, Stdio,
};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Fails the test with a clear message unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (namespaces, overlayfs, mounts): run it with sudo"
    );
}

pub fn require_tool(name: &str) -> PathBuf {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed: run scripts/install-deps.sh");
}

/// Writes the busybox rootfs as /work/shared/scripts/busybox-rootfs.sh does, as a tar made by
/// /usr/bin/tar, and extracts it into `dir`.
pub fn make_busybox_rootfs(dir: &Path) {
    let busybox = require_tool("busybox");
    let staging = tempfile::tempdir().unwrap();
    let root = staging.path();
    for sub in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "var", "home", "proc", "sys",
        "dev",
    ] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    // The installed copy lists the applets: executing the fresh copy could fail with ETXTBSY
    // while another test thread's fork still holds it open for writing.
    let list = Command::new(&busybox).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet);
        if !link.exists() && std::fs::symlink_metadata(&link).is_err() {
            symlink("/bin/busybox", &link).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app\n",
    )
    .unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = staging.path().with_extension("tar");
    let made = Command::new("/usr/bin/tar")
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@0",
            "--sort=name",
            "-C",
        ])
        .arg(root)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir_all(dir).unwrap();
    let extracted = Command::new("/usr/bin/tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(extracted.success());
    std::fs::remove_file(&tar).unwrap();
}

/// One busybox lowerdir per test process, shared read-only by its tests.
pub fn busybox_lowerdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = tempfile::Builder::new()
            .prefix("rbuild-sandbox-test-")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let lower = base.join("busybox");
        make_busybox_rootfs(&lower);
        lower
    })
}

/// A request over the busybox lowerdir with a fresh upper dir in `scratch`.
pub fn request(scratch: &Path, runtime: &Runtime, args: &[&str]) -> Request {
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    Request {
        rootfs: Rootfs::Overlay {
            lowerdirs: vec![busybox_lowerdir().to_path_buf()],
            upper,
            work,
        },
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()],
        cwd: "/".to_string(),
        user: String::new(),
        mounts: Vec::new(),
        network: Network::None,
        hostname: "sandboxed".to_string(),
        read_only: false,
        stdio: Stdio::Lines,
        limits: Limits::default(),
        runtime: runtime.clone(),
        forward_signals: false,
    }
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(request: &Request) -> Result<Outcome, sandbox::Error> {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let status = sandbox::run(request, &mut |stream, line| {
        let target = match stream {
            OutputStream::Stdout => &mut stdout,
            OutputStream::Stderr => &mut stderr,
        };
        target.push_str(&String::from_utf8_lossy(line));
        target.push('\n');
    })?;
    Ok(Outcome {
        status,
        stdout,
        stderr,
    })
}

/// Runs and expects success, returning stdout.
pub fn run_ok(request: &Request) -> String {
    let outcome = run(request).unwrap_or_else(|e| panic!("{:?} failed: {e}", request.args));
    assert_eq!(
        outcome.status,
        ExitStatus::Exited(0),
        "{:?}: stdout {:?} stderr {:?}",
        request.args,
        outcome.stdout,
        outcome.stderr
    );
    outcome.stdout
}

/// The lines of /proc/mounts that name an rbuild path (bundles, `rbuild run` scratch dirs and
/// these tests' lowerdirs all start with "rbuild-"): other programs on the machine mount and
/// unmount meanwhile.
pub fn mounts_now() -> String {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|line| line.contains("rbuild"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The runtimes the tests cover: the embedded one, runc and crun.
pub fn runtimes() -> Vec<Runtime> {
    vec![
        Runtime::Embedded,
        Runtime::External(require_tool("runc")),
        Runtime::External(require_tool("crun")),
    ]
}

/// Prints the memory, cpu and pids limits of the cgroups the shell is in, read from the host's
/// /sys/fs/cgroup bind-mounted at /c: "cpu QUOTA PERIOD", "memory BYTES", "pids N", sorted.
/// v1 controllers are found by their /proc/self/cgroup lines, v2 by the "0::" line.
pub const CGROUP_LIMITS_SCRIPT: &str = r#"
while IFS=: read -r _ controllers path; do
  dir=/c/$controllers$path
  case ",$controllers," in
    *,memory,*) echo "memory $(cat $dir/memory.limit_in_bytes)" ;;
    *,cpu,*) echo "cpu $(cat $dir/cpu.cfs_quota_us) $(cat $dir/cpu.cfs_period_us)" ;;
    *,pids,*) echo "pids $(cat $dir/pids.max)" ;;
    ,,) if [ -f /c$path/memory.max ]; then
          echo "memory $(cat /c$path/memory.max)"
          echo "cpu $(cat /c$path/cpu.max)"
          echo "pids $(cat /c$path/pids.max)"
        fi ;;
  esac
done < /proc/self/cgroup | sort
"#;

/// What [`CGROUP_LIMITS_SCRIPT`] prints for `--memory 32m --cpus 0.5 --pids-limit 16`.
pub const CGROUP_LIMITS_EXPECTED: &str = "cpu 50000 100000\nmemory 33554432\npids 16\n";
