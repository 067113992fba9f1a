//! Path patterns with moby's exact semantics: Go's `filepath.Match` and `filepath.Clean`, the
//! `.dockerignore` reader of moby/patternmatcher/ignorefile, and moby's `PatternMatcher`
//! (patterns compiled the way moby compiles them: exact, prefix, suffix or regular expression).

use regex::bytes::Regex;

/// A malformed pattern, reported as Go reports it (`syntax error in pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("syntax error in pattern: {0:?}")]
    Bad(String),
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
}

impl PatternError {
    /// The offending pattern.
    pub fn pattern(&self) -> &str {
        match self {
            PatternError::Bad(pattern) => pattern,
            PatternError::LoneExclamation => "!",
        }
    }
}

/// Go's `filepath.Clean` on a slash-separated path: lexical, never touches the disk.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Decodes one UTF-8 character as Go does: an invalid byte is U+FFFD of width 1.
fn decode_rune(bytes: &[u8]) -> (char, usize) {
    let width = match bytes.first() {
        None => return ('\u{FFFD}', 0),
        Some(b) if *b < 0x80 => return (char::from(*b), 1),
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        Some(_) => 2,
    };
    match bytes.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => (text.chars().next().unwrap_or('\u{FFFD}'), width),
        _ => ('\u{FFFD}', 1),
    }
}

/// Go's `filepath.Match` on Unix: `*` and `?` never match `/`, `[...]` classes with `^`
/// negation and ranges, `\` escapes. The whole pattern is checked for syntax errors even after
/// a mismatch, as Go does since 1.16.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let bad = || PatternError::Bad(pattern.to_string());
    let mut pat = pattern.as_bytes();
    let mut name = name.as_bytes();
    'pattern: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        let (tail, matched) = match_chunk(chunk, name).map_err(|()| bad())?;
        if matched && (tail.is_empty() || !pat.is_empty()) {
            name = tail;
            continue;
        }
        if star {
            let mut skip = 0;
            while skip < name.len() && name.get(skip) != Some(&b'/') {
                let rest_of_name = name.get(skip + 1..).unwrap_or_default();
                let (tail, matched) = match_chunk(chunk, rest_of_name).map_err(|()| bad())?;
                if matched && (!pat.is_empty() || tail.is_empty()) {
                    name = tail;
                    continue 'pattern;
                }
                skip += 1;
            }
        }
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            match_chunk(chunk, b"").map_err(|()| bad())?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading stars and the chunk up to the next unescaped, unbracketed star.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut end = 0;
    while let Some(byte) = pattern.get(end) {
        match byte {
            b'\\' if pattern.get(end + 1).is_some() => end += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        end += 1;
    }
    let (chunk, rest) = pattern.split_at(end.min(pattern.len()));
    (star, chunk, rest)
}

/// Matches one chunk at the start of `name`; `Err` on a malformed chunk. Keeps parsing the
/// chunk after a mismatch so that syntax errors are always found.
fn match_chunk<'a>(mut chunk: &[u8], mut name: &'a [u8]) -> Result<(&'a [u8], bool), ()> {
    let mut failed = false;
    while let Some(&first) = chunk.first() {
        if !failed && name.is_empty() {
            failed = true;
        }
        match first {
            b'[' => {
                let mut current = '\u{0}';
                if !failed {
                    let (rune, width) = decode_rune(name);
                    current = rune;
                    name = name.get(width..).unwrap_or_default();
                }
                chunk = chunk.get(1..).unwrap_or_default();
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = chunk.get(1..).unwrap_or_default();
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = chunk.get(1..).unwrap_or_default();
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (upper, rest) = class_char(chunk.get(1..).unwrap_or_default())?;
                        hi = upper;
                        chunk = rest;
                    }
                    if lo <= current && current <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if name.first() == Some(&b'/') {
                        failed = true;
                    }
                    let (_, width) = decode_rune(name);
                    name = name.get(width..).unwrap_or_default();
                }
                chunk = chunk.get(1..).unwrap_or_default();
            }
            _ => {
                if first == b'\\' {
                    chunk = chunk.get(1..).unwrap_or_default();
                    if chunk.is_empty() {
                        return Err(());
                    }
                }
                if !failed {
                    if chunk.first() != name.first() {
                        failed = true;
                    }
                    name = name.get(1..).unwrap_or_default();
                }
                chunk = chunk.get(1..).unwrap_or_default();
            }
        }
    }
    if failed {
        return Ok((b"", false));
    }
    Ok((name, true))
}

/// One possibly escaped character of a class; Go's `getEsc`.
fn class_char(chunk: &[u8]) -> Result<(char, &[u8]), ()> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(()),
        Some(b'\\') => {
            chunk = chunk.get(1..).unwrap_or_default();
            if chunk.is_empty() {
                return Err(());
            }
        }
        Some(_) => {}
    }
    let (rune, width) = decode_rune(chunk);
    if rune == '\u{FFFD}' && width == 1 {
        return Err(());
    }
    let rest = chunk.get(width..).unwrap_or_default();
    if rest.is_empty() {
        return Err(());
    }
    Ok((rune, rest))
}

/// True when a path component holds a wildcard (an escaped character never counts);
/// fsutil's `containsWildcards`.
pub fn has_wildcard(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut index = 0;
    while let Some(byte) = bytes.get(index) {
        match byte {
            b'\\' => index += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        index += 1;
    }
    false
}

/// Reads a `.dockerignore` file as moby's `ignorefile.ReadAll`: a BOM stripped, `#` comment
/// lines, surrounding blanks trimmed, each pattern cleaned and made relative to the root,
/// `!` kept in front. Each pattern comes with its line number (from 1).
pub fn read_ignore_file(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut patterns = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern.get(1..).unwrap_or_default().trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        patterns.push((index + 1, cleaned));
    }
    patterns
}

#[derive(Debug, Clone)]
enum Compiled {
    Exact,
    Prefix,
    Suffix,
    /// The expression, and the literal text every match ends with: most paths fail that
    /// cheaper test first.
    Regex(Regex, String),
    /// Moby defers compiling; a pattern Go's regexp rejects fails at match time.
    Invalid,
}

/// One cleaned pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    compiled: Compiled,
}

impl Pattern {
    /// The cleaned pattern without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// True for a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> Result<bool, PatternError> {
        Ok(match &self.compiled {
            Compiled::Exact => path == self.cleaned,
            Compiled::Prefix => path.starts_with(strip_last_two(&self.cleaned)),
            Compiled::Suffix => {
                let suffix = self.cleaned.get(2..).unwrap_or_default();
                path.ends_with(suffix)
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|without_slash| path == without_slash)
            }
            Compiled::Regex(regex, ending) => {
                path.ends_with(ending.as_str()) && regex.is_match(path.as_bytes())
            }
            Compiled::Invalid => return Err(PatternError::Bad(self.cleaned.clone())),
        })
    }

    /// The pattern without a trailing `/**` or `/*`: fsutil's `patternWithoutTrailingGlob`.
    fn without_trailing_glob(&self) -> &str {
        let text = self.cleaned.as_str();
        let text = text.strip_suffix("/**").unwrap_or(text);
        text.strip_suffix("/*").unwrap_or(text)
    }
}

fn strip_last_two(text: &str) -> &str {
    let mut end = text.len().saturating_sub(2);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Moby's regular-expression characters that mean nothing to `filepath.Match`.
fn escaped_in_regex(ch: char) -> bool {
    matches!(ch, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// Compiles as moby's `Pattern.compile`: the pattern text becomes an anchored regular
/// expression unless it is a plain exact, `prefix**` or `**suffix` pattern. Brackets pass
/// through as they do into Go's regexp; the few places where Rust's syntax reads them
/// differently (nested `[`, `&&`, `~~`, `\<`) are escaped so the meaning stays Go's.
fn compile(cleaned: &str) -> Compiled {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut regex = String::from("^");
    let mut kind = Kind::Exact;
    let chars: Vec<char> = cleaned.chars().collect();
    let mut in_class = false;
    let mut index = 0;
    let mut iteration = 0;
    while let Some(&ch) = chars.get(index) {
        index += 1;
        let next = chars.get(index).copied();
        if ch == '*' {
            if next == Some('*') {
                index += 1;
                if chars.get(index) == Some(&'/') {
                    index += 1;
                }
                if chars.get(index).is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if iteration == 0 {
                    kind = Kind::Suffix;
                }
            } else {
                regex.push_str("[^/]*");
                kind = Kind::Regex;
            }
        } else if ch == '?' {
            regex.push_str("[^/]");
            kind = Kind::Regex;
        } else if escaped_in_regex(ch) {
            regex.push('\\');
            regex.push(ch);
        } else if ch == '\\' {
            match next {
                Some(escaped) => {
                    index += 1;
                    if escaped.is_ascii_alphanumeric() || !escaped.is_ascii() {
                        regex.push('\\');
                        regex.push(escaped);
                    } else {
                        regex.push_str(&regex::escape(&escaped.to_string()));
                    }
                    kind = Kind::Regex;
                }
                None => regex.push('\\'),
            }
        } else if ch == '[' {
            if in_class && next != Some(':') {
                regex.push_str("\\[");
            } else {
                regex.push('[');
                in_class = true;
            }
            kind = Kind::Regex;
        } else if ch == ']' {
            regex.push(']');
            in_class = false;
            kind = Kind::Regex;
        } else if in_class && (ch == '&' || ch == '~') {
            regex.push('\\');
            regex.push(ch);
        } else {
            regex.push(ch);
        }
        iteration += 1;
    }
    match kind {
        Kind::Exact => Compiled::Exact,
        Kind::Prefix => Compiled::Prefix,
        Kind::Suffix => Compiled::Suffix,
        Kind::Regex => {
            regex.push('$');
            match Regex::new(&regex) {
                Ok(compiled) => Compiled::Regex(compiled, literal_ending(cleaned).to_string()),
                Err(_) => Compiled::Invalid,
            }
        }
    }
}

/// The end of a pattern that `compile` turns into the same text in the expression: letters,
/// digits and `._-/`, none escaped (an escaped letter is a class such as `\d`).
fn literal_ending(cleaned: &str) -> &str {
    let mut start = 0;
    let mut escaped = false;
    for (at, ch) in cleaned.char_indices() {
        let literal = !escaped && (ch.is_alphanumeric() || matches!(ch, '.' | '_' | '-' | '/'));
        escaped = !escaped && ch == '\\';
        if !literal {
            start = at + ch.len_utf8();
        }
    }
    cleaned.get(start..).unwrap_or_default()
}

/// What a directory's patterns matched, handed to its children so that `dir` also matches
/// `dir/file` (moby's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// Moby's `PatternMatcher`: an ordered list of patterns and `!` exceptions, last match wins.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

impl PatternMatcher {
    /// Builds the matcher as moby's `New`: blanks trimmed, empties skipped, patterns cleaned,
    /// `!` alone refused, every pattern checked with `filepath.Match`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut matcher = PatternMatcher::default();
        for pattern in patterns {
            let trimmed = pattern.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut cleaned = clean(trimmed);
            let exclusion = cleaned.starts_with('!');
            if exclusion {
                if cleaned.len() == 1 {
                    return Err(PatternError::LoneExclamation);
                }
                cleaned.remove(0);
                matcher.has_exclusions = true;
            }
            go_match(&cleaned, ".")?;
            let compiled = compile(&cleaned);
            matcher.patterns.push(Pattern {
                cleaned,
                exclusion,
                compiled,
            });
        }
        Ok(matcher)
    }

    /// Fails on the first pattern that `filepath.Match` accepts but Go's regexp does not
    /// (moby only finds out when matching; checking up front lets errors name the pattern).
    pub fn check_compiled(&self) -> Result<(), PatternError> {
        match self
            .patterns
            .iter()
            .find(|p| matches!(p.compiled, Compiled::Invalid))
        {
            Some(bad) => Err(PatternError::Bad(bad.cleaned.clone())),
            None => Ok(()),
        }
    }

    /// True when there is no pattern at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// The patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Moby's `MatchesExact`: the path alone, no parent matching.
    pub fn matches_exact(&self, path: &str) -> Result<bool, PatternError> {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(path)? {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Moby's `MatchesOrParentMatches`: a pattern matching any parent directory matches too.
    pub fn matches_or_parent_matches(&self, path: &str) -> Result<bool, PatternError> {
        self.matches_using_parent_results(path, &MatchInfo::default())
            .map(|(matched, _)| matched)
    }

    /// Moby's `MatchesUsingParentResults`: the walker passes each directory's result to its
    /// children. With an empty `parent`, every parent directory is tried.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        self.matches_using_parent_results_of(path, parent, true)
    }

    /// [`PatternMatcher::matches_using_parent_results`] for a walker: the result for the
    /// children is only worked out for a directory (`is_dir`); a file's is empty.
    pub(crate) fn matches_using_parent_results_of(
        &self,
        path: &str,
        parent: &MatchInfo,
        is_dir: bool,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: if is_dir {
                vec![false; self.patterns.len()]
            } else {
                Vec::new()
            },
        };
        // Go's filepath.Dir (everything up to the last slash, cleaned), needed only when the
        // parent's results are unknown.
        let mut parent_dir: Option<String> = None;
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.parent_matched.get(index).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path)?;
                if !hit && parent.parent_matched.is_empty() {
                    let parent_dir = parent_dir.get_or_insert_with(|| match path.rfind('/') {
                        Some(at) => clean(path.get(..=at).unwrap_or_default()),
                        None => ".".to_string(),
                    });
                    if parent_dir != "." {
                        for (at, _) in parent_dir.match_indices('/') {
                            if pattern.matches(parent_dir.get(..at).unwrap_or_default())? {
                                hit = true;
                                break;
                            }
                        }
                        if !hit {
                            hit = pattern.matches(parent_dir)?;
                        }
                    }
                }
            }
            if let Some(slot) = info.parent_matched.get_mut(index) {
                *slot = hit;
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// Whether a matched directory must still be walked because an exception may re-include
    /// something inside it (fsutil's walker): always when an exception holds a wildcard,
    /// otherwise only when an exception lies under the directory.
    pub fn exception_may_match_under(&self, dir: &str) -> bool {
        if !self.has_exclusions {
            return false;
        }
        let wildcard_exceptions = self
            .patterns
            .iter()
            .any(|p| p.exclusion && p.without_trailing_glob().contains(PATTERN_CHARS));
        if wildcard_exceptions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }
}

const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_go_clean() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a//b/./c/", "a/b/c"),
            ("../a/..", ".."),
            ("/../x", "/x"),
            ("a/../..", ".."),
            ("!docs/", "!docs"),
        ] {
            assert_eq!(clean(input), want, "{input}");
        }
    }

    #[test]
    fn literal_ending_stops_at_wildcards_classes_and_escapes() {
        for (pattern, ending) in [
            ("**/*.log", ".log"),
            ("a/*/b-c_d", "/b-c_d"),
            ("x[ab]yz", "yz"),
            ("a\\d", ""),
            ("a\\*bc", "bc"),
            ("name?", ""),
            ("caf\u{e9}*.t\u{e9}", ".t\u{e9}"),
        ] {
            assert_eq!(literal_ending(pattern), ending, "{pattern}");
        }
    }

    #[test]
    fn escaped_letter_is_a_class_not_its_letter() {
        // Moby hands `\d` to Go's regexp, where it means a digit.
        let matcher = PatternMatcher::new(&["file\\d"]).unwrap();
        assert!(matcher.matches_exact("file7").unwrap());
        assert!(!matcher.matches_exact("filed").unwrap());
        let matcher = PatternMatcher::new(&["**/*.log"]).unwrap();
        assert!(matcher.matches_exact("a/b/c.log").unwrap());
        assert!(matcher.matches_exact("c.log").unwrap());
        assert!(!matcher.matches_exact("c.log.gz").unwrap());
    }

    #[test]
    fn regex_translation_keeps_go_meaning() {
        let matcher = PatternMatcher::new(&["[[]x*"]).unwrap();
        assert!(matcher.matches_exact("[xyz").unwrap());
        let matcher = PatternMatcher::new(&["a\\<b*"]).unwrap();
        assert!(matcher.matches_exact("a<bc").unwrap());
    }
}
