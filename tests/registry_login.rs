//! `rbuild login` / `logout` against docker-registry with htpasswd and token auth; the file
//! written is read back by skopeo (Docker's format), and credential helpers are used when set.

mod registry_support;

use registry_support::{Auth, PASSWORD, Registry, USER};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn rbuild(dir: &Path, args: &[&str], stdin: &str, extra_path: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rbuild"));
    command
        .args(args)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(extra) = extra_path {
        let mut paths = vec![extra.to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        command.env("PATH", std::env::join_paths(paths).expect("PATH"));
    }
    let mut child = command.spawn().expect("running rbuild");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("rbuild output")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn login_writes_docker_config_that_skopeo_reads_and_logout_removes_it() {
    for auth in [Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth);
        let home = tempfile::tempdir().expect("home");
        let config = home.path().join(".docker/config.json");

        let wrong = rbuild(
            home.path(),
            &["login", "-u", USER, "--password-stdin", &registry.host],
            "nope\n",
            None,
        );
        assert!(!wrong.status.success(), "{auth:?}: {}", text(&wrong));
        assert!(text(&wrong).contains(&registry.host), "{}", text(&wrong));
        assert!(!config.exists(), "nothing saved after a failed login");

        let ok = rbuild(
            home.path(),
            &[
                "login",
                "-u",
                USER,
                "--password-stdin",
                &format!("http://{}/", registry.host),
            ],
            &format!("{PASSWORD}\n"),
            None,
        );
        assert!(ok.status.success(), "{auth:?}: {}", text(&ok));
        assert!(text(&ok).contains("Login Succeeded"));
        assert_eq!(
            std::fs::metadata(&config)
                .expect("config")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );

        // skopeo reads the credentials rbuild wrote.
        let inspect = Command::new("skopeo")
            .args(["login", "--get-login", "--authfile"])
            .arg(&config)
            .arg(&registry.host)
            .output()
            .expect("skopeo");
        assert_eq!(
            String::from_utf8_lossy(&inspect.stdout).trim(),
            USER,
            "{inspect:?}"
        );

        let out = rbuild(home.path(), &["logout", &registry.host], "", None);
        assert!(
            out.status.success() && text(&out).contains("Removing login credentials"),
            "{}",
            text(&out)
        );
        let out = rbuild(home.path(), &["logout", &registry.host], "", None);
        assert!(text(&out).contains("Not logged in"), "{}", text(&out));
    }
}

#[test]
fn login_uses_the_configured_credential_helper() {
    let registry = Registry::start(Auth::Htpasswd);
    let home = tempfile::tempdir().expect("home");
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let db = home.path().join("helper-db");
    let helper = bin.join("docker-credential-rbuildtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread -r input\ncase \"$1\" in\n\
             get) [ -f {db} ] && cat {db} || {{ echo 'credentials not found in native keychain'; exit 1; }};;\n\
             store) printf '%s' \"$input\" > {db};;\n\
             erase) rm -f {db};;\nesac\n",
            db = db.display()
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(home.path().join(".docker")).expect(".docker");
    std::fs::write(
        home.path().join(".docker/config.json"),
        format!(r#"{{"credHelpers":{{"{}":"rbuildtest"}}}}"#, registry.host),
    )
    .expect("config");
    let ok = rbuild(
        home.path(),
        &["login", "-u", USER, "-p", PASSWORD, &registry.host],
        "",
        Some(&bin),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("--password-stdin"),
        "warns about -p: {}",
        text(&ok)
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&db).expect("helper stored the secret"))
            .expect("json");
    assert_eq!(stored["Username"], USER);
    assert_eq!(stored["Secret"], PASSWORD);
    let config = std::fs::read_to_string(home.path().join(".docker/config.json")).expect("config");
    assert!(
        !config.contains(PASSWORD),
        "secret kept out of config.json: {config}"
    );
    let out = rbuild(home.path(), &["logout", &registry.host], "", Some(&bin));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!db.exists(), "helper erased the secret");
}
