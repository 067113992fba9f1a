//! `rbuild run` end to end, compared with `docker run` of the same image on a private Docker
//! Engine (Debian's docker.io; own data root, killed by pid): stdout, exit codes, env, cwd,
//! user, volumes and terminal. The image is made by `docker import --change`, saved by Docker
//! and loaded into rbuild's store, so both run the very same config and layer.

mod sandbox_support;
mod support;

use sandbox_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::dockerd::Dockerd;

const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");
const IMAGE: &str = "sandboxcli:t";

fn rbuild(root: &Path, args: &[&str]) -> Output {
    Command::new(RBUILD)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rbuild")
}

fn checked(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Both engines with the same image: Docker's import with a config, loaded into rbuild.
struct Engines {
    docker: Dockerd,
    root: PathBuf,
    scratch: tempfile::TempDir,
}

fn engines() -> Engines {
    require_root();
    let docker = Dockerd::start();
    let scratch = tempfile::tempdir().unwrap();
    let rootfs = scratch.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    std::fs::create_dir_all(rootfs.join("home/app")).unwrap();
    let tar = scratch.path().join("rootfs.tar");
    let made = Command::new("/usr/bin/tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    checked(
        docker.output(&[
            "import",
            "--change",
            "ENV IMAGE_VAR=from-image PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "WORKDIR /home/app",
            "--change",
            "USER app",
            "--change",
            r#"ENTRYPOINT ["/bin/echo", "entry"]"#,
            "--change",
            r#"CMD ["default", "cmd"]"#,
            tar.to_str().unwrap(),
            IMAGE,
        ]),
        "docker import",
    );
    let archive = scratch.path().join("image.tar");
    checked(
        docker.output(&["save", "-o", archive.to_str().unwrap(), IMAGE]),
        "docker save",
    );
    let root = scratch.path().join("store");
    checked(
        rbuild(&root, &["load", "-i", archive.to_str().unwrap()]),
        "rbuild load",
    );
    Engines {
        docker,
        root,
        scratch,
    }
}

impl Engines {
    /// (exit code, stdout) of `run ARGS` on both engines.
    fn both(&self, args: &[&str]) -> ((i32, String), (i32, String)) {
        let mut docker_args = vec!["run", "--rm", "--network", "none"];
        docker_args.extend_from_slice(args);
        let docker = self.docker.output(&docker_args);
        let mut rbuild_args = vec!["run", "--rm"];
        rbuild_args.extend_from_slice(args);
        let ours = rbuild(&self.root, &rbuild_args);
        let summary = |o: &Output| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        };
        (summary(&docker), summary(&ours))
    }

    fn same(&self, args: &[&str]) -> (i32, String) {
        let (docker, ours) = self.both(args);
        assert_eq!(
            ours, docker,
            "rbuild run {args:?} differs from docker run (right)"
        );
        ours
    }
}

#[test]
fn run_matches_docker_run() {
    let engines = engines();
    // Entrypoint + Cmd, and arguments replacing Cmd.
    assert_eq!(
        engines.same(&[IMAGE]),
        (0, "entry default cmd\n".to_string())
    );
    engines.same(&[IMAGE, "given", "args"]);
    // --entrypoint drops the image's Cmd; exit codes pass through.
    assert_eq!(
        engines
            .same(&["--entrypoint", "/bin/sh", IMAGE, "-c", "exit 3"])
            .0,
        3
    );
    // A process that SIGKILLs itself: Docker's command is PID 1, which the kernel shields from
    // its own namespace's signals (exit 0); rbuild's command runs under an init at PID 1 and dies
    // (137). A known difference, open on issue 4; compared here so it stays visible.
    let (docker, ours) = engines.both(&["--entrypoint", "/bin/sh", IMAGE, "-c", "kill -9 $$"]);
    assert_eq!((docker.0, ours.0), (0, 137));
    // Env: image Env, -e (with and without a value), --env-file; HOSTNAME set by both.
    let env_file = engines.scratch.path().join("env");
    std::fs::write(
        &env_file,
        "# comment\nFROM_FILE=file\n\nIMAGE_VAR=overridden-by-file\n",
    )
    .unwrap();
    let (docker, ours) = engines.both(&[
        "-e",
        "GIVEN=yes",
        "-e",
        "HOME",
        "--env-file",
        env_file.to_str().unwrap(),
        "--hostname",
        "samehost",
        "--entrypoint",
        "env",
        IMAGE,
    ]);
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(ours.0, docker.0);
    assert_eq!(sorted(&ours.1), sorted(&docker.1), "env differs");
    // Working directory and user: the image's, then overridden; a missing -w is created.
    engines.same(&["--entrypoint", "pwd", IMAGE]);
    engines.same(&["--entrypoint", "pwd", "-w", "/new/dir", IMAGE]);
    engines.same(&["--entrypoint", "id", IMAGE]);
    engines.same(&["--entrypoint", "id", "-u", "root", IMAGE]);
    engines.same(&["--entrypoint", "id", "-u", "1000:10", IMAGE]);
    // Volumes: read-write and read-only.
    let volume = engines.scratch.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::fs::set_permissions(&volume, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(volume.join("in"), "host data\n").unwrap();
    let rw = format!("{}:/data", volume.display());
    let ro = format!("{}:/data:ro", volume.display());
    engines.same(&["--entrypoint", "cat", "-v", &rw, IMAGE, "/data/in"]);
    engines.same(&[
        "--entrypoint",
        "sh",
        "-v",
        &ro,
        IMAGE,
        "-c",
        "echo x > /data/out 2>/dev/null; echo $?",
    ]);
    // Resource limits: the same values in the container's cgroups, read from the host's tree.
    let (_, limits) = engines.same(&[
        "--memory",
        "32m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "16",
        "-v",
        "/sys/fs/cgroup:/c:ro",
        "--entrypoint",
        "sh",
        IMAGE,
        "-c",
        CGROUP_LIMITS_SCRIPT,
    ]);
    assert_eq!(limits, CGROUP_LIMITS_EXPECTED);
    // Terminal: stdin, stdout and stderr are the terminal, with its line discipline.
    engines.same(&[
        "-t",
        "--entrypoint",
        "sh",
        IMAGE,
        "-c",
        "test -t 0 && test -t 1 && test -t 2 && echo tty; tty",
    ]);
    // Errors: a missing command is 127 in both.
    let (docker, ours) = engines.both(&["--entrypoint", "no-such-command", IMAGE]);
    assert_eq!((ours.0, docker.0), (127, 127));
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_behind() {
    require_root();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("store");
    let rootfs = scratch.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let tar = scratch.path().join("rootfs.tar");
    assert!(
        Command::new("/usr/bin/tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    checked(
        rbuild(&root, &["import", tar.to_str().unwrap(), "busybox:t"]),
        "rbuild import",
    );
    assert_eq!(
        String::from_utf8_lossy(
            &checked(
                rbuild(&root, &["run", "--rm", "busybox:t", "echo", "hi"]),
                "run"
            )
            .stdout
        ),
        "hi\n"
    );

    let mounts_before = mounts_now();
    let cases: [(&[&str], i32, &str); 5] = [
        (&["run", "--rm", "missing:image", "true"], 125, "missing"),
        (
            &["run", "--rm", "busybox:t", "no-such-command"],
            127,
            "executable file not found",
        ),
        (
            &["run", "--rm", "-u", "ghost", "busybox:t", "true"],
            125,
            "unable to find user ghost",
        ),
        (
            &["run", "--rm", "-v", "relative:/data", "busybox:t", "true"],
            125,
            "invalid volume specification",
        ),
        (
            &["run", "--rm", "-v", "/tmp:/data:rx", "busybox:t", "true"],
            125,
            "invalid volume specification",
        ),
    ];
    for (args, code, message) in cases {
        let output = rbuild(&root, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(mounts_now(), mounts_before, "mounts left behind");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "scratch left in the store: {leftovers:?}"
    );
}
