//! The exec (JSON array) form of RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD and VOLUME.
//!
//! BuildKit decodes the arguments with Go's `encoding/json` into `[]any`: text that is not
//! valid JSON falls back to the shell form, while a valid array holding anything but strings is
//! an error. This scanner follows the same rules without recursion (Go's depth limit is 10000)
//! and keeps each element's byte range for spans.

/// Nesting deeper than this is invalid JSON for Go's decoder (so: shell form).
const MAX_DEPTH: usize = 10_000;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExecForm {
    /// Not a JSON array: the arguments are shell form.
    NotJson,
    /// Every element with its byte range (quotes included) in the scanned text.
    Strings(Vec<(String, usize, usize)>),
    /// A valid JSON array holding a non-string element.
    NotStrings,
}

pub(crate) fn parse_exec_form(text: &str) -> ExecForm {
    let bytes = text.as_bytes();
    let mut pos = skip_space(bytes, 0);
    if bytes.get(pos) != Some(&b'[') {
        return ExecForm::NotJson;
    }
    pos += 1;
    let mut strings = Vec::new();
    let mut all_strings = true;
    pos = skip_space(bytes, pos);
    if bytes.get(pos) == Some(&b']') {
        pos += 1;
    } else {
        loop {
            pos = skip_space(bytes, pos);
            if bytes.get(pos) == Some(&b'"') {
                let start = pos;
                match scan_string(text, pos, true) {
                    Some((end, value)) => {
                        strings.push((value.unwrap_or_default(), start, end));
                        pos = end;
                    }
                    None => return ExecForm::NotJson,
                }
            } else {
                all_strings = false;
                match skip_value(text, pos) {
                    Some(end) => pos = end,
                    None => return ExecForm::NotJson,
                }
            }
            pos = skip_space(bytes, pos);
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b']') => {
                    pos += 1;
                    break;
                }
                _ => return ExecForm::NotJson,
            }
        }
    }
    if skip_space(bytes, pos) != bytes.len() {
        return ExecForm::NotJson;
    }
    if all_strings {
        ExecForm::Strings(strings)
    } else {
        ExecForm::NotStrings
    }
}

fn skip_space(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// Scans a JSON string starting at the opening quote; returns the end (after the closing quote)
/// and, when `decode`, the decoded value.
fn scan_string(text: &str, start: usize, decode: bool) -> Option<(usize, Option<String>)> {
    let bytes = text.as_bytes();
    let mut pos = start + 1;
    let mut out = decode.then(String::new);
    let mut plain_from = pos;
    loop {
        let b = *bytes.get(pos)?;
        match b {
            b'"' => {
                if let Some(out) = out.as_mut() {
                    out.push_str(text.get(plain_from..pos)?);
                }
                return Some((pos + 1, out));
            }
            b'\\' => {
                if let Some(out) = out.as_mut() {
                    out.push_str(text.get(plain_from..pos)?);
                }
                let escape = *bytes.get(pos + 1)?;
                pos += 2;
                let c = match escape {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let (c, end) = unicode_escape(bytes, pos)?;
                        pos = end;
                        c
                    }
                    _ => return None,
                };
                if let Some(out) = out.as_mut() {
                    out.push(c);
                }
                plain_from = pos;
            }
            0..=0x1f => return None,
            _ => pos += 1,
        }
    }
}

fn hex4(bytes: &[u8], pos: usize) -> Option<u32> {
    let digits = bytes.get(pos..pos + 4)?;
    let mut n = 0u32;
    for &d in digits {
        n = n * 16 + (d as char).to_digit(16)?;
    }
    Some(n)
}

/// Decodes `XXXX` after `\u` (and a following low surrogate), as Go does: a lone surrogate
/// becomes U+FFFD.
fn unicode_escape(bytes: &[u8], pos: usize) -> Option<(char, usize)> {
    let first = hex4(bytes, pos)?;
    let mut end = pos + 4;
    if (0xD800..0xDC00).contains(&first)
        && bytes.get(end) == Some(&b'\\')
        && bytes.get(end + 1) == Some(&b'u')
        && let Some(second) = hex4(bytes, end + 2)
        && (0xDC00..0xE000).contains(&second)
    {
        end += 6;
        let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return Some((char::from_u32(c).unwrap_or('\u{FFFD}'), end));
    }
    Some((char::from_u32(first).unwrap_or('\u{FFFD}'), end))
}

/// Skips one JSON value of any kind; `None` when it is not valid JSON.
fn skip_value(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    // Open containers: true for an object (expects keys), false for an array. The top-level
    // array being scanned counts as depth 1.
    let mut stack: Vec<bool> = Vec::new();
    let mut pos = start;
    loop {
        pos = skip_space(bytes, pos);
        // A value.
        match *bytes.get(pos)? {
            b'"' => pos = scan_string(text, pos, false)?.0,
            b'{' | b'[' => {
                let is_object = bytes[pos] == b'{';
                if stack.len() + 2 > MAX_DEPTH {
                    return None;
                }
                stack.push(is_object);
                pos = skip_space(bytes, pos + 1);
                let close = if is_object { b'}' } else { b']' };
                if bytes.get(pos) == Some(&close) {
                    stack.pop();
                    pos += 1;
                } else {
                    if is_object {
                        pos = object_key(text, pos)?;
                    }
                    continue;
                }
            }
            b't' => pos = literal(bytes, pos, b"true")?,
            b'f' => pos = literal(bytes, pos, b"false")?,
            b'n' => pos = literal(bytes, pos, b"null")?,
            b'-' | b'0'..=b'9' => pos = number(text, pos)?,
            _ => return None,
        }
        // After a value: close containers or move to the next element.
        loop {
            let Some(&is_object) = stack.last() else {
                return Some(pos);
            };
            pos = skip_space(bytes, pos);
            match *bytes.get(pos)? {
                b',' => {
                    pos += 1;
                    if is_object {
                        pos = object_key(text, skip_space(bytes, pos))?;
                    }
                    break;
                }
                b'}' if is_object => {
                    stack.pop();
                    pos += 1;
                }
                b']' if !is_object => {
                    stack.pop();
                    pos += 1;
                }
                _ => return None,
            }
        }
    }
}

/// Scans `"key" :` and returns the position after the colon.
fn object_key(text: &str, pos: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    let end = skip_space(bytes, scan_string(text, pos, false)?.0);
    (bytes.get(end) == Some(&b':')).then_some(end + 1)
}

fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    (bytes.get(pos..pos + word.len())? == word).then_some(pos + word.len())
}

/// A JSON number; Go's decoder also rejects one that overflows a float64.
fn number(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let digits = |mut p: usize| {
        let from = p;
        while bytes.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
        (p > from).then_some(p)
    };
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    if bytes.get(pos) == Some(&b'0') {
        pos += 1;
    } else {
        pos = digits(pos)?;
    }
    if bytes.get(pos) == Some(&b'.') {
        pos = digits(pos + 1)?;
    }
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(bytes.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        pos = digits(pos)?;
    }
    let value: f64 = text.get(start..pos)?.parse().ok()?;
    value.is_finite().then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Vec<String> {
        match parse_exec_form(text) {
            ExecForm::Strings(v) => v.into_iter().map(|(s, _, _)| s).collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn decodes_strings_and_escapes() {
        assert_eq!(strings(r#"[ "a", "b" ]"#), ["a", "b"]);
        assert_eq!(strings("[]"), Vec::<String>::new());
        assert_eq!(
            strings(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u2603 \ud83d\ude00 \ud800"]"#),
            ["\" \\ / \u{8} \u{c} \n \r \t \u{0} ☃ 😀 \u{FFFD}"]
        );
    }

    #[test]
    fn invalid_json_is_shell_form() {
        for text in [
            "['a']",
            r#"["a""#,
            r#"["a]"#,
            r#"["a",]"#,
            "[01]",
            "[1e999]",
            "[tru]",
            r#"["a"] x"#,
            "x",
        ] {
            assert_eq!(parse_exec_form(text), ExecForm::NotJson, "{text}");
        }
    }

    #[test]
    fn valid_non_strings_are_rejected() {
        for text in [
            r#"[ "echo", [ "nested json" ] ]"#,
            "[1]",
            "[null]",
            r#"[{"a": [1, {"b": true}]}]"#,
        ] {
            assert_eq!(parse_exec_form(text), ExecForm::NotStrings, "{text}");
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("[{}{}]", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(parse_exec_form(&deep), ExecForm::NotJson);
        let ok = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_exec_form(&ok), ExecForm::NotStrings);
    }
}
