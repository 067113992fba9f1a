//! Output forms of a parsed Dockerfile: BuildKit's s-expression dump and rbuild's JSON.

use super::{Keyword, Node, ParsedDockerfile};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// BuildKit's `Node.Dump()` of the whole file: one `(keyword ["--flag"...] "arg" ...)` line
/// per instruction, ONBUILD nesting its instruction.
pub fn buildkit_dump(parsed: &ParsedDockerfile) -> String {
    let mut out = String::new();
    for node in &parsed.nodes {
        out.push('(');
        dump_node(node, &mut out);
        out.push_str(")\n");
    }
    out
}

fn dump_node(node: &Node, out: &mut String) {
    out.push_str(&node.keyword_text.text.to_lowercase());
    if !node.flags.is_empty() {
        out.push_str(" [");
        for (i, flag) in node.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            go_quote(&flag.text, out);
        }
        out.push(']');
    }
    if let Some(inner) = &node.onbuild {
        out.push_str(" (");
        dump_node(inner, out);
        out.push(')');
    } else if node.keyword.is_none() {
        out.push_str(" \"\"");
    } else {
        for arg in &node.args {
            out.push(' ');
            go_quote(&arg.text, out);
        }
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Go's `unicode.IsPrint`: graphic characters and the ASCII space; not controls, other
/// spaces, format characters, private use or noncharacters.
fn is_go_printable(c: char) -> bool {
    let n = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(n,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xD800..=0xF8FF | 0xFDD0..=0xFDEF | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE..=0xFFFF
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0001 | 0xE0020..=0xE007F | 0xF0000..=0x10FFFF)
        && (n & 0xFFFE) != 0xFFFE
}

/// rbuild's JSON for one file: `{"instructions": [...], "diagnostics": [...]}`. Each
/// instruction has BuildKit's keys (`cmd`, `sub_cmd`, `flags`, `value`, `json`, `start_line`,
/// `end_line`, `heredocs` as `[name, chomp, body]`; ENV and LABEL values as key, value, ...)
/// plus `span`, `flag_spans`, `arg_spans`,
/// `original` and `typed` (the typed instruction, or null when the node is not valid).
pub fn to_json(parsed: &ParsedDockerfile) -> Value {
    let mut typed = vec![Value::Null; parsed.nodes.len()];
    for instruction in &parsed.instructions {
        if let Some(slot) = typed.get_mut(instruction.node) {
            *slot = serde_json::to_value(&instruction.kind).unwrap_or(Value::Null);
        }
    }
    let instructions: Vec<Value> = parsed
        .nodes
        .iter()
        .zip(typed)
        .map(|(node, typed)| node_json(node, typed))
        .collect();
    json!({
        "directives": parsed.directives,
        "instructions": instructions,
        "diagnostics": parsed.diagnostics,
    })
}

fn node_json(node: &Node, typed: Value) -> Value {
    let (sub_cmd, body) = match &node.onbuild {
        Some(inner) => (Some(inner.keyword_str().into_owned()), inner.as_ref()),
        None => (None, node),
    };
    let value: Vec<&str> = match body.keyword {
        None => vec![""],
        // Key and value of each pair, without BuildKit's separator entries.
        Some(Keyword::Env | Keyword::Label) => body
            .args
            .chunks(3)
            .flat_map(|kv| kv.iter().take(2))
            .map(|a| a.text.as_str())
            .collect(),
        Some(_) => body.args.iter().map(|a| a.text.as_str()).collect(),
    };
    let heredocs: Vec<Value> = body
        .heredocs
        .iter()
        .map(|h| json!([h.name, h.chomp, h.content]))
        .collect();
    json!({
        "cmd": node.keyword_str(),
        "sub_cmd": sub_cmd,
        "flags": body.flags.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
        "value": value,
        "json": body.json,
        "start_line": node.start_line,
        "end_line": node.end_line,
        "heredocs": heredocs,
        "span": node.span,
        "keyword_span": node.keyword_text.span,
        "flag_spans": body.flags.iter().map(|f| f.span).collect::<Vec<_>>(),
        "arg_spans": body.args.iter().map(|a| a.span).collect::<Vec<_>>(),
        "heredoc_details": body.heredocs,
        "original": node.original,
        "typed": typed,
    })
}
