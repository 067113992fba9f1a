//! The 403 Dockerfiles of Docker's official images (../shared/corpus): each must parse and
//! give, instruction by instruction, what BuildKit's parser gives
//! (official-images.buildkit.json).

mod frontend_support;

use rbuild::dockerfile::{self, dump::to_json};
use serde_json::Value;

const KEYS: [&str; 8] = [
    "cmd",
    "sub_cmd",
    "flags",
    "value",
    "json",
    "start_line",
    "end_line",
    "heredocs",
];

#[test]
fn every_corpus_file_matches_buildkit() {
    let corpus = frontend_support::shared_dir().join("corpus");
    let reference_path = corpus.join("official-images.buildkit.json");
    let reference: serde_json::Map<String, Value> = serde_json::from_slice(
        &std::fs::read(&reference_path)
            .unwrap_or_else(|e| panic!("{}: {e}", reference_path.display())),
    )
    .expect("reference JSON");
    assert_eq!(reference.len(), 403);
    let mut differing = Vec::new();
    for (file, expected) in &reference {
        let bytes = std::fs::read(corpus.join("official-images").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = dockerfile::parse_bytes(&bytes);
        let ours = to_json(&parsed);
        let ours = ours["instructions"].as_array().cloned().unwrap_or_default();
        let Some(expected) = expected.as_array() else {
            differing.push(format!("{file}: BuildKit rejected it: {expected}"));
            continue;
        };
        if ours.len() != expected.len() {
            differing.push(format!(
                "{file}: {} instructions, BuildKit has {}",
                ours.len(),
                expected.len()
            ));
            continue;
        }
        for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
            for key in KEYS {
                if a[key] != b[key] {
                    differing.push(format!(
                        "{file}: instruction {} `{key}`: ours {} BuildKit {}",
                        i + 1,
                        a[key],
                        b[key]
                    ));
                }
            }
        }
    }
    assert!(
        differing.is_empty(),
        "{} differences:\n{}",
        differing.len(),
        differing.join("\n")
    );
}
