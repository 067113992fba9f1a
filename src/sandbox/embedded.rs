//! The embedded runtime: executes a spec with `clone` (new mount, pid, uts, ipc, and per the
//! spec net and user namespaces), mounts made through `openat2(RESOLVE_IN_ROOT)` file
//! descriptors (a symlink in the image cannot redirect a mount to the host), `pivot_root`, and
//! an init at PID 1 that reaps zombies, forwards signals and, by exiting, makes the kernel kill
//! every process left in the namespace.
//!
//! Everything the child needs is prepared beforehand as C strings in a [`Plan`]: the child only
//! makes system calls (no allocation, no locks, no panics), so the caller may be multithreaded.
//! Failures are reported through a pipe as fixed-size records.

use super::bundle::Bundle;
use super::cgroup::Cgroup;
use super::relay::{Relay, SignalForwarding};
use super::spec::DEFAULT_DEVICES;
use super::{Error, ExitStatus, OutputStream, Request, Stdio};
use libc::{c_char, c_int, c_ulong};
use nix::errno::Errno;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A user namespace's id mappings: (container id, host id, size).
#[derive(Debug, Clone)]
pub struct IdMap {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
    /// Written by newuidmap/newgidmap (subordinate ranges) rather than directly (one id).
    through_helpers: bool,
}

fn subordinate_range(file: &str, user: &str, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let owner = fields.next()?;
        let start = fields.next()?.parse().ok()?;
        let count = fields.next()?.parse().ok()?;
        (owner == user || owner.parse::<u32>().ok() == Some(id)).then_some((start, count))
    })
}

fn maps(ranges: &[(u32, u32, u32)], id: u32) -> bool {
    ranges
        .iter()
        .any(|&(container, _, size)| id >= container && id - container < size)
}

fn program_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

impl IdMap {
    /// Root in the sandbox is the calling user; with /etc/subuid and /etc/subgid entries and
    /// newuidmap/newgidmap installed, ids 1.. map to the subordinate ranges.
    pub fn for_current_user() -> IdMap {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let sub_uids = subordinate_range("/etc/subuid", &name, uid);
        let sub_gids = subordinate_range("/etc/subgid", &name, uid);
        match (sub_uids, sub_gids) {
            (Some((uid_start, uid_count)), Some((gid_start, gid_count)))
                if program_exists("newuidmap") && program_exists("newgidmap") =>
            {
                IdMap {
                    uids: vec![(0, uid, 1), (1, uid_start, uid_count)],
                    gids: vec![(0, gid, 1), (1, gid_start, gid_count)],
                    through_helpers: true,
                }
            }
            _ => IdMap {
                uids: vec![(0, uid, 1)],
                gids: vec![(0, gid, 1)],
                through_helpers: false,
            },
        }
    }

    pub fn maps_gid(&self, gid: u32) -> bool {
        maps(&self.gids, gid)
    }

    /// Whether the user, its group and (where setgroups is allowed) its supplementary groups
    /// exist in the namespace: switching to an unmapped id fails with a bare EINVAL.
    pub fn maps_user(&self, user: &super::ExecUser) -> bool {
        maps(&self.uids, user.uid)
            && self.maps_gid(user.gid)
            && (!self.through_helpers || user.additional_gids.iter().all(|&g| self.maps_gid(g)))
    }

    fn apply(&self, pid: i32) -> Result<(), Error> {
        let line = |ranges: &[(u32, u32, u32)]| {
            ranges
                .iter()
                .map(|(c, h, s)| format!("{c} {h} {s}\n"))
                .collect::<String>()
        };
        if self.through_helpers {
            for (helper, ranges) in [("newuidmap", &self.uids), ("newgidmap", &self.gids)] {
                let mut command = std::process::Command::new(helper);
                command.arg(pid.to_string());
                for (c, h, s) in ranges {
                    command.args([c.to_string(), h.to_string(), s.to_string()]);
                }
                let output = command
                    .output()
                    .map_err(Error::io(format!("running {helper}")))?;
                if !output.status.success() {
                    return Err(Error::Runtime {
                        runtime: helper.to_string(),
                        reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                    });
                }
            }
            return Ok(());
        }
        let proc_dir = format!("/proc/{pid}");
        for (file, content) in [
            ("uid_map", line(&self.uids)),
            ("setgroups", "deny".to_string()),
            ("gid_map", line(&self.gids)),
        ] {
            let path = format!("{proc_dir}/{file}");
            std::fs::write(&path, content).map_err(Error::io(format!("writing {path}")))?;
        }
        Ok(())
    }
}

/// Declares [`Stage`] with each stage's description.
macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident => $description:literal,)*) => {
        /// Stages the child reports failures from; the parent turns them into [`Error::Setup`].
        #[derive(Clone, Copy)]
        #[repr(u32)]
        enum Stage {
            $($(#[$doc])* $name,)*
        }

        impl Stage {
            const ALL: &[Stage] = &[$(Stage::$name,)*];

            fn describe(self) -> &'static str {
                match self {
                    $(Stage::$name => $description,)*
                }
            }
        }
    };
}

stages! {
    Sync => "waiting for the parent",
    PrivateMounts => "making mounts private",
    RootfsMount => "mounting the root filesystem",
    RootfsOpen => "opening the root filesystem",
    Mountpoint => "creating the mountpoint",
    Mount => "mounting",
    Remount => "remounting with the requested flags",
    DevSymlinks => "creating /dev symlinks",
    Hostname => "setting the hostname",
    Loopback => "bringing up the loopback interface",
    PivotRoot => "pivoting into the root filesystem",
    MaskedPath => "masking a /proc or /sys path",
    ReadonlyPath => "making a /proc path read-only",
    ReadonlyRoot => "making the root filesystem read-only",
    Console => "allocating the pseudo-terminal",
    Fork => "starting the main process",
    Stdio => "connecting standard streams",
    Workdir => "entering the working directory",
    Capabilities => "setting capabilities",
    Groups => "setting supplementary groups",
    SetUser => "switching to the user",
    NoNewPrivs => "setting no_new_privs",
    ExecNotFound => "executing the command",
    Exec => "executing the command",
    /// Not a failure: the main process's wait status.
    Exited => "waiting",
}

impl Stage {
    fn from_raw(raw: u32) -> Option<Stage> {
        Stage::ALL
            .iter()
            .copied()
            .find(|stage| *stage as u32 == raw)
    }
}

/// A failure record: stage, errno (or wait status), and the index of the mount involved.
#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    stage: u32,
    value: i32,
    index: u32,
}

const RECORD_SIZE: usize = std::mem::size_of::<Record>();

/// A mount as the child performs it: through an fd of the destination opened inside the root.
struct PlannedMount {
    source: CString,
    fstype: Option<CString>,
    data: Option<CString>,
    /// Root-relative prefixes of the destination ("dev", "dev/pts") and their last components.
    prefixes: Vec<CString>,
    names: Vec<CString>,
    flags: c_ulong,
    propagation: c_ulong,
    is_bind: bool,
    is_file: bool,
    /// A bind mount whose flags need a second, remounting call.
    remount: bool,
}

/// C strings with the NULL-terminated pointer array execve takes.
struct CStringArray {
    _strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl CStringArray {
    fn new(strings: Vec<CString>) -> CStringArray {
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        CStringArray {
            _strings: strings,
            pointers,
        }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.pointers.as_ptr()
    }
}

struct Plan {
    clone_flags: c_ulong,
    root: CString,
    /// overlay options, or None to bind-mount `rootfs_dir`.
    overlay: Option<CString>,
    rootfs_dir: CString,
    mounts: Vec<PlannedMount>,
    masked: Vec<CString>,
    readonly: Vec<CString>,
    hostname: Option<CString>,
    loopback_up: bool,
    read_only_root: bool,
    tty: bool,
    fds: ChildFds,
    cwd: CString,
    cwd_prefixes: Vec<CString>,
    executable: CString,
    argv: CStringArray,
    envp: CStringArray,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    set_groups: bool,
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    last_cap: u32,
    no_new_privs: bool,
}

const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn capability_mask<'a>(caps: impl IntoIterator<Item = &'a Capability>) -> u64 {
    caps.into_iter()
        .filter_map(|cap| {
            let name = serde_json::to_value(cap).ok()?;
            let name = name.as_str()?;
            CAPABILITY_NAMES.iter().position(|n| *n == name)
        })
        .fold(0, |mask, bit| mask | (1u64 << bit))
}

fn cstring(text: impl Into<Vec<u8>>, what: &'static str) -> Result<CString, Error> {
    let bytes = text.into();
    CString::new(bytes.clone()).map_err(|_| Error::Invalid {
        what,
        value: String::from_utf8_lossy(&bytes).into_owned(),
        reason: "contains a NUL byte",
    })
}

/// Root-relative prefixes and names of an absolute path: "/dev/pts" → (["dev", "dev/pts"], ["dev", "pts"]).
fn path_steps(path: &str, what: &'static str) -> Result<(Vec<CString>, Vec<CString>), Error> {
    let names: Vec<&str> = path
        .split('/')
        .filter(|n| !n.is_empty() && *n != ".")
        .collect();
    if names.is_empty() || names.contains(&"..") {
        return Err(Error::Invalid {
            what,
            value: path.to_string(),
            reason: "must be an absolute path below / without ..",
        });
    }
    let mut prefixes = Vec::with_capacity(names.len());
    let mut names_c = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        prefixes.push(cstring(names[..=index].join("/"), what)?);
        names_c.push(cstring(*name, what)?);
    }
    Ok((prefixes, names_c))
}

/// Splits fstab-style options into mount flags, propagation flags and filesystem data (runc's table).
fn parse_options(options: &[String]) -> (c_ulong, c_ulong, Vec<String>) {
    let (mut flags, mut propagation, mut data) = (0, 0, Vec::new());
    for option in options {
        let (set, clear): (c_ulong, c_ulong) = match option.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let kind = match option.trim_start_matches('r') {
                    "private" => libc::MS_PRIVATE,
                    "shared" => libc::MS_SHARED,
                    "slave" => libc::MS_SLAVE,
                    _ => libc::MS_UNBINDABLE,
                };
                propagation = kind
                    | if option.starts_with('r') {
                        libc::MS_REC
                    } else {
                        0
                    };
                continue;
            }
            _ => {
                data.push(option.clone());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, propagation, data)
}

impl Plan {
    #[allow(clippy::too_many_arguments)]
    fn new(
        request: &Request,
        spec: &Spec,
        bundle: &Bundle,
        executable: &str,
        id_map: Option<&IdMap>,
        fds: ChildFds,
    ) -> Result<Plan, Error> {
        let linux = spec.linux().as_ref();
        let process = spec.process().as_ref();
        let mut clone_flags: c_ulong = 0;
        for namespace in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            clone_flags |= match namespace.typ() {
                LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
                LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
                LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
                LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
                LinuxNamespaceType::Network => libc::CLONE_NEWNET,
                LinuxNamespaceType::User => libc::CLONE_NEWUSER,
                LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
                LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
            } as c_ulong;
        }

        let mut mounts = Vec::new();
        for mount in spec.mounts().as_deref().unwrap_or_default() {
            let destination = mount.destination().to_string_lossy().into_owned();
            let (prefixes, names) = path_steps(&destination, "mount destination")?;
            let options = mount.options().as_deref().unwrap_or_default();
            let (mut flags, propagation, data) = parse_options(options);
            let fstype = mount.typ().clone().unwrap_or_default();
            let is_bind = fstype == "bind" || flags & libc::MS_BIND != 0;
            // No device cgroup here: device nodes are only usable where we bind-mount them.
            if fstype != "devpts" {
                flags |= libc::MS_NODEV;
            }
            let source = mount
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| fstype.clone());
            let is_file = is_bind && std::fs::metadata(&source).is_ok_and(|m| !m.is_dir());
            mounts.push(PlannedMount {
                source: cstring(source, "mount source")?,
                fstype: (!is_bind)
                    .then(|| cstring(fstype, "mount type"))
                    .transpose()?,
                data: (!data.is_empty())
                    .then(|| cstring(data.join(","), "mount options"))
                    .transpose()?,
                prefixes,
                names,
                flags,
                propagation,
                is_bind,
                is_file,
                remount: is_bind && flags & !(libc::MS_BIND | libc::MS_REC) != 0,
            });
        }
        for (name, _, _) in DEFAULT_DEVICES {
            let destination = format!("/dev/{name}");
            let (prefixes, names) = path_steps(&destination, "device")?;
            mounts.push(PlannedMount {
                source: cstring(destination.clone(), "device")?,
                fstype: None,
                data: None,
                prefixes,
                names,
                flags: libc::MS_BIND,
                propagation: 0,
                is_bind: true,
                is_file: true,
                remount: false,
            });
        }

        let user = process.map(|p| p.user());
        let caps = process.and_then(|p| p.capabilities().as_ref());
        let mask = |set: Option<&oci_spec::runtime::Capabilities>| {
            set.map(|s| capability_mask(s.iter())).unwrap_or(0)
        };
        let args: Vec<String> = process.and_then(|p| p.args().clone()).unwrap_or_default();
        let env: Vec<String> = process.and_then(|p| p.env().clone()).unwrap_or_default();
        let cwd = process
            .map(|p| p.cwd().to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_string());
        let cwd_prefixes = if cwd.trim_matches('/').is_empty() {
            Vec::new()
        } else {
            path_steps(&cwd, "working directory")?
                .0
                .into_iter()
                .map(|p| {
                    let mut absolute = b"/".to_vec();
                    absolute.extend_from_slice(p.as_bytes());
                    cstring(absolute, "working directory")
                })
                .collect::<Result<_, _>>()?
        };
        static LAST_CAP: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let last_cap = *LAST_CAP.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(40)
        });
        let cstrings = |list: &[String], what| {
            list.iter()
                .map(|s| cstring(s.as_str(), what))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Plan {
            clone_flags,
            root: cstring(bundle.rootfs.to_string_lossy().into_owned(), "rootfs")?,
            overlay: bundle
                .overlay_options(request, id_map.is_some())?
                .map(|o| cstring(o, "overlay options"))
                .transpose()?,
            rootfs_dir: match &request.rootfs {
                super::Rootfs::Dir(dir) => cstring(dir.to_string_lossy().into_owned(), "rootfs")?,
                super::Rootfs::Overlay { .. } => CString::default(),
            },
            mounts,
            masked: cstrings(
                linux
                    .and_then(|l| l.masked_paths().as_deref())
                    .unwrap_or_default(),
                "masked path",
            )?,
            readonly: cstrings(
                linux
                    .and_then(|l| l.readonly_paths().as_deref())
                    .unwrap_or_default(),
                "read-only path",
            )?,
            hostname: spec
                .hostname()
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| cstring(h.as_str(), "hostname"))
                .transpose()?,
            loopback_up: clone_flags & libc::CLONE_NEWNET as c_ulong != 0,
            read_only_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            tty: process.and_then(|p| p.terminal()).unwrap_or(false),
            fds,
            cwd: cstring(cwd, "working directory")?,
            cwd_prefixes,
            executable: cstring(executable, "command")?,
            argv: CStringArray::new(cstrings(&args, "argument")?),
            envp: CStringArray::new(cstrings(&env, "environment variable")?),
            uid: user.map(|u| u.uid()).unwrap_or(0),
            gid: user.map(|u| u.gid()).unwrap_or(0),
            groups: user
                .and_then(|u| u.additional_gids().clone())
                .unwrap_or_default(),
            // A single-id user namespace has setgroups denied.
            set_groups: id_map.is_none_or(|map| map.through_helpers),
            bounding: mask(caps.and_then(|c| c.bounding().as_ref())),
            effective: mask(caps.and_then(|c| c.effective().as_ref())),
            permitted: mask(caps.and_then(|c| c.permitted().as_ref())),
            inheritable: mask(caps.and_then(|c| c.inheritable().as_ref())),
            last_cap,
            no_new_privs: process.and_then(|p| p.no_new_privileges()).unwrap_or(false),
        })
    }
}

/// The raw descriptors the child uses; -1 where unused.
struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    console: RawFd,
    report: RawFd,
    sync: RawFd,
    /// Pipe ends the init closes once the main process has them.
    close_in_init: Vec<RawFd>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| Error::io("creating a pipe")(errno.into()))
}

/// Kills and reaps the cloned child unless disarmed (parent-side failures after clone).
struct ChildGuard(Option<i32>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

pub fn run(
    request: &Request,
    spec: &Spec,
    bundle: &Bundle,
    executable: &str,
    id_map: Option<IdMap>,
    on_line: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<ExitStatus, Error> {
    let (report_read, report_write) = pipe()?;
    let (sync_read, sync_write) = pipe()?;
    let mut parent_ends = Vec::new();
    // The child's ends stay open here until the child has been cloned.
    let mut child_ends = Vec::new();
    let (stdin, stdout, stderr) = match request.stdio {
        Stdio::Inherit { stdin } => (if stdin { 0 } else { -1 }, 1, 2),
        Stdio::Tty { .. } => (-1, -1, -1),
        Stdio::Lines => {
            let (out_read, out_write) = pipe()?;
            let (err_read, err_write) = pipe()?;
            let fds = (-1, out_write.as_raw_fd(), err_write.as_raw_fd());
            parent_ends.push((OutputStream::Stdout, out_read));
            parent_ends.push((OutputStream::Stderr, err_read));
            child_ends.extend([out_write, err_write]);
            fds
        }
    };
    let console = match request.stdio {
        Stdio::Tty { .. } => Some(
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|errno| Error::io("creating the console socket")(errno.into()))?,
        ),
        _ => None,
    };
    let fds = ChildFds {
        stdin,
        stdout,
        stderr,
        console: console.as_ref().map_or(-1, |(_, child)| child.as_raw_fd()),
        report: report_write.as_raw_fd(),
        sync: sync_read.as_raw_fd(),
        close_in_init: child_ends.iter().map(|fd| fd.as_raw_fd()).collect(),
    };
    let plan = Plan::new(request, spec, bundle, executable, id_map.as_ref(), fds)?;
    let cgroup = Cgroup::create(spec)?;
    let forwarding = SignalForwarding::start(
        request.forward_signals,
        matches!(request.stdio, Stdio::Tty { .. }),
    )?;

    // SAFETY: a fork-like clone (no CLONE_VM, no new stack); the child runs only `child_main`,
    // which makes system calls on data prepared above and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            plan.clone_flags | libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe { child_main(&plan) }
    }
    if pid < 0 {
        return Err(Error::Setup {
            stage: "creating the namespaces".to_string(),
            errno: Errno::last(),
        });
    }
    let pid = pid as i32;
    let mut guard = ChildGuard(Some(pid));
    drop(sync_read);
    drop(report_write);
    drop(child_ends);
    if let Some(map) = &id_map {
        map.apply(pid)?;
    }
    if let Some(cgroup) = &cgroup {
        cgroup.add(pid)?;
    }
    nix::unistd::write(&sync_write, &[1])
        .map_err(|errno| Error::io("releasing the sandbox")(errno.into()))?;
    drop(sync_write);
    drop(plan);

    let tty_master = match console {
        Some((parent_end, child_end)) => {
            drop(child_end);
            super::relay::receive_fd(&parent_end)?
        }
        None => None,
    };
    let relay = Relay {
        pid,
        outputs: parent_ends,
        tty_master,
        tty_stdin: matches!(request.stdio, Stdio::Tty { stdin: true }),
        forwarding,
    };
    let wait_status = relay.pump(on_line)?;
    guard.0 = None;
    drop(cgroup);
    read_outcome(&report_read, wait_status, spec)
}

fn read_outcome(report: &OwnedFd, init_status: i32, spec: &Spec) -> Result<ExitStatus, Error> {
    let mut buffer = [0u8; RECORD_SIZE * 8];
    let mut filled = 0;
    while filled < buffer.len() {
        match nix::unistd::read(report, &mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::io("reading the sandbox's report")(errno.into())),
        }
    }
    let mut exit = None;
    for chunk in buffer[..filled].chunks_exact(RECORD_SIZE) {
        let field = |at: usize| {
            chunk
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
                .unwrap_or(0)
        };
        let (stage, value, index) = (field(0), field(4) as i32, field(8));
        match Stage::from_raw(stage) {
            Some(Stage::Exited) => exit = Some(value),
            Some(Stage::ExecNotFound) => {
                return Err(Error::CommandNotFound(first_arg(spec)));
            }
            Some(Stage::Exec) => {
                return Err(Error::Exec {
                    command: first_arg(spec),
                    errno: Errno::from_raw(value),
                });
            }
            Some(stage) => {
                let mut described = stage.describe().to_string();
                if matches!(stage, Stage::Mountpoint | Stage::Mount | Stage::Remount)
                    && let Some(mount) =
                        spec.mounts().as_deref().and_then(|m| m.get(index as usize))
                {
                    described = format!("{described} {}", mount.destination().display());
                } else if matches!(stage, Stage::Mountpoint | Stage::Mount | Stage::Remount) {
                    described.push_str(" a device");
                }
                return Err(Error::Setup {
                    stage: described,
                    errno: Errno::from_raw(value),
                });
            }
            None => {}
        }
    }
    let status = exit.unwrap_or(init_status);
    Ok(if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    })
}

fn first_arg(spec: &Spec) -> String {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first().cloned())
        .unwrap_or_default()
}

// ---- The child. Everything below runs after clone: system calls only. ----

fn errno() -> i32 {
    Errno::last_raw()
}

/// Reports a failure and exits.
unsafe fn fail(plan: &Plan, stage: Stage, value: i32, index: usize) -> ! {
    report(plan.fds.report, stage, value, index);
    // SAFETY: _exit is async-signal-safe and runs no destructors.
    unsafe { libc::_exit(1) }
}

fn report(fd: RawFd, stage: Stage, value: i32, index: usize) {
    let record = Record {
        stage: stage as u32,
        value,
        index: index as u32,
    };
    // SAFETY: writes a plain repr(C) value; a pipe write of this size is atomic.
    unsafe {
        libc::write(fd, (&record as *const Record).cast(), RECORD_SIZE);
    }
}

/// A path ending in a decimal number ("/proc/self/fd/N", "/dev/pts/N"), NUL-terminated in a
/// stack buffer: the child cannot allocate.
struct NumberedPath([u8; 32]);

impl NumberedPath {
    fn new(prefix: &[u8], number: u32) -> NumberedPath {
        let mut buffer = [0u8; 32];
        buffer[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 10];
        let mut count = 0;
        let mut value = number;
        loop {
            digits[count] = b'0' + (value % 10) as u8;
            count += 1;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        for i in 0..count {
            buffer[prefix.len() + i] = digits[count - 1 - i];
        }
        NumberedPath(buffer)
    }

    fn fd(fd: c_int) -> NumberedPath {
        NumberedPath::new(b"/proc/self/fd/", fd.max(0) as u32)
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// Opens `path` relative to `root` as if `root` were `/` (symlinks cannot escape it).
unsafe fn open_in_root(root: c_int, path: &CStr) -> c_int {
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid pointers for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        ) as c_int
    }
}

/// Opens the mountpoint, creating missing components (directories, or a file last for a file
/// bind mount) inside the root.
unsafe fn open_mountpoint(root: c_int, mount: &PlannedMount) -> Result<c_int, i32> {
    let mut parent = root;
    let count = mount.prefixes.len();
    for (index, (prefix, name)) in mount.prefixes.iter().zip(&mount.names).enumerate() {
        // SAFETY: system calls on valid C strings and descriptors.
        unsafe {
            let mut fd = open_in_root(root, prefix);
            if fd < 0 && errno() == libc::ENOENT {
                let created = if index + 1 == count && mount.is_file {
                    let file = libc::openat(
                        parent,
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o644,
                    );
                    if file >= 0 {
                        libc::close(file);
                    }
                    file >= 0
                } else {
                    libc::mkdirat(parent, name.as_ptr(), 0o755) == 0 || errno() == libc::EEXIST
                };
                if created {
                    fd = open_in_root(root, prefix);
                }
            }
            let failure = errno();
            if parent != root {
                libc::close(parent);
            }
            if fd < 0 {
                return Err(failure);
            }
            parent = fd;
        }
    }
    Ok(parent)
}

/// The flags a remount must keep: in a user namespace they are locked.
unsafe fn locked_flags(fd_path: *const c_char) -> c_ulong {
    // SAFETY: statvfs fills the struct.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(fd_path, &mut stat) != 0 {
            return 0;
        }
        [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ]
        .iter()
        .filter(|(st, _)| stat.f_flag & st != 0)
        .fold(0, |flags, (_, ms)| flags | ms)
    }
}

unsafe fn mount_one(plan: &Plan, root: c_int, mount: &PlannedMount, index: usize) {
    // SAFETY: system calls on prepared C strings; failures end the child.
    unsafe {
        let fd = match open_mountpoint(root, mount) {
            Ok(fd) => fd,
            Err(e) => fail(plan, Stage::Mountpoint, e, index),
        };
        let target = NumberedPath::fd(fd);
        let done = if mount.is_bind {
            libc::mount(
                mount.source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | (mount.flags & libc::MS_REC),
                std::ptr::null(),
            )
        } else {
            libc::mount(
                mount.source.as_ptr(),
                target.as_ptr(),
                mount
                    .fstype
                    .as_ref()
                    .map_or(std::ptr::null(), |t| t.as_ptr()),
                mount.flags,
                mount
                    .data
                    .as_ref()
                    .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
            )
        };
        if done != 0 {
            fail(plan, Stage::Mount, errno(), index);
        }
        libc::close(fd);
        if !mount.remount && mount.propagation == 0 {
            return;
        }
        // Reopen: the new mount now covers the path.
        let Some(last) = mount.prefixes.last() else {
            return;
        };
        let fd = open_in_root(root, last);
        if fd < 0 {
            fail(plan, Stage::Remount, errno(), index);
        }
        let target = NumberedPath::fd(fd);
        if mount.remount {
            let flags = (mount.flags & !libc::MS_REC)
                | libc::MS_REMOUNT
                | libc::MS_BIND
                | locked_flags(target.as_ptr());
            if libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                fail(plan, Stage::Remount, errno(), index);
            }
        }
        if mount.propagation != 0
            && libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                mount.propagation,
                std::ptr::null(),
            ) != 0
        {
            fail(plan, Stage::Remount, errno(), index);
        }
        libc::close(fd);
    }
}

const DEV_SYMLINKS: [(&CStr, &CStr); 6] = [
    (c"/proc/self/fd", c"fd"),
    (c"/proc/self/fd/0", c"stdin"),
    (c"/proc/self/fd/1", c"stdout"),
    (c"/proc/self/fd/2", c"stderr"),
    (c"pts/ptmx", c"ptmx"),
    (c"/proc/kcore", c"core"),
];

unsafe fn bring_up_loopback() -> Result<(), i32> {
    // SAFETY: ioctls on a fresh socket with a zeroed ifreq.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return Err(errno());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as c_char;
        request.ifr_name[1] = b'o' as c_char;
        if libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(errno());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket, libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(errno());
        }
        libc::close(socket);
        Ok(())
    }
}

/// Masks and read-only paths, after pivot_root (runc's order).
unsafe fn protect_paths(plan: &Plan) {
    // SAFETY: mounts on prepared absolute C strings.
    unsafe {
        for (index, path) in plan.masked.iter().enumerate() {
            // Directories get an empty tmpfs, files /dev/null. Asked first rather than learnt
            // from a failed bind mount (as runc does): undoing that mount waits for an RCU
            // grace period, milliseconds per path on a busy machine.
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::stat(path.as_ptr(), &mut stat) != 0 {
                match errno() {
                    libc::ENOENT => continue,
                    e => fail(plan, Stage::MaskedPath, e, index),
                }
            }
            let masked = if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY,
                    std::ptr::null(),
                )
            } else {
                libc::mount(
                    c"/dev/null".as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if masked != 0 {
                fail(plan, Stage::MaskedPath, errno(), index);
            }
        }
        for (index, path) in plan.readonly.iter().enumerate() {
            if libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                match errno() {
                    libc::ENOENT => continue,
                    e => fail(plan, Stage::ReadonlyPath, e, index),
                }
            }
            let flags = libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_REC
                | locked_flags(path.as_ptr());
            if libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                fail(plan, Stage::ReadonlyPath, errno(), index);
            }
        }
    }
}

/// Allocates a pseudo-terminal in the sandbox's devpts, sends the master to the parent and
/// returns the slave's number.
unsafe fn allocate_console(plan: &Plan) -> u32 {
    // SAFETY: ptmx ioctls and an SCM_RIGHTS message built on the stack.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            fail(plan, Stage::Console, errno(), 0);
        }
        let unlock: c_int = 0;
        let mut number: libc::c_uint = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0
            || libc::ioctl(master, libc::TIOCGPTN, &mut number) != 0
        {
            fail(plan, Stage::Console, errno(), 0);
        }
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        #[repr(C, align(8))]
        struct ControlBuffer([u8; 64]);
        let mut control = ControlBuffer([0; 64]);
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.0.as_mut_ptr().cast();
        message.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as usize;
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() {
            fail(plan, Stage::Console, libc::EINVAL, 0);
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<c_int>(), master);
        if libc::sendmsg(plan.fds.console, &message, 0) < 0 {
            fail(plan, Stage::Console, errno(), 0);
        }
        libc::close(master);
        libc::close(plan.fds.console);
        number
    }
}

unsafe fn child_main(plan: &Plan) -> ! {
    // SAFETY: the whole child is system calls on `plan`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::umask(0o022);
        // Always wait for the parent's byte, even when it has no ID map or cgroup to set up:
        // a parent killed before the prctl above would leave this child orphaned, and in a
        // new PID namespace getppid() cannot tell. Its death closes the pipe, so we see EOF.
        let mut byte = [0u8; 1];
        if libc::read(plan.fds.sync, byte.as_mut_ptr().cast(), 1) != 1 {
            fail(plan, Stage::Sync, errno(), 0);
        }
        libc::close(plan.fds.sync);

        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail(plan, Stage::PrivateMounts, errno(), 0);
        }
        let mounted = match &plan.overlay {
            Some(options) => libc::mount(
                c"overlay".as_ptr(),
                plan.root.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_NODEV,
                options.as_ptr().cast(),
            ),
            None => libc::mount(
                plan.rootfs_dir.as_ptr(),
                plan.root.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ),
        };
        if mounted != 0 {
            fail(plan, Stage::RootfsMount, errno(), 0);
        }
        let root = libc::open(
            plan.root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if root < 0 {
            fail(plan, Stage::RootfsOpen, errno(), 0);
        }
        for (index, mount) in plan.mounts.iter().enumerate() {
            mount_one(plan, root, mount, index);
        }
        let dev = open_in_root(root, c"dev");
        if dev < 0 {
            fail(plan, Stage::DevSymlinks, errno(), 0);
        }
        for (target, name) in DEV_SYMLINKS {
            if libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) != 0 && errno() != libc::EEXIST
            {
                fail(plan, Stage::DevSymlinks, errno(), 0);
            }
        }
        libc::close(dev);
        if let Some(hostname) = &plan.hostname
            && libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()) != 0
        {
            fail(plan, Stage::Hostname, errno(), 0);
        }
        if plan.loopback_up
            && let Err(e) = bring_up_loopback()
        {
            fail(plan, Stage::Loopback, e, 0);
        }

        if libc::fchdir(root) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            fail(plan, Stage::PivotRoot, errno(), 0);
        }
        libc::close(root);
        protect_paths(plan);
        if plan.read_only_root {
            let flags =
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked_flags(c"/".as_ptr());
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                fail(plan, Stage::ReadonlyRoot, errno(), 0);
            }
        }
        let pts = if plan.tty {
            Some(allocate_console(plan))
        } else {
            None
        };

        let main = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if main < 0 {
            fail(plan, Stage::Fork, errno(), 0);
        }
        if main == 0 {
            exec_main(plan, pts);
        }
        let main = main as libc::pid_t;
        for fd in &plan.fds.close_in_init {
            libc::close(*fd);
        }
        init_loop(plan, main)
    }
}

/// PID 1: reaps every child, forwards every signal to the main process, and exits (killing the
/// namespace) when the main process has exited, reporting its wait status.
unsafe fn init_loop(plan: &Plan, main: libc::pid_t) -> ! {
    // SAFETY: signal and wait system calls.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let signal = libc::sigwaitinfo(&all, &mut info);
            if signal < 0 {
                continue;
            }
            if signal != libc::SIGCHLD {
                libc::kill(main, signal);
                continue;
            }
            loop {
                let mut status: c_int = 0;
                let reaped = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if reaped <= 0 {
                    break;
                }
                if reaped == main {
                    report(plan.fds.report, Stage::Exited, status, 0);
                    libc::_exit(0);
                }
            }
        }
    }
}

/// The main process: standard streams, working directory, credentials, then execve.
unsafe fn exec_main(plan: &Plan, pts: Option<u32>) -> ! {
    // SAFETY: system calls on prepared data; ends in execve or _exit.
    unsafe {
        libc::setsid();
        if let Some(number) = pts {
            let path = NumberedPath::new(b"/dev/pts/", number);
            let slave = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if slave < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
                fail(plan, Stage::Console, errno(), 0);
            }
            for target in 0..3 {
                if libc::dup2(slave, target) < 0 {
                    fail(plan, Stage::Stdio, errno(), 0);
                }
            }
        } else {
            let stdin = if plan.fds.stdin >= 0 {
                plan.fds.stdin
            } else {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
            };
            for (fd, target) in [(stdin, 0), (plan.fds.stdout, 1), (plan.fds.stderr, 2)] {
                if fd < 0 || (fd != target && libc::dup2(fd, target) < 0) {
                    fail(plan, Stage::Stdio, errno(), 0);
                }
                if fd == target {
                    // Inherited as is: make sure exec keeps it.
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
        }
        // WORKDIR is created when missing, as root, before dropping privileges.
        for prefix in &plan.cwd_prefixes {
            if libc::mkdir(prefix.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                fail(plan, Stage::Workdir, errno(), 0);
            }
        }

        for cap in 0..=plan.last_cap.min(63) {
            if plan.bounding & (1u64 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong) != 0
                && errno() != libc::EINVAL
            {
                fail(plan, Stage::Capabilities, errno(), 0);
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if plan.uid != 0 {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1);
        }
        // Raw system calls, not glibc's wrappers: those apply the change to every thread
        // glibc believes the process has, under a lock that another thread of the caller may
        // have held when it was cloned (tokio starting a thread), and the child then waits
        // on that lock forever. The child has one thread, so the raw calls are complete.
        if plan.set_groups
            && libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) != 0
        {
            fail(plan, Stage::Groups, errno(), 0);
        }
        if libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0
            || libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0
        {
            fail(plan, Stage::SetUser, errno(), 0);
        }
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let split = |mask: u64, half: u32| (mask >> (32 * half)) as u32;
        let data = [0, 1].map(|half| CapData {
            effective: split(plan.effective, half),
            permitted: split(plan.permitted, half),
            inheritable: split(plan.inheritable, half),
        });
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            fail(plan, Stage::Capabilities, errno(), 0);
        }
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(plan, Stage::NoNewPrivs, errno(), 0);
        }
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            fail(plan, Stage::Workdir, errno(), 0);
        }

        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        for signal in 1..libc::SIGRTMAX() {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );

        libc::execve(
            plan.executable.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        );
        let failure = errno();
        if failure == libc::ENOENT {
            report(plan.fds.report, Stage::ExecNotFound, failure, 0);
            libc::_exit(127);
        }
        report(plan.fds.report, Stage::Exec, failure, 0);
        libc::_exit(126)
    }
}
