//! BuildKit's own parser test data (../shared/conformance/buildkit/parser): every case must
//! dump exactly as its `result`, the negative cases must be rejected, and instruction lines
//! must be right.

mod frontend_support;

use rbuild::dockerfile::{self, dump::buildkit_dump};
use std::path::PathBuf;
use std::process::Command;

fn conformance_dir() -> PathBuf {
    frontend_support::shared_dir().join("conformance/buildkit/parser")
}

fn cases(dir: &str) -> Vec<PathBuf> {
    let dir = conformance_dir().join(dir);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the shared conformance data is missing)",
                dir.display()
            )
        })
        .map(|e| e.expect("directory entry").path())
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_testfiles_case_dumps_as_its_result() {
    let mut failures = Vec::new();
    let all = cases("testfiles");
    assert!(
        all.len() >= 30,
        "expected BuildKit's testfiles cases, found {}",
        all.len()
    );
    for case in &all {
        let source = std::fs::read(case.join("Dockerfile")).expect("Dockerfile");
        let expected = std::fs::read_to_string(case.join("result")).expect("result");
        let parsed = dockerfile::parse_bytes(&source);
        let dump = buildkit_dump(&parsed);
        if dump != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{dump}",
                case.display()
            ));
        }
        // BuildKit's parser accepts these files; some hold instructions its later stage
        // rejects (unknown flags, HEALTHCHECK without arguments), which is not a syntax error.
        if let Some(bad) = parsed.nodes.iter().find(|n| n.has_error) {
            failures.push(format!(
                "{}: syntax error in {:?}",
                case.display(),
                bad.original
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_are_rejected() {
    let all = cases("testfiles-negative");
    assert_eq!(all.len(), 4);
    for case in &all {
        let source = std::fs::read(case.join("Dockerfile")).expect("Dockerfile");
        let parsed = dockerfile::parse_bytes(&source);
        assert!(parsed.has_errors(), "{} was accepted", case.display());
    }
}

#[test]
fn instruction_lines_are_right() {
    let source = std::fs::read_to_string(conformance_dir().join("testfile-line/Dockerfile"))
        .expect("testfile-line");
    let parsed = dockerfile::parse(&source);
    let lines: Vec<(u32, u32)> = parsed
        .nodes
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    // The empty lines inside the RUN continuation are reported as a warning.
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| d.code == dockerfile::DiagnosticCode::EmptyContinuationLine)
    );
}

#[test]
fn the_binary_prints_the_buildkit_dump() {
    let case = conformance_dir().join("testfiles/lk4d4-the-edge-case-generator");
    let output = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(["parse", "--format", "buildkit"])
        .arg(case.join("Dockerfile"))
        .output()
        .expect("run rbuild");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = std::fs::read_to_string(case.join("result")).expect("result");
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn the_binary_fails_on_a_rejected_file() {
    let case = conformance_dir().join("testfiles-negative/shykes-nested-json/Dockerfile");
    let output = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(["parse", "--format", "buildkit"])
        .arg(&case)
        .output()
        .expect("run rbuild");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            ":1:5: error: when using JSON array syntax, arrays must be comprised of strings only"
        ),
        "{stderr}"
    );
}
