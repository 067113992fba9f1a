//! Registry hosts as Docker names them, and the endpoint each one answers on: `docker.io`
//! (the domain of [`crate::image::Reference`]s without a host) is served by
//! `registry-1.docker.io`. Parsing image names is [`crate::image::Reference`]'s job.

pub use crate::image::reference::DEFAULT_DOMAIN as DOCKER_HUB;
/// Where Docker Hub's distribution API actually answers.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// Maps a registry name to the host its API answers on (`docker.io` → `registry-1.docker.io`).
pub fn endpoint_host(host: &str) -> &str {
    if host == DOCKER_HUB || host == "index.docker.io" {
        DOCKER_HUB_ENDPOINT
    } else {
        host
    }
}

/// The registry a server address names, as credentials are keyed:
/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/path` → `host:5000`.
pub fn server_host(server: &str) -> String {
    let without_scheme = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_normalise_like_docker() {
        assert_eq!(server_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_host("http://localhost:5000/"), "localhost:5000");
        assert_eq!(server_host("reg.example"), "reg.example");
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
