//! `--format`: Docker's Go-template subset over JSON values (`{{.ID}}`, `{{.Config.Cmd}}`,
//! `{{json .Config}}`, `{{range .RepoTags}}…{{end}}`, `{{if …}}…{{else}}…{{end}}`, pipes and
//! Docker's template functions), `table` templates laid out like Go's tabwriter, and `json`.

use serde_json::Value;
use std::fmt::Write as _;

/// A parsed `--format` value.
pub(crate) struct Format {
    nodes: Vec<Node>,
    table: bool,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

type Pipeline = Vec<Command>;
type Command = Vec<Arg>;

#[derive(Debug)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Func(String),
}

impl Format {
    /// Parses a template; a leading `table` asks for aligned columns with a header row.
    pub(crate) fn parse(text: &str) -> Result<Format, String> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start_matches([' ', '\t'])),
            None => (false, text),
        };
        let body = unescape(body);
        let tokens = lex(&body)?;
        let mut pos = 0;
        let (nodes, stop) = parse_nodes(&tokens, &mut pos)?;
        if let Some(stop) = stop {
            return Err(format!("template: unexpected {{{{{stop}}}}}"));
        }
        Ok(Format { nodes, table })
    }

    /// Renders one value.
    pub(crate) fn render(&self, dot: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, dot, &mut out)?;
        Ok(out)
    }

    /// Renders rows (one line each), with a header row made by rendering the template over
    /// `headers` (field name → column title) when this is a `table` template.
    pub(crate) fn render_rows(&self, rows: &[Value], headers: &Value) -> Result<String, String> {
        let mut lines = Vec::new();
        if self.table {
            lines.push(self.render(headers)?);
        }
        for row in rows {
            lines.push(self.render(row)?);
        }
        if self.table {
            Ok(tabwrite(&lines))
        } else {
            Ok(lines.iter().map(|l| format!("{l}\n")).collect())
        }
    }
}

/// Docker's CLI turns the two-character `\t` and `\n` of a format flag into real ones.
fn unescape(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// Lays out tab-separated cells like Go's tabwriter as Docker configures it
/// (minimum width 10, padding 3); the last cell of a line is not padded.
pub(crate) fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let width = widths.get(i).copied().unwrap_or(0);
                out.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(cell.chars().count()),
                ));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

#[derive(Debug)]
enum Token {
    Text(String),
    Action(String),
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut literal = &rest[..start];
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("template: unclosed action (missing }})".to_string());
        };
        let mut inner = &after[..end];
        if let Some(trimmed) = inner.strip_prefix('-') {
            literal = literal.trim_end();
            inner = trimmed;
        }
        let mut next = &after[end + 2..];
        if let Some(trimmed) = inner.strip_suffix('-') {
            next = next.trim_start();
            inner = trimmed;
        }
        if !literal.is_empty() {
            tokens.push(Token::Text(literal.to_string()));
        }
        tokens.push(Token::Action(inner.trim().to_string()));
        rest = next;
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

/// Parses until `end` or `else` (returned as the stop keyword) or the end of input.
fn parse_nodes(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        *pos += 1;
        match token {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(a) if a == "end" || a == "else" => return Ok((nodes, Some(a.clone()))),
            Token::Action(a) => {
                let (keyword, rest) = a.split_once(char::is_whitespace).unwrap_or((a, ""));
                match keyword {
                    "if" | "range" | "with" => {
                        let pipeline = parse_pipeline(rest)?;
                        let (body, stop) = parse_nodes(tokens, pos)?;
                        let otherwise = match stop.as_deref() {
                            Some("else") => match parse_nodes(tokens, pos)? {
                                (nodes, Some(end)) if end == "end" => nodes,
                                _ => {
                                    return Err(format!(
                                        "template: missing {{{{end}}}} for {keyword}"
                                    ));
                                }
                            },
                            Some(_) => Vec::new(),
                            None => {
                                return Err(format!("template: missing {{{{end}}}} for {keyword}"));
                            }
                        };
                        nodes.push(match keyword {
                            "if" => Node::If(pipeline, body, otherwise),
                            "range" => Node::Range(pipeline, body, otherwise),
                            _ => Node::With(pipeline, body, otherwise),
                        });
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(text: &str) -> Result<Pipeline, String> {
    let words = split_words(text)?;
    let mut pipeline = vec![Vec::new()];
    for word in words {
        if word == "|" {
            pipeline.push(Vec::new());
            continue;
        }
        let arg = if let Some(s) = word.strip_prefix('"') {
            Arg::Str(s.strip_suffix('"').unwrap_or(s).to_string())
        } else if word == "." {
            Arg::Field(Vec::new())
        } else if let Some(path) = word.strip_prefix('.') {
            Arg::Field(path.split('.').map(str::to_string).collect())
        } else if let Ok(n) = word.parse::<i64>() {
            Arg::Int(n)
        } else if word == "true" || word == "false" {
            Arg::Bool(word == "true")
        } else if word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !word.is_empty() {
            Arg::Func(word)
        } else {
            return Err(format!("template: unexpected {word:?} in {text:?}"));
        };
        if let Some(command) = pipeline.last_mut() {
            command.push(arg);
        }
    }
    if pipeline.iter().any(Vec::is_empty) {
        return Err(format!("template: empty command in {{{{{text}}}}}"));
    }
    Ok(pipeline)
}

/// Words of an action: quoted strings (with `\"` escapes) kept whole, `|` on its own.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            words.push("|".to_string());
        } else if c == '"' {
            chars.next();
            let mut word = String::from('"');
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some(other) => word.push(other),
                        None => return Err("template: unterminated string".to_string()),
                    },
                    Some('"') => break,
                    Some(other) => word.push(other),
                    None => return Err("template: unterminated string".to_string()),
                }
            }
            word.push('"');
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&display(&eval_pipeline(p, dot)?)),
            Node::If(p, body, otherwise) => {
                let branch = if truthy(&eval_pipeline(p, dot)?) {
                    body
                } else {
                    otherwise
                };
                render_nodes(branch, dot, out)?;
            }
            Node::With(p, body, otherwise) => {
                let value = eval_pipeline(p, dot)?;
                if truthy(&value) {
                    render_nodes(body, &value, out)?;
                } else {
                    render_nodes(otherwise, dot, out)?;
                }
            }
            Node::Range(p, body, otherwise) => {
                let items: Vec<Value> = match eval_pipeline(p, dot)? {
                    Value::Array(items) => items,
                    Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(format!(
                            "template: range can't iterate over {}",
                            display(&other)
                        ));
                    }
                };
                if items.is_empty() {
                    render_nodes(otherwise, dot, out)?;
                }
                for item in &items {
                    render_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(pipeline: &Pipeline, dot: &Value) -> Result<Value, String> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        piped = Some(eval_command(command, dot, piped)?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn eval_command(command: &Command, dot: &Value, piped: Option<Value>) -> Result<Value, String> {
    let Some(first) = command.first() else {
        return Ok(Value::Null);
    };
    let mut args: Vec<Value> = command
        .iter()
        .skip(1)
        .map(|a| eval_arg(a, dot))
        .collect::<Result<_, _>>()?;
    args.extend(piped);
    match first {
        Arg::Func(name) => call(name, &args),
        value if args.is_empty() => eval_arg(value, dot),
        _ => Err("template: can't give arguments to a non-function".to_string()),
    }
}

fn eval_arg(arg: &Arg, dot: &Value) -> Result<Value, String> {
    Ok(match arg {
        Arg::Field(path) => {
            let mut value = dot;
            for name in path {
                value = match value {
                    Value::Object(map) => map.get(name).unwrap_or(&Value::Null),
                    Value::Null => &Value::Null,
                    other => {
                        return Err(format!(
                            "template: can't evaluate field {name} in {}",
                            display(other)
                        ));
                    }
                };
            }
            value.clone()
        }
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Int(n) => Value::from(*n),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Func(name) => call(name, &[])?,
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => display(other),
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| -> Result<&Value, String> {
        args.get(i)
            .ok_or_else(|| format!("template: {name}: missing argument"))
    };
    Ok(match name {
        "json" => Value::String(serde_json::to_string(arg(0)?).map_err(|e| e.to_string())?),
        "upper" => Value::String(text(arg(0)?).to_uppercase()),
        "lower" => Value::String(text(arg(0)?).to_lowercase()),
        "title" => Value::String(title(&text(arg(0)?))),
        "join" => {
            let items = match arg(0)? {
                Value::Array(items) => items.iter().map(text).collect::<Vec<_>>(),
                other => vec![text(other)],
            };
            Value::String(items.join(&text(arg(1)?)))
        }
        "split" => Value::Array(
            text(arg(0)?)
                .split(&text(arg(1)?))
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        "truncate" => {
            let n = arg(1)?.as_u64().unwrap_or(0) as usize;
            Value::String(text(arg(0)?).chars().take(n).collect())
        }
        "pad" => {
            let s = text(arg(0)?);
            let before = arg(1)?.as_u64().unwrap_or(0) as usize;
            let after = arg(2)?.as_u64().unwrap_or(0) as usize;
            Value::String(format!("{}{s}{}", " ".repeat(before), " ".repeat(after)))
        }
        "len" => Value::from(match arg(0)? {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "index" => {
            let mut value = arg(0)?.clone();
            for key in args.iter().skip(1) {
                value = match (&value, key) {
                    (Value::Object(map), k) => map.get(&text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(items), k) => k
                        .as_u64()
                        .and_then(|i| items.get(i as usize).cloned())
                        .ok_or_else(|| "template: index out of range".to_string())?,
                    _ => Value::Null,
                };
            }
            value
        }
        "print" => Value::String(args.iter().map(text).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(text).collect::<Vec<_>>().join(" ")
        )),
        "eq" => Value::Bool(args.iter().skip(1).any(|v| Some(v) == args.first())),
        "ne" => Value::Bool(arg(0)? != arg(1)?),
        "not" => Value::Bool(!truthy(arg(0)?)),
        "and" => args
            .iter()
            .find(|v| !truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|v| truthy(v))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        _ => return Err(format!("template: function {name:?} not defined")),
    })
}

fn title(s: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v` of the value: `[a b]`, `map[k:v]`, `<no value>` for nothing.
fn display(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(display_inner).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut out = String::from("map[");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{k}:{}", display_inner(v));
            }
            out.push(']');
            out
        }
    }
}

/// Inside a list or map, Go prints a nil as `<nil>`.
fn display_inner(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        other => display(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, value: &Value) -> String {
        Format::parse(template).unwrap().render(value).unwrap()
    }

    #[test]
    fn renders_docker_style_templates() {
        let v = json!({"Id": "sha256:abc", "RepoTags": ["a:1", "b:2"],
            "Config": {"Cmd": ["sh", "-c"], "Env": null, "Labels": {"k": "v"}}});
        assert_eq!(render("{{.Id}}", &v), "sha256:abc");
        assert_eq!(render("{{.Config.Cmd}}", &v), "[sh -c]");
        assert_eq!(render("{{json .Config.Cmd}}", &v), r#"["sh","-c"]"#);
        assert_eq!(render("{{.Config.Labels}}", &v), "map[k:v]");
        assert_eq!(render("{{range .RepoTags}}{{.}};{{end}}", &v), "a:1;b:2;");
        assert_eq!(render("{{join .RepoTags \", \"}}", &v), "a:1, b:2");
        assert_eq!(render("{{if .Config.Env}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(render("{{.Id | upper}}", &v), "SHA256:ABC");
        assert_eq!(render("{{index .Config.Labels \"k\"}}", &v), "v");
        assert_eq!(render("{{.Missing}}", &v), "<no value>");
        assert_eq!(render("{{- .Id -}} x", &v), "sha256:abcx");
        assert!(Format::parse("{{if .Id}}").is_err());
        assert!(Format::parse("{{.Id").is_err());
        assert!(Format::parse("{{nosuch .Id}}").unwrap().render(&v).is_err());
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let f = Format::parse("table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}").unwrap();
        let headers = json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID"});
        let out = f
            .render_rows(
                &[json!({"Repository": "busybox", "Tag": "t", "ID": "0123456789ab"})],
                &headers,
            )
            .unwrap();
        assert_eq!(
            out,
            "REPOSITORY   TAG       IMAGE ID\nbusybox      t         0123456789ab\n"
        );
    }
}
