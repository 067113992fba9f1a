//! Configuration: hadolint's `.hadolint.yaml` keys and lookup order, merged with flags.

use super::rules::Severity;
use super::{Finding, names_finding};
use crate::dockerfile::values::CheckDirective;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Yaml {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: unknown severity {value:?} (error, warning, info, style, ignore)")]
    Severity { path: String, value: String },
    #[error(
        "{path}: label-schema {label:?}: unknown type {value:?} (text, url, semver, hash, rfc3339, spdx, email)"
    )]
    LabelType {
        path: String,
        label: String,
        value: String,
    },
}

/// What a label's value must look like (`label-schema`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelType {
    Text,
    Url,
    SemVer,
    GitHash,
    Rfc3339,
    Spdx,
    Email,
}

impl LabelType {
    pub fn parse(s: &str) -> Option<LabelType> {
        Some(match s {
            "text" => LabelType::Text,
            "url" => LabelType::Url,
            "semver" => LabelType::SemVer,
            "hash" => LabelType::GitHash,
            "rfc3339" => LabelType::Rfc3339,
            "spdx" => LabelType::Spdx,
            "email" => LabelType::Email,
            _ => return None,
        })
    }
}

/// Everything that shapes a lint run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Rules (ids or BuildKit names) never reported.
    pub ignored: Vec<String>,
    /// Severity per rule; later entries win.
    pub overrides: Vec<(String, Severity)>,
    pub trusted_registries: Vec<String>,
    pub label_schema: BTreeMap<String, LabelType>,
    pub strict_labels: bool,
    pub disable_ignore_pragma: bool,
    pub failure_threshold: Severity,
    pub no_fail: bool,
    pub format: Option<String>,
    /// `--build-arg` values, used when expanding variables.
    pub build_args: BTreeMap<String, String>,
    /// Run shellcheck over RUN scripts.
    pub shellcheck: bool,
    /// Where shellcheck's results are kept by script content (and shellcheck version), so an
    /// unchanged script is not checked again; `None` checks every script.
    pub shellcheck_cache: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ignored: Vec::new(),
            overrides: Vec::new(),
            trusted_registries: Vec::new(),
            label_schema: BTreeMap::new(),
            strict_labels: false,
            disable_ignore_pragma: false,
            failure_threshold: Severity::Info,
            no_fail: false,
            format: None,
            build_args: BTreeMap::new(),
            shellcheck: false,
            shellcheck_cache: None,
        }
    }
}

/// The file format (all keys optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    ignored: Option<Vec<String>>,
    #[serde(rename = "override")]
    override_: Option<OverrideSection>,
    #[serde(rename = "trustedRegistries")]
    trusted_registries: Option<Vec<String>>,
    #[serde(rename = "label-schema")]
    label_schema: Option<BTreeMap<String, String>>,
    #[serde(rename = "strict-labels")]
    strict_labels: Option<bool>,
    #[serde(rename = "disable-ignore-pragma")]
    disable_ignore_pragma: Option<bool>,
    #[serde(rename = "failure-threshold")]
    failure_threshold: Option<String>,
    #[serde(rename = "no-fail")]
    no_fail: Option<bool>,
    #[serde(rename = "no-color")]
    no_color: Option<bool>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideSection {
    error: Option<Vec<String>>,
    warning: Option<Vec<String>>,
    info: Option<Vec<String>>,
    style: Option<Vec<String>>,
}

impl Config {
    /// Where hadolint looks for a config file, first match wins.
    pub fn search_paths(cwd: &Path) -> Vec<PathBuf> {
        let mut paths = vec![cwd.join(".hadolint.yaml"), cwd.join(".hadolint.yml")];
        if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME") {
            paths.push(PathBuf::from(&xdg).join("hadolint.yaml"));
            paths.push(PathBuf::from(xdg).join("hadolint.yml"));
        }
        if let Some(home) = std::env::var_os("HOME") {
            let home = PathBuf::from(home);
            paths.push(home.join(".config/hadolint.yaml"));
            paths.push(home.join(".config/hadolint.yml"));
            paths.push(home.join(".hadolint/hadolint.yaml"));
            paths.push(home.join(".hadolint/hadolint.yml"));
            paths.push(home.join("hadolint/config.yaml"));
            paths.push(home.join("hadolint/config.yml"));
            paths.push(home.join(".hadolint.yaml"));
            paths.push(home.join(".hadolint.yml"));
        }
        paths
    }

    /// Reads the config file at `path` over the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config = Config::default();
        config.merge_yaml(&text, &shown)?;
        Ok(config)
    }

    /// Merges a config file's text into this config.
    pub fn merge_yaml(&mut self, text: &str, path: &str) -> Result<(), ConfigError> {
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_norway::from_str(text).map_err(|e| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                ConfigError::Yaml {
                    path: path.to_string(),
                    line,
                    column,
                    message: e.to_string(),
                }
            })?
        };
        self.ignored.extend(file.ignored.unwrap_or_default());
        if let Some(o) = file.override_ {
            for (list, severity) in [
                (o.error, Severity::Error),
                (o.warning, Severity::Warning),
                (o.info, Severity::Info),
                (o.style, Severity::Style),
            ] {
                for rule in list.unwrap_or_default() {
                    self.overrides.push((rule, severity));
                }
            }
        }
        self.trusted_registries
            .extend(file.trusted_registries.unwrap_or_default());
        for (label, kind) in file.label_schema.unwrap_or_default() {
            let parsed = LabelType::parse(&kind).ok_or_else(|| ConfigError::LabelType {
                path: path.to_string(),
                label: label.clone(),
                value: kind.clone(),
            })?;
            self.label_schema.insert(label, parsed);
        }
        if let Some(v) = file.strict_labels {
            self.strict_labels = v;
        }
        if let Some(v) = file.disable_ignore_pragma {
            self.disable_ignore_pragma = v;
        }
        if let Some(v) = file.failure_threshold {
            self.failure_threshold = Severity::parse(&v).ok_or_else(|| ConfigError::Severity {
                path: path.to_string(),
                value: v.clone(),
            })?;
        }
        if let Some(v) = file.no_fail {
            self.no_fail = v;
        }
        if file.format.is_some() {
            self.format = file.format;
        }
        let _ = file.no_color;
        Ok(())
    }

    /// The finding as configured (severity overridden), or `None` when it is not reported.
    pub fn apply(&self, mut finding: Finding, check: &CheckDirective) -> Option<Finding> {
        if self.ignored.iter().any(|r| names_finding(r, &finding)) {
            return None;
        }
        if let Some(bk) = finding.buildkit {
            let bk_only = finding.rule == bk;
            if (check.skip_all && bk_only) || check.skip.iter().any(|s| s.eq_ignore_ascii_case(bk))
            {
                return None;
            }
            // Experimental checks are off until the directive's `experimental=` names them.
            let experimental = check.experimental_all
                || check
                    .experimental
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(bk));
            if finding.severity == Severity::Ignore && experimental {
                finding.severity = Severity::Warning;
            }
            if check.error && finding.severity != Severity::Ignore {
                finding.severity = Severity::Error;
            }
        }
        if let Some((_, severity)) = self
            .overrides
            .iter()
            .rev()
            .find(|(r, _)| names_finding(r, &finding))
        {
            finding.severity = *severity;
        }
        (finding.severity != Severity::Ignore).then_some(finding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hadolint_keys() {
        let mut c = Config::default();
        c.merge_yaml(
            "ignored: [DL3006]\noverride:\n  error: [DL3008]\n  style: [StageNameCasing]\ntrustedRegistries:\n  - docker.io\nlabel-schema:\n  author: text\n  url: url\nstrict-labels: true\nfailure-threshold: warning\nno-fail: true\n",
            "x.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ignored, ["DL3006"]);
        assert_eq!(c.overrides.len(), 2);
        assert_eq!(c.label_schema.get("url"), Some(&LabelType::Url));
        assert!(c.strict_labels && c.no_fail);
        assert_eq!(c.failure_threshold, Severity::Warning);
    }

    #[test]
    fn errors_name_file_and_position() {
        let mut c = Config::default();
        let e = c
            .merge_yaml("ignored: [DL3006\n", "cfg.yaml")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.starts_with("cfg.yaml:")));
        let e = c
            .merge_yaml("failure-threshold: loud\n", "cfg.yaml")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("loud")));
    }
}
