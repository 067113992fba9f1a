//! Text → syntax tree: parser directives, comments, line continuations, heredocs, and one
//! [`Node`] per instruction with its keyword, flags and arguments split exactly as BuildKit's
//! parser splits them (frontend/dockerfile/parser), each with its span in the original text.
//!
//! Scanning is byte-level over the original text; a logical line that spans several physical
//! lines is copied once, with a map back to original offsets.

use super::diagnostic::{Diagnostic, DiagnosticCode};
use super::json_form::{ExecForm, parse_exec_form};
use super::span::{LineIndex, Span};
use super::values::{CheckDirective, parse_check_directive};
use serde::Serialize;
use std::borrow::Cow;

/// BuildKit reads lines with a 64 KiB scanner buffer and fails on longer ones.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// ONBUILD nests one instruction; deeper chains are kept as text (and rejected as typed
/// instructions) so hostile input cannot recurse without bound.
const MAX_ONBUILD_DEPTH: usize = 8;

/// The instruction keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword of `word`, in any case.
    pub fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    /// Upper-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    fn can_hold_heredoc(self) -> bool {
        matches!(self, Keyword::Run | Keyword::Copy | Keyword::Add)
    }
}

/// A piece of text from the file with where it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

/// A `--name[=value]` flag. `text` is the flag as BuildKit gives it (quotes and backslash
/// escapes removed, e.g. `--mount=type=cache,target=/x`); `value` is `None` for `--name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub text: String,
    pub name: String,
    pub value: Option<String>,
    pub span: Span,
}

/// A heredoc attached to an instruction: `<<EOF`, `<<-EOF` (chomp: leading tabs removed when
/// used), quoted names (`expand` false: no expansion of the body), an optional fd (`3<<EOF`).
/// `content` is the raw body, every line with its line break, without the terminator line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    pub name: String,
    pub fd: Option<u32>,
    pub chomp: bool,
    pub expand: bool,
    pub content: String,
    /// The `<<EOF` word on the instruction line.
    pub marker_span: Span,
    /// The body lines (without the terminator line).
    pub body_span: Span,
}

impl Heredoc {
    /// The body as used: with `<<-`, leading tabs removed from every line.
    pub fn body(&self) -> Cow<'_, str> {
        if !self.chomp {
            return Cow::Borrowed(&self.content);
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        Cow::Owned(out)
    }
}

/// One instruction as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `None` for an unknown instruction.
    pub keyword: Option<Keyword>,
    pub keyword_text: Word,
    pub flags: Vec<Flag>,
    /// Arguments as BuildKit splits them: ENV and LABEL as key, value, separator triplets
    /// (separator `=` or empty for the legacy `ENV k v` form); an unknown instruction has
    /// none here (BuildKit's dump shows one empty string).
    pub args: Vec<Word>,
    /// Exec (JSON array) form.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The instruction an ONBUILD holds.
    pub onbuild: Option<Box<Node>>,
    /// The logical line: continuations joined, comment lines dropped (BuildKit's `Original`).
    pub original: String,
    /// The whole instruction, heredoc bodies included.
    pub span: Span,
    pub start_line: u32,
    pub end_line: u32,
    /// Comment lines right before the instruction.
    pub comments: Vec<String>,
    /// Whether the syntax layer reported an error for this node (it is then not typed).
    pub has_error: bool,
}

impl Node {
    pub fn keyword_str(&self) -> Cow<'_, str> {
        match self.keyword {
            Some(k) => Cow::Borrowed(k.as_str()),
            None => Cow::Borrowed(&self.keyword_text.text),
        }
    }

    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }
}

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directive {
    pub name: String,
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directives {
    pub syntax: Option<Directive>,
    pub escape: Option<Directive>,
    pub check: Option<Directive>,
    /// `\` or `` ` ``.
    pub escape_char: char,
}

impl Directives {
    /// The `check` directive's settings, when present and valid.
    pub fn check_settings(&self) -> Option<CheckDirective> {
        parse_check_directive(&self.check.as_ref()?.value).ok()
    }
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: None,
            check: None,
            escape_char: '\\',
        }
    }
}

pub(crate) struct SyntaxTree {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Physical lines with their start offsets, line breaks included. A line longer than
/// [`MAX_LINE_BYTES`] is reported and read as empty (BuildKit refuses the file).
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    too_long: Vec<(usize, usize)>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = self.text.get(self.pos..).filter(|r| !r.is_empty())?;
        let len = memchr::memchr(b'\n', rest.as_bytes()).map_or(rest.len(), |i| i + 1);
        let start = self.pos;
        self.pos += len;
        let line = rest.get(..len)?;
        if len > MAX_LINE_BYTES {
            let content = trim_newline(line).len();
            self.too_long.push((start, start + content));
            return Some((start + content, line.get(content..)?));
        }
        Some((start, line))
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing line-continuation character (`escape` followed only by spaces or tabs,
/// unless itself escaped). Returns the rest and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let Some(body) = trimmed.strip_suffix(escape) else {
        return (line, true);
    };
    if !body.is_empty() && body.ends_with(escape) {
        return (line, true);
    }
    (body, false)
}

/// A logical line: its text and, per copied piece, (offset in text, offset in the file).
struct Logical<'a> {
    text: Cow<'a, str>,
    pieces: Vec<(usize, usize)>,
}

impl<'a> Logical<'a> {
    fn new(first: &'a str, offset: usize) -> Logical<'a> {
        Logical {
            text: Cow::Borrowed(first),
            pieces: vec![(0, offset)],
        }
    }

    fn push(&mut self, piece: &str, offset: usize) {
        let at = self.text.len();
        self.text.to_mut().push_str(piece);
        self.pieces.push((at, offset));
    }

    fn file_offset(&self, at: usize) -> usize {
        let i = self.pieces.partition_point(|&(l, _)| l <= at).max(1) - 1;
        let (l, f) = self.pieces.get(i).copied().unwrap_or((0, 0));
        f + (at - l)
    }

    fn span(&self, index: &LineIndex, start: usize, end: usize) -> Span {
        let file_start = self.file_offset(start);
        let file_end = if end > start {
            self.file_offset(end - 1) + 1
        } else {
            file_start
        };
        index.span(file_start, file_end)
    }

    fn word(&self, index: &LineIndex, start: usize, end: usize) -> Word {
        Word {
            text: self.text.get(start..end).unwrap_or_default().to_string(),
            span: self.span(index, start, end),
        }
    }
}

#[derive(Default)]
struct DirectiveScanner {
    done: bool,
}

impl DirectiveScanner {
    /// Looks at one line while directives are still allowed. Returns whether it was one.
    fn scan(
        &mut self,
        line: &str,
        offset: usize,
        index: &LineIndex,
        directives: &mut Directives,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> bool {
        if self.done {
            return false;
        }
        let Some((name, value)) = line.strip_prefix('#').and_then(split_directive) else {
            self.done = true;
            return false;
        };
        let lower = name.to_ascii_lowercase();
        let span = index.span(offset, offset + line.len());
        let slot = match lower.as_str() {
            "syntax" => &mut directives.syntax,
            "escape" => &mut directives.escape,
            "check" => &mut directives.check,
            _ => {
                self.done = true;
                return false;
            }
        };
        if slot.is_some() {
            diagnostics.push(Diagnostic::error(
                DiagnosticCode::DuplicateDirective,
                span,
                format!("only one {lower} parser directive can be used"),
            ));
            return false;
        }
        *slot = Some(Directive {
            name: lower.clone(),
            value: value.to_string(),
            span,
        });
        if lower == "check"
            && let Err(e) = parse_check_directive(value)
        {
            diagnostics.push(Diagnostic::warning(
                DiagnosticCode::InvalidCheckDirective,
                span,
                e.to_string(),
            ));
        }
        if lower == "escape" {
            match value {
                "\\" => directives.escape_char = '\\',
                "`" => directives.escape_char = '`',
                _ => {
                    diagnostics.push(Diagnostic::error(
                        DiagnosticCode::InvalidEscapeDirective,
                        span,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ));
                    return false;
                }
            }
        }
        true
    }
}

/// `name = value` after the `#` (BuildKit: `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` on the
/// left-trimmed text, `\s` being ASCII space, tab, CR, LF and FF).
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let is_re_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{c}');
    let text = text.trim_start();
    let name_len = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = text.split_at(name_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if !value.is_empty() {
        return Some((name, value));
    }
    // All blanks: the lazy `.+?` still takes the last one.
    let last = rest.chars().next_back()?;
    Some((name, rest.get(rest.len() - last.len_utf8()..)?))
}

pub(crate) fn parse_tree(text: &str, index: &LineIndex) -> SyntaxTree {
    let mut directives = Directives::default();
    let mut diagnostics = Vec::new();
    let mut nodes = Vec::new();
    let mut scanner = DirectiveScanner::default();
    let mut lines = Lines {
        text,
        pos: 0,
        too_long: Vec::new(),
    };
    let mut comments: Vec<String> = Vec::new();
    let mut line_no: u32 = 0;
    while let Some((mut offset, mut raw)) = lines.next() {
        if line_no == 0
            && let Some(rest) = raw.strip_prefix('\u{feff}')
        {
            raw = rest;
            offset += '\u{feff}'.len_utf8();
        }
        let untrimmed = trim_newline(raw);
        let token = untrimmed.trim_start();
        let token_offset = offset + (untrimmed.len() - token.len());
        let comment_line = token.starts_with('#');
        if comment_line {
            let comment = token[1..].trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        if scanner.scan(
            token,
            token_offset,
            index,
            &mut directives,
            &mut diagnostics,
        ) {
            comments.pop();
        }
        line_no += 1;
        let start_line = line_no;
        let token = if comment_line { "" } else { token };
        let (content, mut at_end) = trim_continuation(token, directives.escape_char);
        if at_end && content.is_empty() {
            continue;
        }
        let mut logical = Logical::new(content, token_offset);
        let mut last_end = token_offset + token.len();
        let mut empty_continuation = None;
        while !at_end {
            let Some((next_offset, next_raw)) = lines.next() else {
                break;
            };
            let next = trim_newline(next_raw);
            scanner.scan(next, next_offset, index, &mut directives, &mut diagnostics);
            line_no += 1;
            if is_comment(next) {
                continue;
            }
            if next.trim_start().is_empty() {
                empty_continuation.get_or_insert(line_no);
                continue;
            }
            let (piece, end) = trim_continuation(next, directives.escape_char);
            logical.push(piece, next_offset);
            last_end = next_offset + next.len();
            at_end = end;
        }
        if let Some(empty_line) = empty_continuation {
            let (s, e) = index.line_range(empty_line).unwrap_or((last_end, last_end));
            diagnostics.push(Diagnostic::warning(
                DiagnosticCode::EmptyContinuationLine,
                index.span(s, e),
                "empty continuation line (empty continuation lines will become errors in a future release)",
            ));
        }

        let mut builder = NodeBuilder {
            line: &logical,
            index,
            escape: directives.escape_char,
            diagnostics: &mut diagnostics,
        };
        let mut node = builder.node(0, 0);
        node.comments = std::mem::take(&mut comments);

        let heredoc_host = match node.keyword {
            Some(Keyword::Onbuild) => node.onbuild.as_deref(),
            _ => Some(&node),
        }
        .filter(|n| n.keyword.is_some_and(Keyword::can_hold_heredoc) && !n.json);
        if heredoc_host.is_some() && logical.text.contains("<<") {
            let markers = heredoc_markers(&logical.text);
            let mut heredocs = Vec::with_capacity(markers.len());
            for marker in markers {
                let marker_span = logical.span(index, marker.start, marker.end);
                let body_start = lines.pos;
                let mut body_end = body_start;
                let mut terminated = false;
                for (line_offset, line) in lines.by_ref() {
                    line_no += 1;
                    let mut candidate = trim_newline(line);
                    if marker.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == marker.name {
                        terminated = true;
                        last_end = line_offset + trim_newline(line).len();
                        break;
                    }
                    body_end = line_offset + line.len();
                    last_end = line_offset + trim_newline(line).len();
                }
                if !terminated {
                    diagnostics.push(Diagnostic::error(
                        DiagnosticCode::UnterminatedHeredoc,
                        marker_span,
                        format!("unterminated heredoc: no line `{}` ends it", marker.name),
                    ));
                    node.has_error = true;
                }
                heredocs.push(Heredoc {
                    name: marker.name,
                    fd: marker.fd,
                    chomp: marker.chomp,
                    expand: marker.expand,
                    content: text
                        .get(body_start..body_end)
                        .unwrap_or_default()
                        .to_string(),
                    marker_span,
                    body_span: index.span(body_start, body_end),
                });
            }
            match (node.keyword, node.onbuild.as_deref_mut()) {
                (Some(Keyword::Onbuild), Some(inner)) => inner.heredocs = heredocs,
                _ => node.heredocs = heredocs,
            }
        }
        node.original = logical.text.into_owned();
        node.span = index.span(token_offset, last_end.max(token_offset));
        node.start_line = start_line;
        node.end_line = line_no;
        if let Some(inner) = node.onbuild.as_deref_mut() {
            inner.start_line = start_line;
            inner.end_line = line_no;
        }
        nodes.push(node);
    }

    for &(start, end) in &lines.too_long {
        diagnostics.push(Diagnostic::error(
            DiagnosticCode::LineTooLong,
            index.span(start, end),
            format!(
                "line longer than the {} bytes BuildKit accepts; its content is ignored",
                MAX_LINE_BYTES - 1
            ),
        ));
    }
    if nodes.is_empty() {
        let end = text.len();
        diagnostics.push(Diagnostic::error(
            DiagnosticCode::NoInstructions,
            index.span(end, end),
            "file with no instructions",
        ));
    }
    SyntaxTree {
        directives,
        nodes,
        diagnostics,
    }
}

fn is_split_space(b: u8) -> bool {
    matches!(b, b'\t' | 0x0b | 0x0c | b'\r' | b' ')
}

struct NodeBuilder<'l, 'a> {
    line: &'l Logical<'a>,
    index: &'l LineIndex,
    escape: char,
    diagnostics: &'l mut Vec<Diagnostic>,
}

impl NodeBuilder<'_, '_> {
    fn text(&self) -> &str {
        &self.line.text
    }

    fn word(&self, start: usize, end: usize) -> Word {
        self.line.word(self.index, start, end)
    }

    fn error(&mut self, code: DiagnosticCode, start: usize, end: usize, message: String) {
        let span = self.line.span(self.index, start, end);
        self.diagnostics
            .push(Diagnostic::error(code, span, message));
    }

    /// The instruction starting at `from` in the logical line.
    fn node(&mut self, from: usize, depth: usize) -> Node {
        let text = self.line.text.as_ref();
        let bytes = text.as_bytes();
        let rest = text.get(from..).unwrap_or_default();
        let start = from + (rest.len() - rest.trim_start().len());
        let end = from + rest.trim_end().len();
        let end = end.max(start);
        let mut keyword_end = start;
        while keyword_end < end && !is_split_space(bytes[keyword_end]) {
            keyword_end += 1;
        }
        let keyword_text = self.word(start, keyword_end);
        let keyword = Keyword::parse(&keyword_text.text);
        let mut args_start = keyword_end;
        while args_start < end && is_split_space(bytes[args_start]) {
            args_start += 1;
        }
        let (flags, args_from) = if keyword_end < end {
            self.flags(args_start, end)
        } else {
            (Vec::new(), end)
        };
        // Arguments: TrimSpace of what follows the flags.
        let rest = text.get(args_from..end).unwrap_or_default();
        let args_start = args_from + (rest.len() - rest.trim_start().len());
        let mut node = Node {
            keyword,
            keyword_text,
            flags,
            args: Vec::new(),
            json: false,
            heredocs: Vec::new(),
            onbuild: None,
            original: String::new(),
            span: self.line.span(self.index, start, end),
            start_line: 0,
            end_line: 0,
            comments: Vec::new(),
            has_error: false,
        };
        let args_end = end.max(args_start);
        match keyword {
            None => {
                let message = format!("unknown instruction: {}", node.keyword_text.text);
                self.error(
                    DiagnosticCode::UnknownInstruction,
                    start,
                    keyword_end,
                    message,
                );
                node.has_error = true;
            }
            Some(Keyword::Add | Keyword::Copy | Keyword::Volume) => {
                if !self.exec_form(&mut node, args_start, args_end) {
                    node.args = self.whitespace_words(args_start, args_end);
                }
            }
            Some(Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell) => {
                if args_start < args_end && !self.exec_form(&mut node, args_start, args_end) {
                    node.args = vec![self.word(args_start, args_end)];
                }
            }
            Some(Keyword::Arg) => {
                node.args = split_words(&text[args_start..args_end], self.escape)
                    .into_iter()
                    .map(|(s, e)| self.word(args_start + s, args_start + e))
                    .collect();
            }
            Some(Keyword::Env | Keyword::Label) => {
                self.name_values(&mut node, args_start, args_end)
            }
            Some(Keyword::Expose | Keyword::From) => {
                node.args = self.whitespace_words(args_start, args_end);
            }
            Some(Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir) => {
                if args_start < args_end {
                    node.args = vec![self.word(args_start, args_end)];
                }
            }
            Some(Keyword::Healthcheck) => {
                let rest = &text[args_start..args_end];
                let sep = rest
                    .find(char::is_whitespace)
                    .map_or(args_end, |i| args_start + i);
                if sep > args_start {
                    node.args.push(self.word(args_start, sep));
                    let tail = &text[sep..args_end];
                    let cmd_start = sep + (tail.len() - tail.trim_start().len());
                    if cmd_start < args_end && !self.exec_form(&mut node, cmd_start, args_end) {
                        node.args.push(self.word(cmd_start, args_end));
                    }
                }
            }
            Some(Keyword::Onbuild) => {
                if args_start < args_end {
                    if depth + 1 >= MAX_ONBUILD_DEPTH {
                        node.args = vec![self.word(args_start, args_end)];
                    } else {
                        let inner = self.node(args_start, depth + 1);
                        node.has_error |= inner.has_error;
                        node.onbuild = Some(Box::new(inner));
                    }
                }
            }
        }
        node
    }

    /// Tries the JSON form; on success appends the arguments. A valid array of non-strings is an
    /// error (and counts as handled).
    fn exec_form(&mut self, node: &mut Node, start: usize, end: usize) -> bool {
        let text = &self.text()[start..end];
        match parse_exec_form(text) {
            ExecForm::NotJson => false,
            ExecForm::Strings(items) => {
                node.json = true;
                node.args
                    .extend(items.into_iter().map(|(value, s, e)| Word {
                        text: value,
                        span: self.line.span(self.index, start + s, start + e),
                    }));
                true
            }
            ExecForm::NotStrings => {
                self.error(
                    DiagnosticCode::JsonNotStrings,
                    start,
                    end,
                    "when using JSON array syntax, arrays must be comprised of strings only"
                        .to_string(),
                );
                node.json = true;
                node.has_error = true;
                true
            }
        }
    }

    fn whitespace_words(&self, start: usize, end: usize) -> Vec<Word> {
        let bytes = self.text().as_bytes();
        let mut words = Vec::new();
        let mut i = start;
        while i < end {
            let word_start = i;
            while i < end && !is_split_space(bytes[i]) {
                i += 1;
            }
            words.push(self.word(word_start, i));
            while i < end && is_split_space(bytes[i]) {
                i += 1;
            }
        }
        words
    }

    /// ENV and LABEL: `k=v ...` or the legacy `k v`.
    fn name_values(&mut self, node: &mut Node, start: usize, end: usize) {
        let text = self.line.text.as_ref();
        let words = split_words(&text[start..end], self.escape);
        let Some(&(first_start, first_end)) = words.first() else {
            return;
        };
        let name = node.keyword.map_or("", Keyword::as_str);
        if !text[start + first_start..start + first_end].contains('=') {
            let bytes = text.as_bytes();
            let mut key_end = start;
            while key_end < end && !is_split_space(bytes[key_end]) {
                key_end += 1;
            }
            let mut value_start = key_end;
            while value_start < end && is_split_space(bytes[value_start]) {
                value_start += 1;
            }
            if key_end == end {
                self.error(
                    DiagnosticCode::MissingArguments,
                    start,
                    end,
                    format!("{name} must have two arguments"),
                );
                node.has_error = true;
                return;
            }
            let sep = self.line.span(self.index, key_end, key_end);
            node.args = vec![
                self.word(start, key_end),
                self.word(value_start, end),
                Word {
                    text: String::new(),
                    span: sep,
                },
            ];
            return;
        }
        let mut args = Vec::with_capacity(words.len() * 3);
        for (s, e) in words {
            let (s, e) = (start + s, start + e);
            let Some(eq) = text[s..e].find('=') else {
                let message = format!(
                    "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                    &text[s..e]
                );
                self.error(DiagnosticCode::InvalidArguments, s, e, message);
                node.has_error = true;
                return;
            };
            args.push(self.word(s, s + eq));
            args.push(self.word(s + eq + 1, e));
            args.push(self.word(s + eq, s + eq + 1));
        }
        node.args = args;
    }

    /// BuildKit's `extractBuilderFlags`: leading words starting with `--`, with quotes and
    /// backslash escapes removed, up to the first other word or a `--` word. Returns the flags
    /// and where the arguments begin.
    fn flags(&self, start: usize, end: usize) -> (Vec<Flag>, usize) {
        #[derive(PartialEq)]
        enum Phase {
            Spaces,
            Word,
            Quote(char),
        }
        let text = &self.text()[..end];
        let mut flags = Vec::new();
        let mut phase = Phase::Spaces;
        let mut word = String::new();
        let mut word_start = start;
        let mut blank_ok = false;
        let mut chars = text[start..]
            .char_indices()
            .map(|(i, c)| (start + i, c))
            .peekable();
        let finish = |word: &str, ws: usize, we: usize, flags: &mut Vec<Flag>| {
            let (name, value) = match word.get(2..).unwrap_or_default().split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (word.get(2..).unwrap_or_default().to_string(), None),
            };
            flags.push(Flag {
                text: word.to_string(),
                name,
                value,
                span: self.line.span(self.index, ws, we),
            });
        };
        while let Some((pos, ch)) = chars.next() {
            if phase == Phase::Spaces {
                if ch.is_whitespace() {
                    continue;
                }
                if ch != '-' || chars.peek().map(|&(_, c)| c) != Some('-') {
                    return (flags, pos);
                }
                phase = Phase::Word;
                word_start = pos;
            }
            match phase {
                Phase::Word => {
                    if ch.is_whitespace() {
                        phase = Phase::Spaces;
                        if word == "--" {
                            return (flags, pos);
                        }
                        if blank_ok || !word.is_empty() {
                            finish(&word, word_start, pos, &mut flags);
                        }
                        word.clear();
                        blank_ok = false;
                        continue;
                    }
                    if ch == '\'' || ch == '"' {
                        phase = Phase::Quote(ch);
                        blank_ok = true;
                        continue;
                    }
                    let ch = if ch == '\\' {
                        match chars.next() {
                            Some((_, next)) => next,
                            None => continue,
                        }
                    } else {
                        ch
                    };
                    word.push(ch);
                }
                Phase::Quote(quote) => {
                    if ch == quote {
                        phase = Phase::Word;
                        continue;
                    }
                    let ch = if ch == '\\' {
                        match chars.next() {
                            Some((_, next)) => next,
                            None => {
                                phase = Phase::Word;
                                continue;
                            }
                        }
                    } else {
                        ch
                    };
                    word.push(ch);
                }
                Phase::Spaces => {}
            }
        }
        if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
            finish(&word, word_start, end, &mut flags);
        }
        (flags, end)
    }
}

/// BuildKit's `parseWords`: whitespace-separated words, quotes and escapes kept, quotes
/// grouping blanks; an escape character at the very end is dropped. Byte ranges in `text`.
pub(crate) fn split_words(text: &str, escape: char) -> Vec<(usize, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut start = 0;
    let mut blank_ok = false;
    let mut dropped_escape = false;
    let mut chars = text.char_indices().peekable();
    while let Some((pos, ch)) = chars.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || pos > start {
                        words.push((start, pos));
                    }
                    phase = Phase::Spaces;
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == escape && chars.next().is_none() {
                    dropped_escape = true;
                }
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                } else if ch == escape && quote != '\'' && chars.next().is_none() {
                    phase = Phase::Word;
                    dropped_escape = true;
                }
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces {
        let end = text.len() - if dropped_escape { escape.len_utf8() } else { 0 };
        if blank_ok || end > start {
            words.push((start, end));
        }
    }
    words
}

struct HeredocMarker {
    name: String,
    fd: Option<u32>,
    chomp: bool,
    expand: bool,
    start: usize,
    end: usize,
}

/// The heredocs a line opens, in order: every shell word of the form `[fd]<<[-]NAME`.
fn heredoc_markers(line: &str) -> Vec<HeredocMarker> {
    let mut markers = Vec::new();
    for (start, end) in shell_words(line) {
        let word = &line[start..end];
        let digits = word.bytes().take_while(u8::is_ascii_digit).count();
        let Some(after) = word[digits..].strip_prefix("<<") else {
            continue;
        };
        let (chomp, name) = match after.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, after),
        };
        if name.is_empty() || name.contains('<') {
            continue;
        }
        let Some((name, quoted)) = unquote_heredoc_name(name) else {
            continue;
        };
        let fd = if digits > 0 {
            Some(word[..digits].parse().unwrap_or(u32::MAX))
        } else {
            None
        };
        markers.push(HeredocMarker {
            name,
            fd,
            chomp,
            expand: !quoted,
            start,
            end,
        });
    }
    markers
}

/// Shell words with quotes and escapes kept (BuildKit lexes the line with raw quotes and
/// escapes, `\` as escape, variables untouched): blanks inside quotes or `${...}` do not split.
fn shell_words(line: &str) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut braces = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                }
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    braces += 1;
                    i += 2;
                }
                b'}' if braces > 0 => {
                    braces -= 1;
                    i += 1;
                }
                b if braces == 0 && (b as char).is_ascii_whitespace() => break,
                _ => i += 1,
            }
        }
        let end = i.min(bytes.len());
        words.push((start, end));
        i = end;
    }
    words
}

/// The heredoc name with quotes removed and whether any part was quoted; `None` when it is
/// not one word.
fn unquote_heredoc_name(raw: &str) -> Option<(String, bool)> {
    let mut name = String::with_capacity(raw.len());
    let mut quoted = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    name.push(c);
                }
            }
            '"' => {
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => name.push(chars.next()?),
                        _ => name.push(c),
                    }
                }
            }
            '\\' => name.push(chars.next()?),
            c if c.is_whitespace() => return None,
            c => name.push(c),
        }
    }
    (!name.is_empty()).then_some((name, quoted))
}
