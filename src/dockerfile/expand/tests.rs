use std::collections::HashMap;

use super::*;

fn scope(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(input: &str, vars: &[(&str, &str)]) -> Result<String, ExpandError> {
    Lexer::new('\\').expand_word(input, &scope(vars))
}

#[test]
fn references_are_reported_with_spans_in_evaluation_order() {
    let vars = scope(&[("FOO", "xxx"), ("BAR", "")]);
    let input = "${FOO:-aaa} ${BAR:-bbb} $BAZ ${Q:-$INNER}";
    let e = Lexer::new('\\').expand(input, &vars).unwrap();
    assert_eq!(e.value, "xxx bbb  ");
    let seen: Vec<_> = e
        .refs
        .iter()
        .map(|r| (r.name, &input[r.span.clone()], r.set))
        .collect();
    assert_eq!(
        seen,
        [
            ("FOO", "${FOO:-aaa}", true),
            ("BAR", "${BAR:-bbb}", true),
            ("BAZ", "$BAZ", false),
            ("INNER", "$INNER", false),
            ("Q", "${Q:-$INNER}", false),
        ]
    );
    let unset: Vec<_> = e.unset().map(|r| r.name).collect();
    assert_eq!(unset, ["BAZ", "INNER", "Q"]);
}

#[test]
fn required_variables_fail_with_buildkits_message() {
    let set = [("VAR", "plain"), ("ARG", "x")];
    let empty = [("VAR", ""), ("ARG", "x")];
    let unset = [("ARG", "x")];
    assert_eq!(word("${VAR:?message here$ARG}", &set).unwrap(), "plain");
    let err = word("${VAR:?message here$ARG}", &empty).unwrap_err();
    assert_eq!(err.to_string(), "VAR: message herex");
    assert_eq!(err.offset, 0);
    assert!(word("${VAR:?message here$ARG}", &unset).is_err());
    assert_eq!(word("${VAR?message here$ARG}", &empty).unwrap(), "");
    let err = word("ab${VAR?}", &unset).unwrap_err();
    assert_eq!(err.to_string(), "VAR: is not allowed to be unset");
    assert_eq!(err.offset, 2);
    let err = word("${VAR:?}", &empty).unwrap_err();
    assert_eq!(err.to_string(), "VAR: is not allowed to be empty");
}

#[test]
fn errors_point_at_the_construct() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "ab'cd",
            2,
            "unexpected end of statement while looking for matching single-quote",
        ),
        (
            "ab\"cd",
            2,
            "unexpected end of statement while looking for matching double-quote",
        ),
        ("x${PWD", 1, "syntax error: missing '}'"),
        ("x${}", 1, "syntax error: bad substitution"),
        ("x${a=b}", 4, "unsupported modifier (=) in substitution"),
        ("x${a:=b}", 4, "unsupported modifier (:=) in substitution"),
        ("x${a/b}", 1, "syntax error: missing '/' in ${}"),
        (
            "x${a#\\x}",
            4,
            "invalid pattern (\\x) in substitution: invalid escape '\\x'",
        ),
    ];
    for (input, offset, message) in cases {
        let err = word(input, &[("a", "v")]).unwrap_err();
        assert_eq!(
            (err.offset, err.to_string().as_str()),
            (*offset, *message),
            "{input}"
        );
    }
}

#[test]
fn pattern_modifiers_follow_buildkit() {
    let vars = [("FOO", "xxyy"), ("BAR", "x"), ("EMPTY", "")];
    let cases = [
        ("${FOO#*x*y}", "y"),
        ("${FOO#$BAR}", "xyy"),
        ("${FOO#$EMPTY}", "xxyy"),
        ("${FOO##*x}", "yy"),
        ("${FOO%y}", "xxy"),
        ("${FOO%%y*}", "xx"),
        ("${FOO:#x}", "xyy"),
        ("${ABC:-.}${FOO%x}${ABC:-.}", ".xxyy."),
        ("${FOO/$EMPTY/ww}", "wwxxyy"),
        ("${FOO///}", "xxyy"),
        ("${NOPE///}", ""),
        ("${NOPE#x}", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input, &vars).unwrap(), expected, "{input}");
    }
    assert!(word("${FOO//ww}", &vars).is_err());
    assert!(word("${FOO//}", &vars).is_err());
}

#[test]
fn replacements_keep_escapes_as_buildkit_does() {
    let vars = [("FOO", "/tmp/foo.txt")];
    assert_eq!(word("${FOO//\\//\\/}", &vars).unwrap(), "\\/tmp\\/foo.txt");
    let vars = [
        ("FOO", "http://google.de"),
        ("N", "http://"),
        ("R", "https://"),
    ];
    assert_eq!(word("${FOO/$N/$R}", &vars).unwrap(), "https://google.de");
}

#[test]
fn backtick_escape_works_like_backslash() {
    let lexer = Lexer::new('`');
    let vars = scope(&[("PWD", "/home")]);
    assert_eq!(lexer.expand_word("he`$PWD", &vars).unwrap(), "he$PWD");
    assert_eq!(
        lexer.expand_word("C:\\dir\\$PWD", &vars).unwrap(),
        "C:\\dir\\/home"
    );
    assert_eq!(lexer.expand_word("\"a`\"b\"", &vars).unwrap(), "a\"b");
    assert_eq!(lexer.expand_words("a` b c", &vars).unwrap(), ["a b", "c"]);
}

#[test]
fn options_match_buildkits_lex_flags() {
    let vars = scope(&[("A", "1")]);
    let keep = Lexer::new('\\').keep_quotes(true);
    assert_eq!(
        keep.expand_word("'$A' \"$A\"", &vars).unwrap(),
        "'$A' \"1\""
    );
    let raw = Lexer::new('\\').raw_escapes(true);
    assert_eq!(
        raw.expand_word("a\\$A \"\\x\"", &vars).unwrap(),
        "a\\$A \"\\\\x\"".replace('"', "")
    );
    let heredoc = Lexer::heredoc();
    assert_eq!(
        heredoc.expand_word("echo \"$A\" '$A' \\$A", &vars).unwrap(),
        "echo \"1\" '1' $A"
    );
    let unset = Lexer::new('\\').keep_unset(true);
    assert_eq!(
        unset
            .expand_word("$A $B ${C} ${D:-x} ${E/a/b}", &vars)
            .unwrap(),
        "1 $B ${C} ${D:-x} ${E/a/b}"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let input = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let err = word(&input, &[]).unwrap_err();
    assert_eq!(err.kind, ExpandErrorKind::TooDeep);
    assert_eq!(err.offset, MAX_NESTING * 5);
    let within = format!(
        "{}x{}",
        "${a:-".repeat(MAX_NESTING),
        "}".repeat(MAX_NESTING)
    );
    assert_eq!(word(&within, &[]).unwrap(), "x");
    let quoted = format!("{}x{}", "\"${a:-".repeat(depth), "}\"".repeat(depth));
    assert_eq!(
        word(&quoted, &[]).unwrap_err().kind,
        ExpandErrorKind::TooDeep
    );
}

#[test]
fn runaway_growth_is_bounded() {
    let big = "a".repeat(1 << 20);
    let vars = [("A", big.as_str())];
    let input = "$A".repeat(17);
    let result = word(&input, &vars).map(|v| v.len());
    assert_eq!(result.unwrap_err().kind, ExpandErrorKind::TooLong);
    let vars = [("A", "aaaaaaaaaaaaaaaa")];
    let nested = "${A//?/${A//?/${A//?/${A//?/${A//?/${A//?/${A//?/x}}}}}}}";
    let result = word(nested, &vars).map(|v| v.len());
    assert_eq!(result.unwrap_err().kind, ExpandErrorKind::TooLong);
}

#[test]
fn scopes_of_every_shape_work() {
    let pairs = [("A", "first"), ("A", "second")];
    assert_eq!(
        Lexer::default().expand_word("$A", &pairs[..]).unwrap(),
        "second"
    );
    let closure = FnVars(|name: &str| (name == "X").then(|| "y".to_string()));
    assert_eq!(Lexer::default().expand_word("$X$Z", &closure).unwrap(), "y");
    let tree: BTreeMap<String, String> = [("K".to_string(), "v".to_string())].into();
    assert_eq!(Lexer::default().expand_word("${K}", &tree).unwrap(), "v");
}

#[test]
fn a_leading_byte_order_mark_is_dropped_as_go_scanner_does() {
    assert_eq!(word("\u{feff}a\u{feff}", &[]).unwrap(), "a\u{feff}");
}

/// The fuzz target's invariants over many generated words: no panic, `expand` and
/// `expand_word` agree, references point at `$` in the input, no empty words, errors inside
/// the input.
#[test]
fn generated_words_keep_the_invariants() {
    const PIECES: [&str; 24] = [
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "'", "\"", "a", "PWD", "GLOB", " ",
        "*", "`", "\n", "0", "@", "한", "${",
    ];
    let vars = scope(&[
        ("PWD", "/home"),
        ("GLOB", "*?/\\}$0"),
        ("a", ""),
        ("E", " x  y "),
    ]);
    let mut seed: u64 = 0x5eed;
    let mut pick = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    for _ in 0..20_000 {
        let input: String = (0..pick(14)).map(|_| PIECES[pick(PIECES.len())]).collect();
        let options = pick(32);
        let lexer = Lexer::new(if options & 1 == 0 { '\\' } else { '`' })
            .keep_quotes(options & 2 != 0)
            .raw_escapes(options & 4 != 0)
            .skip_quotes(options & 8 != 0)
            .keep_unset(options & 16 != 0);
        let full = lexer.expand(&input, &vars);
        let single = lexer.expand_word(&input, &vars);
        match (&full, &single) {
            (Ok(full), Ok(single)) => {
                assert_eq!(&full.value, single, "{input:?}");
                for r in &full.refs {
                    let text = &input[r.span.clone()];
                    assert!(text.starts_with('$') && text.contains(r.name), "{input:?}");
                }
                assert!(full.words.iter().all(|w| !w.is_empty()), "{input:?}");
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{input:?}");
                assert!(a.offset <= input.len(), "{input:?}");
            }
            _ => panic!("expand and expand_word disagree on {input:?}"),
        }
    }
}
