//! Any bytes: parsing, typing, both dumps and diagnostic rendering must not panic, and every
//! span must lie inside the input, 1-based and in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild::dockerfile::{self, dump};

fuzz_target!(|data: &[u8]| {
    let parsed = dockerfile::parse_bytes(data);
    for span in parsed.spans() {
        assert!(
            span.start <= span.end && span.end <= data.len(),
            "{span:?} outside the input"
        );
        assert!(span.line >= 1 && span.column >= 1, "{span:?} not 1-based");
        assert!(
            (span.line, span.column) <= (span.end_line, span.end_column),
            "{span:?} reversed"
        );
    }
    let source = String::from_utf8_lossy(data);
    let _ = parsed.render_diagnostics("Dockerfile", &source);
    let _ = dump::buildkit_dump(&parsed);
    let _ = dump::to_json(&parsed);
});
