//! moby/patternmatcher's test tables (testdata/context/), run against rbuild's matcher.

use rbuild::context::pattern::{clean, go_match, read_ignore_file};
use rbuild::context::{MatchInfo, PatternMatcher};
use serde_json::Value;

fn table(name: &str) -> Value {
    let path = format!("{}/testdata/context/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    for key in ["single", "multi", "cases"] {
        if let Some(cases) = value.get(key) {
            assert!(
                cases.as_array().unwrap().len() > 10,
                "{name}: {key} is nearly empty"
            );
        }
    }
    value
}

fn text_of(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// Go's filepath.Dir for the walk below.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(at) => clean(&path[..=at]),
        None => ".".to_string(),
    }
}

/// The walker's way: match every parent directory first, handing results down.
fn matches_walking_parents(matcher: &PatternMatcher, text: &str) -> bool {
    let parent = go_dir(text);
    let mut info = MatchInfo::default();
    if parent != "." {
        let dirs: Vec<&str> = parent.split('/').collect();
        for depth in 1..=dirs.len() {
            let (_, next) = matcher
                .matches_using_parent_results(&dirs[..depth].join("/"), &info)
                .unwrap();
            info = next;
        }
    }
    matcher.matches_using_parent_results(text, &info).unwrap().0
}

#[test]
fn single_pattern_table() {
    let table = table("patternmatcher_matches.json");
    let mut failures = Vec::new();
    for case in table["single"].as_array().unwrap() {
        let pattern = text_of(&case["pattern"]);
        let text = text_of(&case["text"]);
        let pass = text_of(&case["pass"]);
        let matcher = PatternMatcher::new(&[pattern]).unwrap();
        let exact = matcher.matches_exact(text).unwrap();
        let or_parent = matcher.matches_or_parent_matches(text).unwrap();
        let walking = matches_walking_parents(&matcher, text);
        let no_context = matcher
            .matches_using_parent_results(text, &MatchInfo::default())
            .unwrap()
            .0;
        let want_exact = pass == "exact";
        let want_any = pass != "fail";
        if exact != want_exact
            || or_parent != want_any
            || walking != want_any
            || no_context != want_any
        {
            failures.push(format!(
                "pattern {pattern:?} text {text:?}: exact {exact} parent {or_parent} walking {walking} no-context {no_context}, want {pass}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn multi_pattern_table() {
    let table = table("patternmatcher_matches.json");
    let mut failures = Vec::new();
    for case in table["multi"].as_array().unwrap() {
        let patterns: Vec<&str> = case["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(text_of)
            .collect();
        let text = text_of(&case["text"]);
        let want = text_of(&case["pass"]) != "fail";
        let matcher = PatternMatcher::new(&patterns).unwrap();
        let or_parent = matcher.matches_or_parent_matches(text).unwrap();
        let walking = matches_walking_parents(&matcher, text);
        if or_parent != want || walking != want {
            failures.push(format!("patterns {patterns:?} text {text:?}: parent {or_parent} walking {walking}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn go_filepath_match_table() {
    let table = table("filepath_match.json");
    let mut failures = Vec::new();
    for case in table["cases"].as_array().unwrap() {
        let pattern = text_of(&case["pattern"]);
        let text = text_of(&case["text"]);
        let want_error = case["error"].as_bool().unwrap();
        let want_go = case["go_match"].as_bool().unwrap();
        let want_moby = case["match"].as_bool().unwrap();
        let go = go_match(pattern, text);
        match (&go, want_error) {
            (Err(_), true) => {}
            (Ok(got), false) if *got == want_go => {}
            _ => failures.push(format!("filepath.Match({pattern:?}, {text:?}) = {go:?}")),
        }
        let moby =
            PatternMatcher::new(&[pattern]).map(|m| m.matches_or_parent_matches(&clean(text)));
        match (&moby, want_error) {
            (Err(_), true) => {}
            (Ok(Ok(got)), false) if *got == want_moby => {}
            _ => failures.push(format!("Matches({text:?}, [{pattern:?}]) = {moby:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lone_exclamation_and_malformed_patterns_are_errors() {
    assert!(PatternMatcher::new(&["!"]).is_err());
    assert!(PatternMatcher::new(&["["]).is_err());
    assert!(
        PatternMatcher::new(&["docs", "  !docs/README.md"])
            .unwrap()
            .has_exclusions()
    );
    assert!(
        PatternMatcher::new(&["docs", "!docs/README.md  "])
            .unwrap()
            .has_exclusions()
    );
    assert_eq!(
        PatternMatcher::new(&["docs", "config", ""])
            .unwrap()
            .patterns()
            .len(),
        2
    );
}

#[test]
fn pattern_valid_for_filepath_match_but_not_regexp_fails_every_time() {
    // moby/moby#52203: "[Local-Only]/" passes filepath.Match but its range l-O is no regexp.
    let matcher = PatternMatcher::new(&["[Local-Only]/"]).unwrap();
    assert!(matcher.matches_or_parent_matches("x").is_err());
    assert!(matcher.matches_or_parent_matches("x").is_err());
}

#[test]
fn ignore_file_read_all() {
    let dir = format!("{}/testdata/context", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(format!("{dir}/ignorefile_readall.dockerignore")).unwrap();
    let expected: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/ignorefile_readall.expected.json")).unwrap(),
    )
    .unwrap();
    let got: Vec<String> = read_ignore_file(&text)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, expected);
    assert!(
        read_ignore_file("\u{feff}a\r\n b \n")
            .iter()
            .map(|(l, p)| (*l, p.as_str()))
            .eq([(1, "a"), (2, "b")])
    );
}
