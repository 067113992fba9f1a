//! Why a step missed the cache: its inputs compared with those the same step position had
//! at its last build. No other builder tells its users this.

use crate::context::SourceHash;
use crate::store::{CacheRecord, Store};
use oci_spec::image::Digest;
use serde_json::Value;

/// The last build of a step position, read once on a miss: to explain it and, for a COPY, to
/// start from.
pub(super) struct Earlier {
    pub record: CacheRecord,
    /// What went into its key.
    pub inputs: Value,
    /// The content hashes of its sources, entry by entry.
    pub sources: Vec<SourceHash>,
}

/// The step position's last build, when still in the cache.
pub(super) fn earlier(store: &Store, previous: &Digest) -> Option<Earlier> {
    let record = store.cache_record(previous).ok()??;
    let inputs: Value = serde_json::from_str(record.inputs.get()).ok()?;
    let sources = store
        .cache_sources(previous)
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Some(Earlier {
        record,
        inputs,
        sources,
    })
}

/// One sentence naming what changed since the last build (`previous`, found as `earlier` when
/// still in the cache); `now` are the step's inputs, `sources` its sources' hashes.
pub(super) fn explain(
    previous: Option<&Digest>,
    earlier: Option<&Earlier>,
    now: &Value,
    sources: &[SourceHash],
) -> String {
    if previous.is_none() {
        return "no earlier build of this step".to_owned();
    }
    let Some(earlier) = earlier else {
        return "the earlier build of this step is no longer in the cache".to_owned();
    };
    let before = &earlier.inputs;
    if before["instruction"] != now["instruction"] {
        return "the instruction changed".to_owned();
    }
    if let Some(reason) = changed_env(&before["op"], &now["op"]) {
        return reason;
    }
    if let Some(reason) = changed_sources(&earlier.sources, sources) {
        return reason;
    }
    if before["parent"] != now["parent"] {
        return "the parent step re-ran or the base image changed".to_owned();
    }
    if before["from"] != now["from"] {
        return "a stage it copies from changed".to_owned();
    }
    if before["op"] != now["op"] {
        return "the step's settings (user, working directory, shell or mounts) changed".to_owned();
    }
    "its layer is no longer in the store".to_owned()
}

/// `build arg X changed` / `ENV X changed` when a RUN's environment differs.
fn changed_env(before: &Value, now: &Value) -> Option<String> {
    let pairs = |op: &Value| -> Vec<(String, String)> {
        op["run"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let (old, new) = (pairs(before), pairs(now));
    let value = |list: &[(String, String)], name: &str| {
        list.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let mut names: Vec<&String> = old.iter().chain(new.iter()).map(|(k, _)| k).collect();
    names.dedup();
    names
        .into_iter()
        .find(|name| value(&old, name) != value(&new, name))
        .map(|name| {
            let is_arg = now["run"]["arg_names"]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(name)));
            if is_arg {
                format!("build arg {name} changed")
            } else {
                format!("ENV {name} changed")
            }
        })
}

/// `file path/in/context changed` from the content hashes of the sources.
fn changed_sources(old: &[SourceHash], new: &[SourceHash]) -> Option<String> {
    if old == new {
        return None;
    }
    for new_hash in new {
        match old.iter().find(|o| o.source == new_hash.source) {
            Some(old_hash) if old_hash.digest != new_hash.digest => {
                let changes = new_hash.changes_since(old_hash);
                let shown: Vec<String> = changes.iter().take(3).map(ToString::to_string).collect();
                if shown.is_empty() {
                    return Some(format!("the files of {} changed", new_hash.source));
                }
                let more = changes.len().saturating_sub(3);
                let suffix = if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                };
                return Some(format!("{}{suffix}", shown.join(", ")));
            }
            None => return Some(format!("source {} is new", new_hash.source)),
            _ => {}
        }
    }
    Some("the sources changed".to_owned())
}
