//! Any bytes: parsing, typing, both dumps and diagnostic rendering must not panic, and every
//! span must lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild::dockerfile::{self, Span, dump};

fn check(span: Span, len: usize) {
    assert!(span.start <= span.end && span.end <= len, "span {span:?} outside 0..{len}");
    assert!(span.line >= 1 && span.column >= 1, "span {span:?} not 1-based");
    assert!((span.line, span.column) <= (span.end_line, span.end_column), "span {span:?} reversed");
}

fuzz_target!(|data: &[u8]| {
    let parsed = dockerfile::parse_bytes(data);
    let len = data.len();
    for node in &parsed.nodes {
        check(node.span, len);
        check(node.keyword_text.span, len);
        let inner = node.onbuild.as_deref();
        for n in std::iter::once(node).chain(inner) {
            n.flags.iter().for_each(|f| check(f.span, len));
            n.args.iter().for_each(|a| check(a.span, len));
            for h in &n.heredocs {
                check(h.marker_span, len);
                check(h.body_span, len);
            }
        }
    }
    for d in &parsed.diagnostics {
        check(d.span, len);
    }
    let source = String::from_utf8_lossy(data);
    let _ = parsed.render_diagnostics("Dockerfile", &source);
    let _ = dump::buildkit_dump(&parsed);
    let _ = dump::to_json(&parsed);
});
