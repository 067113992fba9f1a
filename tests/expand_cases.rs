//! Our own expansion cases in testdata/expand/cases (format described in the file).

use rbuild::dockerfile::expand::Lexer;

#[test]
fn every_case_in_testdata_expands_as_buildkit() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/expand/cases");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lexer = Lexer::new('\\');
    let mut scope: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            scope.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let Some((input, expected)) = line.rsplit_once('|') else {
            failures.push(format!("{path}:{line_no}: no '|': {line:?}"));
            continue;
        };
        checked += 1;
        let (input, expected) = (input.trim(), expected.trim());
        let got = lexer.expand_word(input, &scope[..]);
        let ok = match &got {
            Ok(value) => expected != "error" && value == expected,
            Err(_) => expected == "error",
        };
        if !ok {
            failures.push(format!(
                "{path}:{line_no}: {input:?} expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(checked > 20, "only {checked} cases in {path}");
    assert!(
        failures.is_empty(),
        "{} failing lines:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
