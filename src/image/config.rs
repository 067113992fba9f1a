//! The image configuration (OCI image config plus Docker's extensions). Fields this type
//! does not name are kept in `extra` maps, so a parse → serialise round trip loses nothing.

use super::ImageError;
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::str::FromStr;

fn is_false(b: &bool) -> bool {
    !*b
}

/// An image configuration as Docker and the OCI image spec write it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Everything else (`container`, `container_config`, `docker_version`, `os.features`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The runtime defaults of an image (`config` in the image config).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Docker's container-only fields (`Hostname`, `AttachStdin`, `Image`, …) and anything newer.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// HEALTHCHECK settings; durations are nanoseconds as Docker stores them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// One step of the image's history; `empty_layer` steps added no layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ImageError> {
        serde_json::from_slice(bytes).map_err(ImageError::Config)
    }

    /// Serialises as canonical JSON (sorted keys, no insignificant whitespace): the same
    /// config always gives the same bytes and so the same image ID.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, ImageError> {
        canonical_json(self)
    }

    /// The ChainIDs of the layers, bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.rootfs.diff_ids)
    }

    /// `os/architecture[/variant]`, as `docker image inspect` and platform matching use it.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Serialises any value as canonical JSON: object keys sorted at every level.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    let mut value = serde_json::to_value(value).map_err(ImageError::Config)?;
    value.sort_all_objects();
    serde_json::to_vec(&value).map_err(ImageError::Config)
}

/// sha256 of `bytes` as an OCI digest.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    digest_from_hash(&Sha256::digest(bytes))
}

/// Turns a finished SHA-256 hash into `sha256:<hex>`.
pub fn digest_from_hash(hash: &[u8]) -> Digest {
    let text = format!("sha256:{}", hex::encode(hash));
    // 32 bytes hex-encoded are always a valid sha256 digest.
    Digest::from_str(&text).unwrap_or_else(|_| unreachable!("hex-encoded sha256 is a valid digest"))
}

/// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The host's platform in Go's names (GOOS, GOARCH, variant), as images record it.
pub fn host_platform() -> (String, String, Option<String>) {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", None),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64le", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        other => (other, None),
    };
    (
        std::env::consts::OS.to_string(),
        arch.to_string(),
        variant.map(str::to_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r#"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"Env":["PATH=/bin"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000,"Custom":1},"OnBuild":null,"Shell":["/bin/sh","-c"],"ArgsEscaped":true,"Image":"","Labels":{"a":"b"}},"container_config":{"Cmd":null},"created":"2024-01-02T03:04:05.123456789Z","docker_version":"20.10.24","history":[{"created":"2024-01-02T03:04:05Z","created_by":"/bin/sh -c #(nop) CMD [\"sh\"]","empty_layer":true,"x-future":[1]}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"]},"unknown":{"z":1,"a":2}}"#;

    #[test]
    fn keeps_unknown_fields_and_extensions() {
        let config = ImageConfig::from_slice(DOCKER_CONFIG.as_bytes()).unwrap();
        let c = config.config.as_ref().unwrap();
        assert_eq!(c.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(c.args_escaped);
        assert_eq!(
            c.healthcheck.as_ref().unwrap().interval,
            Some(30_000_000_000)
        );
        assert_eq!(c.shell.as_ref().unwrap().len(), 2);
        assert!(c.extra.contains_key("Hostname"));
        assert!(config.extra.contains_key("docker_version"));
        assert!(config.history[0].empty_layer);
        let again = ImageConfig::from_slice(&config.to_canonical_json().unwrap()).unwrap();
        assert_eq!(again, config);
        let text = String::from_utf8(config.to_canonical_json().unwrap()).unwrap();
        assert!(text.contains(r#""unknown":{"a":2,"z":1}"#), "{text}");
        assert!(text.contains(r#""x-future":[1]"#));
        assert!(text.contains(r#""Custom":1"#));
        // Keys sorted at top level: architecture < config < container_config < created …
        let keys: Vec<_> = serde_json::from_str::<serde_json::Map<String, Value>>(&text)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(text.find("\"architecture\"").unwrap() < text.find("\"unknown\"").unwrap());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256_digest(format!("{a} {b}").as_bytes()));
        assert_eq!(
            sha256_digest(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
