//! Every rule has its documentation page (docs/rules/<ID>.md), listed in the index, with what
//! it checks, why, how to ignore it, and a bad and a good example that are checked here: the
//! bad one makes `rbuild lint` report the rule, the good one does not.

use rbuild::lint::RULES;
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/rules")
}

/// The body of the first fenced block with this info string after `heading`.
fn block<'a>(page: &'a str, heading: &str, info: &str) -> Option<&'a str> {
    let after = page.get(page.find(heading)?..)?;
    let fence = format!("```{info}\n");
    let start = after.find(&fence)? + fence.len();
    let body = after.get(start..)?;
    body.get(..body.find("```")?)
}

/// The flags the page says the rule is checked with (`| Checked with | `rbuild lint ...` |`).
fn flags(page: &str) -> Vec<String> {
    page.lines()
        .find_map(|l| l.strip_prefix("| Checked with | `rbuild lint "))
        .and_then(|rest| rest.split('`').next())
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The rule ids `rbuild lint` reports for a Dockerfile in a folder with this .dockerignore.
fn reported(dockerfile: &str, dockerignore: Option<&str>, args: &[String]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, text: &str| {
        std::fs::write(tmp.path().join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    write("Dockerfile", dockerfile);
    if let Some(ignore) = dockerignore {
        write(".dockerignore", ignore);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .current_dir(tmp.path())
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("RBUILD_ROOT")
        .args(["lint", "--no-shellcheck", "-f", "json"])
        .args(args)
        .arg(Path::new("Dockerfile"))
        .output()
        .unwrap_or_else(|e| panic!("rbuild: {e}"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    json.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn every_rule_has_a_page_with_examples_that_hold() {
    let index = std::fs::read_to_string(docs().join("README.md"))
        .unwrap_or_else(|e| panic!("docs/rules/README.md: {e}"));
    let mut problems = Vec::new();
    for rule in RULES {
        let id = rule.id;
        let path = docs().join(format!("{id}.md"));
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{id}: {e}"));
        // The page built into the binary is the file.
        assert_eq!(rule.page, page, "{id}: rebuild to embed the page");
        assert!(
            index.contains(&format!("[{id}]({id}.md)")),
            "{id}: not in the index"
        );
        assert!(page.starts_with(&format!("# {id}\n")), "{id}: title");
        for section in [
            "## What it checks",
            "## Why",
            "## Bad",
            "## Good",
            "## How to ignore",
        ] {
            assert!(page.contains(section), "{id}: no {section:?}");
        }
        assert!(page.contains(&format!("# hadolint ignore={id}")), "{id}");
        let (Some(bad), Some(good)) = (
            block(&page, "## Bad", "dockerfile"),
            block(&page, "## Good", "dockerfile"),
        ) else {
            panic!("{id}: a bad and a good ```dockerfile example are needed");
        };
        let dockerignore = block(&page, "## Why", "dockerignore");
        // Rules that are off by default are switched on.
        let mut args = vec!["--warning".to_string(), id.to_string()];
        args.extend(flags(&page));
        let on_bad = reported(bad, dockerignore, &args);
        if !on_bad.iter().any(|r| r == id) {
            problems.push(format!(
                "{id}: the bad example is not reported ({on_bad:?})"
            ));
        }
        let on_good = reported(good, dockerignore, &args);
        if on_good.iter().any(|r| r == id) {
            problems.push(format!("{id}: the good example is reported"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_page_is_a_rule() {
    for entry in std::fs::read_dir(docs()).unwrap_or_else(|e| panic!("{e}")) {
        let name = entry
            .unwrap_or_else(|e| panic!("{e}"))
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(id) = name.strip_suffix(".md") else {
            continue;
        };
        assert!(
            id == "README" || RULES.iter().any(|r| r.id == id),
            "docs/rules/{name} documents no rule"
        );
    }
}
