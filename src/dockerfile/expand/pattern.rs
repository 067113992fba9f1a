//! Shell patterns of `${v#p}`, `${v%p}` and `${v/p/r}` with BuildKit's meaning.
//!
//! BuildKit turns the pattern into a Go regular expression: `*` is `.*` (lazy for the shortest
//! match), `?` is `.`, and every other character is literal — there are no bracket expressions.
//! As Go's `.` does not match a newline, neither `*` nor `?` does here. `\` escapes `*`, `?` and
//! `\`; before `}` or `/` it is dropped; before anything else it is an error.
//!
//! Matching simulates the pattern's automaton over the text, so it takes time proportional to
//! text length × pattern length, and a [`Budget`] bounds the total.

use super::{ExpandErrorKind, MAX_EXPANDED_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
}

impl Token {
    fn matches(self, c: char) -> bool {
        match self {
            Token::Literal(l) => l == c,
            Token::AnyChar | Token::AnyRun => c != '\n',
        }
    }
}

/// What stopped a match before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Steps,
    Length,
}

impl From<Limit> for ExpandErrorKind {
    fn from(limit: Limit) -> ExpandErrorKind {
        match limit {
            Limit::Steps => ExpandErrorKind::TooComplex,
            Limit::Length => ExpandErrorKind::TooLong,
        }
    }
}

/// Automaton steps one expansion may spend on pattern matching (a few hundred milliseconds).
const MATCH_STEPS: u64 = 200_000_000;

pub(super) struct Budget(u64);

impl Default for Budget {
    fn default() -> Budget {
        Budget(MATCH_STEPS)
    }
}

impl Budget {
    fn spend(&mut self, steps: usize) -> Result<(), Limit> {
        let steps = u64::try_from(steps).unwrap_or(u64::MAX);
        self.0 = self.0.checked_sub(steps).ok_or(Limit::Steps)?;
        Ok(())
    }
}

pub(super) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a pattern as BuildKit's `convertShellPatternToRegex` does; the error is the reason.
    pub(super) fn parse(text: &str) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                // `**` matches what `*` matches, with the same preference.
                '*' if tokens.last() == Some(&Token::AnyRun) => continue,
                '*' => Token::AnyRun,
                '?' => Token::AnyChar,
                '\\' => match chars.peek() {
                    Some('}' | '/') => continue,
                    Some(&escaped @ ('*' | '?' | '\\')) => {
                        chars.next();
                        Token::Literal(escaped)
                    }
                    Some(other) => return Err(format!("invalid escape '\\{other}'")),
                    None => return Err("invalid escape '\\' at the end".to_owned()),
                },
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        Ok(Pattern { tokens })
    }

    /// Length in bytes of the shortest (or longest) match of `tokens` at the start of `chars`.
    fn match_start(
        tokens: &[Token],
        chars: impl Iterator<Item = char>,
        longest: bool,
        budget: &mut Budget,
    ) -> Result<Option<usize>, Limit> {
        let n = tokens.len();
        // active[i]: the first i tokens have matched the text read so far.
        let mut active = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        active[0] = true;
        close(tokens, &mut active);
        let mut found = active[n].then_some(0);
        if found.is_some() && !longest {
            return Ok(found);
        }
        let mut consumed = 0;
        for c in chars {
            budget.spend(n + 1)?;
            next.fill(false);
            let mut any = false;
            for (i, token) in tokens.iter().enumerate() {
                if active[i] && token.matches(c) {
                    next[i + 1] = true;
                    if *token == Token::AnyRun {
                        next[i] = true;
                    }
                    any = true;
                }
            }
            if !any {
                break;
            }
            std::mem::swap(&mut active, &mut next);
            close(tokens, &mut active);
            consumed += c.len_utf8();
            if active[n] {
                found = Some(consumed);
                if !longest {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// `value` without the shortest (or longest) prefix the pattern matches.
    pub(super) fn trim_prefix<'s>(
        &self,
        value: &'s str,
        longest: bool,
        budget: &mut Budget,
    ) -> Result<&'s str, Limit> {
        let len = Pattern::match_start(&self.tokens, value.chars(), longest, budget)?;
        Ok(len.and_then(|len| value.get(len..)).unwrap_or(value))
    }

    /// `value` without the shortest (or longest) suffix the pattern matches: BuildKit reverses
    /// pattern and value and trims a prefix.
    pub(super) fn trim_suffix<'s>(
        &self,
        value: &'s str,
        longest: bool,
        budget: &mut Budget,
    ) -> Result<&'s str, Limit> {
        let reversed: Vec<Token> = self.tokens.iter().rev().copied().collect();
        let len = Pattern::match_start(&reversed, value.chars().rev(), longest, budget)?;
        Ok(len
            .and_then(|len| value.get(..value.len() - len))
            .unwrap_or(value))
    }

    /// The leftmost match at or after byte `from`, longest at that position (Go's leftmost-first
    /// search with greedy `.*`), in one pass: each automaton state remembers the leftmost start
    /// that reached it, since two runs in the same state have the same future.
    fn find(
        &self,
        value: &str,
        from: usize,
        budget: &mut Budget,
    ) -> Result<Option<(usize, usize)>, Limit> {
        let Some(tail) = value.get(from..) else {
            return Ok(None);
        };
        let tokens = &self.tokens;
        let n = tokens.len();
        let mut active: Vec<Option<usize>> = vec![None; n + 1];
        let mut next: Vec<Option<usize>> = vec![None; n + 1];
        let mut best: Option<(usize, usize)> = None;
        let mut chars = tail.char_indices();
        loop {
            let (pos, c) = match chars.next() {
                Some((i, c)) => (from + i, Some(c)),
                None => (value.len(), None),
            };
            if best.is_none() {
                keep_leftmost(&mut active[0], pos);
            }
            for (i, token) in tokens.iter().enumerate() {
                if *token == Token::AnyRun
                    && let Some(start) = active[i]
                {
                    keep_leftmost(&mut active[i + 1], start);
                }
            }
            if let Some(start) = active[n]
                && best.is_none_or(|(leftmost, _)| start <= leftmost)
            {
                best = Some((start, pos));
            }
            if let Some((leftmost, _)) = best {
                // Runs that started later can no longer win.
                for slot in active.iter_mut() {
                    if slot.is_some_and(|s| s > leftmost) {
                        *slot = None;
                    }
                }
            }
            let Some(c) = c else { break };
            if active.iter().all(Option::is_none) {
                break;
            }
            budget.spend(n + 1)?;
            next.fill(None);
            for (i, token) in tokens.iter().enumerate() {
                let Some(start) = active[i] else { continue };
                if token.matches(c) {
                    keep_leftmost(&mut next[i + 1], start);
                    if *token == Token::AnyRun {
                        keep_leftmost(&mut next[i], start);
                    }
                }
            }
            std::mem::swap(&mut active, &mut next);
        }
        Ok(best)
    }

    /// `${v/p/r}`: the first match replaced by `replacement` as it is.
    pub(super) fn replace_first(
        &self,
        value: &str,
        replacement: &str,
        budget: &mut Budget,
    ) -> Result<String, Limit> {
        let Some((start, end)) = self.find(value, 0, budget)? else {
            return Ok(value.to_owned());
        };
        let mut out = String::with_capacity(value.len() + replacement.len());
        out.push_str(value.get(..start).unwrap_or(""));
        out.push_str(replacement);
        out.push_str(value.get(end..).unwrap_or(""));
        if out.len() > MAX_EXPANDED_LEN {
            return Err(Limit::Length);
        }
        Ok(out)
    }

    /// `${v//p/r}`: every match replaced as Go's `Regexp.ReplaceAllString` does, so `$0` and
    /// `${0}` in the replacement stand for the match, `$$` for `$`, and any other `$name` for
    /// nothing; an empty match right after a match is not replaced.
    pub(super) fn replace_all(
        &self,
        value: &str,
        replacement: &str,
        budget: &mut Budget,
    ) -> Result<String, Limit> {
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= value.len() {
            let Some((start, end)) = self.find(value, search, budget)? else {
                break;
            };
            out.push_str(value.get(last_end..start).unwrap_or(""));
            if end > last_end || start == 0 {
                expand_template(&mut out, replacement, value.get(start..end).unwrap_or(""));
            }
            if out.len() > MAX_EXPANDED_LEN {
                return Err(Limit::Length);
            }
            last_end = end;
            let width = value
                .get(search..)
                .and_then(|s| s.chars().next())
                .map_or(0, char::len_utf8);
            search = if search + width > end {
                search + width
            } else if search + 1 > end {
                search + 1
            } else {
                end
            };
        }
        out.push_str(value.get(last_end..).unwrap_or(""));
        if out.len() > MAX_EXPANDED_LEN {
            return Err(Limit::Length);
        }
        Ok(out)
    }
}

/// Records that a run starting at `start` reached a state, keeping the leftmost start.
fn keep_leftmost(slot: &mut Option<usize>, start: usize) {
    *slot = Some(slot.map_or(start, |s| s.min(start)));
}

/// Adds the tokens reachable without reading a character: past any `*`.
fn close(tokens: &[Token], active: &mut [bool]) {
    for (i, token) in tokens.iter().enumerate() {
        if active[i] && *token == Token::AnyRun {
            active[i + 1] = true;
        }
    }
}

/// Go's `Regexp.ExpandString` for a pattern whose only group is the whole match.
fn expand_template(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match group_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(whole);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The group name after `$` (`name` or `{name}`) and the text after it, as Go's `extract`.
fn group_name(text: &str) -> Option<(&str, &str)> {
    let (braced, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, after) = body.split_at(end);
    let after = if braced {
        after.strip_prefix('}')?
    } else {
        after
    };
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trim(pattern: &str, value: &str, suffix: bool, longest: bool) -> String {
        let p = Pattern::parse(pattern).unwrap();
        let mut budget = Budget::default();
        let out = if suffix {
            p.trim_suffix(value, longest, &mut budget)
        } else {
            p.trim_prefix(value, longest, &mut budget)
        };
        out.unwrap().to_owned()
    }

    #[test]
    fn prefix_and_suffix_trimming_picks_shortest_or_longest() {
        assert_eq!(trim("*x*y", "xxyy", false, false), "y");
        assert_eq!(trim("*", "xxyy", false, false), "xxyy");
        assert_eq!(trim("*x", "xxyy", false, true), "yy");
        assert_eq!(trim("?\\?", "???y", false, false), "?y");
        assert_eq!(trim("x", "xxyy", true, false), "xxyy");
        assert_eq!(trim("\\**\\*", "a***yy*", true, true), "a");
        assert_eq!(trim("\\**", "xx**", true, true), "xx");
        assert_eq!(trim("/*", "/usr/local/bin", true, false), "/usr/local");
        assert_eq!(trim("/*", "/usr/local/bin", true, true), "");
        assert_eq!(trim("", "abc", false, true), "abc");
    }

    #[test]
    fn wildcards_stop_at_newlines_like_go_dot() {
        assert_eq!(trim("*b", "a\nb", false, false), "a\nb");
        assert_eq!(trim("a?b", "a\nb", false, false), "a\nb");
        assert_eq!(trim("*", "a\nb", false, true), "\nb");
    }

    #[test]
    fn regex_metacharacters_are_literal_and_brackets_have_no_meaning() {
        assert_eq!(
            trim("()[]{\\}^$.\\*\\?|\\\\", "()[]{}^$.*?|\\x", false, false),
            "x"
        );
        assert_eq!(trim("[ab]", "[ab]c", false, false), "c");
        assert_eq!(trim("[ab]", "ac", false, false), "ac");
    }

    #[test]
    fn invalid_escapes_are_errors() {
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> String {
        let p = Pattern::parse(pattern).unwrap();
        let mut budget = Budget::default();
        if all {
            p.replace_all(value, replacement, &mut budget).unwrap()
        } else {
            p.replace_first(value, replacement, &mut budget).unwrap()
        }
    }

    #[test]
    fn replacement_follows_go_replace_all() {
        assert_eq!(replace("\\*/", "/foo*/*/*.txt", ".", false), "/foo.*/*.txt");
        assert_eq!(replace("\\*/", "/foo*/*/*.txt", ".", true), "/foo..*.txt");
        assert_eq!(replace("/?/", "/a/foo/b/c.txt", "/", true), "/foo/c.txt");
        assert_eq!(replace("", "xxyy", "ww", false), "wwxxyy");
        assert_eq!(replace("", "xy", "-", true), "-x-y-");
        assert_eq!(replace("x*", "axxb", "-", true), "a-");
        assert_eq!(replace("*", "ab", "-", true), "-");
        assert_eq!(replace("o", "foo", "[$0]", true), "f[o][o]");
        assert_eq!(replace("o", "foo", "${0}$$$1$x$", true), "fo$$o$$");
        assert_eq!(replace("o", "foo", "$0", false), "f$0o");
    }

    /// The one-pass search agrees with trying every start in turn.
    #[test]
    fn search_agrees_with_matching_at_each_start() {
        let mut seed: u32 = 12345;
        let mut pick = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) % n
        };
        for _ in 0..5000 {
            let pattern: String = (0..pick(5))
                .map(|_| ['a', 'b', '*', '?'][pick(4) as usize])
                .collect();
            let value: String = (0..pick(8))
                .map(|_| ['a', 'b', '\n'][pick(3) as usize])
                .collect();
            let p = Pattern::parse(&pattern).unwrap();
            let mut budget = Budget::default();
            for from in 0..=value.len() {
                let naive = (from..=value.len()).find_map(|start| {
                    let rest = &value[start..];
                    Pattern::match_start(&p.tokens, rest.chars(), true, &mut budget)
                        .unwrap()
                        .map(|len| (start, start + len))
                });
                let found = p.find(&value, from, &mut budget).unwrap();
                assert_eq!(found, naive, "{pattern:?} in {value:?} from {from}");
            }
        }
    }

    #[test]
    fn a_failing_search_over_a_long_value_is_linear() {
        let value = "b".repeat(1 << 16);
        let p = Pattern::parse("*a").unwrap();
        let mut budget = Budget::default();
        assert_eq!(p.replace_all(&value, "x", &mut budget).unwrap(), value);
    }
}
