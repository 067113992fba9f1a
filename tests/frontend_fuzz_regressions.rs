//! The fuzz regression corpus (testdata/fuzz/parse: seeds and every input the fuzzer found a
//! problem with) goes through the same checks as the fuzz target on every `cargo test`.

use rbuild::dockerfile::{self, dump};
use std::path::Path;

#[test]
fn fuzz_corpus_parses_with_spans_inside_the_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz/parse");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("testdata/fuzz/parse") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let parsed = dockerfile::parse_bytes(&data);
        for span in parsed.spans() {
            assert!(
                span.start <= span.end && span.end <= data.len(),
                "{}: {span:?} outside the input",
                path.display()
            );
            assert!(
                span.line >= 1 && span.column >= 1,
                "{}: {span:?}",
                path.display()
            );
            assert!(
                (span.line, span.column) <= (span.end_line, span.end_column),
                "{}: {span:?} reversed",
                path.display()
            );
        }
        let source = String::from_utf8_lossy(&data);
        let _ = parsed.render_diagnostics("Dockerfile", &source);
        let _ = dump::buildkit_dump(&parsed);
        let _ = dump::to_json(&parsed);
        count += 1;
    }
    assert!(count >= 20, "only {count} corpus files");
}
