//! The distribution API for one registry host: manifests, blobs and uploads, with auth and
//! retries. Every operation names its repository, so one client serves cross-repo mounts.

use super::auth::{Challenge, Credential, TokenCache};
use super::name::is_loopback;
use super::{BlobSink, Error};
use oci_spec::image::{Digest, ImageIndex, ImageManifest};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// Media types of everything a manifest request may answer with, most wanted first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Manifests bigger than this are refused (the distribution spec's own limit is 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// How a client reaches and authenticates to its registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Verify TLS certificates (off with `--tls-verify=false`).
    pub tls_verify: bool,
    /// Speak plain HTTP. Defaults to true only for loopback hosts, as Docker allows.
    pub plain_http: Option<bool>,
    pub credential: Option<Credential>,
    /// Attempts per request before a transient fault becomes an error.
    pub max_attempts: u32,
    /// First retry delay; doubled on each further attempt.
    pub backoff: Duration,
    /// Blobs larger than this are uploaded in PATCH chunks of this size, resumable on faults.
    pub chunk_size: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: true,
            plain_http: None,
            credential: None,
            max_attempts: 6,
            backoff: Duration::from_millis(250),
            chunk_size: 64 << 20,
        }
    }
}

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        INDEX_MEDIA_TYPES.contains(&self.media_type.as_str())
    }
}

/// What happened to a blob on push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository had it already.
    Existed,
    /// The registry linked it from another repository.
    Mounted,
    Uploaded,
}

impl BlobPush {
    /// How `docker push` reports it.
    pub fn status(self) -> &'static str {
        match self {
            BlobPush::Existed => "Layer already exists",
            BlobPush::Mounted => "Mounted",
            BlobPush::Uploaded => "Pushed",
        }
    }
}

/// A client for one registry host.
pub struct Client {
    http: reqwest::Client,
    /// `scheme://host/v2/`
    base: Url,
    options: ClientOptions,
    challenge: Mutex<Option<Challenge>>,
    tokens: TokenCache,
}

/// Whether a failed request may be sent again as it was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Safe to resend (reads, manifest PUT, upload start).
    Idempotent,
    /// Part of an upload session: the caller restarts or resumes the session instead.
    Never,
}

impl Client {
    /// A client for `host` (`localhost:5000`, `registry-1.docker.io`).
    pub fn new(host: &str, options: ClientOptions) -> Result<Self, Error> {
        let plain = options.plain_http.unwrap_or_else(|| is_loopback(host));
        let scheme = if plain { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| Error::InvalidReference {
                reference: host.to_string(),
                reason: format!("not a registry host: {e}"),
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!options.tls_verify)
            .connect_timeout(Duration::from_secs(30))
            // A stalled body counts as a dropped connection and is retried.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::Http {
                method: "CONNECT".into(),
                url: base.to_string(),
                source,
            })?;
        Ok(Client {
            http,
            base,
            options,
            challenge: Mutex::new(None),
            tokens: TokenCache::default(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, Error> {
        self.base.join(path).map_err(|e| Error::InvalidReference {
            reference: path.to_string(),
            reason: e.to_string(),
        })
    }

    fn pull_scope(repository: &str) -> String {
        format!("repository:{repository}:pull")
    }

    fn push_scope(repository: &str) -> String {
        format!("repository:{repository}:pull,push")
    }

    /// Checks that the credentials are accepted: `GET /v2/`, through the auth flow.
    pub async fn check_login(&self) -> Result<(), Error> {
        let url = self.url("")?;
        self.send_expecting(
            Method::GET,
            &url,
            &[],
            Retry::Idempotent,
            Ok,
            &[StatusCode::OK],
        )
        .await?;
        Ok(())
    }

    /// Fetches a manifest or index by tag or digest, checking it against a digest reference.
    pub async fn get_manifest(&self, repository: &str, reference: &str) -> Result<Manifest, Error> {
        let url = self.url(&format!("{repository}/manifests/{reference}"))?;
        let scopes = [Self::pull_scope(repository)];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .send_expecting(
                    Method::GET,
                    &url,
                    &scopes,
                    Retry::Idempotent,
                    |r| Ok(r.header(header::ACCEPT, MANIFEST_ACCEPT)),
                    &[StatusCode::OK],
                )
                .await?;
            if response
                .content_length()
                .is_some_and(|len| len > MANIFEST_LIMIT)
            {
                return Err(Error::ManifestTooLarge {
                    reference: reference.to_string(),
                    limit: MANIFEST_LIMIT,
                });
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let mut bytes = Vec::new();
            match read_limited(response, &mut bytes, MANIFEST_LIMIT).await {
                Ok(()) => {}
                Err(ReadError::TooLarge) => {
                    return Err(Error::ManifestTooLarge {
                        reference: reference.to_string(),
                        limit: MANIFEST_LIMIT,
                    });
                }
                Err(ReadError::Body(e)) if attempt < self.options.max_attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    let _ = e;
                    continue;
                }
                Err(ReadError::Body(source)) => {
                    return Err(Error::Http {
                        method: "GET".into(),
                        url: url.to_string(),
                        source,
                    });
                }
            }
            let digest = crate::image::sha256_digest(&bytes);
            if let Ok(expected) = reference.parse::<Digest>()
                && expected != digest
            {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {repository}@{reference}"),
                    expected,
                    actual: digest.to_string(),
                });
            }
            let media_type = match content_type.filter(|t| t.starts_with("application/vnd.")) {
                Some(media_type) => media_type,
                None => media_type_from_body(&bytes).ok_or_else(|| Error::InvalidManifest {
                    reference: reference.to_string(),
                    reason: "neither Content-Type nor mediaType says what it is".into(),
                })?,
            };
            if media_type.starts_with("application/vnd.docker.distribution.manifest.v1") {
                return Err(Error::InvalidManifest {
                    reference: reference.to_string(),
                    reason: format!("{media_type} (Docker schema 1) is not supported"),
                });
            }
            return Ok(Manifest {
                media_type,
                digest,
                bytes,
            });
        }
    }

    /// Fetches the image manifest for `reference`, choosing the host platform's entry from an
    /// index (attestation manifests skipped). Returns the index too when there was one.
    pub async fn resolve_image(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Manifest, ImageManifest, Option<Manifest>), Error> {
        let first = self.get_manifest(repository, reference).await?;
        if !first.is_index() {
            let image = parse_image_manifest(&first, reference)?;
            return Ok((first, image, None));
        }
        let index: ImageIndex =
            serde_json::from_slice(&first.bytes).map_err(|e| Error::InvalidManifest {
                reference: reference.to_string(),
                reason: e.to_string(),
            })?;
        let (os, arch, variant) = crate::image::config::host_platform();
        let variant = variant.as_deref();
        let chosen =
            choose_platform(&index, &os, &arch, variant).ok_or_else(|| Error::NoPlatform {
                reference: reference.to_string(),
                platform: format!(
                    "{os}/{arch}{}",
                    variant.map(|v| format!("/{v}")).unwrap_or_default()
                ),
            })?;
        let manifest = self
            .get_manifest(repository, chosen.digest().as_ref())
            .await?;
        let image = parse_image_manifest(&manifest, reference)?;
        Ok((manifest, image, Some(first)))
    }

    /// Stores a manifest under a tag (or its digest); returns the digest the registry reports.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let url = self.url(&format!("{repository}/manifests/{reference}"))?;
        let scopes = [Self::push_scope(repository)];
        let body = bytes.to_vec();
        let response = self
            .send_expecting(
                Method::PUT,
                &url,
                &scopes,
                Retry::Idempotent,
                |r| {
                    Ok(r.header(header::CONTENT_TYPE, media_type)
                        .body(body.clone()))
                },
                &[StatusCode::CREATED, StatusCode::OK],
            )
            .await?;
        let digest = crate::image::sha256_digest(bytes);
        check_reported_digest(response.headers(), &digest)?;
        Ok(digest)
    }

    /// The size of a blob when the repository has it.
    pub async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let url = self.url(&format!("{repository}/blobs/{digest}"))?;
        let scopes = [Self::pull_scope(repository)];
        let response = self
            .send(Method::HEAD, &url, &scopes, Retry::Idempotent, Ok)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_status(response, &Method::HEAD, &url, &[StatusCode::OK]).await?;
        Ok(response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Downloads a blob into `sink`, resuming from what the sink holds with a Range request,
    /// including after a dropped connection, and checks its size and digest at the end.
    /// `progress` is told the bytes held after each chunk.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        sink: &mut dyn BlobSink,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), Error> {
        let url = self.url(&format!("{repository}/blobs/{digest}"))?;
        let scopes = [Self::pull_scope(repository)];
        let io = |e| Error::io(format!("writing blob {digest}"), e);
        let mut faults = 0;
        'download: loop {
            let offset = sink.written();
            if size.is_some_and(|size| offset >= size) {
                break;
            }
            let response = self
                .send(Method::GET, &url, &scopes, Retry::Idempotent, |r| {
                    Ok(if offset > 0 {
                        r.header(header::RANGE, format!("bytes={offset}-"))
                    } else {
                        r
                    })
                })
                .await?;
            let response = match response.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => response,
                StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                    // What we hold is no prefix of this blob: start over.
                    sink.restart().map_err(io)?;
                    continue;
                }
                _ => {
                    let response =
                        expect_status(response, &Method::GET, &url, &[StatusCode::OK]).await?;
                    if offset > 0 {
                        sink.restart().map_err(io)?;
                    }
                    response
                }
            };
            let mut response = response;
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        sink.write(&chunk).map_err(io)?;
                        let written = sink.written();
                        if let Some(size) = size.filter(|size| written > *size) {
                            return Err(Error::SizeMismatch {
                                digest: digest.clone(),
                                expected: size,
                                actual: written,
                            });
                        }
                        progress(written);
                    }
                    Ok(None) => break 'download,
                    Err(source) => {
                        faults += 1;
                        if faults >= self.options.max_attempts {
                            return Err(Error::RetriesExhausted {
                                method: "GET".into(),
                                url: url.to_string(),
                                attempts: faults,
                                last: source.to_string(),
                            });
                        }
                        tokio::time::sleep(self.backoff(faults)).await;
                        continue 'download;
                    }
                }
            }
        }
        let written = sink.written();
        if let Some(size) = size.filter(|size| written != *size) {
            return Err(Error::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: written,
            });
        }
        let actual = sink.digest();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob from {repository}"),
                expected: digest.clone(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Pushes the blob held in `source` (exactly `size` bytes with digest `digest`): skipped
    /// when the repository has it, mounted from `mount_from` when the registry has it there,
    /// else uploaded in one PUT or, above the chunk size, in resumable PATCH chunks.
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        source: &Path,
        mount_from: Option<&str>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<BlobPush, Error> {
        if self.blob_size(repository, digest).await?.is_some() {
            progress(size);
            return Ok(BlobPush::Existed);
        }
        let mut faults = 0;
        loop {
            let mut location = match self
                .start_upload(repository, mount_from.map(|from| (digest, from)))
                .await?
            {
                None => {
                    progress(size);
                    return Ok(BlobPush::Mounted);
                }
                Some(location) => location,
            };
            let result = if size <= self.options.chunk_size {
                self.put_whole(repository, &location, digest, size, source, progress)
                    .await
            } else {
                self.upload_chunks(repository, &mut location, digest, size, source, progress)
                    .await
            };
            match result {
                Ok(()) => return Ok(BlobPush::Uploaded),
                Err(error) if is_transient(&error) && faults + 1 < self.options.max_attempts => {
                    faults += 1;
                    tokio::time::sleep(self.backoff(faults)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `POST …/blobs/uploads/`, with a request to mount the blob `digest` from another
    /// repository when one is given. `None` when the mount succeeded, else the upload
    /// session's URL.
    async fn start_upload(
        &self,
        repository: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Option<Url>, Error> {
        let mut url = self.url(&format!("{repository}/blobs/uploads/"))?;
        let mut scopes = vec![Self::push_scope(repository)];
        if let Some((digest, from)) = mount.filter(|(_, from)| *from != repository) {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_ref())
                .append_pair("from", from);
            scopes.push(Self::pull_scope(from));
        }
        let response = self
            .send_expecting(
                Method::POST,
                &url,
                &scopes,
                Retry::Idempotent,
                |r| Ok(r.header(header::CONTENT_LENGTH, 0)),
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
            )
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(None);
        }
        location(&url, response.headers()).map(Some)
    }

    /// Monolithic upload: the whole blob in the closing PUT.
    async fn put_whole(
        &self,
        repository: &str,
        location: &Url,
        digest: &Digest,
        size: u64,
        source: &Path,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), Error> {
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let scopes = [Self::push_scope(repository)];
        let response = self
            .send_expecting(
                Method::PUT,
                &url,
                &scopes,
                Retry::Never,
                |r| {
                    Ok(r.header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, size)
                        .body(file_body(source, 0, size)?))
                },
                &[StatusCode::CREATED],
            )
            .await?;
        check_reported_digest(response.headers(), digest)?;
        progress(size);
        Ok(())
    }

    /// Chunked upload: PATCH chunks then an empty PUT. After a fault the session's status says
    /// how much the registry kept, and the upload continues from there.
    async fn upload_chunks(
        &self,
        repository: &str,
        location: &mut Url,
        digest: &Digest,
        size: u64,
        source: &Path,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), Error> {
        let scopes = [Self::push_scope(repository)];
        let mut offset = 0u64;
        let mut faults = 0;
        while offset < size {
            let len = self.options.chunk_size.min(size - offset);
            let url = location.clone();
            let sent = self
                .send(Method::PATCH, &url, &scopes, Retry::Never, |r| {
                    Ok(r.header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, len)
                        .header(
                            header::CONTENT_RANGE,
                            format!("{offset}-{}", offset + len - 1),
                        )
                        .body(file_body(source, offset, len)?))
                })
                .await;
            let accepted = match sent {
                Ok(response) => {
                    expect_status(response, &Method::PATCH, &url, &[StatusCode::ACCEPTED]).await
                }
                Err(error) => Err(error),
            };
            match accepted {
                Ok(response) => {
                    *location = self::location(&url, response.headers())?;
                    offset += len;
                    progress(offset);
                }
                Err(error) if is_transient(&error) && faults + 1 < self.options.max_attempts => {
                    faults += 1;
                    tokio::time::sleep(self.backoff(faults)).await;
                    // Ask the session how much arrived. A session the registry gave up on
                    // (distribution does after a cut PATCH) ends here, and push_blob starts a
                    // new one.
                    match self.upload_status(repository, location).await {
                        Ok((kept, next)) if kept <= size => {
                            offset = kept;
                            *location = next;
                        }
                        _ => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
        self.finish_upload(repository, location, digest).await
    }

    /// Opens an upload session and streams a blob whose digest is not known yet into it in
    /// one PATCH (chunked transfer encoding), as Docker does while it compresses a layer.
    /// Returns the session's URL for [`Client::finish_upload`]. Nothing is retried: the
    /// caller holds the bytes to upload again ([`Client::push_blob`]).
    pub async fn upload_streamed(
        &self,
        repository: &str,
        body: reqwest::Body,
    ) -> Result<Url, Error> {
        let Some(url) = self.start_upload(repository, None).await? else {
            return Err(Error::InvalidImage {
                reference: repository.to_string(),
                reason: "the registry answered a plain upload request as a mount".into(),
            });
        };
        let scopes = [Self::push_scope(repository)];
        // The body streams once: a second attempt (after an auth challenge) has none.
        let body = std::sync::Mutex::new(Some(body));
        let response = self
            .send_expecting(
                Method::PATCH,
                &url,
                &scopes,
                Retry::Never,
                |r| {
                    let body = body.lock().ok().and_then(|mut b| b.take()).ok_or_else(|| {
                        Error::io(
                            "streaming a blob",
                            std::io::Error::other("body already sent"),
                        )
                    })?;
                    Ok(r.header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(body))
                },
                &[StatusCode::ACCEPTED],
            )
            .await?;
        location(&url, response.headers())
    }

    /// Closes an upload session with the blob's digest (an empty PUT); the registry checks it.
    pub async fn finish_upload(
        &self,
        repository: &str,
        location: &Url,
        digest: &Digest,
    ) -> Result<(), Error> {
        let scopes = [Self::push_scope(repository)];
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let response = self
            .send_expecting(
                Method::PUT,
                &url,
                &scopes,
                Retry::Idempotent,
                |r| Ok(r.header(header::CONTENT_LENGTH, 0)),
                &[StatusCode::CREATED],
            )
            .await?;
        check_reported_digest(response.headers(), digest)
    }

    /// `GET` an upload session: how many bytes it holds (from `Range: 0-N`) and its URL.
    async fn upload_status(&self, repository: &str, location: &Url) -> Result<(u64, Url), Error> {
        let scopes = [Self::push_scope(repository)];
        let response = self
            .send_expecting(
                Method::GET,
                location,
                &scopes,
                Retry::Idempotent,
                Ok,
                &[StatusCode::NO_CONTENT],
            )
            .await?;
        let kept = match response.headers().get(header::RANGE) {
            None => 0,
            Some(value) => {
                let bad = || Error::BadHeader {
                    header: "Range".into(),
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                };
                let text = value.to_str().map_err(|_| bad())?;
                let end = text
                    .trim_start_matches("bytes=")
                    .split_once('-')
                    .and_then(|(_, end)| end.parse::<u64>().ok())
                    .ok_or_else(bad)?;
                end + 1
            }
        };
        let next = match response.headers().get(header::LOCATION) {
            Some(_) => self::location(location, response.headers())?,
            None => location.clone(),
        };
        Ok((kept, next))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(6);
        (self.options.backoff * factor).min(Duration::from_secs(20))
    }

    /// The `Authorization` header for a request needing `scopes`, per the last challenge.
    async fn authorization(&self, scopes: &[String]) -> Result<Option<String>, Error> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match &self.options.credential {
                Some(Credential::Basic { username, password }) => {
                    Some(Credential::basic_header(username, password))
                }
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = match self.tokens.get(scopes) {
                    Some(token) => token,
                    None => {
                        self.tokens
                            .fetch(
                                &self.http,
                                &realm,
                                service.as_deref(),
                                scopes,
                                self.options.credential.as_ref(),
                            )
                            .await?
                    }
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// [`Self::send`], then [`expect_status`]: the response when its status is one of `expected`.
    async fn send_expecting(
        &self,
        method: Method,
        url: &Url,
        scopes: &[String],
        retry: Retry,
        build: impl Fn(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Error>,
        expected: &[StatusCode],
    ) -> Result<Response, Error> {
        let response = self.send(method.clone(), url, scopes, retry, build).await?;
        expect_status(response, &method, url, expected).await
    }

    /// Sends a request through auth and retries. `build` adds headers and body; it is called
    /// again for every attempt. Non-retryable statuses are returned for the caller to judge.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        scopes: &[String],
        retry: Retry,
        build: impl Fn(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Error>,
    ) -> Result<Response, Error> {
        let mut scopes = scopes.to_vec();
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(authorization) = self.authorization(&scopes).await? {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            let may_retry = retry == Retry::Idempotent && attempt < self.options.max_attempts;
            match build(request)?.send().await {
                Ok(response)
                    if response.status() == StatusCode::UNAUTHORIZED && !reauthenticated =>
                {
                    let Some(header) = response.headers().get(header::WWW_AUTHENTICATE) else {
                        return Ok(response);
                    };
                    let challenge = Challenge::parse(&String::from_utf8_lossy(header.as_bytes()))?;
                    // A cached token the registry refused is no good for these scopes.
                    self.tokens.forget(&scopes);
                    if let Challenge::Bearer {
                        scope: Some(scope), ..
                    } = &challenge
                        && !scopes.contains(scope)
                    {
                        scopes.push(scope.clone());
                    }
                    if challenge == Challenge::Basic && self.options.credential.is_none() {
                        return Ok(response);
                    }
                    *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
                    reauthenticated = true;
                    // The auth round trip is not a fault: it does not use up an attempt.
                    attempt -= 1;
                }
                Ok(response) if may_retry && is_retryable_status(response.status()) => {
                    let delay =
                        retry_after(response.headers()).unwrap_or_else(|| self.backoff(attempt));
                    tokio::time::sleep(delay).await;
                }
                Ok(response) => return Ok(response),
                Err(_) if may_retry => tokio::time::sleep(self.backoff(attempt)).await,
                Err(source) if attempt > 1 => {
                    return Err(Error::RetriesExhausted {
                        method: method.to_string(),
                        url: url.to_string(),
                        attempts: attempt,
                        last: error_chain(&source),
                    });
                }
                Err(source) => {
                    return Err(Error::Http {
                        method: method.to_string(),
                        url: url.to_string(),
                        source,
                    });
                }
            }
        }
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Faults worth another try of a whole upload: dropped connections and overloaded servers.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Http { .. } | Error::RetriesExhausted { .. } => true,
        Error::Status { status, .. } => {
            is_retryable_status(StatusCode::from_u16(*status).unwrap_or(StatusCode::OK))
        }
        _ => false,
    }
}

/// `Retry-After` in seconds or as an HTTP date, capped so a hostile server cannot stall us.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate_delay(value)?,
    };
    Some(delay.min(Duration::from_secs(60)))
}

/// Delay until an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_delay(value: &str) -> Option<Duration> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let at = days * 86400 + h * 3600 + m * 60 + s;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(Duration::from_secs(u64::try_from(at - now).unwrap_or(0)))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Returns the response when its status is one of `expected`, else an error carrying the
/// registry's own error message (`{"errors":[{"code":…,"message":…}]}`).
async fn expect_status(
    response: Response,
    method: &Method,
    url: &Url,
    expected: &[StatusCode],
) -> Result<Response, Error> {
    if expected.contains(&response.status()) {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let errors = v.get("errors")?.as_array()?;
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code} {message}").trim().to_string()
                })
                .collect();
            Some(messages.join("; "))
        })
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    Err(Error::Status {
        method: method.to_string(),
        url: redact(url),
        status,
        detail,
    })
}

/// A URL without its query (upload URLs carry opaque session state).
fn redact(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Resolves a `Location` header, relative or absolute, against the request URL.
fn location(request: &Url, headers: &HeaderMap) -> Result<Url, Error> {
    let value = headers
        .get(header::LOCATION)
        .ok_or_else(|| Error::BadHeader {
            header: "Location".into(),
            value: String::new(),
        })?;
    let bad = || Error::BadHeader {
        header: "Location".into(),
        value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
    };
    let text = value.to_str().map_err(|_| bad())?;
    request.join(text).map_err(|_| bad())
}

fn check_reported_digest(headers: &HeaderMap, digest: &Digest) -> Result<(), Error> {
    match headers
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
    {
        Some(reported) if reported != digest.as_ref() => Err(Error::DigestMismatch {
            what: "registry's Docker-Content-Digest".into(),
            expected: digest.clone(),
            actual: reported.to_string(),
        }),
        _ => Ok(()),
    }
}

/// `len` bytes of `path` from `offset`, streamed.
fn file_body(path: &Path, offset: u64, len: u64) -> Result<reqwest::Body, Error> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(format!("seeking in {}", path.display()), e))?;
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    Ok(reqwest::Body::wrap_stream(
        tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10),
    ))
}

enum ReadError {
    TooLarge,
    Body(reqwest::Error),
}

async fn read_limited(
    mut response: Response,
    into: &mut Vec<u8>,
    limit: u64,
) -> Result<(), ReadError> {
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Body)? {
        into.extend_from_slice(&chunk);
        if into.len() as u64 > limit {
            return Err(ReadError::TooLarge);
        }
    }
    Ok(())
}

fn media_type_from_body(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(media_type) = value.get("mediaType").and_then(|m| m.as_str()) {
        return Some(media_type.to_string());
    }
    // OCI allows mediaType to be absent; the shape says which it is.
    if value.get("manifests").is_some() {
        Some(INDEX_MEDIA_TYPES[0].to_string())
    } else if value.get("layers").is_some() {
        Some("application/vnd.oci.image.manifest.v1+json".to_string())
    } else {
        None
    }
}

fn parse_image_manifest(manifest: &Manifest, reference: &str) -> Result<ImageManifest, Error> {
    if manifest.is_index() {
        return Err(Error::InvalidManifest {
            reference: reference.to_string(),
            reason: "an index inside an index".into(),
        });
    }
    serde_json::from_slice(&manifest.bytes).map_err(|e| Error::InvalidManifest {
        reference: reference.to_string(),
        reason: e.to_string(),
    })
}

/// The index entry for the platform, skipping attestations (BuildKit's `unknown/unknown`
/// entries and anything annotated `vnd.docker.reference.type`).
fn choose_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a oci_spec::image::Descriptor> {
    let candidates: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| {
            !d.annotations()
                .as_ref()
                .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
        })
        .filter(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
        })
        .collect();
    candidates
        .iter()
        .find(|d| d.platform().as_ref().and_then(|p| p.variant().as_deref()) == variant)
        .or_else(|| candidates.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute_locations() {
        let request = Url::parse("http://127.0.0.1:5000/v2/app/blobs/uploads/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            "/v2/app/blobs/uploads/abc?_state=x".parse().unwrap(),
        );
        assert_eq!(
            location(&request, &headers).unwrap().as_str(),
            "http://127.0.0.1:5000/v2/app/blobs/uploads/abc?_state=x"
        );
        headers.insert(
            header::LOCATION,
            "https://other.example/up/1".parse().unwrap(),
        );
        assert_eq!(
            location(&request, &headers).unwrap().as_str(),
            "https://other.example/up/1"
        );
        assert!(location(&request, &HeaderMap::new()).is_err());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(60)));
        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn chooses_host_platform_and_skips_attestations() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"os":"linux","architecture":"amd64"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"os":"linux","architecture":"arm","variant":"v6"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        let amd64 = choose_platform(&index, "linux", "amd64", None).unwrap();
        assert!(amd64.digest().as_ref().ends_with("4444"));
        let armv7 = choose_platform(&index, "linux", "arm", Some("v7")).unwrap();
        assert!(armv7.digest().as_ref().ends_with("3333"));
        assert!(choose_platform(&index, "linux", "s390x", None).is_none());
    }

    #[test]
    fn media_type_from_shape_when_absent() {
        assert_eq!(
            media_type_from_body(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(INDEX_MEDIA_TYPES[0])
        );
        assert_eq!(media_type_from_body(b"not json"), None);
    }
}
