//! Over the official-images corpus, every finding of hadolint 2.15.1
//! (official-images.hadolint.json) is reproduced by rbuild's linter at the same line, or is
//! listed below as a known hadolint false positive with the reason.
//!
//! SCxxxx findings: hadolint reports them on the RUN's first line, rbuild on the line inside
//! the RUN where shellcheck found them; they match when rbuild's line is inside the RUN that
//! starts at hadolint's line.

use rbuild::dockerfile;
use rbuild::lint::{Config, Source, lint, lint_all, shellcheck};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why hadolint's finding is wrong (the comments above each group say more).
const APT_DIST_CLEAN: &str = "apt-get dist-clean removes the apt lists";
const APK_NO_NETWORK: &str = "apk add --no-network caches nothing";
const SHELLCHECK_ON_POWERSHELL: &str = "shellcheck run over a PowerShell script";

/// hadolint findings rbuild does not reproduce, on purpose: (file, line, rule, why).
const KNOWN_HADOLINT_FALSE_POSITIVES: &[(&str, u32, &str, &str)] = &[
    // `apt-get dist-clean` (apt >= 2.7.8) removes /var/lib/apt/lists; hadolint only accepts `rm -rf /var/lib/apt/lists/*`.
    (
        "docker-library+buildpack-deps/debian__forky__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__forky__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__forky__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__sid__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__sid__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__sid__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__trixie__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__trixie__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/debian__trixie__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__noble__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__noble__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__noble__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__plucky__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__plucky__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__plucky__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__questing__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__questing__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__questing__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__resolute__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__resolute__curl__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+buildpack-deps/ubuntu__resolute__scm__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.2__trixie__apache__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.2__trixie__apache__Dockerfile",
        54,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.2__trixie__cli__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.2__trixie__fpm__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.2__trixie__zts__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.3__trixie__apache__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.3__trixie__apache__Dockerfile",
        54,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.3__trixie__cli__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.3__trixie__fpm__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.3__trixie__zts__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.4__trixie__apache__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.4__trixie__apache__Dockerfile",
        54,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.4__trixie__cli__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.4__trixie__fpm__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.4__trixie__zts__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.5__trixie__apache__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.5__trixie__apache__Dockerfile",
        54,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.5__trixie__cli__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.5__trixie__fpm__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.5__trixie__zts__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__apache__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__apache__Dockerfile",
        54,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__apache__Dockerfile",
        158,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__cli__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__cli__Dockerfile",
        98,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__fpm__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__fpm__Dockerfile",
        98,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__zts__Dockerfile",
        32,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+php/8.6-rc__trixie__zts__Dockerfile",
        98,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.10__slim-trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.10__trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.11__slim-trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.11__trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.12__slim-trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.12__trixie__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.13__slim-trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.13__trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.14__slim-trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.14__trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.15-rc__slim-trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+python/3.15-rc__trixie__Dockerfile",
        13,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+rabbitmq/4.0__ubuntu__management__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+rabbitmq/4.1__ubuntu__management__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+rabbitmq/4.2__ubuntu__management__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+rabbitmq/4.3__ubuntu__management__Dockerfile",
        18,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+ruby/3.3__slim-trixie__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+ruby/3.4__slim-trixie__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    (
        "docker-library+ruby/4.0__slim-trixie__Dockerfile",
        9,
        "DL3009",
        APT_DIST_CLEAN,
    ),
    // the stage sets `SHELL ["powershell", ...]`: hadolint runs shellcheck (a POSIX shell checker) over PowerShell code and reports syntax errors that are not there.
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2022__Dockerfile",
        22,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2022__Dockerfile",
        55,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2022__Dockerfile",
        62,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2025__Dockerfile",
        22,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2025__Dockerfile",
        55,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.26__windows__windowsservercore-ltsc2025__Dockerfile",
        62,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2022__Dockerfile",
        22,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2022__Dockerfile",
        55,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2022__Dockerfile",
        62,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2025__Dockerfile",
        22,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2025__Dockerfile",
        55,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+golang/1.27__windows__windowsservercore-ltsc2025__Dockerfile",
        62,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/1.10__windows__servercore-ltsc2022__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/1.10__windows__servercore-ltsc2025__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/1.11__windows__servercore-ltsc2022__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/1.11__windows__servercore-ltsc2025__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/rc__windows__servercore-ltsc2022__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/rc__windows__servercore-ltsc2025__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/stable__windows__servercore-ltsc2022__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+julia/stable__windows__servercore-ltsc2025__Dockerfile",
        16,
        "SC1065",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.13__windows__windowsservercore-ltsc2022__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.13__windows__windowsservercore-ltsc2025__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.14__windows__windowsservercore-ltsc2022__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.14__windows__windowsservercore-ltsc2025__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.15-rc__windows__windowsservercore-ltsc2022__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    (
        "docker-library+python/3.15-rc__windows__windowsservercore-ltsc2025__Dockerfile",
        17,
        "SC1088",
        SHELLCHECK_ON_POWERSHELL,
    ),
    // `apk add --no-network` installs from local files only, so nothing is downloaded or cached; hadolint wants `--no-cache` regardless.
    (
        "docker-library+haproxy/2.6__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/2.8__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/3.0__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/3.2__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/3.3__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/3.4__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+haproxy/3.5__alpine__Dockerfile",
        38,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+httpd/2.4__alpine__Dockerfile",
        36,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+memcached/1__alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+redis/6.2__alpine__Dockerfile",
        56,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+redis/7.0__alpine__Dockerfile",
        56,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+redis/7.2__alpine__Dockerfile",
        56,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+redis/7.4-rc__alpine__Dockerfile",
        56,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/3.3__alpine3.22__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/3.3__alpine3.23__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/3.4__alpine3.22__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/3.4__alpine3.23__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/4.0__alpine3.22__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+ruby/4.0__alpine3.23__Dockerfile",
        23,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/beta__php8.2__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/beta__php8.3__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/beta__php8.4__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/beta__php8.5__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/cli__php8.2__alpine__Dockerfile",
        22,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/cli__php8.3__alpine__Dockerfile",
        22,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/cli__php8.4__alpine__Dockerfile",
        22,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/cli__php8.5__alpine__Dockerfile",
        22,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/latest__php8.2__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/latest__php8.3__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/latest__php8.4__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
    (
        "docker-library+wordpress/latest__php8.5__fpm-alpine__Dockerfile",
        21,
        "DL3019",
        APK_NO_NETWORK,
    ),
];

fn corpus() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        here.join("../shared/corpus"),
        here.join("../../shared/corpus"),
        PathBuf::from("/work/shared/corpus"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("official-images.hadolint.json").is_file())
        .unwrap_or_else(|| {
            panic!("corpus not found: ../shared/corpus/official-images.hadolint.json")
        })
}

/// hadolint's findings in one file: (line, rule, message).
type Expected = Vec<(u32, String, String)>;

#[test]
fn every_hadolint_finding_is_reproduced() {
    let root = corpus();
    let reference: BTreeMap<String, Expected> = serde_json::from_str(
        &std::fs::read_to_string(root.join("official-images.hadolint.json"))
            .unwrap_or_else(|e| panic!("reading the reference: {e}")),
    )
    .unwrap_or_else(|e| panic!("parsing the reference: {e}"));
    let with_shellcheck = shellcheck::available();
    assert!(
        with_shellcheck,
        "shellcheck is needed for the SC part of this test (scripts/install-deps.sh installs it)"
    );
    let config = Config {
        shellcheck: true,
        ..Config::default()
    };
    let mut missing = Vec::new();
    let mut compared = 0usize;
    // hadolint could not parse some files (a DL1000) and linted nothing of them.
    let linted: Vec<(&String, &Expected, String)> = reference
        .iter()
        .filter(|(_, expected)| !expected.iter().any(|(_, code, _)| code == "DL1000"))
        .map(|(file, expected)| {
            let path = root.join("official-images").join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (file, expected, text)
        })
        .collect();
    let parse_failures_of_hadolint = reference.len() - linted.len();
    // All files in one call, as `rbuild lint` does: shellcheck runs over them in one batch.
    let sources: Vec<Source<'_>> = linted.iter().map(|(_, _, t)| Source::text(t)).collect();
    let reports = lint_all(&sources, &config);
    for ((file, expected, text), report) in linted.iter().zip(&reports) {
        let parsed = dockerfile::parse(text);
        for (line, code, _) in expected.iter() {
            compared += 1;
            let found = if code.starts_with("SC") {
                // hadolint puts SC findings on the RUN's first line; rbuild where they are.
                let run = parsed
                    .nodes
                    .iter()
                    .find(|n| n.start_line == *line)
                    .map_or((*line, *line), |n| (n.start_line, n.end_line));
                report
                    .findings
                    .iter()
                    .any(|f| &f.rule == code && run.0 <= f.line && f.line <= run.1)
            } else {
                // Same line, or the same instruction with the exact position inside it
                // (hadolint reports RUN findings on the RUN's first line).
                report
                    .findings
                    .iter()
                    .any(|f| &f.rule == code && (f.line == *line || f.instruction_line == *line))
            };
            let known = KNOWN_HADOLINT_FALSE_POSITIVES
                .iter()
                .any(|(f, l, c, _)| f == file && l == line && c == code);
            if !found && !known {
                missing.push(format!("{file}:{line} {code}"));
            }
        }
    }
    assert!(compared > 2000, "only {compared} findings compared");
    assert_eq!(parse_failures_of_hadolint, 8);
    assert!(
        missing.is_empty(),
        "{} of {compared} hadolint findings not reproduced:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn every_file_parses_and_lints() {
    let root = corpus().join("official-images");
    let mut files = 0;
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let dir = dir.unwrap_or_else(|e| panic!("{e}")).path();
        for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = file.unwrap_or_else(|e| panic!("{e}")).path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            let report = lint(&text, &Config::default());
            let name = path.display().to_string();
            // Templates of a templating step (`{{ ... }}`, seven `*.template` and mysql's
            // Dockerfile.oracle) are not Dockerfiles; every real one parses.
            if !text.contains("{{") {
                let errors: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|f| f.rule == "DL1000")
                    .collect();
                assert!(errors.is_empty(), "{name}: {errors:?}");
            }
            files += 1;
        }
    }
    assert_eq!(files, 403);
}
