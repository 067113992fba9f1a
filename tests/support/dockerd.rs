//! A private Docker Engine (Debian's docker.io) for the tests that compare rbuild with it: its
//! own data root, exec root, pidfile and unix socket in a temp dir, no bridge and no iptables
//! rules, so it touches nothing of the host's. Stopped by pid (SIGTERM, then SIGKILL after 30 s)
//! with any mount left under its dir detached, when the guard drops or, for the daemon shared
//! by a whole test binary, when the process exits. A test process killed outright takes its
//! daemon along (parent-death signal); the dir such a daemon leaves is removed by the next start.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Debian's docker.io: the daemon and the client of the same release.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const DOCKER: &str = "/usr/bin/docker";

/// Where the daemons' dirs go: short, as unix socket paths are limited to 108 bytes.
const DIR_PREFIX: &str = "/tmp/rbd";

pub struct Dockerd {
    /// Behind a lock: the daemon shared through a static is stopped through `&self`.
    child: Mutex<Child>,
    socket: PathBuf,
    dir: PathBuf,
}

impl Dockerd {
    /// Starts a daemon and waits until it answers; fails the test with its log if it does not.
    pub fn start() -> Dockerd {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test starts Docker Engine: it needs root"
        );
        for tool in [DOCKERD, DOCKER] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: apt-get install docker.io (scripts/install-deps.sh)"
            );
        }
        remove_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX.trim_start_matches("/tmp/"))
            .tempdir_in("/tmp")
            .expect("temp dir for dockerd")
            .keep();
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log file");
        let mut command = Command::new(DOCKERD);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let child = command
            .args(["--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let daemon = Dockerd {
            child: Mutex::new(child),
            socket,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon
            .command()
            .arg("version")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    /// One daemon for the whole test binary, started on first use and stopped at exit.
    pub fn shared() -> &'static Dockerd {
        static SHARED: OnceLock<Dockerd> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(daemon) = SHARED.get() {
                daemon.stop();
            }
        }
        SHARED.get_or_init(|| {
            // The parent-death signal comes when the thread that started the daemon ends, and
            // each test runs on a thread of its own: a thread that lives as long as the process
            // starts the shared daemon.
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(std::panic::catch_unwind(Dockerd::start));
                loop {
                    std::thread::park();
                }
            });
            let daemon = match receiver.recv() {
                Ok(Ok(daemon)) => daemon,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => panic!("the thread starting dockerd ended without a word"),
            };
            // SAFETY: registers a plain function, run once by libc's exit().
            unsafe { libc::atexit(stop_shared) };
            daemon
        })
    }

    /// `docker -H` this daemon, with no standard input; add arguments and env as needed.
    pub fn command(&self) -> Command {
        let mut command = Command::new(DOCKER);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null());
        command
    }

    /// Runs docker, whatever its exit status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run docker")
    }

    /// Runs docker and returns its stdout; fails the test with its output unless it succeeds.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's process id and private dir, for tests of the cleanup itself.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// SIGTERM, a grace period, SIGKILL; then detaches what the daemon left mounted below its
    /// dir and removes the dir.
    fn stop(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for mount in mounts_below(&self.dir) {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the dirs of daemons whose test was killed: named by no running process's command
/// line, with nothing mounted below, untouched for a minute (a dir being set up is newer).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    let command_lines: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|process| std::fs::read(process.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .collect();
    for entry in entries.flatten() {
        let dir = entry.path();
        let stale = dir.to_string_lossy().starts_with(DIR_PREFIX)
            && entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| {
                    modified
                        .elapsed()
                        .is_ok_and(|age| age > Duration::from_secs(60))
                })
            && !command_lines
                .iter()
                .any(|line| line.contains(&*dir.to_string_lossy()))
            && mounts_below(&dir).is_empty();
        if stale {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Mount points at or below `dir`, deepest first (mountinfo escapes blanks as octal).
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    mounts
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
