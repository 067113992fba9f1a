//! Test harness for the registry tests: Debian's docker-registry (distribution 2.8) started
//! on a free 127.0.0.1 port with no auth, htpasswd Basic auth or token auth; a token server
//! signing JWTs with a certificate made by openssl; OCI layouts for skopeo.
//! Every process started here is killed by pid when its guard drops.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod proxy;

// Also loaded by tests/support in binaries that use both: one source, compiled twice.
#[allow(clippy::duplicate_mod)]
#[path = "../support/tools.rs"]
mod tools;
use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
#[allow(unused_imports)] // each test binary uses a different part
pub use tools::busybox_tar;

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";
const SERVICE: &str = "rbuild-test-registry";
const ISSUER: &str = "rbuild-test-issuer";

/// Fails the test with a clear message when a tool the tests need is missing.
pub fn require_tool(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is required (apt-get install {package}, or scripts/install-deps.sh)"
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Htpasswd,
    Token,
}

/// A running docker-registry, killed on drop.
pub struct Registry {
    child: Child,
    pub host: String,
    pub auth: Auth,
    pub token_server: Option<TokenServer>,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut token_server = None;
        let auth_section = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd => {
                require_tool("htpasswd", "apache2-utils");
                let htpasswd = dir.path().join("htpasswd");
                run(Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&htpasswd)
                    .args([USER, PASSWORD]));
                format!(
                    "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            Auth::Token => {
                let server = TokenServer::start(dir.path());
                let section = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    server.port,
                    server.cert.display()
                );
                token_server = Some(server);
                section
            }
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: rbuild-test-secret\n{auth_section}",
                dir.path().join("data").display()
            ),
        )
        .expect("writing registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            auth,
            token_server,
            _dir: dir,
        };
        registry.wait_ready(port);
        registry
    }

    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut head = String::new();
                if BufReader::new(stream).read_line(&mut head).is_ok() && head.starts_with("HTTP/")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log =
            std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on port {port}: {log}");
    }

    /// skopeo's credential flags for this registry.
    pub fn skopeo_creds(&self, flag: &str) -> Vec<String> {
        match self.auth {
            Auth::None => vec![],
            _ => vec![format!("{flag}={USER}:{PASSWORD}")],
        }
    }

    /// Runs skopeo with this registry's credentials and TLS off; returns stdout.
    pub fn skopeo(&self, args: &[&str]) -> Vec<u8> {
        require_tool("skopeo", "skopeo");
        let mut command = Command::new("skopeo");
        command.args(args);
        match args.first().copied() {
            Some("inspect") => {
                command
                    .arg("--tls-verify=false")
                    .args(self.skopeo_creds("--creds"));
            }
            Some("copy") => {
                command
                    .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                    .args(self.skopeo_creds("--src-creds"))
                    .args(self.skopeo_creds("--dest-creds"));
            }
            _ => {}
        }
        // skopeo wants the image reference last.
        run(&mut command)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token server for `auth: token`: grants what is asked to `USER`/`PASSWORD`, and pull to
/// anonymous callers; signs RS256 JWTs with a self-signed certificate (sent in `x5c`).
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    /// Tokens issued, to check the client caches them.
    pub issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        require_tool("openssl", "openssl");
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=rbuild-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = run(Command::new("openssl")
            .args(["x509", "-outform", "der", "-in"])
            .arg(&cert));
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").expect("token server port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("token server address").port();
        let issued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (issued, stop) = (issued.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            serve_token(stream, &key, &x5c, &issued);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        TokenServer {
            port,
            cert,
            issued,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn serve_token(stream: TcpStream, key: &Path, x5c: &str, issued: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_string()),
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; content_length];
    let _ = reader.read_exact(&mut body);
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .chain(url::form_urlencoded::parse(&body))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let refresh_ok = params
        .iter()
        .any(|(k, v)| k == "refresh_token" && v == "rbuild-test-refresh-token");
    let authenticated = authorization.as_deref() == Some(expected.as_str()) || refresh_ok;
    if authorization.is_some() && !authenticated {
        let body = r#"{"details":"invalid username or password"}"#;
        let _ = write!(
            reader.get_mut(),
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let access: Vec<serde_json::Value> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, scope)| scope.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| authenticated || *a == "pull")
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let n = issued.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": if authenticated { USER } else { "" }, "aud": SERVICE,
        "exp": now + 600, "nbf": now - 30, "iat": now, "jti": format!("token-{n}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    if let Some(mut stdin) = openssl.stdin.take() {
        let _ = stdin.write_all(signing_input.as_bytes());
    }
    let signature = openssl
        .wait_with_output()
        .expect("openssl signature")
        .stdout;
    let token = format!("{signing_input}.{}", b64url(&signature));
    // Alternate the two field names the spec allows, so both are exercised.
    let field = if n.is_multiple_of(2) {
        "token"
    } else {
        "access_token"
    };
    let body = serde_json::json!({ field: token, "expires_in": 300 }).to_string();
    let _ = write!(
        reader.get_mut(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes an OCI image layout at `dir` holding one image tagged `tag`, whose layers are the
/// given tars gzipped; returns the manifest digest.
pub fn write_oci_layout(dir: &Path, tag: &str, layer_tars: &[Vec<u8>]) -> String {
    write_oci_layout_claiming(dir, tag, layer_tars, layer_tars)
}

/// [`write_oci_layout`] whose config names the DiffIDs of `claimed_tars` (a lying image,
/// when they differ from the layers' own tars).
pub fn write_oci_layout_claiming(
    dir: &Path,
    tag: &str,
    layer_tars: &[Vec<u8>],
    claimed_tars: &[Vec<u8>],
) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dirs");
    let put = |bytes: &[u8]| -> String {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).expect("blob");
        format!("sha256:{hex}")
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layer_tars {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "size": gz.len(), "digest": put(&gz),
        }));
    }
    for tar in claimed_tars {
        diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
    }
    let config = serde_json::json!({
        "architecture": rbuild::image::config::host_platform().1, "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": put(config.as_bytes())},
        "layers": layers,
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": manifest.len(), "digest": manifest_digest, "annotations": {"org.opencontainers.image.ref.name": tag}}],
        })
        .to_string(),
    )
    .expect("index.json");
    manifest_digest
}

/// A small tar with one file, for layers whose content the test chooses.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, name, content)
        .expect("tar entry");
    builder.into_inner().expect("tar")
}

/// A test's temp dir with a HOME inside (made, without credentials) and a store root (made
/// by rbuild when first used).
pub fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (home, root) = (dir.path().join("home"), dir.path().join("root"));
    std::fs::create_dir_all(&home).expect("home");
    (dir, home, root)
}

/// The offline busybox base (made under `dir`) imported into store `root` as `reference`;
/// returns the tarball's path.
pub fn import_busybox(dir: &Path, home: &Path, root: &Path, reference: &str) -> PathBuf {
    let tar = busybox_tar(dir);
    let path = tar.to_str().expect("utf-8 path");
    ok(
        rbuild(home, root, &["import", path, reference], ""),
        "import",
    );
    tar
}

/// The output's stdout and stderr; panics naming `what` unless the command succeeded.
pub fn ok(output: std::process::Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed: {text}");
    text
}

/// The output's stdout alone (an image ID, a listing); panics as [`ok`] does.
pub fn ok_stdout(output: std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ok(output, what);
    stdout
}

/// Runs rbuild on store `root` with its own HOME (for credentials), `stdin` as its input.
pub fn rbuild(home: &Path, root: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running rbuild");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    child.wait_with_output().expect("rbuild")
}
