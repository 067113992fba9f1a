//! How config-only instructions change a stage's image configuration, and the history text
//! docker build writes for each instruction.

use super::Stage;
use crate::image::{ContainerConfig, HealthConfig, ImageConfig};
use serde_json::Value;
use std::collections::BTreeMap;

/// The configuration a stage starts with, and the ONBUILD triggers its base left for it.
#[derive(Debug, Clone, Default)]
pub(super) struct StageStart {
    pub config: ContainerConfig,
    pub triggers: Vec<String>,
}

impl StageStart {
    pub fn empty() -> StageStart {
        StageStart::default()
    }

    pub fn from_image(image: &ImageConfig) -> StageStart {
        let mut config = image.config.clone().unwrap_or_default();
        let triggers = config.on_build.take().unwrap_or_default();
        StageStart { config, triggers }
    }

    pub fn from_stage(stage: &Stage) -> StageStart {
        let mut config = stage.config.clone();
        let triggers = config.on_build.take().unwrap_or_default();
        StageStart { config, triggers }
    }

    /// The base environment as `(name, value)` pairs.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .flatten()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (pair.clone(), String::new()),
            })
            .collect()
    }
}

/// Adds a key to one of the config's `{"key": {}}` sets (ExposedPorts, Volumes).
pub(super) fn add_to_set(set: &mut Option<BTreeMap<String, Value>>, key: String) {
    set.get_or_insert_with(BTreeMap::new)
        .insert(key, Value::Object(Default::default()));
}

/// Go's `%q` of a string list joined by spaces inside brackets: `["a" "b"]`, as docker build
/// writes CMD and ENTRYPOINT into the history.
pub(super) fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a string list: `[a b]`.
pub(super) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Nanoseconds as Docker stores HEALTHCHECK durations; zero when unset is left out.
fn nanos(duration: Option<std::time::Duration>) -> Option<i64> {
    duration
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .filter(|n| *n != 0)
}

/// The HEALTHCHECK config for a test command (`["NONE"]`, `["CMD", …]` or `["CMD-SHELL", …]`).
pub(super) fn health_config(
    test: Vec<String>,
    check: &crate::dockerfile::Healthcheck,
) -> HealthConfig {
    HealthConfig {
        test: Some(test),
        interval: nanos(check.interval),
        timeout: nanos(check.timeout),
        start_period: nanos(check.start_period),
        start_interval: nanos(check.start_interval),
        retries: check.retries.map(i64::from).filter(|r| *r != 0),
        extra: BTreeMap::new(),
    }
}

/// `path` made absolute against the working directory `cwd`, cleaned as Go's `path.Join`.
pub(super) fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if cwd.is_empty() { "/" } else { cwd })
    };
    clean(&joined)
}

/// Go's `path.Clean` for absolute paths.
pub(super) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_working_directory_as_go_does() {
        assert_eq!(absolute("/app", "src"), "/app/src");
        assert_eq!(absolute("/app", "/etc/../usr"), "/usr");
        assert_eq!(absolute("", "x/./y/"), "/x/y");
        assert_eq!(absolute("/a/b", ".."), "/a");
        assert_eq!(clean("/../.."), "/");
    }

    #[test]
    fn history_lists_read_like_docker_builds() {
        let items = vec!["python".to_string(), "app.py".to_string()];
        assert_eq!(go_quoted_list(&items), r#"["python" "app.py"]"#);
        assert_eq!(go_list(&items), "[python app.py]");
    }
}
