//! Isolation and behaviour of the sandbox, asserted inside it, for the embedded runtime, runc
//! and crun (same requests, same expectations). Needs root, runc and crun.

mod sandbox_support;

use rbuild::sandbox::{Error, ExitStatus, Limits, Mount, MountKind, Network, Runtime};
use sandbox_support::*;

/// Docker's 14 default capabilities as /proc/self/status prints them.
fn docker_default_caps() -> String {
    let bits = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];
    format!(
        "{:016x}",
        bits.iter().fold(0u64, |mask, bit| mask | (1 << bit))
    )
}

fn each_runtime(check: impl Fn(&Runtime, &std::path::Path)) {
    require_root();
    for runtime in runtimes() {
        let scratch = tempfile::tempdir().unwrap();
        check(&runtime, scratch.path());
    }
}

#[test]
fn echo_prints_and_exit_codes_pass_through() {
    each_runtime(|runtime, scratch| {
        assert_eq!(run_ok(&request(scratch, runtime, &["echo", "hi"])), "hi\n");
        let outcome = run(&request(
            scratch,
            runtime,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
        ))
        .unwrap();
        assert_eq!(outcome.status.code(), 3, "{runtime:?}");
        assert_eq!(outcome.stdout, "out\n");
        assert_eq!(outcome.stderr, "err\n");
        // Not PID 1 (which ignores signals from inside): an inner shell kills itself.
        let killed = run(&request(
            scratch,
            runtime,
            &["sh", "-c", "sh -c 'kill -9 $$'; exit $?"],
        ))
        .unwrap();
        assert_eq!(killed.status.code(), 137, "{runtime:?}");
    });
}

#[test]
fn host_files_are_not_visible() {
    each_runtime(|runtime, scratch| {
        let marker = scratch.join("host-only-marker");
        std::fs::write(&marker, "secret").unwrap();
        let script = format!("test ! -e {} && test ! -e /work && ls /", marker.display());
        let listing = run_ok(&request(scratch, runtime, &["sh", "-c", &script]));
        let mut names: Vec<&str> = listing.lines().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "bin", "dev", "etc", "home", "linuxrc", "proc", "root", "sbin", "sys", "tmp",
                "usr", "var"
            ],
            "{runtime:?}"
        );
    });
}

#[test]
fn mount_and_umount_fail() {
    each_runtime(|runtime, scratch| {
        for script in [
            "mount -t tmpfs none /mnt",
            "umount /proc",
            "umount -l /etc/hosts",
        ] {
            let outcome = run(&request(scratch, runtime, &["sh", "-c", script])).unwrap();
            assert_ne!(outcome.status.code(), 0, "{runtime:?}: {script} succeeded");
        }
    });
}

#[test]
fn pid_namespace_is_private() {
    each_runtime(|runtime, scratch| {
        // Only the sandbox's own processes: PID 1 (the init, or the command under runc) and
        // the shell; the glob runs in the shell itself.
        let listing = run_ok(&request(
            scratch,
            runtime,
            &["sh", "-c", "echo /proc/[0-9]*; grep PPid /proc/1/status"],
        ));
        let mut lines = listing.lines();
        let pids: Vec<u32> = lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(|p| p.trim_start_matches("/proc/").parse().unwrap())
            .collect();
        assert!(
            pids.contains(&1) && pids.iter().all(|&p| p <= 2),
            "{runtime:?}: {pids:?}"
        );
        assert_eq!(
            lines.next().unwrap().split_whitespace().last(),
            Some("0"),
            "{runtime:?}: PID 1 has a parent inside"
        );
    });
}

#[test]
fn hostname_is_private_and_etc_files_are_generated() {
    each_runtime(|runtime, scratch| {
        let host_before = nix::unistd::gethostname().unwrap();
        let output = run_ok(&request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "hostname; cat /etc/hostname; grep -c sandboxed /etc/hosts; hostname changed 2>/dev/null || echo refused",
            ],
        ));
        assert_eq!(output, "sandboxed\nsandboxed\n1\nrefused\n", "{runtime:?}");
        assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
        // Mountpoints and generated files never reach the upper dir (the layer).
        let upper = scratch.join("upper");
        let leaked: Vec<_> = walkdir::WalkDir::new(&upper)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap().path().to_path_buf())
            .collect();
        assert!(
            leaked.is_empty(),
            "{runtime:?}: upper dir not empty: {leaked:?}"
        );
    });
}

#[test]
fn network_none_has_only_loopback_up() {
    each_runtime(|runtime, scratch| {
        let output = run_ok(&request(
            scratch,
            runtime,
            &["sh", "-c", "ls /sys/class/net; ip -o link show lo"],
        ));
        let mut lines = output.lines();
        assert_eq!(lines.next(), Some("lo"), "{runtime:?}: {output}");
        let link = lines.next().unwrap();
        assert!(link.contains("UP"), "{runtime:?}: loopback down: {link}");
        assert_eq!(lines.next(), None, "{runtime:?}: {output}");
    });
}

#[test]
fn network_host_sees_host_interfaces() {
    each_runtime(|runtime, scratch| {
        let mut host_interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        host_interfaces.sort();
        let mut req = request(scratch, runtime, &["ls", "/sys/class/net"]);
        req.network = Network::Host;
        let output = run_ok(&req);
        assert_eq!(
            output.lines().collect::<Vec<_>>(),
            host_interfaces,
            "{runtime:?}"
        );
    });
}

#[test]
fn capabilities_are_dockers_default_set() {
    each_runtime(|runtime, scratch| {
        let caps = docker_default_caps();
        let output = run_ok(&request(
            scratch,
            runtime,
            &["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"],
        ));
        let expected = format!(
            "CapInh:\t0000000000000000\nCapPrm:\t{caps}\nCapEff:\t{caps}\nCapBnd:\t{caps}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
        );
        assert_eq!(output, expected, "{runtime:?}");
        // A non-root user keeps only the bounding set (moby's rule).
        let mut req = request(
            scratch,
            runtime,
            &["grep", "-E", "^Cap(Eff|Bnd)", "/proc/self/status"],
        );
        req.user = "app".to_string();
        assert_eq!(
            run_ok(&req),
            format!("CapEff:\t0000000000000000\nCapBnd:\t{caps}\n"),
            "{runtime:?}"
        );
    });
}

#[test]
fn forked_daemon_is_killed_when_main_exits() {
    each_runtime(|runtime, scratch| {
        let tag = format!("{}", 900_000 + std::process::id() % 90_000);
        let script = format!("sleep {tag} </dev/null >/dev/null 2>&1 & echo started");
        assert_eq!(
            run_ok(&request(scratch, runtime, &["sh", "-c", &script])),
            "started\n"
        );
        let survivors: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&format!("sleep {tag}")))
            .collect();
        assert!(
            survivors.is_empty(),
            "{runtime:?}: left running: {survivors:?}"
        );
    });
}

#[test]
fn proc_is_protected() {
    each_runtime(|runtime, scratch| {
        for script in [
            "echo h > /proc/sysrq-trigger",
            "echo 1 > /proc/sys/kernel/domainname",
        ] {
            let outcome = run(&request(scratch, runtime, &["sh", "-c", script])).unwrap();
            assert_ne!(outcome.status.code(), 0, "{runtime:?}: {script} succeeded");
        }
        assert_eq!(
            run_ok(&request(
                scratch,
                runtime,
                &[
                    "sh",
                    "-c",
                    "cat /proc/keys | wc -c; ls /sys/firmware | wc -l"
                ]
            )),
            "0\n0\n"
        );
    });
}

#[test]
fn dev_has_the_standard_devices_and_no_others_work() {
    each_runtime(|runtime, scratch| {
        let output = run_ok(&request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "echo x > /dev/null && head -c 5 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c && ls /dev/pts /dev/shm /dev/mqueue >/dev/null && echo ok",
            ],
        ));
        assert_eq!(output, "5\n3\nok\n", "{runtime:?}");
        // MKNOD is a default capability, but a disk node made inside must be unusable.
        let outcome = run(&request(
            scratch,
            runtime,
            &["sh", "-c", "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk"],
        ))
        .unwrap();
        assert_ne!(
            outcome.status.code(),
            0,
            "{runtime:?}: a block device was readable"
        );
    });
}

#[test]
fn users_groups_and_workdir() {
    each_runtime(|runtime, scratch| {
        let mut req = request(scratch, runtime, &["sh", "-c", "id; pwd; echo $HOME"]);
        req.user = "app".to_string();
        req.cwd = "/srv/new/dir".to_string();
        assert_eq!(
            run_ok(&req),
            "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)\n/srv/new/dir\n/home/app\n",
            "{runtime:?}"
        );
        req.user = "1000:10".to_string();
        req.args = vec!["id".to_string()];
        assert_eq!(
            run_ok(&req),
            "uid=1000(app) gid=10(wheel) groups=10(wheel)\n",
            "{runtime:?}"
        );
        req.user = "4242".to_string();
        assert_eq!(
            run_ok(&req),
            "uid=4242 gid=0(root) groups=0(root)\n",
            "{runtime:?}"
        );
        // WORKDIR creation lands in the upper dir, as Docker's does.
        assert!(scratch.join("upper/srv/new/dir").is_dir());
    });
}

#[test]
fn volumes_and_read_only_rootfs() {
    each_runtime(|runtime, scratch| {
        let volume = scratch.join("volume");
        std::fs::create_dir(&volume).unwrap();
        std::fs::write(volume.join("in"), "from host\n").unwrap();
        let mut req = request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "cat /data/in; echo back > /data/out; ! touch /ro/x 2>/dev/null; touch /scratch/x && echo tmpfs",
            ],
        );
        req.mounts = vec![
            Mount {
                destination: "/data".into(),
                kind: MountKind::Bind(volume.clone()),
                read_only: false,
            },
            Mount {
                destination: "/ro".into(),
                kind: MountKind::Bind(volume.clone()),
                read_only: true,
            },
            Mount {
                destination: "/scratch".into(),
                kind: MountKind::Tmpfs,
                read_only: false,
            },
        ];
        assert_eq!(run_ok(&req), "from host\ntmpfs\n", "{runtime:?}");
        assert_eq!(
            std::fs::read_to_string(volume.join("out")).unwrap(),
            "back\n"
        );
        assert!(!volume.join("x").exists());

        let mut req = request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "touch /new 2>/dev/null && echo writable; touch /tmp/x 2>/dev/null && echo tmp-writable; echo done",
            ],
        );
        req.read_only = true;
        assert_eq!(run_ok(&req), "done\n", "{runtime:?}");
    });
}

#[test]
fn runs_while_the_caller_starts_threads() {
    // The build engine calls run from a tokio runtime that starts and ends threads meanwhile.
    // A child cloned while glibc held its thread-list lock once hung for good in setresuid.
    require_root();
    let scratch = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::spawn(|| {}).join().unwrap();
            }
        })
    };
    let mut req = request(scratch.path(), &Runtime::Embedded, &["id", "-u"]);
    req.user = "app".to_string();
    for _ in 0..100 {
        assert_eq!(run_ok(&req), "1000\n");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

#[test]
fn limits_are_written_to_the_cgroups() {
    each_runtime(|runtime, scratch| {
        let mut req = request(scratch, runtime, &["sh", "-c", CGROUP_LIMITS_SCRIPT]);
        req.mounts.push(Mount {
            destination: "/c".to_string(),
            kind: MountKind::Bind("/sys/fs/cgroup".into()),
            read_only: true,
        });
        req.limits = Limits {
            memory: Some(32 * 1024 * 1024),
            cpus: Some(0.5),
            pids: Some(16),
        };
        assert_eq!(run_ok(&req), CGROUP_LIMITS_EXPECTED, "{runtime:?}");
    });
}

#[test]
fn limits_are_enforced() {
    each_runtime(|runtime, scratch| {
        // Six background sleeps wanted, each counted once started; the cgroup allows four
        // tasks in all, and the shell gives up at the first fork that fails.
        let mut req = request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "for i in 1 2 3 4 5 6; do sleep 3 & echo $i; done",
            ],
        );
        req.limits = Limits {
            pids: Some(4),
            ..Limits::default()
        };
        let outcome = run(&req).unwrap();
        let started = outcome.stdout.lines().count();
        assert!(
            (1..=3).contains(&started),
            "{runtime:?}: {started} started: {}",
            outcome.stderr
        );

        let mut req = request(
            scratch,
            runtime,
            &[
                "sh",
                "-c",
                "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
            ],
        );
        req.limits = Limits {
            memory: Some(32 * 1024 * 1024),
            ..Limits::default()
        };
        let outcome = run(&req).unwrap();
        assert!(
            !outcome.stdout.contains("survived"),
            "{runtime:?}: memory limit not enforced"
        );
    });
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_behind() {
    each_runtime(|runtime, scratch| {
        let before = mounts_now();
        let missing = run(&request(scratch, runtime, &["no-such-command"]));
        assert!(
            matches!(&missing, Err(Error::CommandNotFound(c)) if c == "no-such-command"),
            "{runtime:?}: {:?}",
            missing.err()
        );
        assert_eq!(missing.err().unwrap().exit_code(), 127);
        let mut req = request(scratch, runtime, &["id"]);
        req.user = "ghost".to_string();
        let unknown = run(&req).err().unwrap();
        assert_eq!(
            unknown.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        let mut req = request(scratch, runtime, &["id"]);
        req.mounts = vec![Mount {
            destination: "/data".into(),
            kind: MountKind::Bind(scratch.join("nope")),
            read_only: false,
        }];
        assert!(matches!(run(&req), Err(Error::Invalid { .. })));
        assert_eq!(mounts_now(), before, "{runtime:?}: mounts changed");
        assert!(
            std::fs::read_dir(scratch.join("upper"))
                .unwrap()
                .next()
                .is_none()
        );
    });
}

#[test]
fn a_rootfs_directory_works_too() {
    each_runtime(|runtime, scratch| {
        let rootfs = scratch.join("rootfs");
        make_busybox_rootfs(&rootfs);
        let mut req = request(
            scratch,
            runtime,
            &["sh", "-c", "echo made > /made; cat /etc/hostname"],
        );
        req.rootfs = rbuild::sandbox::Rootfs::Dir(rootfs.clone());
        assert_eq!(run_ok(&req), "sandboxed\n", "{runtime:?}");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("made")).unwrap(),
            "made\n"
        );
        let _ = ExitStatus::Exited(0);
    });
}
