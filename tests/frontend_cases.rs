//! rbuild's own parser cases: every `testdata/dockerfile/NAME.Dockerfile` is parsed and its
//! report (BuildKit dump, diagnostics, typed instructions) must equal `NAME.expected`.
//! `RBUILD_UPDATE_EXPECTED=1` rewrites the expected files (review the diff before committing).

use rbuild::dockerfile::{self, dump::buildkit_dump};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Spans are checked by their own tests; here they would bury the values.
fn without_spans(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter(|(k, _)| !k.ends_with("span"))
                .map(|(k, v)| (k, without_spans(v)))
                .collect();
            match (map.len(), map.get("text")) {
                (1, Some(text)) => text.clone(),
                _ => Value::Object(map),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_spans).collect()),
        other => other,
    }
}

fn report(source: &[u8]) -> String {
    let parsed = dockerfile::parse_bytes(source);
    let mut out = String::from("== buildkit\n");
    out.push_str(&buildkit_dump(&parsed));
    out.push_str("== diagnostics\n");
    for d in &parsed.diagnostics {
        let _ = writeln!(
            out,
            "{}:{}-{}:{} {} {}: {}",
            d.span.line,
            d.span.column,
            d.span.end_line,
            d.span.end_column,
            d.severity.as_str(),
            d.code.as_str(),
            d.message
        );
    }
    out.push_str("== instructions\n");
    for instruction in &parsed.instructions {
        let kind = serde_json::to_value(&instruction.kind).unwrap_or(Value::Null);
        let _ = writeln!(out, "{} {}", instruction.span.line, without_spans(kind));
    }
    out
}

#[test]
fn testdata_cases_give_their_expected_reports() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfile");
    let update = std::env::var_os("RBUILD_UPDATE_EXPECTED").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/dockerfile")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "found only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let source = std::fs::read(&case).expect("case");
        let got = report(&source);
        let expected_path = case.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{}:\n{got}", case.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "differs from .expected:\n{}",
        failures.join("\n")
    );
}
