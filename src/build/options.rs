//! What a build is asked to do: `docker build`'s options as typed values.
//!
//! Each option with a mini-language of its own (`--secret`, `--output`, `--add-host`,
//! `--network`, `--build-arg`) parses here with `FromStr`, so the CLI only collects strings and
//! every error names the flag and the offending value.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use thiserror::Error;

/// A flag value that does not parse; the message names the flag and the value.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {flag} value {value:?}: {reason}")]
pub struct OptionError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

impl OptionError {
    fn new(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        OptionError {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Splits `k=v,k2=v2` option lists as docker's CSV-like flags do, rejecting keys without `=`.
fn key_values<'a>(
    flag: &'static str,
    spec: &'a str,
) -> Result<Vec<(&'a str, &'a str)>, OptionError> {
    spec.split(',')
        .filter(|field| !field.is_empty())
        .map(|field| {
            field
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| OptionError::new(flag, spec, format!("{field:?} is not key=value")))
        })
        .collect()
}

/// `--build-arg NAME[=VALUE]`: without a value it is taken from the environment, and dropped
/// when the environment does not have it, as docker build does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArg {
    pub name: String,
    pub value: Option<String>,
}

impl BuildArg {
    /// The value this build uses, reading the environment for a bare `NAME`.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
        let value = match &self.value {
            Some(v) => Some(v.clone()),
            None => env(&self.name),
        };
        value.map(|v| (self.name.clone(), v))
    }
}

impl FromStr for BuildArg {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (s, None),
        };
        if name.is_empty() {
            return Err(OptionError::new("--build-arg", s, "the name is empty"));
        }
        Ok(BuildArg {
            name: name.to_string(),
            value,
        })
    }
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `--secret id=ID[,type=file|env][,src=PATH|source=PATH][,env=VAR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
}

impl Secret {
    /// Parses the spec; `env_has` says whether an environment variable exists, for the bare
    /// `id=NAME` form, which reads the variable NAME if set and the file NAME otherwise.
    pub fn parse(spec: &str, env_has: impl Fn(&str) -> bool) -> Result<Secret, OptionError> {
        const FLAG: &str = "--secret";
        let (mut id, mut kind, mut src, mut env) = (None, None, None, None);
        for (key, value) in key_values(FLAG, spec)? {
            match key {
                "id" => id = Some(value),
                "type" => kind = Some(value),
                "src" | "source" => src = Some(value),
                "env" => env = Some(value),
                other => {
                    return Err(OptionError::new(
                        FLAG,
                        spec,
                        format!("unknown key {other:?}"),
                    ));
                }
            }
        }
        let id = id
            .or(src.or(env))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| OptionError::new(FLAG, spec, "id is missing"))?;
        let source = match (kind, src, env) {
            (Some("env"), src, env) => SecretSource::Env(env.or(src).unwrap_or(id).to_string()),
            (Some("file") | None, Some(path), None) => SecretSource::File(PathBuf::from(path)),
            (None, None, Some(var)) => SecretSource::Env(var.to_string()),
            (Some("file"), None, None) => SecretSource::File(PathBuf::from(id)),
            (None, None, None) if env_has(id) => SecretSource::Env(id.to_string()),
            (None, None, None) => SecretSource::File(PathBuf::from(id)),
            (Some(t), _, _) if t != "file" => {
                return Err(OptionError::new(FLAG, spec, format!("unknown type {t:?}")));
            }
            _ => {
                return Err(OptionError::new(
                    FLAG,
                    spec,
                    "give either src or env, not both",
                ));
            }
        };
        Ok(Secret {
            id: id.to_string(),
            source,
        })
    }
}

/// `--add-host HOST:IP` (or `HOST=IP`): a line added to the build's /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub ip: std::net::IpAddr,
}

impl FromStr for HostEntry {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        const FLAG: &str = "--add-host";
        // `=` first: an IPv6 address has colons of its own.
        let (host, ip) = s
            .split_once('=')
            .or_else(|| s.split_once(':'))
            .ok_or_else(|| OptionError::new(FLAG, s, "expected HOST:IP"))?;
        if host.is_empty() {
            return Err(OptionError::new(FLAG, s, "the host name is empty"));
        }
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip = ip
            .parse()
            .map_err(|_| OptionError::new(FLAG, s, format!("{ip:?} is not an IP address")))?;
        Ok(HostEntry {
            host: host.to_string(),
            ip,
        })
    }
}

/// `--network` for RUN steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The host's network, as BuildKit's default for builds.
    #[default]
    Default,
    None,
    Host,
}

impl FromStr for NetworkMode {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        match s {
            "default" => Ok(NetworkMode::Default),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            _ => Err(OptionError::new(
                "--network",
                s,
                "expected default, none or host",
            )),
        }
    }
}

/// Where `--output` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The local store, under every `-t` name (the default).
    Image,
    /// Pushed to the registry of every `-t` name.
    Registry,
    /// An OCI archive; `-` is stdout.
    Oci(Destination),
    /// A Docker archive that `docker load` accepts; `-` is stdout.
    Docker(Destination),
    /// A plain tar of the root filesystem; `-` is stdout.
    Tar(Destination),
    /// The root filesystem written into a folder.
    Local(PathBuf),
}

/// A file or standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stdout => f.write_str("-"),
            Destination::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FromStr for Output {
    type Err = OptionError;

    /// `type=TYPE[,dest=PATH]`, or a bare path meaning `type=local,dest=PATH` (`-`: a tar on
    /// stdout), as buildx reads `-o`.
    fn from_str(s: &str) -> Result<Self, OptionError> {
        const FLAG: &str = "--output";
        if !s.contains('=') {
            return Ok(match s {
                "" => return Err(OptionError::new(FLAG, s, "empty")),
                "-" => Output::Tar(Destination::Stdout),
                path => Output::Local(PathBuf::from(path)),
            });
        }
        let (mut kind, mut dest) = (None, None);
        for (key, value) in key_values(FLAG, s)? {
            match key {
                "type" => kind = Some(value),
                "dest" => dest = Some(value),
                // Options BuildKit accepts that change nothing here: the store keeps every
                // image uncompressed and names come from -t.
                "name" | "push" | "compression" | "oci-mediatypes" | "unpack" => {}
                other => {
                    return Err(OptionError::new(FLAG, s, format!("unknown key {other:?}")));
                }
            }
        }
        let file = |dest: Option<&str>| match dest {
            Some("-") => Ok(Destination::Stdout),
            Some(path) if !path.is_empty() => Ok(Destination::File(PathBuf::from(path))),
            _ => Err(OptionError::new(FLAG, s, "dest is required")),
        };
        match kind {
            Some("image") => Ok(Output::Image),
            Some("registry") => Ok(Output::Registry),
            Some("oci") => Ok(Output::Oci(file(dest)?)),
            Some("docker") => Ok(Output::Docker(file(dest)?)),
            Some("tar") => Ok(Output::Tar(file(dest)?)),
            Some("local") => match file(dest)? {
                Destination::File(path) => Ok(Output::Local(path)),
                Destination::Stdout => Ok(Output::Tar(Destination::Stdout)),
            },
            Some(other) => Err(OptionError::new(
                FLAG,
                s,
                format!(
                    "unknown type {other:?}: expected image, registry, oci, docker, tar or local"
                ),
            )),
            None => Err(OptionError::new(FLAG, s, "type is required")),
        }
    }
}

/// `--cache-to` / `--cache-from`: `type=local,dest=DIR` (`src=DIR` to read) or
/// `type=registry,ref=NAME`; a bare `NAME` means a registry reference, as buildx reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSpec {
    Local(PathBuf),
    Registry(crate::image::Reference),
}

impl FromStr for CacheSpec {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, OptionError> {
        const FLAG: &str = "--cache-to/--cache-from";
        let reference = |text: &str| {
            crate::image::Reference::parse(text)
                .map(CacheSpec::Registry)
                .map_err(|e| OptionError::new(FLAG, s, e.to_string()))
        };
        if !s.contains('=') {
            return reference(s);
        }
        let (mut kind, mut path, mut name) = (None, None, None);
        for (key, value) in key_values(FLAG, s)? {
            match key {
                "type" => kind = Some(value),
                "dest" | "src" => path = Some(value),
                "ref" => name = Some(value),
                // Accepted as buildx does; every step of the build is exported anyway.
                "mode" | "compression" | "oci-mediatypes" | "ignore-error" => {}
                other => {
                    return Err(OptionError::new(FLAG, s, format!("unknown key {other:?}")));
                }
            }
        }
        match (kind, path, name) {
            (Some("local"), Some(path), _) if !path.is_empty() => {
                Ok(CacheSpec::Local(PathBuf::from(path)))
            }
            (Some("local"), _, _) => Err(OptionError::new(
                FLAG,
                s,
                "type=local needs dest= (or src=)",
            )),
            (Some("registry"), _, Some(name)) => reference(name),
            (Some("registry"), _, None) => {
                Err(OptionError::new(FLAG, s, "type=registry needs ref="))
            }
            (Some(other), _, _) => Err(OptionError::new(
                FLAG,
                s,
                format!("unknown type {other:?}: expected local or registry"),
            )),
            (None, _, _) => Err(OptionError::new(FLAG, s, "type is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(spec: &str) -> Result<Secret, OptionError> {
        Secret::parse(spec, |name| name == "TOKEN")
    }

    #[test]
    fn secrets_read_files_or_variables_as_buildx_does() {
        let file = |p: &str| SecretSource::File(PathBuf::from(p));
        let env = |v: &str| SecretSource::Env(v.to_string());
        assert_eq!(secret("id=a,src=/s").unwrap().source, file("/s"));
        assert_eq!(secret("id=a,source=/s").unwrap().source, file("/s"));
        assert_eq!(secret("id=a,env=VAR").unwrap().source, env("VAR"));
        assert_eq!(secret("id=a,type=env").unwrap().source, env("a"));
        assert_eq!(secret("id=TOKEN").unwrap().source, env("TOKEN"));
        assert_eq!(secret("id=other").unwrap().source, file("other"));
        assert_eq!(secret("src=/s").unwrap().id, "/s");
    }

    #[test]
    fn bad_secrets_name_the_flag_and_the_problem() {
        let e = secret("id=a,src=/s,env=V").unwrap_err();
        assert_eq!(e.flag, "--secret");
        assert!(e.to_string().contains("not both"), "{e}");
        assert!(secret("id=a,type=ssh").unwrap_err().reason.contains("ssh"));
        assert!(
            secret("id=a,colour=red")
                .unwrap_err()
                .reason
                .contains("colour")
        );
        assert!(secret("justtext").unwrap_err().reason.contains("key=value"));
        assert!(secret("").unwrap_err().reason.contains("id"));
    }

    #[test]
    fn hosts_take_v4_and_v6_addresses() {
        let h: HostEntry = "db:10.0.0.2".parse().unwrap();
        assert_eq!(
            (h.host.as_str(), h.ip.to_string()),
            ("db", "10.0.0.2".into())
        );
        let h: HostEntry = "db=::1".parse().unwrap();
        assert_eq!(h.ip.to_string(), "::1");
        let h: HostEntry = "db:[fe80::1]".parse().unwrap();
        assert_eq!(h.ip.to_string(), "fe80::1");
        assert!("db".parse::<HostEntry>().is_err());
        assert!(
            "db:notanip"
                .parse::<HostEntry>()
                .unwrap_err()
                .reason
                .contains("notanip")
        );
    }

    #[test]
    fn outputs_parse_types_and_shorthands() {
        assert_eq!("out".parse(), Ok(Output::Local("out".into())));
        assert_eq!("-".parse(), Ok(Output::Tar(Destination::Stdout)));
        assert_eq!("type=image".parse(), Ok(Output::Image));
        assert_eq!("type=registry".parse(), Ok(Output::Registry));
        assert_eq!(
            "type=oci,dest=img.tar".parse(),
            Ok(Output::Oci(Destination::File("img.tar".into())))
        );
        assert_eq!(
            "type=docker,dest=-".parse(),
            Ok(Output::Docker(Destination::Stdout))
        );
        assert_eq!(
            "type=local,dest=dir".parse(),
            Ok(Output::Local("dir".into()))
        );
        assert!(
            "type=oci"
                .parse::<Output>()
                .unwrap_err()
                .reason
                .contains("dest")
        );
        assert!(
            "type=zip,dest=a"
                .parse::<Output>()
                .unwrap_err()
                .reason
                .contains("zip")
        );
        assert!(
            "dest=a"
                .parse::<Output>()
                .unwrap_err()
                .reason
                .contains("type")
        );
    }

    #[test]
    fn build_args_without_values_come_from_the_environment() {
        let env = |name: &str| (name == "HOME").then(|| "/root".to_string());
        let bare: BuildArg = "HOME".parse().unwrap();
        assert_eq!(bare.resolve(env), Some(("HOME".into(), "/root".into())));
        let unset: BuildArg = "NOPE".parse().unwrap();
        assert_eq!(unset.resolve(env), None);
        let set: BuildArg = "A=b=c".parse().unwrap();
        assert_eq!(set.resolve(env), Some(("A".into(), "b=c".into())));
        let empty: BuildArg = "A=".parse().unwrap();
        assert_eq!(empty.resolve(env), Some(("A".into(), String::new())));
        assert!("=x".parse::<BuildArg>().is_err());
    }

    #[test]
    fn network_modes() {
        assert_eq!("none".parse(), Ok(NetworkMode::None));
        assert_eq!("host".parse(), Ok(NetworkMode::Host));
        assert_eq!("default".parse(), Ok(NetworkMode::Default));
        assert!("bridge".parse::<NetworkMode>().is_err());
    }
}
