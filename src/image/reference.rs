//! Image references parsed and normalised the way Docker does (distribution/reference):
//! `ubuntu` → `docker.io/library/ubuntu:latest`, `localhost:5000/a/b:t`, `name@sha256:…`.

use super::ImageError;
use oci_spec::image::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_MAX_LEN: usize = 255;
const TAG_MAX_LEN: usize = 128;

/// A normalised image reference: domain, repository path, and a tag and/or a digest.
/// A reference parsed without tag or digest gets the tag `latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `text` like `docker pull` does.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::from_str(digest)
                    .map_err(|e| invalid(&format!("invalid digest: {e}")))?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A tag is whatever follows the last ':' that comes after the last '/'
        // (so the port of `localhost:5000/a` is not mistaken for one).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let colon = last_slash + i;
                (&rest[..colon], Some(rest[colon + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            check_tag(tag).map_err(|r| invalid(&r))?;
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if is_full_hex_id(name) {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        let (domain, path) = split_domain(name);
        check_domain(&domain).map_err(|r| invalid(&r))?;
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(&format!(
                "repository name ({path}) must be lowercase"
            )));
        }
        check_path(&path).map_err(|r| invalid(&r))?;
        if domain.len() + 1 + path.len() > NAME_MAX_LEN {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// A reference to `name` (parsed like [`Reference::parse`]) with the given tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ImageError> {
        check_tag(tag).map_err(|reason| ImageError::InvalidReference {
            reference: format!("{}:{tag}", self.name()),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (no tag).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The registry host (and port): `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry: `library/ubuntu`, `a/b`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name: `docker.io/library/ubuntu`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker prints it: `ubuntu`, `user/app`, `localhost:5000/a/b`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The reference as Docker prints it: `ubuntu:latest`, `localhost:5000/a/b:t`.
    /// This is also the `org.opencontainers.image.ref.name` the store records, so
    /// `skopeo inspect oci:ROOT:ubuntu:latest` finds what `rbuild tag … ubuntu` made.
    pub fn familiar(&self) -> String {
        self.render(&self.familiar_name())
    }

    fn render(&self, name: &str) -> String {
        let mut out = name.to_string();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_ref());
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's rule: the first component is a registry when it has a '.' or ':', is
/// `localhost`, or has upper-case letters (which a repository path may not).
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn is_full_hex_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// tag := [\w][\w.-]{0,127}
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let valid = match chars.next() {
        Some(first) => word(first) && chars.all(|c| word(c) || c == '.' || c == '-'),
        None => false,
    };
    if !valid || tag.len() > TAG_MAX_LEN {
        return Err(format!(
            "invalid tag {tag:?}: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// domain := host [':' port]; host := domain-component ('.' domain-component)* | '[' IPv6 ']'
fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry host {domain:?}"));
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after))
                if !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') =>
            {
                (None, after.strip_prefix(':'))
            }
            _ => return bad(),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(component_ok) {
            return bad();
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return bad();
    }
    Ok(())
}

/// path := component ('/' component)*; component := [a-z0-9]+ (separator [a-z0-9]+)*;
/// separator := [_.] | __ | -+
fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "invalid repository path component {component:?}: lowercase letters and digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

fn component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        let Some(&b) = bytes.get(i) else { break };
        if alnum(b) {
            while bytes.get(i).is_some_and(|&b| alnum(b)) {
                i += 1;
            }
            expect_alnum = false;
            continue;
        }
        if expect_alnum {
            return false;
        }
        let rest = &component[i..];
        let sep_len = if rest.starts_with("__") {
            2
        } else if b == b'.' || b == b'_' {
            1
        } else if b == b'-' {
            rest.bytes().take_while(|&c| c == b'-').count()
        } else {
            return false;
        };
        i += sep_len;
        expect_alnum = true;
    }
    !expect_alnum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("ubuntu"), "docker.io/library/ubuntu:latest");
        assert_eq!(full("ubuntu:22.04"), "docker.io/library/ubuntu:22.04");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            full("index.docker.io/library/x"),
            "docker.io/library/x:latest"
        );
        assert_eq!(full("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(full("localhost/a"), "localhost/a:latest");
        assert_eq!(full("quay.io/org/app:v1.2_3"), "quay.io/org/app:v1.2_3");
        assert_eq!(full("[::1]:5000/x:y"), "[::1]:5000/x:y");
        let d = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";
        assert_eq!(
            full(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            full(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn familiar_forms() {
        let r = Reference::parse("docker.io/library/busybox:t").unwrap();
        assert_eq!(r.familiar(), "busybox:t");
        assert_eq!(r.familiar_name(), "busybox");
        let r = Reference::parse("user/app").unwrap();
        assert_eq!(r.familiar(), "user/app:latest");
        let r = Reference::parse("localhost:5000/a/b:t").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/a/b:t");
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "a/b");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "Ubuntu",
            "a/B",
            "ubuntu:",
            "ubuntu:-x",
            "a//b",
            "a/b/",
            "-a",
            "a..b",
            "a@sha256:xyz",
            "host:port/x",
            &"a".repeat(64).replace('a', "f"),
            &format!("x:{}", "t".repeat(129)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Reference::parse("a__b/c-d/e---f.g").is_ok());
    }
}
