//! `rbuild build` as a command: docker build's flags, the implicit `rbuild -t NAME .`, the
//! cache (hits, misses and their reasons), outputs, errors, and interruption. Every test
//! builds real images on the busybox base in a store of its own.

#[path = "store_support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{RBUILD, busybox_tar, rbuild, rbuild_output, require_root};

/// A store with busybox:latest imported, and a context directory.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let tar = busybox_tar(dir.path());
        rbuild(
            &dir.path().join("store"),
            &["import", tar.to_str().unwrap(), "busybox:latest"],
        );
        fs::create_dir(dir.path().join("ctx")).unwrap();
        Fixture { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn write(&self, name: &str, content: &str) {
        let path = self.ctx().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// `rbuild --root STORE build ARGS… CONTEXT` (`-` reads the context from stdin).
    fn command(&self, args: &[&str], context: &Path) -> Command {
        let mut command = Command::new(RBUILD);
        command
            .arg("--root")
            .arg(self.store())
            .arg("build")
            .args(args)
            .arg(context);
        command
    }

    /// A build of the fixture's context.
    fn build(&self, args: &[&str]) -> Output {
        self.command(args, &self.ctx()).output().unwrap()
    }

    /// A build given `stdin` (a Dockerfile with `-f -`, or a context with `-` as `context`).
    fn build_with_stdin(&self, args: &[&str], context: &Path, stdin: &[u8]) -> Output {
        let mut child = self
            .command(args, context)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn build_ok(&self, args: &[&str]) -> (String, String) {
        let out = self.build(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{stderr}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            stderr,
        )
    }

    /// After a failed or interrupted build: the store passes fsck, and a build of
    /// `dockerfile` (the first step as before, then a new one) completes, with `cached` steps
    /// found in the cache when given.
    fn assert_consistent_and_resumes(&self, dockerfile: &str, cached: Option<usize>) {
        let fsck = rbuild(&self.store(), &["system", "fsck"]);
        assert!(fsck.contains("0 problem"), "{fsck}");
        self.write("Dockerfile", dockerfile);
        let (_, stderr) = self.build_ok(&["--progress", "plain", "-t", "resumed:1"]);
        if let Some(cached) = cached {
            assert_eq!(count(&stderr, "CACHED"), cached, "{stderr}");
        }
    }

    fn run(&self, image: &str, command: &[&str]) -> String {
        let mut args = vec!["run", "--rm", image];
        args.extend(command);
        rbuild(&self.store(), &args)
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        let text = rbuild(&self.store(), &["image", "inspect", image]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()[0].clone()
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn implicit_build_tags_and_prints_the_image_id() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n",
    );
    let out = Command::new(RBUILD)
        .current_dir(f.ctx())
        .args([
            "--root",
            f.store().to_str().unwrap(),
            "-t",
            "user/app:v1",
            "-t",
            "other:2",
            ".",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    assert_eq!(f.inspect("user/app:v1")["Id"], id.as_str());
    assert_eq!(f.inspect("other:2")["Id"], id.as_str());
    assert_eq!(f.run("user/app:v1", &[]).trim(), "built");
}

#[test]
fn dockerfile_from_flag_from_stdin_and_missing() {
    let f = Fixture::new();
    f.write(
        "sub/Other.dockerfile",
        "FROM busybox\nRUN echo other > /which\n",
    );
    let (_, _) = f.build_ok(&[
        "-f",
        f.ctx().join("sub/Other.dockerfile").to_str().unwrap(),
        "-t",
        "f:1",
    ]);
    assert_eq!(f.run("f:1", &["cat", "/which"]).trim(), "other");

    let out = f.build_with_stdin(
        &["-f", "-", "-t", "f:2"],
        &f.ctx(),
        b"FROM busybox\nRUN echo stdin > /which\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.run("f:2", &["cat", "/which"]).trim(), "stdin");

    let out = f.build(&["-t", "f:3"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Dockerfile") && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn context_from_a_tar_stream_on_stdin() {
    let f = Fixture::new();
    f.write("Dockerfile", "FROM busybox\nCOPY hello.txt /\n");
    f.write("hello.txt", "from the tar\n");
    let tar = Command::new("tar")
        .args(["-C", f.ctx().to_str().unwrap(), "-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let out = f.build_with_stdin(&["-t", "tarctx:1"], Path::new("-"), &tar);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.run("tarctx:1", &["cat", "/hello.txt"]), "from the tar\n");
}

#[test]
fn syntax_and_planning_errors_name_file_line_and_column() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN echo ok\nCOPY --chmod=999 a /b\n",
    );
    let out = f.build(&["-t", "bad:1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Dockerfile:3:"), "{stderr}");

    f.write("Dockerfile", "FROM busybox\nEXPOSE $NOPE/tcpx\n");
    let out = f.build(&["-t", "bad:2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );

    f.write("Dockerfile", "FROM busybox\nRUN true\n");
    let out = f.build(&["--target", "nosuch", "-t", "bad:3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("nosuch"),
        "{stderr}"
    );

    let out = f.build(&["--platform", "linux/s390x", "-t", "bad:4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--platform"),
        "{stderr}"
    );

    let out = f.build(&["--secret", "id=x,src=/a,env=B", "-t", "bad:5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--secret"),
        "{stderr}"
    );
}

#[test]
fn a_failing_run_names_the_step_exit_code_and_output_and_keeps_the_store_consistent() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /first\nRUN echo some output; echo last words >&2; exit 3\n",
    );
    let out = f.build(&["--progress", "plain", "-t", "fail:1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Dockerfile:3:1"), "{stderr}");
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(stderr.contains("last words"), "{stderr}");
    assert!(
        rbuild_output(&f.store(), &["image", "inspect", "fail:1"])
            .status
            .code()
            != Some(0)
    );
    // The step before the failure is cached.
    f.assert_consistent_and_resumes("FROM busybox\nRUN echo first > /first\nRUN true\n", Some(1));
}

#[test]
fn rebuilds_hit_the_cache_and_misses_say_why() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nARG FLAVOUR=plain\nCOPY src/ /src/\nRUN cat /src/* > /all && echo $FLAVOUR > /flavour\nRUN echo unrelated > /u\n",
    );
    f.write("src/a.txt", "a\n");
    f.write("src/b.txt", "b\n");
    let (first, stderr) = f.build_ok(&["--progress", "plain", "-t", "c:1"]);
    assert_eq!(count(&stderr, "CACHED"), 0, "{stderr}");
    assert_eq!(
        count(&stderr, "no earlier build of this step"),
        3,
        "{stderr}"
    );

    let (second, stderr) = f.build_ok(&["--progress", "plain", "-t", "c:1"]);
    assert_eq!(first, second, "an unchanged rebuild gives the same image");
    assert_eq!(count(&stderr, "CACHED"), 3, "{stderr}");

    // mtime alone never busts the cache.
    let file = fs::File::options()
        .write(true)
        .open(f.ctx().join("src/a.txt"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(file);
    let (_, stderr) = f.build_ok(&["--progress", "plain", "-t", "c:1"]);
    assert_eq!(count(&stderr, "CACHED"), 3, "{stderr}");

    f.write("src/b.txt", "changed\n");
    let (_, stderr) = f.build_ok(&["--progress", "plain", "-t", "c:2"]);
    assert!(
        stderr.contains("cache miss: file src/b.txt changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cache miss: the parent step re-ran"),
        "{stderr}"
    );
    assert_eq!(f.run("c:2", &["cat", "/all"]), "a\nchanged\n");

    let (_, stderr) = f.build_ok(&[
        "--progress",
        "plain",
        "--build-arg",
        "FLAVOUR=spicy",
        "-t",
        "c:3",
    ]);
    assert!(
        stderr.contains("cache miss: build arg FLAVOUR changed"),
        "{stderr}"
    );
    assert_eq!(f.run("c:3", &["cat", "/flavour"]).trim(), "spicy");

    let (_, stderr) = f.build_ok(&[
        "--progress",
        "plain",
        "--build-arg",
        "FLAVOUR=spicy",
        "--no-cache",
        "-t",
        "c:3",
    ]);
    assert_eq!(count(&stderr, "cache miss: --no-cache"), 3, "{stderr}");

    // json progress carries the same reasons, one event per line.
    f.write("src/a.txt", "a2\n");
    let (_, stderr) = f.build_ok(&[
        "--progress",
        "json",
        "--build-arg",
        "FLAVOUR=spicy",
        "-t",
        "c:4",
    ]);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "cache_miss" && e["reason"] == "file src/a.txt changed"),
        "{stderr}"
    );

    // `system prune` removes the build cache with the unused images.
    rbuild(&f.store(), &["system", "prune", "-f"]);
    let (_, stderr) = f.build_ok(&[
        "--progress",
        "plain",
        "--build-arg",
        "FLAVOUR=spicy",
        "-t",
        "c:5",
    ]);
    assert_eq!(count(&stderr, "CACHED"), 0, "{stderr}");
}

#[test]
fn target_labels_iidfile_metadata_and_quiet() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox AS base\nRUN echo base > /stage\nFROM base AS final\nRUN echo final > /stage\n",
    );
    let iid = f.dir.path().join("iid");
    let meta = f.dir.path().join("meta.json");
    let out = f.build(&[
        "-q",
        "--target",
        "base",
        "--label",
        "org.example.team=builders",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
        "-t",
        "t:base",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.stderr.is_empty(),
        "-q prints nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&iid).unwrap(), stdout);
    let metadata: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(metadata["containerimage.config.digest"], stdout.as_str());
    assert_eq!(f.run("t:base", &["cat", "/stage"]).trim(), "base");
    assert_eq!(
        f.inspect("t:base")["Config"]["Labels"]["org.example.team"],
        "builders"
    );
}

#[test]
fn outputs_write_archives_a_rootfs_tar_and_a_folder() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN mkdir /out && echo payload > /out/file && rm /bin/vi\n",
    );
    let dir = f.dir.path();
    let oci = dir.join("image.oci.tar");
    let docker = dir.join("image.docker.tar");
    let rootfs = dir.join("rootfs.tar");
    let local = dir.join("local");
    f.build_ok(&[
        "-t",
        "out:1",
        "--output",
        &format!("type=oci,dest={}", oci.display()),
        "--output",
        &format!("type=docker,dest={}", docker.display()),
        "--output",
        &format!("type=tar,dest={}", rootfs.display()),
        "--output",
        &format!("type=local,dest={}", local.display()),
    ]);
    assert_eq!(
        fs::read_to_string(local.join("out/file")).unwrap(),
        "payload\n"
    );
    assert!(local.join("bin/sh").exists() && !local.join("bin/vi").exists());
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&rootfs)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "out/file"),
        "{listing}"
    );
    assert!(
        !listing.contains(".wh."),
        "a rootfs tar has no whiteouts: {listing}"
    );
    support::require_tool("skopeo");
    for (transport, path) in [("oci-archive", &oci), ("docker-archive", &docker)] {
        let out = Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                &format!("{transport}:{}", path.display()),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn network_none_secrets_and_added_hosts() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\n\
         RUN --network=none grep -c : /proc/net/dev > /ifaces-none\n\
         RUN grep -c : /proc/net/dev > /ifaces-default\n\
         RUN --mount=type=secret,id=token test -s /run/secrets/token && ! grep -rq \"$(cat /run/secrets/token)\" /etc\n\
         RUN --mount=type=secret,id=token,env=TOKEN echo ${#TOKEN} > /token-length\n\
         RUN grep -q 'db.internal' /etc/hosts && echo ok > /hosts-ok\n",
    );
    let secret = f.dir.path().join("token.txt");
    fs::write(&secret, "s3cr3t").unwrap();
    let (_, _) = f.build_ok(&[
        "--secret",
        &format!("id=token,src={}", secret.display()),
        "--add-host",
        "db.internal:10.1.2.3",
        "-t",
        "n:1",
    ]);
    assert_eq!(f.run("n:1", &["cat", "/hosts-ok"]).trim(), "ok");
    assert_eq!(
        f.run("n:1", &["cat", "/ifaces-none"]).trim(),
        "1",
        "only loopback"
    );
    let host_ifaces: u32 = f
        .run("n:1", &["cat", "/ifaces-default"])
        .trim()
        .parse()
        .unwrap();
    assert!(host_ifaces > 1, "the default build network is the host's");
    // The secret is in no layer and no history entry.
    let archive = f.dir.path().join("n.tar");
    rbuild(
        &f.store(),
        &["save", "n:1", "-o", archive.to_str().unwrap()],
    );
    let bytes = fs::read(&archive).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"s3cr3t"),
        "the secret leaked into the image"
    );
}

/// Paths under `root` that are mounted, from /proc/mounts.
fn mounts_under(root: &Path) -> Vec<String> {
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains(root.to_str().unwrap()))
        .map(str::to_owned)
        .collect()
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(pid);
        }
    }
    found
}

fn interrupt_during_run(signal: nix::sys::signal::Signal, finished: &str) {
    let f = Fixture::new();
    let marker = format!("sleep 3{}{}", signal as i32, finished.len() % 10);
    // The finished step is a COPY: a small one is committed before the RUN starts, and a
    // large one while it runs.
    f.write("finished", finished);
    f.write(
        "Dockerfile",
        &format!(
            "FROM busybox\nCOPY finished /finished\nRUN echo started && {marker} && echo never\n"
        ),
    );
    let mut child = f
        .command(&["--progress", "plain", "-t", "i:1"], &f.ctx())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the RUN prints, reading the plain progress.
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(" started") {
        use std::io::Read;
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "the build ended before the RUN started: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    // The sandbox dies with the build (its init has a parent-death signal).
    for _ in 0..50 {
        if processes_with(&marker).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        processes_with(&marker).is_empty(),
        "the RUN outlived the build"
    );
    assert!(
        mounts_under(f.dir.path()).is_empty(),
        "{:?}",
        mounts_under(f.dir.path())
    );
    // The next build completes and reuses the finished step, unless the build was killed
    // while its large layer was still being written.
    let small = finished.len() < 1 << 20;
    f.assert_consistent_and_resumes(
        "FROM busybox\nCOPY finished /finished\nRUN echo done > /done\n",
        if small { Some(1) } else { None },
    );
    let left: Vec<_> = fs::read_dir(f.store().join("tmp"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the interrupted build's work directories are gone: {left:?}"
    );
}

#[test]
fn sigint_during_a_run_leaves_nothing_behind() {
    interrupt_during_run(nix::sys::signal::Signal::SIGINT, "finished\n");
}

#[test]
fn sigkill_during_a_run_leaves_nothing_behind() {
    interrupt_during_run(nix::sys::signal::Signal::SIGKILL, "finished\n");
}

#[test]
fn sigkill_while_a_large_copy_is_written_leaves_nothing_behind() {
    interrupt_during_run(nix::sys::signal::Signal::SIGKILL, &"x".repeat(48 << 20));
}

#[test]
fn two_builds_of_different_dockerfiles_share_one_store() {
    let f = Fixture::new();
    let contexts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let ctx = f.dir.path().join(format!("ctx{i}"));
            fs::create_dir(&ctx).unwrap();
            fs::write(
                ctx.join("Dockerfile"),
                format!("FROM busybox\nRUN echo {i} > /which && sleep 1\nCOPY Dockerfile /df{i}\n"),
            )
            .unwrap();
            ctx
        })
        .collect();
    let children: Vec<_> = contexts
        .iter()
        .enumerate()
        .map(|(i, ctx)| {
            f.command(&["-q", "-t", &format!("both:{i}")], ctx)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..2 {
        assert_eq!(
            f.run(&format!("both:{i}"), &["cat", "/which"]).trim(),
            i.to_string()
        );
    }
    let fsck = rbuild(&f.store(), &["system", "fsck"]);
    assert!(fsck.contains("0 problem"), "{fsck}");
}

#[test]
fn independent_stages_run_at_the_same_time_and_unused_ones_never() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox AS a\nRUN sleep 1 && echo a > /a\n\
         FROM busybox AS b\nRUN sleep 1 && echo b > /b\n\
         FROM busybox AS unused\nRUN echo never > /never\n\
         FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    let (_, stderr) = f.build_ok(&["--progress", "json", "-t", "par:1"]);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step_of = |needle: &str| -> u64 {
        events
            .iter()
            .find(|e| e["event"] == "started" && e["name"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no step {needle}: {stderr}"))["step"]
            .as_u64()
            .unwrap()
    };
    let time_of = |step: u64, kind: &str| -> f64 {
        events
            .iter()
            .find(|e| e["event"] == kind && e["step"].as_u64() == Some(step))
            .unwrap_or_else(|| panic!("no {kind} for step {step}: {stderr}"))["time"]
            .as_f64()
            .unwrap()
    };
    let (a, b) = (step_of("echo a"), step_of("echo b"));
    let (a_start, a_end) = (time_of(a, "started"), time_of(a, "done"));
    let (b_start, b_end) = (time_of(b, "started"), time_of(b, "done"));
    assert!(
        a_start < b_end && b_start < a_end,
        "the two sleeps did not overlap: {stderr}"
    );
    assert!(!stderr.contains("never"), "the unused stage ran: {stderr}");
    assert_eq!(f.run("par:1", &["cat", "/a", "/b"]), "a\nb\n");
}

#[test]
fn source_date_epoch_makes_builds_reproducible_across_runtimes() {
    support::require_tool("runc");
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nARG SOURCE_DATE_EPOCH\nRUN mkdir -p /data && echo made > /data/file && ln -s file /data/link\nCOPY Dockerfile /data/\nCMD [\"cat\", \"/data/file\"]\n",
    );
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let (embedded, _) = f.build_ok(&[&epoch[..], &["-t", "r:1"]].concat());
    // Every step again, the RUN through runc instead of the embedded runtime.
    let (with_runc, stderr) = f.build_ok(
        &[
            &epoch[..],
            &[
                "--no-cache",
                "--runtime",
                "runc",
                "--progress",
                "plain",
                "-t",
                "r:2",
            ],
        ]
        .concat(),
    );
    assert_eq!(count(&stderr, "CACHED"), 0, "{stderr}");
    assert_eq!(
        embedded, with_runc,
        "the same image, to the byte, from both runtimes"
    );
    let created = f.inspect("r:2")["Created"].clone();
    assert_eq!(created, "2023-11-14T22:13:20Z");
}

#[test]
fn a_scratch_image_names_the_host_platform() {
    let f = Fixture::new();
    f.write("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    f.build_ok(&["-t", "scratchy:1"]);
    let image = f.inspect("scratchy:1");
    let base = f.inspect("busybox:latest");
    assert_eq!(image["Os"], "linux");
    assert_eq!(image["Architecture"], base["Architecture"]);
}

#[test]
fn many_parallel_run_steps_never_hang() {
    // Regression: the sandbox's clone of a multi-threaded build once hung in glibc's
    // set*id wrappers when stages ran RUN steps at the same time.
    let f = Fixture::new();
    let mut dockerfile = String::new();
    for stage in 0..4 {
        dockerfile.push_str(&format!("FROM busybox AS s{stage}\n"));
        for step in 0..5 {
            dockerfile.push_str(&format!("RUN echo {stage}-{step} > /f{step}\n"));
        }
    }
    dockerfile.push_str("FROM busybox\n");
    for stage in 0..4 {
        dockerfile.push_str(&format!("COPY --from=s{stage} /f4 /from-s{stage}\n"));
    }
    f.write("Dockerfile", &dockerfile);
    for round in 0..3 {
        let mut child = f
            .command(&["--no-cache", "-q", "-t", "many:1"], &f.ctx())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let status = status.unwrap_or_else(|| panic!("round {round}: the build hung"));
        assert!(status.success(), "round {round}: {status}");
    }
    assert_eq!(f.run("many:1", &["cat", "/from-s3"]).trim(), "3-4");
}

#[test]
fn deep_images_stack_through_short_links_and_too_deep_ones_fail_clearly() {
    let f = Fixture::new();
    // 40 layers: more than the snapshot paths fit in overlayfs's mount options as they are.
    let mut dockerfile = String::from("FROM busybox\n");
    for i in 0..40 {
        dockerfile.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    dockerfile.push_str("COPY Dockerfile /last\n");
    f.write("Dockerfile", &dockerfile);
    f.build_ok(&["-t", "deep:1"]);
    assert_eq!(f.run("deep:1", &["cat", "/f0", "/f39"]), "0\n39\n");
    assert_eq!(
        f.inspect("deep:1")["RootFS"]["Layers"]
            .as_array()
            .map(Vec::len),
        Some(42)
    );
    // Past what one page of mount options holds: a clear error at the step, not EINVAL.
    let mut dockerfile = String::from("FROM busybox\n");
    for i in 0..150 {
        dockerfile.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    f.write("Dockerfile", &dockerfile);
    let out = f.build(&["-t", "deep:2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("more than overlayfs can stack"), "{stderr}");
    assert!(stderr.contains("Dockerfile:"), "{stderr}");
}
