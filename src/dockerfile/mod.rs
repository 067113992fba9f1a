//! Dockerfile text → syntax tree (with spans) → typed instructions; word expansion. Pure: no I/O.
//!
//! [`parse`] never fails: it returns the parser directives, one [`Node`] per instruction as
//! BuildKit's parser splits it (with spans), the typed [`Instruction`]s of the nodes that are
//! valid, and every problem as a [`Diagnostic`]. A bad instruction does not stop the parse.

pub mod diagnostic;
pub mod dump;
pub mod expand;
pub mod instructions;
mod json_form;
pub mod span;
pub mod syntax;
pub mod values;
pub mod vars;

pub use diagnostic::{Diagnostic, DiagnosticCode, Severity};
pub use instructions::{
    AddInstruction, ArgDeclaration, CommandLine, CopyInstruction, FromInstruction, Healthcheck,
    HealthcheckTest, Instruction, InstructionKind, KeyValue, OnbuildInstruction, RunInstruction,
    SourcesAndDest, Typed,
};
pub use span::{LineIndex, Span};
pub use syntax::{Directive, Directives, Flag, Heredoc, Keyword, Node, Word};

use serde::Serialize;

/// Everything known about one Dockerfile.
#[derive(Clone, Debug, Serialize)]
pub struct ParsedDockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    /// Typed instructions of the valid nodes, in order; each names its node.
    pub instructions: Vec<Instruction>,
    /// All problems, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedDockerfile {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The node an instruction was typed from.
    pub fn node_of(&self, instruction: &Instruction) -> Option<&Node> {
        self.nodes.get(instruction.node)
    }

    /// Every span the parse holds: nodes (and ONBUILD's inner node) with their keyword,
    /// flags, arguments and heredocs, then the diagnostics.
    pub fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        let nodes = self
            .nodes
            .iter()
            .flat_map(|node| std::iter::once(node).chain(node.onbuild.as_deref()));
        nodes
            .flat_map(|n| {
                let heredocs = n.heredocs.iter().flat_map(|h| [h.marker_span, h.body_span]);
                [n.span, n.keyword_text.span]
                    .into_iter()
                    .chain(n.flags.iter().map(|f| f.span))
                    .chain(n.args.iter().map(|a| a.span))
                    .chain(heredocs)
            })
            .chain(self.diagnostics.iter().map(|d| d.span))
    }

    /// All diagnostics rendered (see [`Diagnostic::render`]), one block each.
    pub fn render_diagnostics(&self, file: &str, source: &str) -> String {
        let index = LineIndex::new(source);
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.render_with(file, source, &index));
            out.push('\n');
        }
        out
    }
}

/// Parses Dockerfile text. Never fails; problems are in `diagnostics`.
pub fn parse(text: &str) -> ParsedDockerfile {
    let index = LineIndex::new(text);
    if let Some(nul) = memchr::memchr(0, text.as_bytes()) {
        return binary(&index, nul);
    }
    let tree = syntax::parse_tree(text, &index);
    let mut diagnostics = tree.diagnostics;
    let instructions = tree
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| instructions::type_node(node, i, &mut diagnostics))
        .collect();
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    ParsedDockerfile {
        directives: tree.directives,
        nodes: tree.nodes,
        instructions,
        diagnostics,
    }
}

/// Parses raw bytes: invalid UTF-8 is reported (each bad byte read as `?`, so spans still
/// match the bytes) and a file with NUL bytes is reported as binary and not parsed.
pub fn parse_bytes(bytes: &[u8]) -> ParsedDockerfile {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(first) => {
            if let Some(nul) = memchr::memchr(0, bytes) {
                let text = String::from_utf8_lossy(bytes);
                return binary(&LineIndex::new(&text), nul);
            }
            let mut cleaned = Vec::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                cleaned.extend_from_slice(chunk.valid().as_bytes());
                cleaned.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
            }
            let text = String::from_utf8(cleaned).unwrap_or_default();
            let mut parsed = parse(&text);
            let at = first.valid_up_to();
            let index = LineIndex::new(&text);
            parsed.diagnostics.insert(
                0,
                Diagnostic::error(
                    DiagnosticCode::InvalidUtf8,
                    index.span(at, at + 1),
                    "invalid UTF-8: the Dockerfile must be UTF-8 text",
                ),
            );
            parsed
        }
    }
}

fn binary(index: &LineIndex, nul: usize) -> ParsedDockerfile {
    ParsedDockerfile {
        directives: Directives::default(),
        nodes: Vec::new(),
        instructions: Vec::new(),
        diagnostics: vec![Diagnostic::error(
            DiagnosticCode::BinaryFile,
            index.span(nul, nul + 1),
            "binary file: a Dockerfile holds no NUL bytes",
        )],
    }
}
