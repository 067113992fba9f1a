//! The expansion engine: one pass over the word, recursing into `${...}` words.

use std::borrow::Cow;

use super::pattern::{Budget, Pattern};
use super::{
    ExpandError, ExpandErrorKind, Expansion, Lexer, MAX_EXPANDED_LEN, MAX_NESTING, VarRef, Vars,
};

pub(super) fn expand<'a>(
    lexer: &Lexer,
    word: &'a str,
    vars: &dyn Vars,
    split: bool,
) -> Result<Expansion<'a>, ExpandError> {
    // Go's text/scanner, which BuildKit reads the word with, drops a leading byte order mark.
    let start = if word.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut run = Run {
        src: word,
        pos: start,
        lexer,
        vars,
        refs: Vec::new(),
        depth: 0,
        budget: Budget::default(),
    };
    let mut words = split.then(Words::default);
    let value = run.until(None, lexer.raw_escapes, words.as_mut())?;
    Ok(Expansion {
        value,
        words: words.map(Words::finish).unwrap_or_default(),
        refs: run.refs,
    })
}

struct Run<'a, 'v> {
    src: &'a str,
    pos: usize,
    lexer: &'v Lexer,
    vars: &'v dyn Vars,
    refs: Vec<VarRef<'a>>,
    depth: usize,
    budget: Budget,
}

fn error(offset: usize, kind: ExpandErrorKind) -> ExpandError {
    ExpandError { offset, kind }
}

fn append(out: &mut String, text: &str, offset: usize) -> Result<(), ExpandError> {
    if out.len().saturating_add(text.len()) > MAX_EXPANDED_LEN {
        return Err(error(offset, ExpandErrorKind::TooLong));
    }
    out.push_str(text);
    Ok(())
}

impl<'a, 'v> Run<'a, 'v> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Processes text up to the unescaped, unquoted `stop` character (consumed) or the end of
    /// the input when `stop` is `None` (BuildKit's `processStopOn`).
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        mut words: Option<&mut Words>,
    ) -> Result<String, ExpandError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.bump();
                return Ok(out);
            }
            let quoted = match ch {
                '$' => {
                    let at = self.pos;
                    let value = self.dollar()?;
                    append(&mut out, &value, at)?;
                    if let Some(w) = words.as_deref_mut() {
                        w.push_split(&value);
                    }
                    continue;
                }
                '\'' if !self.lexer.skip_quotes => self.single_quoted()?,
                '"' if !self.lexer.skip_quotes => self.double_quoted(raw_escapes)?,
                _ => {
                    self.bump();
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            out.push(ch);
                            if let Some(w) = words.as_deref_mut() {
                                w.current.push(ch);
                            }
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.bump() else { break };
                        out.push(escaped);
                        if let Some(w) = words.as_deref_mut() {
                            w.current.push(escaped);
                        }
                    } else {
                        out.push(ch);
                        if let Some(w) = words.as_deref_mut() {
                            w.push_char(ch);
                        }
                    }
                    continue;
                }
            };
            append(&mut out, &quoted, self.pos)?;
            if let Some(w) = words.as_deref_mut() {
                w.current.push_str(&quoted);
            }
        }
        match stop {
            // BuildKit's message names the stop character; callers replace it with theirs.
            Some(_) => Err(error(self.pos, ExpandErrorKind::MissingBrace)),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let open = self.pos;
        self.bump();
        let rest = self.rest();
        let Some(len) = rest.find('\'') else {
            return Err(error(open, ExpandErrorKind::UnterminatedSingleQuote));
        };
        self.pos += len + 1;
        let body = rest.get(..len).unwrap_or("");
        Ok(if self.lexer.keep_quotes {
            format!("'{body}'")
        } else {
            body.to_owned()
        })
    }

    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, ExpandError> {
        let open = self.pos;
        self.bump();
        let mut out = String::new();
        if self.lexer.keep_quotes {
            out.push('"');
        }
        let escape = self.lexer.escape;
        loop {
            match self.peek() {
                None => return Err(error(open, ExpandErrorKind::UnterminatedDoubleQuote)),
                Some('"') => {
                    self.bump();
                    if self.lexer.keep_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let at = self.pos;
                    let value = self.dollar()?;
                    append(&mut out, &value, at)?;
                }
                Some(mut ch) => {
                    self.bump();
                    if ch == escape {
                        if raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            // Only these can be escaped inside double quotes; before anything
                            // else the escape character stays.
                            Some(next) if next == '"' || next == '$' || next == escape => {
                                self.bump();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// Reads a name after `$`: a run of digits, one special parameter character, or letters,
    /// digits and underscores (BuildKit's `processName`).
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_digit(c) => {
                while self.peek().is_some_and(is_digit) {
                    self.bump();
                }
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!') => {
                self.bump();
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphabetic() || is_digit(c) || c == '_')
                {
                    self.bump();
                }
            }
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn lookup(&mut self, name: &'a str, start: usize) -> Option<Cow<'v, str>> {
        let vars = self.vars;
        let value = vars.get(name);
        self.refs.push(VarRef {
            name,
            span: start..self.pos,
            set: value.is_some(),
        });
        value
    }

    /// Expands the `$...` at the current position (BuildKit's `processDollar`).
    fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            let keep_unset = self.lexer.keep_unset;
            return Ok(match self.lookup(name, start) {
                Some(value) => value.into_owned(),
                None if keep_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.bump();
        match self.peek() {
            None => return Err(error(start, ExpandErrorKind::MissingBrace)),
            Some('{' | '}' | ':') => return Err(error(start, ExpandErrorKind::BadSubstitution)),
            Some(_) => {}
        }
        let name = self.name();
        let modifier_at = self.pos;
        match self.bump() {
            None => Err(error(start, ExpandErrorKind::MissingBrace)),
            Some('}') => {
                let keep_unset = self.lexer.keep_unset;
                Ok(match self.lookup(name, start) {
                    Some(value) => value.into_owned(),
                    None if keep_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            Some(c @ (':' | '+' | '-' | '?' | '#' | '%')) => {
                let null_is_unset = c == ':';
                let op = if null_is_unset { self.bump() } else { Some(c) };
                let modifier = self.src.get(modifier_at..self.pos).unwrap_or("");
                let pattern_word = matches!(op, Some('#' | '%'));
                let word = self.nested(start, '}', pattern_word, ExpandErrorKind::MissingBrace)?;
                self.apply_modifier(name, start, modifier_at, modifier, op, null_is_unset, word)
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.bump();
                }
                let pattern = self.nested(start, '/', true, ExpandErrorKind::MissingSlash)?;
                let replacement = self.nested(start, '}', true, ExpandErrorKind::MissingBrace)?;
                let keep_unset = self.lexer.keep_unset;
                let value = match self.lookup(name, start) {
                    Some(value) => value.into_owned(),
                    None if keep_unset => {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    None => String::new(),
                };
                let compiled = compile(&pattern, modifier_at)?;
                let result = if replace_all {
                    compiled.replace_all(&value, &replacement, &mut self.budget)
                } else {
                    compiled.replace_first(&value, &replacement, &mut self.budget)
                };
                result.map_err(|limit| error(start, limit.into()))
            }
            Some(other) => Err(error(
                modifier_at,
                ExpandErrorKind::UnsupportedModifier(other.to_string()),
            )),
        }
    }

    /// The word of a `${...}` up to `stop`, one nesting level deeper. An error at the end of
    /// the input becomes `at_end` (BuildKit reports the missing delimiter then).
    fn nested(
        &mut self,
        start: usize,
        stop: char,
        raw_escapes: bool,
        at_end: ExpandErrorKind,
    ) -> Result<String, ExpandError> {
        if self.depth >= MAX_NESTING {
            return Err(error(start, ExpandErrorKind::TooDeep));
        }
        self.depth += 1;
        let word = self.until(Some(stop), raw_escapes, None);
        self.depth -= 1;
        word.map_err(|e| {
            let limit = matches!(
                e.kind,
                ExpandErrorKind::TooDeep | ExpandErrorKind::TooLong | ExpandErrorKind::TooComplex
            );
            if self.at_end() && !limit {
                error(start, at_end)
            } else {
                e
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_modifier(
        &mut self,
        name: &'a str,
        start: usize,
        modifier_at: usize,
        modifier: &str,
        op: Option<char>,
        null_is_unset: bool,
        word: String,
    ) -> Result<String, ExpandError> {
        let keep_unset = self.lexer.keep_unset;
        let value = self.lookup(name, start);
        let set = value.is_some();
        if !set && keep_unset {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let value = value.map(Cow::into_owned).unwrap_or_default();
        let empty = null_is_unset && value.is_empty();
        match op {
            Some('-') => Ok(if !set || empty { word } else { value }),
            Some('+') => Ok(if !set || empty { String::new() } else { word }),
            Some('?') if !set => Err(required(name, start, word, "is not allowed to be unset")),
            Some('?') if empty => Err(required(name, start, word, "is not allowed to be empty")),
            Some('?') => Ok(value),
            Some(op @ ('#' | '%')) => self.trim(&value, op, &word, modifier_at, start),
            _ => Err(error(
                modifier_at,
                ExpandErrorKind::UnsupportedModifier(modifier.to_owned()),
            )),
        }
    }

    /// `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`: a doubled operator asks for the longest match.
    fn trim(
        &mut self,
        value: &str,
        op: char,
        word: &str,
        modifier_at: usize,
        start: usize,
    ) -> Result<String, ExpandError> {
        let (longest, pattern) = match word.strip_prefix(op) {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        let compiled = compile(pattern, modifier_at)?;
        let trimmed = if op == '#' {
            compiled.trim_prefix(value, longest, &mut self.budget)
        } else {
            compiled.trim_suffix(value, longest, &mut self.budget)
        };
        match trimmed {
            Ok(trimmed) => Ok(trimmed.to_owned()),
            Err(limit) => Err(error(start, limit.into())),
        }
    }
}

fn required(name: &str, start: usize, word: String, default_message: &str) -> ExpandError {
    let message = if word.is_empty() {
        default_message.to_owned()
    } else {
        word
    };
    error(
        start,
        ExpandErrorKind::Required {
            name: name.to_owned(),
            message,
        },
    )
}

fn compile(pattern: &str, offset: usize) -> Result<Pattern, ExpandError> {
    Pattern::parse(pattern).map_err(|reason| {
        error(
            offset,
            ExpandErrorKind::InvalidPattern {
                pattern: pattern.to_owned(),
                reason,
            },
        )
    })
}

/// Go's `unicode.IsDigit` for ASCII; other decimal digits as Rust's `is_numeric` sees them.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// Word splitting: unquoted, unescaped white space ends a word; empty words are dropped.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    current: String,
}

impl Words {
    fn push_char(&mut self, c: char) {
        if c.is_whitespace() {
            self.flush();
        } else {
            self.current.push(c);
        }
    }

    fn push_split(&mut self, text: &str) {
        for c in text.chars() {
            self.push_char(c);
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.done
    }
}
