//! `rbuild lint` end to end: paths (files, stdin, folders honouring .gitignore), formats
//! (SARIF validated against the SARIF 2.1.0 JSON schema), config file, flags, exit status,
//! `--fix` and `--diff`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rbuild() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
    // No config file from the developer's home may leak in.
    c.env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME");
    c
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/lint")
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = rbuild();
    cmd.current_dir(dir).arg("lint").args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning rbuild: {e}"));
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        // rbuild may exit before reading (a bad flag): a broken pipe is not the test's concern.
        let _ = pipe.write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for rbuild: {e}"))
}

fn require_shellcheck() {
    let o = Command::new("shellcheck").arg("--version").output();
    assert!(
        o.is_ok_and(|o| o.status.success()),
        "shellcheck is required (scripts/install-deps.sh installs it)"
    );
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn folders_are_walked_honouring_gitignore() {
    let dir = testdata().join("project");
    let o = run_in(&dir, &["-f", "gnu", "--no-shellcheck", "."], None);
    let out = stdout(&o);
    for expected in [
        "./Dockerfile:1:6: warning: DL3006",
        "./svc/api.Dockerfile:1:6: warning: DL3006",
        "./svc/Dockerfile.prod:1:6: warning: DL3006",
        "./nested/deep/Containerfile:1:6: warning: DL3006",
    ] {
        assert!(out.contains(expected), "{expected} missing in:\n{out}");
    }
    assert!(!out.contains("ignored/"), "{out}");
    assert!(!out.contains("README"), "{out}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn stdin_and_exit_status_by_threshold() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = "FROM debian:12\nRUN true\nRUN true\n";
    // Only an info finding (DL3059): fails at the default threshold (info)...
    let o = run_in(
        tmp.path(),
        &["-f", "gnu", "--no-shellcheck", "-"],
        Some(text),
    );
    assert!(stdout(&o).contains("-:3:1: info: DL3059"), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(1));
    // ...not at warning, nor with --no-fail.
    let o = run_in(
        tmp.path(),
        &["-t", "warning", "--no-shellcheck", "-"],
        Some(text),
    );
    assert_eq!(o.status.code(), Some(0));
    let o = run_in(
        tmp.path(),
        &["--no-fail", "--no-shellcheck", "-"],
        Some(text),
    );
    assert_eq!(o.status.code(), Some(0));
    // Re-graded and ignored by flag.
    let o = run_in(
        tmp.path(),
        &["-f", "gnu", "--error", "DL3059", "--no-shellcheck", "-"],
        Some(text),
    );
    assert!(
        stdout(&o).contains("-:3:1: error: DL3059"),
        "{}",
        stdout(&o)
    );
    let o = run_in(
        tmp.path(),
        &["--ignore", "DL3059", "--no-shellcheck", "-"],
        Some(text),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A bad flag value names the flag.
    let o = run_in(tmp.path(), &["-t", "loud", "-"], Some(text));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--failure-threshold \"loud\""));
}

#[test]
fn config_file_is_found_and_read() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        tmp.path().join("Dockerfile"),
        "FROM debian\nMAINTAINER me\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        tmp.path().join(".hadolint.yaml"),
        "ignored:\n  - DL3006\noverride:\n  info:\n    - MaintainerDeprecated\nfailure-threshold: warning\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = run_in(tmp.path(), &["-f", "gnu", "--no-shellcheck"], None);
    let out = stdout(&o);
    assert!(!out.contains("DL3006"), "{out}");
    assert!(out.contains("Dockerfile:2:1: info: DL4000"), "{out}");
    assert_eq!(o.status.code(), Some(0), "{out}");
    // A broken config names its file and position.
    std::fs::write(tmp.path().join("bad.yaml"), "ignored: [DL3006\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let o = run_in(tmp.path(), &["--config", "bad.yaml", "Dockerfile"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.yaml:"));
}

#[test]
fn sarif_output_validates_against_the_schema() {
    // The final OASIS SARIF 2.1.0 schema, unchanged (testdata/lint/README.md says where from).
    let schema_text = std::fs::read_to_string(testdata().join("sarif-schema-2.1.0.json"))
        .unwrap_or_else(|e| panic!("schema: {e}"));
    let schema: serde_json::Value =
        serde_json::from_str(&schema_text).unwrap_or_else(|e| panic!("schema: {e}"));
    let validator = jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema: {e}"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text =
        "FROM debian\nMAINTAINER me\nRUN cd /x && apt-get install curl | tee log\nFROBNICATE\n";
    let o = run_in(tmp.path(), &["-f", "sarif", "-"], Some(text));
    let sarif: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("sarif output: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let results = sarif["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(results.len() >= 5, "{results:?}");
    assert!(results.iter().any(|r| r["ruleId"] == "DL1000"));
    // Each rule carries its documentation page as help.
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let dl3006 = rules.iter().find(|r| r["id"] == "DL3006");
    let help = dl3006.and_then(|r| r["help"]["markdown"].as_str());
    assert!(
        help.is_some_and(|h| h.starts_with("# DL3006\n")),
        "{rules:?}"
    );
    // And a broken document is rejected, so the check can fail.
    let mut broken = sarif.clone();
    broken["version"] = serde_json::json!("9.9");
    assert!(!validator.is_valid(&broken));
    // Formats are checked too: a help URI must be an absolute URI.
    let mut bad_uri = sarif.clone();
    bad_uri["runs"][0]["tool"]["driver"]["informationUri"] = serde_json::json!("not a uri");
    assert!(!validator.is_valid(&bad_uri));
}

#[test]
fn json_checkstyle_gitlab_formats() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = "FROM debian\n";
    let o = run_in(tmp.path(), &["-f", "json", "-"], Some(text));
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json[0]["code"], "DL3006");
    assert_eq!(json[0]["line"], 1);
    assert_eq!(json[0]["column"], 6);
    let o = run_in(tmp.path(), &["-f", "checkstyle", "-"], Some(text));
    assert!(stdout(&o).contains("<error line='1' column='6' severity='warning'"));
    let o = run_in(tmp.path(), &["-f", "gitlab", "-"], Some(text));
    let gl: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gl[0]["check_name"], "DL3006");
    assert_eq!(gl[0]["location"]["lines"]["begin"], 1);
    assert_eq!(gl[0]["fingerprint"].as_str().map(str::len), Some(64));
    let o = run_in(tmp.path(), &["-f", "tty", "--no-color", "-"], Some(text));
    assert!(stdout(&o).contains("-:1:6 warning DL3006 Always tag the version of an image explicitly\n  FROM debian\n       ^"));
}

#[test]
fn fix_and_diff() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = tmp.path().join("Dockerfile");
    let text = "from debian:12 AS build\nENV A 1\nMAINTAINER me\n";
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let o = run_in(tmp.path(), &["--fix", "--diff", "Dockerfile"], None);
    let diff = stdout(&o);
    assert!(
        diff.contains("-ENV A 1\n") && diff.contains("+ENV A=1\n"),
        "{diff}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), text);
    let o = run_in(tmp.path(), &["--fix", "Dockerfile"], None);
    assert_eq!(o.status.code(), Some(0));
    let fixed = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(
        fixed,
        "FROM debian:12 AS build\nENV A=1\nLABEL org.opencontainers.image.authors=\"me\"\n"
    );
    let o = run_in(
        tmp.path(),
        &["-f", "gnu", "--no-shellcheck", "Dockerfile"],
        None,
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

#[test]
fn shellcheck_findings_land_on_the_right_line() {
    require_shellcheck();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = "FROM debian:12\nRUN set -e; \\\n    echo $1 \\\n      && true\n";
    let o = run_in(tmp.path(), &["-f", "gnu", "-"], Some(text));
    assert!(
        stdout(&o).contains("-:3:10: info: SC2086"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn explain_prints_a_rule_page() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = run_in(tmp.path(), &["--explain", "maintainerdeprecated"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("# DL4000\n"), "{}", stdout(&o));
    // A BuildKit name shared by several rules explains each of them.
    let o = run_in(
        tmp.path(),
        &["--explain", "MultipleInstructionsDisallowed"],
        None,
    );
    assert_eq!(stdout(&o).matches("\n## Why\n").count(), 3);
    let o = run_in(tmp.path(), &["--explain", "DL9999"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--explain \"DL9999\""));
}

#[test]
fn shellcheck_runs_over_many_files_at_once_with_each_finding_in_its_file() {
    require_shellcheck();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = [
        ("a.Dockerfile", "FROM debian:12\nRUN echo $1\n"),
        (
            "b.Dockerfile",
            "FROM debian:12\nRUN true\nRUN <<EOF\nset -e\n  echo $2\nEOF\n",
        ),
        ("c.Dockerfile", "FROM debian:12\nRUN echo \"$1\"\n"),
        // The same script as a.Dockerfile's, elsewhere: checked once, reported in both.
        ("d.Dockerfile", "FROM debian:12\nLABEL a=b\n\nRUN echo $1\n"),
    ];
    for (name, text) in files {
        std::fs::write(tmp.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
    }
    let o = run_in(tmp.path(), &["-f", "gnu", "."], None);
    let sc: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| l.contains(": SC"))
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        sc,
        [
            "./a.Dockerfile:2:10: info: SC2086",
            "./b.Dockerfile:5:8: info: SC2086",
            "./d.Dockerfile:4:10: info: SC2086",
        ]
    );
}

#[test]
fn shellcheck_results_are_kept_by_script_content() {
    require_shellcheck();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = tmp.path().join("cache");
    let dockerfile = tmp.path().join("Dockerfile");
    let lint = |extra: &[&str]| {
        let out = rbuild()
            .current_dir(tmp.path())
            .env("XDG_CACHE_HOME", &cache)
            .args(["lint", "-f", "gnu"])
            .args(extra)
            .arg("Dockerfile")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        stdout(&out)
    };
    let kept = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.join("rbuild/shellcheck"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    std::fs::write(&dockerfile, "FROM debian:12\nRUN echo $1\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(lint(&[]).contains("Dockerfile:2:10: info: SC2086 Double quote"));
    let files = kept();
    assert_eq!(files.len(), 1, "{files:?}");
    // The kept result is what the next run reports: shellcheck is not asked again.
    let path = &files[0];
    let mut comments: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    comments[0]["message"] = serde_json::json!("kept result");
    std::fs::write(path, comments.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(lint(&[]).contains("SC2086 kept result"));
    assert!(lint(&["--no-cache"]).contains("SC2086 Double quote"));
    // Another script is another entry.
    std::fs::write(&dockerfile, "FROM debian:12\nRUN echo $2\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(lint(&[]).contains("SC2086 Double quote"));
    assert_eq!(kept().len(), 2);
}
