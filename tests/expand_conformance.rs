//! BuildKit's own expansion cases (`frontend/dockerfile/shell/envVarTest` and `wordsTest`),
//! read from the shared conformance data at test time. Every failing line is named.

use std::path::PathBuf;

use rbuild::dockerfile::expand::Lexer;

/// `../shared` beside the checkout (`../../shared` from a worktree under `wt/`).
fn data(name: &str) -> (PathBuf, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = ["../shared", "../../shared"]
        .iter()
        .map(|up| root.join(up))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| root.join("../shared"));
    let path = shared.join("conformance/buildkit/shell").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

#[test]
fn every_unix_line_of_env_var_test_expands_as_buildkit() {
    let (path, text) = data("envVarTest");
    let env = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    let mut checked = 0;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        let [platform, source, expected] = fields[..] else {
            failures.push(format!(
                "{}:{line_no}: not three fields: {line:?}",
                path.display()
            ));
            continue;
        };
        let (platform, source, expected) = (platform.trim(), source.trim(), expected.trim());
        if platform != "A" && platform != "U" {
            continue;
        }
        checked += 1;
        let got = lexer.expand_word(source, &env[..]);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(value), expected) => expected != "error" && value == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "{}:{line_no}: {source:?} expected {expected:?}, got {got:?}",
                path.display()
            ));
        }
    }
    assert!(
        checked > 200,
        "only {checked} cases found in {}",
        path.display()
    );
    assert!(
        failures.is_empty(),
        "{} failing lines:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_of_words_test_splits_as_buildkit() {
    let (path, text) = data("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (key, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.push((key.to_owned(), value.to_owned()));
            continue;
        }
        let Some((source, expected)) = line.split_once('|').filter(|(_, e)| !e.contains('|'))
        else {
            failures.push(format!(
                "{}:{line_no}: not one '|': {line:?}",
                path.display()
            ));
            continue;
        };
        checked += 1;
        let source = source.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = lexer
            .expand_words(source, &env[..])
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got != expected {
            failures.push(format!(
                "{}:{line_no}: {source:?} expected {expected:?}, got {got:?}",
                path.display()
            ));
        }
    }
    assert!(
        checked > 20,
        "only {checked} cases found in {}",
        path.display()
    );
    assert!(
        failures.is_empty(),
        "{} failing lines:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
