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

    /// `FROM scratch`: BuildKit's empty image has WorkingDir `/` (PATH is added later, as for
    /// every stage).
    pub fn scratch() -> StageStart {
        StageStart {
            config: ContainerConfig {
                working_dir: Some("/".to_owned()),
                ..ContainerConfig::default()
            },
            triggers: Vec::new(),
        }
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

/// The history text of a HEALTHCHECK: Go's `%+v` of Docker's HealthcheckConfig, as docker
/// build writes it (`{Test:[CMD-SHELL true] Interval:30s Timeout:0s … Retries:3}`).
pub(super) fn health_history(test: &[String], check: &crate::dockerfile::Healthcheck) -> String {
    let duration = |d: Option<std::time::Duration>| go_duration(d.map_or(0, |d| d.as_nanos()));
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_list(test),
        duration(check.interval),
        duration(check.timeout),
        duration(check.start_period),
        duration(check.start_interval),
        check.retries.unwrap_or(0)
    )
}

/// Go's `time.Duration.String()`: `0s`, `1.5ms`, `30s`, `1m30s`, `2h0m0s`.
fn go_duration(nanos: u128) -> String {
    /// `value / unit` with the remainder as a decimal fraction without trailing zeros.
    fn decimal(value: u128, unit: u128) -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let fraction = format!("{rest:0digits$}");
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }
    const SECOND: u128 = 1_000_000_000;
    match nanos {
        0 => "0s".to_owned(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", decimal(n, 1_000)),
        n if n < SECOND => format!("{}ms", decimal(n, 1_000_000)),
        n => {
            let seconds = n / SECOND;
            let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
            let mut text = String::new();
            if hours > 0 {
                text.push_str(&format!("{hours}h"));
            }
            if hours > 0 || minutes > 0 {
                text.push_str(&format!("{minutes}m"));
            }
            text.push_str(&format!("{}s", decimal(n % (60 * SECOND), SECOND)));
            text
        }
    }
}

/// `path` made absolute against the working directory `cwd`, cleaned as Go's `path.Join`.
pub(super) fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if cwd.is_empty() { "/" } else { cwd })
    };
    // `joined` is absolute, so Go's Clean gives an absolute path.
    crate::context::pattern::clean(&joined)
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
        assert_eq!(absolute("/", "/../.."), "/");
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
        assert_eq!(go_duration(2_500_000_000), "2.5s");
    }

    #[test]
    fn history_lists_read_like_docker_builds() {
        let items = vec!["python".to_string(), "app.py".to_string()];
        assert_eq!(go_quoted_list(&items), r#"["python" "app.py"]"#);
        assert_eq!(go_list(&items), "[python app.py]");
    }
}
