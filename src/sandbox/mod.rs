//! Runs a process in a root filesystem: OCI runtime spec, embedded runtime, external runtimes, networks.
//!
//! Every RUN step and every container goes through [`run`]: a [`Request`] becomes an OCI
//! runtime spec ([`spec::generate`]) and a bundle directory; the embedded runtime (namespaces
//! via `clone`, overlayfs, `pivot_root`, an init at PID 1) or an external OCI runtime (runc,
//! crun) runs it. The rootfs is an overlay of lowerdirs + an upper dir, mounted inside the
//! sandbox's own mount namespace so nothing is ever left mounted on the host. The generated
//! /etc/hosts, /etc/resolv.conf and /etc/hostname, and every mountpoint the sandbox needs, live
//! in a per-run "init layer" (as Docker does), so they never reach the upper dir.

mod bundle;
mod cgroup;
mod embedded;
mod external;
mod relay;
pub mod spec;
mod user;

use std::path::PathBuf;

pub use user::{ExecUser, resolve_user};

/// What to run, where, and how: everything a RUN step or `rbuild run` decides.
#[derive(Debug, Clone)]
pub struct Request {
    pub rootfs: Rootfs,
    /// argv; `args[0]` is looked up in the `PATH` of `env` when it has no slash.
    pub args: Vec<String>,
    /// The final environment, `KEY=value`. `HOME` is added from /etc/passwd when missing
    /// (as runc does); nothing else is added.
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs, created (root-owned, 0755) when missing.
    pub cwd: String,
    /// As in `USER`: `""` (root), `name`, `uid`, `name:group`, `uid:gid`.
    pub user: String,
    /// Extra mounts, applied in order after the standard ones.
    pub mounts: Vec<Mount>,
    pub network: Network,
    pub hostname: String,
    /// Mount the rootfs read-only (`--read-only`).
    pub read_only: bool,
    pub stdio: Stdio,
    pub limits: Limits,
    pub runtime: Runtime,
    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 received by the calling
    /// thread to the sandbox (blocks them in the calling thread while it runs). For the CLI.
    pub forward_signals: bool,
}

/// The root filesystem.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// An overlay: `lowerdirs` bottom-most first (image layer order), writes go to `upper`.
    /// `work` is overlayfs's work dir: empty, on the same file system as `upper`.
    Overlay {
        lowerdirs: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A plain directory used as it is (writes land in it, and so do missing mountpoints).
    Dir(PathBuf),
}

/// An extra mount inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the sandbox.
    pub destination: String,
    pub kind: MountKind,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A recursive bind mount of a host path (file or directory).
    Bind(PathBuf),
    /// A fresh tmpfs.
    Tmpfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A private network namespace with only the loopback interface, up.
    None,
    /// The host's network namespace.
    Host,
}

/// How the process's standard streams are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The caller's stdout and stderr; the caller's stdin when `stdin` is set, else /dev/null.
    Inherit { stdin: bool },
    /// A pseudo-terminal allocated inside the sandbox, relayed to the caller's stdout (and from
    /// its stdin when `stdin` is set); the caller's terminal is put in raw mode meanwhile.
    Tty { stdin: bool },
    /// stdin is /dev/null; stdout and stderr are delivered line by line to the output callback.
    Lines,
}

/// cgroup limits; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<i64>,
    /// CPUs, e.g. 0.5.
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Embedded,
    /// An OCI runtime program: `runc`, `crun` (looked up in PATH) or a path.
    External(PathBuf),
}

/// Which stream a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    /// Killed by this signal. External runtimes report it as `Exited(128 + signal)`.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention, as `docker run` reports it: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    CommandNotFound(String),
    #[error("exec: \"{command}\": {errno}")]
    Exec {
        command: String,
        errno: nix::errno::Errno,
    },
    #[error("no command given")]
    NoCommand,
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("sandbox setup failed while {stage}: {errno}")]
    Setup {
        stage: String,
        errno: nix::errno::Errno,
    },
    #[error("{0} needs root: rootless runs support the embedded runtime without limits")]
    NeedsRoot(&'static str),
    #[error("OCI runtime spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error(
        "{layers} layers are more than overlayfs can stack here (about {most}): combine RUN, COPY and WORKDIR steps"
    )]
    TooManyLayers { layers: usize, most: usize },
    #[error("OCI runtime {runtime}: {reason}")]
    Runtime { runtime: String, reason: String },
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The exit status `docker run` gives for this failure: 127 for a missing command, 126 for
    /// one that cannot be executed, 125 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound(_) => 127,
            Error::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// Where short-lived per-run files belong: /dev/shm when it is a tmpfs this process may write,
/// else the temp dir. A run's bundle (generated /etc files, mountpoints) lives here, so starting
/// and removing it costs no journaled disk writes. `rbuild run --rm` puts its upper dir here
/// too: what such a container writes is thrown away.
pub fn scratch_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let is_tmpfs = nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
        if is_tmpfs && writable {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

/// Page-size bound on overlayfs's lowerdir list, leaving room for the other mount options.
const LOWERDIRS_LIMIT: usize = 3800;

/// `dirs` as they are, or, when together they are too long for overlayfs's mount options (one
/// page), as short symlinks in `links` that lead to them, as Docker's overlay2 `l/` does.
/// Existing links of the same names are replaced (a work dir used again).
pub fn stackable_lowerdirs(
    dirs: Vec<PathBuf>,
    links: &std::path::Path,
) -> Result<Vec<PathBuf>, Error> {
    let total: usize = dirs.iter().map(|l| l.as_os_str().len() + 1).sum();
    if total <= LOWERDIRS_LIMIT {
        return Ok(dirs);
    }
    let per_layer = links.as_os_str().len() + 4;
    if per_layer * dirs.len() > LOWERDIRS_LIMIT {
        return Err(Error::TooManyLayers {
            layers: dirs.len(),
            most: LOWERDIRS_LIMIT / per_layer,
        });
    }
    std::fs::create_dir_all(links).map_err(Error::io(format!("creating {}", links.display())))?;
    dirs.iter()
        .enumerate()
        .map(|(index, dir)| {
            let link = links.join(format!("{index:x}"));
            if std::fs::symlink_metadata(&link).is_ok() {
                std::fs::remove_file(&link)
                    .map_err(Error::io(format!("replacing {}", link.display())))?;
            }
            std::os::unix::fs::symlink(dir, &link)
                .map_err(Error::io(format!("linking {}", link.display())))?;
            Ok(link)
        })
        .collect()
}

/// Runs the request to completion. In [`Stdio::Lines`] mode each line of output (without its
/// newline; a last unterminated line too) is passed to `on_line` as it arrives.
///
/// On error nothing is left behind: no mount on the host, no process, no cgroup.
pub fn run(
    request: &Request,
    on_line: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<ExitStatus, Error> {
    if request.args.is_empty() {
        return Err(Error::NoCommand);
    }
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless && !request.limits.is_empty() {
        return Err(Error::NeedsRoot("--memory, --cpus and --pids-limit"));
    }
    if rootless && request.runtime != Runtime::Embedded {
        return Err(Error::NeedsRoot("--runtime"));
    }
    let view = bundle::LayerView::of(&request.rootfs);
    let exec_user = resolve_user(&view, &request.user)?;
    let executable = bundle::find_executable(&view, &request.args, &request.env, &request.cwd)?;
    let id_map = if rootless {
        Some(embedded::IdMap::for_current_user())
    } else {
        None
    };
    if let Some(map) = &id_map
        && !map.maps_user(&exec_user)
    {
        return Err(Error::Invalid {
            what: "user",
            value: request.user.clone(),
            reason: "is not mapped in the rootless user namespace: give the calling user \
                     ranges in /etc/subuid and /etc/subgid (and install newuidmap)",
        });
    }
    let bundle = bundle::Bundle::create(request)?;
    let spec = spec::generate(request, &exec_user, &bundle, id_map.as_ref())?;
    bundle.prepare_init_layer(&spec)?;
    match &request.runtime {
        Runtime::Embedded => embedded::run(request, &spec, &bundle, &executable, id_map, on_line),
        Runtime::External(program) => external::run(program, request, &spec, &bundle, on_line),
    }
}
