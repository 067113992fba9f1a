//! Word expansion never panics, stays within its bounds, and reports references that point at
//! the input. The first byte picks the lexer options; the rest is the word.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild::dockerfile::expand::Lexer;

const SCOPE: [(&str, &str); 6] = [
    ("PWD", "/home"),
    ("EMPTY", ""),
    ("SPACES", "  a b  "),
    ("GLOB", "*?/\\}$0${0}$$"),
    ("KOREAN", "한국어"),
    ("NL", "a\nb*c"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let Ok(word) = std::str::from_utf8(rest) else {
        return;
    };
    let escape = if options & 1 == 0 { '\\' } else { '`' };
    let lexer = Lexer::new(escape)
        .keep_quotes(options & 2 != 0)
        .raw_escapes(options & 4 != 0)
        .skip_quotes(options & 8 != 0)
        .keep_unset(options & 16 != 0);
    let full = lexer.expand(word, &SCOPE[..]);
    let single = lexer.expand_word(word, &SCOPE[..]);
    match (&full, &single) {
        (Ok(full), Ok(single)) => {
            assert_eq!(&full.value, single);
            for r in &full.refs {
                let text = word.get(r.span.clone()).expect("reference span inside the word");
                assert!(text.starts_with('$') && text.contains(r.name));
            }
            assert!(full.words.iter().all(|w| !w.is_empty()));
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert!(a.offset <= word.len());
        }
        _ => panic!("expand and expand_word disagree on {word:?}"),
    }
});
