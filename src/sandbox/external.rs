//! External OCI runtimes (runc, crun, a path): the same spec as config.json in the bundle. The
//! rootfs is mounted in a private mount namespace the runtime is started in, so it vanishes with
//! the runtime and is never visible on the host.
//!
//! crun refuses the hybrid cgroup layout (v1 controllers plus a v2 tree at
//! /sys/fs/cgroup/unified) whenever that v2 tree has a controller of its own (here hugetlb,
//! which no v1 hierarchy binds), whatever its cgroup manager. So the v2 tree is detached in
//! crun's private mount namespace: crun sees a plain v1 layout and uses it for limits. Without
//! limits it runs with `--cgroup-manager=disabled`, creating no cgroup at all.

use super::bundle::Bundle;
use super::cgroup;
use super::relay::{Relay, SignalForwarding};
use super::{Error, ExitStatus, OutputStream, Request, Rootfs, Stdio};
use oci_spec::runtime::Spec;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;

fn is_crun(program: &Path) -> bool {
    program
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("crun"))
}

fn cstring(text: &str, what: &'static str) -> Result<CString, Error> {
    CString::new(text).map_err(|_| Error::Invalid {
        what,
        value: text.to_string(),
        reason: "contains a NUL byte",
    })
}

pub fn run(
    program: &Path,
    request: &Request,
    spec: &Spec,
    bundle: &Bundle,
    on_line: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<ExitStatus, Error> {
    bundle.write_config(spec)?;
    let runtime_name = program.display().to_string();
    let id = bundle
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("rbuild-{}", std::process::id()));
    let rootfs_target = cstring(&bundle.rootfs.to_string_lossy(), "rootfs")?;
    let overlay = bundle
        .overlay_options(request, false)?
        .map(|o| cstring(&o, "overlay options"))
        .transpose()?;
    let rootfs_dir = match &request.rootfs {
        Rootfs::Dir(dir) => Some(cstring(&dir.to_string_lossy(), "rootfs")?),
        Rootfs::Overlay { .. } => None,
    };
    let crun = is_crun(program);
    let detach_unified = crun && cgroup::is_hybrid();

    let mut command = std::process::Command::new(program);
    if crun && request.limits.is_empty() {
        command.arg("--cgroup-manager=disabled");
    }
    command
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id);
    match request.stdio {
        Stdio::Inherit { stdin } | Stdio::Tty { stdin } => {
            if !stdin {
                command.stdin(std::process::Stdio::null());
            }
        }
        Stdio::Lines => {
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
        }
    }
    // SAFETY: the closure makes system calls only, on C strings prepared above.
    unsafe {
        command.pre_exec(move || {
            let check = |result: libc::c_int| {
                if result == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            match (&overlay, &rootfs_dir) {
                (Some(options), _) => check(libc::mount(
                    c"overlay".as_ptr(),
                    rootfs_target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ))?,
                (None, Some(dir)) => check(libc::mount(
                    dir.as_ptr(),
                    rootfs_target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?,
                (None, None) => {}
            }
            if detach_unified {
                check(libc::umount2(
                    c"/sys/fs/cgroup/unified".as_ptr(),
                    libc::MNT_DETACH,
                ))?;
            }
            Ok(())
        });
    }
    let forwarding = SignalForwarding::start(request.forward_signals, false)?;
    let mut child = command
        .spawn()
        .map_err(Error::io(format!("starting {runtime_name}")))?;
    let mut outputs = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        outputs.push((OutputStream::Stdout, stdout.into()));
    }
    if let Some(stderr) = child.stderr.take() {
        outputs.push((OutputStream::Stderr, stderr.into()));
    }
    let relay = Relay {
        pid: child.id() as i32,
        outputs,
        tty_master: None,
        tty_stdin: false,
        forwarding,
    };
    let status = relay.pump(on_line)?;
    if libc::WIFSIGNALED(status) {
        // The runtime itself died: remove what it may have left.
        let _ = std::process::Command::new(program)
            .args(["delete", "--force", &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        return Err(Error::Runtime {
            runtime: runtime_name,
            reason: format!("killed by signal {}", libc::WTERMSIG(status)),
        });
    }
    Ok(ExitStatus::Exited(libc::WEXITSTATUS(status)))
}
