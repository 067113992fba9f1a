//! `--fix`: apply the mechanical rewrites findings carry, and `--diff` to show them.

use super::Finding;

/// The text with every non-overlapping fix applied (earlier fixes win on overlap).
pub fn apply(text: &str, findings: &[Finding]) -> String {
    let mut fixes: Vec<&super::Fix> = findings.iter().filter_map(|f| f.fix.as_ref()).collect();
    fixes.sort_by_key(|f| (f.start, f.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for fix in fixes {
        if fix.start < at || fix.end > text.len() || fix.start > fix.end {
            continue;
        }
        let (Some(keep), Some(_)) = (text.get(at..fix.start), text.get(fix.start..fix.end)) else {
            continue;
        };
        out.push_str(keep);
        out.push_str(&fix.replacement);
        at = fix.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    out
}

/// A unified diff of two versions of a file, one hunk per changed line run.
pub fn diff(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    // Fixes keep the line count of unchanged regions, so an LCS over lines is small work;
    // this is the classic quadratic table, bounded by Dockerfile sizes.
    let n = a.len();
    let m = b.len();
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops: Vec<(char, &str, usize, usize)> = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i], i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j], i, j));
            j += 1;
        } else {
            ops.push(('-', a[i], i, j));
            i += 1;
        }
    }
    let mut k = 0;
    while k < ops.len() {
        if ops[k].0 == ' ' {
            k += 1;
            continue;
        }
        let start = k.saturating_sub(2);
        let mut end = k;
        while end < ops.len() && (ops[end].0 != ' ' || ops[end..].iter().take(5).any(|o| o.0 != ' ')) {
            end += 1;
        }
        let end = (end + 2).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        let (old_start, new_start) = hunk.first().map_or((0, 0), |o| (o.2 + 1, o.3 + 1));
        out.push_str(&format!("@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"));
        for (op, line, _, _) in hunk {
            out.push(*op);
            out.push_str(line);
            out.push('\n');
        }
        k = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{Config, lint};

    #[test]
    fn fixes_are_applied_and_lint_clean() {
        let text = "from debian:12 AS build\nENV A 1\nMAINTAINER me <me@x.org>\nRUN true\nCMD nginx -g daemon\n";
        let report = lint(text, &Config::default());
        let fixed = apply(text, &report.findings);
        assert_eq!(
            fixed,
            "FROM debian:12 AS build\nENV A=1\nLABEL org.opencontainers.image.authors=\"me <me@x.org>\"\nRUN true\nCMD [\"nginx\", \"-g\", \"daemon\"]\n"
        );
        let again = lint(&fixed, &Config::default());
        for rule in ["ConsistentInstructionCasing", "LegacyKeyValueFormat", "DL4000", "DL3025", "FromAsCasing"] {
            assert!(!again.findings.iter().any(|f| f.rule == rule), "{rule}: {:?}", again.findings);
        }
        let d = diff("Dockerfile", text, &fixed);
        assert!(d.contains("-ENV A 1\n+ENV A=1\n"), "{d}");
    }
}
