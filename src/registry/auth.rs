//! Registry authentication: challenges, credentials, and Bearer tokens cached per scope.
//!
//! A registry answers 401 with `WWW-Authenticate: Basic realm=…` or
//! `Bearer realm=…,service=…,scope=…`. For Basic the credentials go on every request; for
//! Bearer they are exchanged at the realm for a token valid for the requested scopes.

use super::Error;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the user holds for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token from `docker login` against an identity provider.
    IdentityToken { token: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug output.
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken { .. } => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for Basic auth.
    pub fn basic_header(username: &str, password: &str) -> String {
        let raw = format!("{username}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Scheme key="value", key=value…` (values may hold quoted commas).
    pub fn parse(header: &str) -> Result<Self, Error> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest).ok_or_else(|| Error::Challenge(header.to_string()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic),
            "bearer" => Ok(Challenge::Bearer {
                realm: params
                    .get("realm")
                    .cloned()
                    .ok_or_else(|| Error::Challenge(header.to_string()))?,
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => Err(Error::Challenge(header.to_string())),
        }
    }
}

fn parse_params(text: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return Some(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=') {
            key.push(c);
        }
        chars.next()?; // '='
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// The token endpoint's answer (`token` per Docker, `access_token` per OAuth2).
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens the registry's auth server handed out, by the scopes they were asked for.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// Tokens without `expires_in` last 60 s per the Docker token spec.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew a little before expiry so a token never dies in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    /// A cached, still-valid token for exactly these scopes.
    pub(crate) fn get(&self, scopes: &[String]) -> Option<String> {
        let key = scopes.join(" ");
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&key)
            .filter(|(_, expires)| Instant::now() + EXPIRY_MARGIN < *expires)
            .map(|(token, _)| token.clone())
    }

    /// Drops the token for these scopes (the registry refused it: revoked or expired early).
    pub(crate) fn forget(&self, scopes: &[String]) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&scopes.join(" "));
    }

    /// Asks the realm for a token covering `scopes` and caches it.
    pub(crate) async fn fetch(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        credential: Option<&Credential>,
    ) -> Result<String, Error> {
        let auth_error = |reason: String| Error::Auth {
            realm: realm.to_string(),
            reason,
        };
        let request = match credential {
            Some(Credential::IdentityToken { token }) => {
                // OAuth2 refresh-token grant, as docker does for identity tokens.
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", token.clone()),
                    ("client_id", "rbuild".to_string()),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                form.push(("scope", scopes.join(" ")));
                http.post(realm).form(&form)
            }
            other => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(service) = service {
                    query.push(("service", service));
                }
                for scope in scopes {
                    query.push(("scope", scope));
                }
                let request = http.get(realm).query(&query);
                match other {
                    Some(Credential::Basic { username, password }) => request.header(
                        reqwest::header::AUTHORIZATION,
                        Credential::basic_header(username, password),
                    ),
                    _ => request,
                }
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| auth_error(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(auth_error(format!(
                "token server answered {status}: {}",
                body.trim()
            )));
        }
        let parsed: TokenResponse = response
            .json()
            .await
            .map_err(|e| auth_error(format!("invalid token response: {e}")))?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token)
            .ok_or_else(|| {
                auth_error("token response has neither token nor access_token".into())
            })?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scopes.join(" "), (token.clone(), Instant::now() + lifetime));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }
        );
    }

    #[test]
    fn parses_basic_and_rejects_unknown() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        assert!(Challenge::parse("Negotiate abc").is_err());
        assert!(Challenge::parse(r#"Bearer service="x""#).is_err());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_err());
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        assert_eq!(
            Credential::basic_header("aladdin", "opensesame"),
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
        );
    }
}
