//! Registry credentials in Docker's format: `~/.docker/config.json` (or `$DOCKER_CONFIG`,
//! or `REGISTRY_AUTH_FILE` as Podman and Buildah use it) with `auths`, `credsStore`,
//! `credHelpers` (`docker-credential-*` programs) and identity tokens.

use super::Error;
use super::auth::Credential;
use super::name::{DOCKER_HUB, server_host};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker files Docker Hub credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// What a credential helper's `Username` says when `Secret` is an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// One credentials file and the helpers it names.
#[derive(Debug, Clone)]
pub struct CredentialFile {
    path: PathBuf,
}

impl CredentialFile {
    /// The file Docker (or, with `REGISTRY_AUTH_FILE`, Podman) would use.
    pub fn default_location() -> Result<Self, Error> {
        if let Some(path) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
            return Ok(CredentialFile::at(PathBuf::from(path)));
        }
        let dir = match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME").ok_or_else(|| Error::CredentialsFile {
                    path: "~/.docker/config.json".into(),
                    reason: "HOME is not set (set REGISTRY_AUTH_FILE or DOCKER_CONFIG)".into(),
                })?;
                PathBuf::from(home).join(".docker")
            }
        };
        Ok(CredentialFile::at(dir.join("config.json")))
    }

    pub fn at(path: PathBuf) -> Self {
        CredentialFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::CredentialsFile {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<Map<String, Value>, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(self.error("not a JSON object")),
                Err(e) => Err(self.error(e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// Replaces the file atomically, readable by its owner only (it holds secrets).
    fn write(&self, config: &Map<String, Value>) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(e.to_string()))?;
        let text = serde_json::to_string_pretty(config).map_err(|e| self.error(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.error(e.to_string()));
        }
        Ok(())
    }

    /// The helper configured for `host`: `credHelpers[host]`, else `credsStore`.
    fn helper_for(config: &Map<String, Value>, host: &str) -> Option<String> {
        let helpers = config.get("credHelpers").and_then(Value::as_object);
        helper_keys(host)
            .iter()
            .find_map(|key| helpers.and_then(|h| h.get(key)).and_then(Value::as_str))
            .or_else(|| config.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// The credential for a registry host (`docker.io`, `localhost:5000`), if any.
    pub fn get(&self, host: &str) -> Result<Option<Credential>, Error> {
        let config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, host) {
            return helper_get(&helper, &server_url(host));
        }
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths
            .iter()
            .find(|(key, _)| server_host(key) == server_host(host))
            .map(|(_, entry)| entry);
        let Some(entry) = entry else {
            return Ok(None);
        };
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credential::IdentityToken {
                token: token.to_string(),
            }));
        }
        let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| self.error(format!("auths[{host}].auth: {e}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| self.error(format!("auths[{host}].auth is not UTF-8")))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| self.error(format!("auths[{host}].auth is not user:password")))?;
        Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }))
    }

    /// Saves credentials as `docker login` does: in the helper when one is configured, else
    /// base64 in `auths`. Other entries and settings in the file are kept.
    pub fn store(&self, host: &str, username: &str, password: &str) -> Result<(), Error> {
        let mut config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, host) {
            let request =
                json!({"ServerURL": server_url(host), "Username": username, "Secret": password});
            run_helper(&helper, "store", request.to_string().as_bytes())?;
            // Docker keeps an empty entry so `docker info` lists the registry.
            auths_mut(&mut config).insert(server_url(host), json!({}));
        } else {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            let auths = auths_mut(&mut config);
            auths.retain(|key, _| server_host(key) != server_host(host));
            auths.insert(server_url(host), json!({ "auth": auth }));
        }
        self.write(&config)
    }

    /// Forgets the credentials for `host`; false when there were none.
    pub fn erase(&self, host: &str) -> Result<bool, Error> {
        let mut config = self.read()?;
        let mut found = false;
        if let Some(helper) = Self::helper_for(&config, host) {
            found = run_helper(&helper, "erase", server_url(host).as_bytes()).is_ok();
        }
        let auths = auths_mut(&mut config);
        let before = auths.len();
        auths.retain(|key, _| server_host(key) != server_host(host));
        found |= auths.len() != before;
        if found {
            self.write(&config)?;
        }
        Ok(found)
    }
}

fn auths_mut(config: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    match auths {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

/// The server URL Docker uses as the key for a host.
fn server_url(host: &str) -> String {
    if server_host(host) == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

/// Keys under which a helper may be configured for `host`.
fn helper_keys(host: &str) -> Vec<String> {
    if server_host(host) == DOCKER_HUB {
        vec![
            DOCKER_HUB.into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
            DOCKER_HUB_KEY.into(),
        ]
    } else {
        vec![host.to_string()]
    }
}

/// Runs `docker-credential-HELPER ACTION` with `input` on stdin; returns its stdout.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::CredentialHelper {
        helper: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("writing its input: {e}")))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout).trim().to_string()
            + String::from_utf8_lossy(&output.stderr).trim();
        return Err(fail(format!("{action} failed: {message}")));
    }
    Ok(output.stdout)
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>, Error> {
    let output = match run_helper(helper, "get", server.as_bytes()) {
        Ok(output) => output,
        // The helpers' agreed answer for "nothing stored".
        Err(Error::CredentialHelper { reason, .. }) if reason.contains("credentials not found") => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        username: String,
        secret: String,
    }
    let reply: Reply = serde_json::from_slice(&output).map_err(|e| Error::CredentialHelper {
        helper: format!("docker-credential-{helper}"),
        reason: format!("invalid reply: {e}"),
    })?;
    Ok(Some(if reply.username == TOKEN_USERNAME {
        Credential::IdentityToken {
            token: reply.secret,
        }
    } else {
        Credential::Basic {
            username: reply.username,
            password: reply.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_get_erase_roundtrip_keeps_other_settings_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other:5000":{"auth":"dTpw"}},"psFormat":"table"}"#,
        )
        .unwrap();
        let file = CredentialFile::at(path.clone());
        file.store("docker.io", "alice", "s3:cret").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written["psFormat"], "table");
        assert_eq!(
            written["auths"][DOCKER_HUB_KEY]["auth"],
            base64::engine::general_purpose::STANDARD.encode("alice:s3:cret")
        );
        assert_eq!(
            file.get("docker.io").unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3:cret".into()
            })
        );
        assert_eq!(
            file.get("other:5000").unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(file.erase("docker.io").unwrap());
        assert!(!file.erase("docker.io").unwrap());
        assert_eq!(file.get("docker.io").unwrap(), None);
        assert!(file.get("other:5000").unwrap().is_some());
    }

    #[test]
    fn identity_tokens_and_scheme_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:443/v2/":{"auth":"","identitytoken":"refresh"}}}"#,
        )
        .unwrap();
        let file = CredentialFile::at(path);
        assert_eq!(
            file.get("reg.example:443").unwrap(),
            Some(Credential::IdentityToken {
                token: "refresh".into()
            })
        );
        assert_eq!(file.get("missing.example").unwrap(), None);
    }

    #[test]
    fn broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = CredentialFile::at(path).get("docker.io").unwrap_err();
        assert!(error.to_string().contains("config.json"), "{error}");
    }
}
