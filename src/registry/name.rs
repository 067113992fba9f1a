//! Image names as Docker reads them, and the registry endpoint each one lives at.
//!
//! `busybox` is `docker.io/library/busybox:latest`; a first path component with a `.` or `:`,
//! or `localhost`, names a registry host; `docker.io` is served by `registry-1.docker.io`.

use super::Error;
use oci_spec::image::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry Docker uses when a name has no host.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API actually answers.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// A fully qualified image name: registry host, repository, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteName {
    /// The host as the user wrote it (`docker.io`, `localhost:5000`), the key for credentials.
    pub host: String,
    /// The repository path inside that registry (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RemoteName {
    /// Parses a reference the way `docker pull` does.
    pub fn parse(reference: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(Digest::from_str(digest).map_err(|e| invalid(&format!("digest: {e}")))?),
            ),
            None => (reference, None),
        };
        // A tag follows the last ':' only when that ':' is after the last '/' (else it is a port).
        let (name, tag) = match name_and_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_string())),
            _ => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            let valid = tag.len() <= 128
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(invalid(&format!("invalid tag {tag:?}")));
            }
        }
        let (host, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let host = if host == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            host
        };
        let repository = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(invalid(
                "repository must be lowercase letters, digits and separators (. _ -) between slashes",
            ));
        }
        Ok(RemoteName {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned, else the tag (`latest` by default).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The host name the distribution API answers on.
    pub fn endpoint_host(&self) -> &str {
        endpoint_host(&self.host)
    }
}

/// Maps a registry name to the host its API answers on (`docker.io` → `registry-1.docker.io`).
pub fn endpoint_host(host: &str) -> &str {
    if host == DOCKER_HUB || host == "index.docker.io" {
        DOCKER_HUB_ENDPOINT
    } else {
        host
    }
}

/// Docker allows plain HTTP to loopback registries without configuration.
pub fn is_loopback(host: &str) -> bool {
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let bare = without_port.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare.ends_with(".localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for RemoteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_get_library_prefix() {
        let name = RemoteName::parse("busybox").unwrap();
        assert_eq!(name.host, "docker.io");
        assert_eq!(name.repository, "library/busybox");
        assert_eq!(name.reference(), "latest");
        assert_eq!(name.endpoint_host(), "registry-1.docker.io");
        let name = RemoteName::parse("docker.io/user/app:1.2").unwrap();
        assert_eq!(name.repository, "user/app");
        assert_eq!(name.tag.as_deref(), Some("1.2"));
    }

    #[test]
    fn host_with_port_is_not_a_tag() {
        let name = RemoteName::parse("localhost:5000/team/app").unwrap();
        assert_eq!(name.host, "localhost:5000");
        assert_eq!(name.repository, "team/app");
        assert_eq!(name.tag, None);
        let name = RemoteName::parse("127.0.0.1:5000/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(name.tag.as_deref(), Some("v1"));
        assert_eq!(
            name.reference(),
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn rejects_uppercase_and_bad_tags() {
        assert!(RemoteName::parse("Busybox").is_err());
        assert!(RemoteName::parse("busybox:-bad").is_err());
        assert!(RemoteName::parse("busybox@sha256:xyz").is_err());
        assert!(RemoteName::parse("").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:43211"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
