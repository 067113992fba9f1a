//! UndefinedVar knows the base image's environment when a store is given (`--root`): an image
//! made by umoci with an `Env`, written as an OCI archive by skopeo and loaded into the store.

mod store_support;

use std::path::Path;
use std::process::{Command, Output};
use store_support::require_tool;

#[track_caller]
fn ok(program: &str, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        // No config file from the developer's home may leak into `rbuild lint`.
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("RBUILD_ROOT")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn undefined_var_knows_the_base_image_environment_from_the_store() {
    require_tool("umoci");
    require_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path();
    let rbuild = env!("CARGO_BIN_EXE_rbuild");
    ok("umoci", &["init", "--layout", "layout"], dir);
    ok("umoci", &["new", "--image", "layout:t"], dir);
    ok(
        "umoci",
        &[
            "config",
            "--image",
            "layout:t",
            "--config.env",
            "BASE_HOME=/opt/base",
        ],
        dir,
    );
    let archive = dir.join("base.tar");
    let destination = format!("oci-archive:{}:example.com/base:1", archive.display());
    ok("skopeo", &["copy", "-q", "oci:layout:t", &destination], dir);
    ok(rbuild, &["--root", "store", "load", "-i", "base.tar"], dir);
    let dockerfile = "FROM example.com/base:1 AS base\n\
                      ENV A=$BASE_HOME B=$MISSING OWN=1\n\
                      FROM base\n\
                      ENV C=$OWN$BASE_HOME$PATH$ALSO\n\
                      FROM example.com/unknown:1\n\
                      ENV D=$UNKNOWN_BASE_MAY_SET_IT\n";
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap_or_else(|e| panic!("{e}"));
    let lint = ["lint", "--no-shellcheck", "-f", "gnu", "Dockerfile"];
    let with_store = ok(rbuild, &[&["--root", "store"][..], &lint[..]].concat(), dir);
    let findings: Vec<String> = String::from_utf8_lossy(&with_store.stdout)
        .lines()
        .filter(|l| l.contains("UndefinedVar"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        findings,
        [
            "Dockerfile:2:20: warning: UndefinedVar Usage of undefined variable '$MISSING'",
            "Dockerfile:4:7: warning: UndefinedVar Usage of undefined variable '$ALSO'",
        ]
    );
    // Without a store the base image's environment is unknown: nothing is said.
    let without = ok(rbuild, &lint, dir);
    let out = String::from_utf8_lossy(&without.stdout);
    assert!(!out.contains("UndefinedVar"), "{out}");
    // A --root where there is no store: none is created, nothing is said.
    let no_store = ok(
        rbuild,
        &[&["--root", "absent"][..], &lint[..]].concat(),
        dir,
    );
    let out = String::from_utf8_lossy(&no_store.stdout);
    assert!(!out.contains("UndefinedVar"), "{out}");
    assert!(!dir.join("absent").exists());
}
