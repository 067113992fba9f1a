//! Rootless runs: the test binary re-runs itself as unprivileged users (created with useradd),
//! one with an /etc/subuid and /etc/subgid range (newuidmap/newgidmap, full mapping) and one
//! without (a single-id mapping). Needs root to create the users, and uidmap.

mod sandbox_support;

use rbuild::sandbox::{Error, ExitStatus, Runtime};
use sandbox_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const WITH_RANGE: &str = "rbuild-rootless";
const SINGLE_ID: &str = "rbuild-single";
const SUBORDINATE: &str = "300000:65536";

fn ensure_user(name: &str) -> (u32, u32) {
    let exists = Command::new("id").arg("-u").arg(name).output().unwrap();
    if !exists.status.success() {
        let made = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/false", name])
            .status()
            .expect("useradd");
        assert!(made.success(), "useradd {name} failed");
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").arg(flag).arg(name).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// Adds or removes `name`'s range in /etc/subuid and /etc/subgid. The tests run in parallel
/// and newuidmap reads these files meanwhile: each edit is serialised and each file replaced
/// by a rename, never truncated in place (an edit lost that way mapped only one id).
fn set_subordinate(name: &str, present: bool) {
    static EDITING: Mutex<()> = Mutex::new(());
    let _editing = EDITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{name}:")))
            .map(String::from)
            .collect();
        if present {
            lines.push(format!("{name}:{SUBORDINATE}"));
        }
        let staged = format!("{file}.rbuild-test");
        std::fs::write(
            &staged,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&staged, file).unwrap();
    }
}

/// Runs `inner_test` of this binary as `user` with a scratch dir the user owns.
fn run_as(user: &str, ids: (u32, u32), inner_test: &str) {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user_dir: PathBuf = scratch.path().join("user");
    std::fs::create_dir(&user_dir).unwrap();
    std::os::unix::fs::chown(&user_dir, Some(ids.0), Some(ids.1)).unwrap();
    let output = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            inner_test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RBUILD_TEST_SCRATCH", &user_dir)
        .env("TMPDIR", &user_dir)
        .output()
        .expect("runuser");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{inner_test} as {user}:\n{text}"
    );
}

#[test]
fn rootless_with_subordinate_ranges() {
    require_root();
    require_tool("newuidmap");
    let ids = ensure_user(WITH_RANGE);
    set_subordinate(WITH_RANGE, true);
    run_as(WITH_RANGE, ids, "inner_full_mapping");
}

#[test]
fn rootless_with_a_single_id() {
    require_root();
    let ids = ensure_user(SINGLE_ID);
    set_subordinate(SINGLE_ID, false);
    run_as(SINGLE_ID, ids, "inner_single_mapping");
}

fn inner_request(args: &[&str]) -> rbuild::sandbox::Request {
    assert!(
        !nix::unistd::geteuid().is_root(),
        "inner rootless tests run through their outer test"
    );
    let scratch = Path::new(&std::env::var("RBUILD_TEST_SCRATCH").unwrap())
        .join(format!("{}", rand_suffix()));
    std::fs::create_dir_all(&scratch).unwrap();
    // The lowerdir is extracted by the unprivileged user, as a rootless store would: its
    // files are the user's, root inside the sandbox.
    request(&scratch, &Runtime::Embedded, args)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn common_isolation_checks() {
    assert_eq!(run_ok(&inner_request(&["echo", "hi"])), "hi\n");
    assert_eq!(run_ok(&inner_request(&["id", "-u"])), "0\n");
    let output = run_ok(&inner_request(&[
        "sh",
        "-c",
        "hostname; ls /sys/class/net; echo /proc/[0-9]*; test ! -e /work && echo hidden",
    ]));
    assert_eq!(output, "sandboxed\nlo\n/proc/1 /proc/2\nhidden\n");
    for script in [
        "mount -t tmpfs none /mnt",
        "umount /proc",
        "echo h > /proc/sysrq-trigger",
    ] {
        let outcome = run(&inner_request(&["sh", "-c", script])).unwrap();
        assert_ne!(outcome.status.code(), 0, "{script} succeeded");
    }
    let caps = run_ok(&inner_request(&["grep", "CapEff", "/proc/self/status"]));
    assert_eq!(caps, "CapEff:\t00000000a80425fb\n");
    let outcome = run(&inner_request(&["sh", "-c", "exit 7"])).unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(7));
    assert!(matches!(
        run(&inner_request(&["missing-command"])),
        Err(Error::CommandNotFound(_))
    ));
}

#[test]
#[ignore = "run as an unprivileged user by rootless_with_subordinate_ranges"]
fn inner_full_mapping() {
    common_isolation_checks();
    let mut req = inner_request(&["sh", "-c", "id; touch /tmp/owned; ls -n /tmp/owned"]);
    req.user = "app".to_string();
    let output = run_ok(&req);
    assert!(
        output.starts_with("uid=1000(app) gid=1000(app)"),
        "{output}"
    );
    assert!(output.contains(" 1000 "), "{output}");
}

#[test]
#[ignore = "run as an unprivileged user by rootless_with_a_single_id"]
fn inner_single_mapping() {
    common_isolation_checks();
    // Only root is mapped: another user is a clear error, not a silent root.
    let mut req = inner_request(&["id"]);
    req.user = "app".to_string();
    let error = run(&req).err().expect("user 1000 is not mapped");
    assert!(
        error
            .to_string()
            .contains("is not mapped in the rootless user namespace"),
        "{error}"
    );
}
