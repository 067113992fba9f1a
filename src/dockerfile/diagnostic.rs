//! Problems found while parsing, each tied to a span of the original text.

use super::span::{LineIndex, Span};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Stable identifiers of parse problems (shown in JSON output, usable in tests and tools).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticCode {
    InvalidUtf8,
    BinaryFile,
    LineTooLong,
    NoInstructions,
    DuplicateDirective,
    InvalidEscapeDirective,
    InvalidCheckDirective,
    EmptyContinuationLine,
    UnknownInstruction,
    UnterminatedHeredoc,
    InvalidHeredoc,
    JsonNotStrings,
    MissingArguments,
    TooManyArguments,
    InvalidArguments,
    UnknownFlag,
    DuplicateFlag,
    InvalidFlagValue,
    InvalidStageName,
    InvalidOnbuild,
    InvalidMount,
    InvalidChmod,
    InvalidDuration,
    InvalidPort,
    InvalidSignal,
    ShellNotJson,
}

impl DiagnosticCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticCode::InvalidUtf8 => "invalid-utf8",
            DiagnosticCode::BinaryFile => "binary-file",
            DiagnosticCode::LineTooLong => "line-too-long",
            DiagnosticCode::NoInstructions => "no-instructions",
            DiagnosticCode::DuplicateDirective => "duplicate-directive",
            DiagnosticCode::InvalidEscapeDirective => "invalid-escape-directive",
            DiagnosticCode::InvalidCheckDirective => "invalid-check-directive",
            DiagnosticCode::EmptyContinuationLine => "empty-continuation-line",
            DiagnosticCode::UnknownInstruction => "unknown-instruction",
            DiagnosticCode::UnterminatedHeredoc => "unterminated-heredoc",
            DiagnosticCode::InvalidHeredoc => "invalid-heredoc",
            DiagnosticCode::JsonNotStrings => "json-not-strings",
            DiagnosticCode::MissingArguments => "missing-arguments",
            DiagnosticCode::TooManyArguments => "too-many-arguments",
            DiagnosticCode::InvalidArguments => "invalid-arguments",
            DiagnosticCode::UnknownFlag => "unknown-flag",
            DiagnosticCode::DuplicateFlag => "duplicate-flag",
            DiagnosticCode::InvalidFlagValue => "invalid-flag-value",
            DiagnosticCode::InvalidStageName => "invalid-stage-name",
            DiagnosticCode::InvalidOnbuild => "invalid-onbuild",
            DiagnosticCode::InvalidMount => "invalid-mount",
            DiagnosticCode::InvalidChmod => "invalid-chmod",
            DiagnosticCode::InvalidDuration => "invalid-duration",
            DiagnosticCode::InvalidPort => "invalid-port",
            DiagnosticCode::InvalidSignal => "invalid-signal",
            DiagnosticCode::ShellNotJson => "shell-not-json",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: DiagnosticCode,
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn error(code: DiagnosticCode, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            span,
            message: message.into(),
        }
    }

    pub fn warning(code: DiagnosticCode, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            code,
            span,
            message: message.into(),
        }
    }

    /// `file:line:col: severity: message`, then the source line and a caret under the spot
    /// (a run of carets under the span's part on that line).
    pub fn render(&self, file: &str, source: &str) -> String {
        let index = LineIndex::new(source);
        self.render_with(file, source, &index)
    }

    /// As [`Diagnostic::render`], reusing a line index of `source`.
    pub fn render_with(&self, file: &str, source: &str, index: &LineIndex) -> String {
        let mut out = format!(
            "{}:{}:{}: {}: {}",
            file,
            self.span.line,
            self.span.column,
            self.severity.as_str(),
            self.message
        );
        let Some((start, end)) = index.line_range(self.span.line) else {
            return out;
        };
        // Long lines are cut around the spot so a 64 MiB line does not flood the terminal.
        const CONTEXT: usize = 120;
        let bytes = source.as_bytes();
        let line = bytes.get(start..end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let col = (self.span.column as usize)
            .saturating_sub(1)
            .min(line.len());
        let shown_start = floor_char(line, col.saturating_sub(CONTEXT));
        let shown_end = floor_char(line, (col + CONTEXT).min(line.len()));
        let shown = String::from_utf8_lossy(line.get(shown_start..shown_end).unwrap_or_default());
        let shown: String = shown
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let _ = write!(out, "\n{shown}\n");
        let prefix = String::from_utf8_lossy(line.get(shown_start..col).unwrap_or_default())
            .chars()
            .count();
        let width = if self.span.end_line == self.span.line && self.span.end > self.span.start {
            let stop = (self.span.end_column as usize)
                .saturating_sub(1)
                .min(shown_end);
            String::from_utf8_lossy(line.get(col..stop.max(col)).unwrap_or_default())
                .chars()
                .count()
                .max(1)
        } else {
            1
        };
        out.push_str(&" ".repeat(prefix));
        out.push_str(&"^".repeat(width));
        out
    }
}

fn floor_char(bytes: &[u8], mut i: usize) -> usize {
    while i > 0 && i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_carets() {
        let source = "FROM alpine\n\tRUN --mоunt=x echo\n";
        let index = LineIndex::new(source);
        let start = source.find("--").expect("flag");
        let d = Diagnostic::error(
            DiagnosticCode::UnknownFlag,
            index.span(start, start + "--mоunt=x".len()),
            "unknown flag: mоunt",
        );
        assert_eq!(
            d.render("Dockerfile", source),
            "Dockerfile:2:6: error: unknown flag: mоunt\n RUN --mоunt=x echo\n     ^^^^^^^^^"
        );
    }

    #[test]
    fn renders_a_window_of_a_long_line() {
        let source = format!("RUN {}", "x".repeat(10_000));
        let index = LineIndex::new(&source);
        let d = Diagnostic::warning(DiagnosticCode::LineTooLong, index.span(5000, 5001), "here");
        let text = d.render("f", &source);
        assert!(text.len() < 600, "{}", text.len());
        assert!(text.ends_with(&format!("\n{}^", " ".repeat(120))));
    }
}
