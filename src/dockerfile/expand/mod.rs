//! Word expansion as BuildKit's shell lexer does it (`frontend/dockerfile/shell/lex.go`):
//! `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?msg}`, `${v?msg}`,
//! `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`, single and double
//! quotes, the escape character and word splitting.
//!
//! The expander is pure: callers pass their own variable scope through [`Vars`] (see
//! [`super::vars`] for the ARG/ENV scoping of a Dockerfile) and get back the expanded text, the
//! words, and every variable reference with its byte span in the input, so that a linter can
//! point at an undefined variable and an error can point at a column.
//!
//! Deliberate limits BuildKit does not have, so hostile input cannot exhaust the machine:
//! `${...}` nests at most [`MAX_NESTING`] deep, an expansion produces at most
//! [`MAX_EXPANDED_LEN`] bytes, and pattern matching gives up after a fixed number of steps.
//! Each is a typed error with the offset of the construct.

mod instructions;
mod lexer;
mod pattern;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::ops::Range;

pub use instructions::{ArgumentExpansion, InstructionExpansion, instruction_expansion};

/// Deepest nesting of `${...}` inside the word of another `${...}`.
pub const MAX_NESTING: usize = 100;

/// Largest text one expansion may produce (the value and each intermediate string).
pub const MAX_EXPANDED_LEN: usize = 16 << 20;

/// A variable scope: the value of a variable, or `None` when it is unset.
///
/// Names compare exactly (BuildKit compares case-insensitively only on Windows).
pub trait Vars {
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        HashMap::get(self, name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        BTreeMap::get(self, name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// `(name, value)` pairs; a later pair wins, as in BuildKit's `BuildEnvs`.
impl<K: AsRef<str>, V: AsRef<str>> Vars for [(K, V)] {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| Cow::Borrowed(v.as_ref()))
    }
}

impl<T: Vars + ?Sized> Vars for &T {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        (**self).get(name)
    }
}

/// A closure as a scope: `FnVars(|name| lookup(name))`.
pub struct FnVars<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars for FnVars<F> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        (self.0)(name).map(Cow::Owned)
    }
}

/// One `$name` or `${name...}` the expander evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef<'a> {
    /// The variable name as written (`PWD`, `1`, `@`); empty for malformed input that BuildKit
    /// still evaluates, such as `${%x}`.
    pub name: &'a str,
    /// Byte range of the whole reference in the input: `$PWD` or `${PWD:-x}`.
    pub span: Range<usize>,
    /// Whether the scope had the variable (possibly empty).
    pub set: bool,
}

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion<'a> {
    /// The word with variables expanded and quotes and escapes removed (BuildKit's
    /// `ProcessWord`).
    pub value: String,
    /// The same text split into words at unquoted, unescaped white space, empty words dropped
    /// (BuildKit's `ProcessWords`).
    pub words: Vec<String>,
    /// Every variable looked up, in evaluation order (inner references before outer ones).
    pub refs: Vec<VarRef<'a>>,
}

impl<'a> Expansion<'a> {
    /// References to variables the scope did not have (the linter's UndefinedVar input).
    pub fn unset(&self) -> impl Iterator<Item = &VarRef<'a>> {
        self.refs.iter().filter(|r| !r.set)
    }
}

/// Why an expansion failed, with the byte offset in the input it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ExpandError {
    /// Byte offset in the expanded word: the opening quote, the `$` of `${`, the modifier or the
    /// pattern the error is about.
    pub offset: usize,
    pub kind: ExpandErrorKind,
}

/// The messages follow BuildKit's; BuildKit prefixes them with `failed to process "WORD": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${name?message}` or `${name:?message}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("substitutions nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("expansion longer than {MAX_EXPANDED_LEN} bytes")]
    TooLong,
    #[error("pattern matching in substitution takes too many steps")]
    TooComplex,
}

/// How to expand: the escape character and BuildKit's `Lex` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    keep_quotes: bool,
    raw_escapes: bool,
    skip_quotes: bool,
    keep_unset: bool,
}

impl Lexer {
    /// The lexer of a Dockerfile whose escape directive is `escape` (`\` or `` ` ``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            keep_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            keep_unset: false,
        }
    }

    /// The lexer BuildKit uses for heredoc bodies of COPY/ADD with an unquoted delimiter
    /// (`ExpandRaw`): escape `\` whatever the directive says, quotes left as they are.
    pub fn heredoc() -> Lexer {
        Lexer::new('\\').skip_quotes(true)
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn keep_quotes(mut self, on: bool) -> Lexer {
        self.keep_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub fn skip_quotes(mut self, on: bool) -> Lexer {
        self.skip_quotes = on;
        self
    }

    /// Leave references to unset variables as written, `$x` or `${x...}` (BuildKit's
    /// `SkipUnsetEnv`).
    pub fn keep_unset(mut self, on: bool) -> Lexer {
        self.keep_unset = on;
        self
    }

    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands `word`: value, words and references (BuildKit's `ProcessWordWithMatches`).
    pub fn expand<'a, V: Vars + ?Sized>(
        &self,
        word: &'a str,
        vars: &V,
    ) -> Result<Expansion<'a>, ExpandError> {
        let vars = FromRef(vars);
        lexer::expand(self, word, &vars, true)
    }

    /// Expands `word` to one string with quotes removed (BuildKit's `ProcessWord`).
    pub fn expand_word<V: Vars + ?Sized>(
        &self,
        word: &str,
        vars: &V,
    ) -> Result<String, ExpandError> {
        let vars = FromRef(vars);
        lexer::expand(self, word, &vars, false).map(|e| e.value)
    }

    /// Expands `word` and splits it into words (BuildKit's `ProcessWords`).
    pub fn expand_words<V: Vars + ?Sized>(
        &self,
        word: &str,
        vars: &V,
    ) -> Result<Vec<String>, ExpandError> {
        let vars = FromRef(vars);
        lexer::expand(self, word, &vars, true).map(|e| e.words)
    }
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

/// Lets the engine take `&dyn Vars` while the API accepts unsized scopes such as slices.
struct FromRef<'v, V: ?Sized>(&'v V);

impl<V: Vars + ?Sized> Vars for FromRef<'_, V> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests;
