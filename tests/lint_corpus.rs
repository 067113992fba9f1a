//! Over the official-images corpus, every finding of hadolint 2.15.1
//! (official-images.hadolint.json) is reproduced by rbuild's linter at the same line, or is
//! listed below as a known hadolint false positive with the reason.
//!
//! SCxxxx findings: hadolint reports them on the RUN's first line, rbuild on the line inside
//! the RUN where shellcheck found them; they match when rbuild's line is inside the RUN that
//! starts at hadolint's line.

use rbuild::dockerfile;
use rbuild::lint::{Config, lint, shellcheck};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// hadolint findings rbuild does not reproduce, on purpose: (file, line, rule, why).
const KNOWN_HADOLINT_FALSE_POSITIVES: &[(&str, u32, &str, &str)] = &[];

fn corpus() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        here.join("../shared/corpus"),
        here.join("../../shared/corpus"),
        PathBuf::from("/work/shared/corpus"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("official-images.hadolint.json").is_file())
        .unwrap_or_else(|| panic!("corpus not found: ../shared/corpus/official-images.hadolint.json"))
}

#[test]
fn every_hadolint_finding_is_reproduced() {
    let root = corpus();
    let reference: BTreeMap<String, Vec<(u32, String, String)>> = serde_json::from_str(
        &std::fs::read_to_string(root.join("official-images.hadolint.json"))
            .unwrap_or_else(|e| panic!("reading the reference: {e}")),
    )
    .unwrap_or_else(|e| panic!("parsing the reference: {e}"));
    let with_shellcheck = shellcheck::available();
    assert!(
        with_shellcheck,
        "shellcheck is needed for the SC part of this test (scripts/install-deps.sh installs it)"
    );
    let config = Config {
        shellcheck: true,
        ..Config::default()
    };
    let mut missing = Vec::new();
    let mut compared = 0usize;
    let mut parse_failures_of_hadolint = 0usize;
    for (file, expected) in &reference {
        let path = root.join("official-images").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if expected.iter().any(|(_, code, _)| code == "DL1000") {
            // hadolint could not parse this file and linted nothing of it.
            parse_failures_of_hadolint += 1;
            continue;
        }
        let parsed = dockerfile::parse(&text);
        let report = lint(&text, &config);
        for (line, code, _) in expected {
            compared += 1;
            let found = if code.starts_with("SC") {
                let run = parsed
                    .nodes
                    .iter()
                    .find(|n| n.start_line == *line)
                    .map_or((*line, *line), |n| (n.start_line, n.end_line));
                report
                    .findings
                    .iter()
                    .any(|f| &f.rule == code && run.0 <= f.line && f.line <= run.1)
            } else {
                report
                    .findings
                    .iter()
                    .any(|f| &f.rule == code && f.line == *line)
            };
            let known = KNOWN_HADOLINT_FALSE_POSITIVES
                .iter()
                .any(|(f, l, c, _)| f == file && l == line && c == code);
            if !found && !known {
                missing.push(format!("{file}:{line} {code}"));
            }
        }
    }
    assert!(compared > 2000, "only {compared} findings compared");
    assert_eq!(parse_failures_of_hadolint, 8);
    assert!(
        missing.is_empty(),
        "{} of {compared} hadolint findings not reproduced:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn every_file_parses_and_lints() {
    let root = corpus().join("official-images");
    let mut files = 0;
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let dir = dir.unwrap_or_else(|e| panic!("{e}")).path();
        for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = file.unwrap_or_else(|e| panic!("{e}")).path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            let report = lint(&text, &Config::default());
            let name = path.display().to_string();
            if !name.ends_with(".template") {
                let errors: Vec<_> = report.findings.iter().filter(|f| f.rule == "DL1000").collect();
                assert!(errors.is_empty(), "{name}: {errors:?}");
            }
            files += 1;
        }
    }
    assert_eq!(files, 403);
}
