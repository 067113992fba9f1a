//! Hostile or broken input: each gives a clear diagnostic, no panic, and the parse stays
//! linear (these run in debug builds within seconds).

use rbuild::dockerfile::{self, DiagnosticCode, ParsedDockerfile};
use std::io::Write;
use std::process::{Command, Stdio};

fn codes(parsed: &ParsedDockerfile) -> Vec<DiagnosticCode> {
    parsed.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn a_binary_file_is_reported_and_not_parsed() {
    let mut bytes = b"\x7fELF\x02\x01\x01\x00\x00\x00".to_vec();
    bytes.extend((0..=255u8).cycle().take(100_000));
    let parsed = dockerfile::parse_bytes(&bytes);
    assert_eq!(codes(&parsed), [DiagnosticCode::BinaryFile]);
    assert!(parsed.nodes.is_empty());
    assert_eq!(
        (
            parsed.diagnostics[0].span.line,
            parsed.diagnostics[0].span.column
        ),
        (1, 8)
    );
}

#[test]
fn invalid_utf8_is_reported_and_the_rest_parsed() {
    let parsed = dockerfile::parse_bytes(b"FROM alpine\nRUN echo \xff\xfe done\nUSER app\n");
    assert_eq!(codes(&parsed), [DiagnosticCode::InvalidUtf8]);
    let d = &parsed.diagnostics[0];
    assert_eq!((d.span.line, d.span.column, d.span.start), (2, 10, 21));
    assert_eq!(parsed.nodes.len(), 3);
    assert_eq!(parsed.nodes[1].args[0].text, "echo ?? done");
    assert_eq!(parsed.nodes[2].args[0].span.start, 34);
}

#[test]
fn a_64_mib_line_is_reported_and_skipped() {
    let mut text = String::from("FROM alpine\nRUN ");
    text.push_str(&"a".repeat(64 << 20));
    text.push_str("\nUSER app\n");
    let parsed = dockerfile::parse(&text);
    assert_eq!(codes(&parsed), [DiagnosticCode::LineTooLong]);
    assert_eq!(parsed.diagnostics[0].span.line, 2);
    let keywords: Vec<_> = parsed
        .nodes
        .iter()
        .map(|n| n.keyword_text.text.as_str())
        .collect();
    assert_eq!(keywords, ["FROM", "USER"]);
    let rendered = parsed.render_diagnostics("Dockerfile", &text);
    assert!(
        rendered.len() < 1000,
        "rendering printed {} bytes",
        rendered.len()
    );
    assert!(
        rendered.starts_with("Dockerfile:2:1: error: line longer than"),
        "{rendered}"
    );
}

#[test]
fn a_hundred_thousand_continuation_lines_make_one_instruction() {
    let mut text = String::from("FROM alpine\nRUN echo \\\n");
    for _ in 0..100_000 {
        text.push_str("  a \\\n");
    }
    text.push_str("  end\n");
    let parsed = dockerfile::parse(&text);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let run = &parsed.nodes[1];
    assert_eq!((run.start_line, run.end_line), (2, 100_003));
    assert!(run.args[0].text.ends_with("  a   end"));
    assert_eq!(run.args[0].span.end, text.len() - 1);
}

#[test]
fn deeply_nested_brackets_fall_back_to_the_shell_form() {
    // Continuation lines, since a physical line over 64 KiB is refused.
    let open = format!("{}\\\n", "[".repeat(1000)).repeat(1000);
    let close = format!("{}\\\n", "]".repeat(1000)).repeat(1000);
    let text = format!("CMD {open}{close}x\nCMD [{open}x\n");
    let parsed = dockerfile::parse(&text);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.nodes.len(), 2);
    assert!(parsed.nodes.iter().all(|n| !n.json && n.args.len() == 1));
}

#[test]
fn a_long_onbuild_chain_is_bounded() {
    let text = format!("FROM alpine\n{}RUN x\n", "ONBUILD \\\n".repeat(100_000));
    let parsed = dockerfile::parse(&text);
    assert_eq!(codes(&parsed), [DiagnosticCode::InvalidOnbuild]);
}

#[test]
fn an_unterminated_heredoc_at_end_of_file_is_an_error() {
    let text = "FROM alpine\nRUN <<EOF cat\nline one\nline two";
    let parsed = dockerfile::parse(text);
    assert_eq!(codes(&parsed), [DiagnosticCode::UnterminatedHeredoc]);
    let d = &parsed.diagnostics[0];
    assert_eq!((d.span.line, d.span.column, d.span.end_column), (2, 5, 10));
    assert_eq!(parsed.nodes[1].heredocs[0].content, "line one\nline two");
    assert_eq!(parsed.nodes[1].end_line, 4);
    assert_eq!(
        d.render("Dockerfile", text),
        "Dockerfile:2:5: error: unterminated heredoc: no line `EOF` ends it\nRUN <<EOF cat\n    ^^^^^"
    );
}

#[test]
fn many_heredocs_on_one_line_stay_linear() {
    let text = format!("FROM alpine\nRUN {}\nbody\n", "<<A \\\n".repeat(50_000));
    let parsed = dockerfile::parse(&text);
    assert_eq!(parsed.nodes[1].heredocs.len(), 50_000);
    assert!(
        parsed
            .errors()
            .all(|d| d.code == DiagnosticCode::UnterminatedHeredoc)
    );
}

#[test]
fn the_binary_reports_a_binary_file_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rbuild");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"FROM alpine\n\0\x01\x02")
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("-:2:1: error: binary file"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(json["diagnostics"][0]["code"], "binary-file");
}
