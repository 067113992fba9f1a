//! Shared helpers of the build tests: a temporary store with the offline busybox base image,
//! build contexts written from strings, builds of the real binary, and ways to look at the
//! result (its root filesystem exported as a folder, a command run in it, its raw config).
//!
//! Every test gets its own store and context (tempfile); nothing is left behind.

#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

// Also loaded by tests/support in binaries that use both: one source, compiled twice.
#[allow(clippy::duplicate_mod)]
#[path = "../support/tools.rs"]
mod tools;
#[allow(unused_imports)] // each test binary uses a different part
pub use tools::{require_root, require_tool};

pub const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

/// stdout and stderr of a finished command, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The busybox root filesystem tarball, made once per test binary.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TAR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = tools::busybox_tar(dir.path());
        (dir, path)
    });
    path
}

/// A store of its own, in a temp dir, with `busybox:latest` imported.
pub struct TestStore {
    dir: tempfile::TempDir,
}

impl TestStore {
    /// A fresh store holding `busybox:latest` (passwd has root, nobody 65534 and app 1000).
    pub fn with_busybox() -> TestStore {
        require_root();
        let store = TestStore::empty();
        let tar = busybox_tar().to_str().expect("utf-8 path").to_owned();
        store.rbuild(&["import", &tar, "busybox:latest"]);
        store
    }

    /// A fresh, empty store.
    pub fn empty() -> TestStore {
        TestStore {
            dir: tempfile::Builder::new()
                .prefix("rbuild-test-store")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Runs `rbuild --root STORE ARGS…`.
    pub fn rbuild_output(&self, args: &[&str]) -> Output {
        Command::new(RBUILD)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rbuild")
    }

    /// Runs `rbuild --root STORE ARGS…`; panics with its output unless it succeeds; returns
    /// stdout.
    pub fn rbuild(&self, args: &[&str]) -> String {
        let out = self.rbuild_output(args);
        assert!(
            out.status.success(),
            "rbuild {args:?} failed:\n{}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `rbuild build --progress plain -t TAG ARGS… CONTEXT`, without checking the outcome.
    pub fn build_output(&self, context: &Context, tag: &str, args: &[&str]) -> Output {
        self.build_output_with_env(context, tag, args, &[])
    }

    /// As [`TestStore::build_output`], with extra environment variables for rbuild (for
    /// `--secret id=…,env=VAR`, `--build-arg NAME` or `--ssh default`).
    pub fn build_output_with_env(
        &self,
        context: &Context,
        tag: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut all = vec!["build", "--progress", "plain", "-t", tag];
        all.extend_from_slice(args);
        let path = context.path().to_str().expect("utf-8 path").to_owned();
        all.push(&path);
        Command::new(RBUILD)
            .arg("--root")
            .arg(self.root())
            .args(&all)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run rbuild")
    }

    /// Builds `context` as `tag` (extra `args` before the context, e.g. `--build-arg`), and
    /// exports the image's root filesystem with `--output type=local`; panics with the build
    /// log unless it succeeds.
    pub fn build(&self, context: &Context, tag: &str, args: &[&str]) -> Built {
        self.build_with_env(context, tag, args, &[])
    }

    /// As [`TestStore::build`], with extra environment variables for rbuild.
    pub fn build_with_env(
        &self,
        context: &Context,
        tag: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Built {
        let rootfs = tempfile::Builder::new()
            .prefix("rbuild-test-rootfs")
            .tempdir()
            .expect("temp dir");
        let local = format!("type=local,dest={}", rootfs.path().display());
        let mut all: Vec<&str> = vec!["--output", "type=image", "--output", &local];
        all.extend_from_slice(args);
        let out = self.build_output_with_env(context, tag, &all, env);
        let log = output_text(&out);
        assert!(out.status.success(), "build of {tag} failed:\n{log}");
        Built {
            tag: tag.to_owned(),
            log,
            rootfs,
        }
    }

    /// Builds `context`, expecting it to fail; returns the build's whole output.
    pub fn build_fails(&self, context: &Context, args: &[&str]) -> String {
        let out = self.build_output(context, "should-fail", args);
        let log = output_text(&out);
        assert!(
            !out.status.success(),
            "the build should have failed:\n{log}"
        );
        log
    }

    /// Runs `args` in a container of `image` (`rbuild run --rm`); returns stdout, panics
    /// unless it exits 0.
    pub fn run(&self, image: &str, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm", image];
        all.extend_from_slice(args);
        self.rbuild(&all)
    }

    /// A file of `image`, read by `cat` in a container.
    pub fn cat(&self, image: &str, path: &str) -> String {
        self.run(image, &["cat", path])
    }

    /// `rbuild image inspect IMAGE`, the first (only) object.
    pub fn inspect(&self, image: &str) -> Value {
        let text = self.rbuild(&["image", "inspect", image]);
        let value: Value = serde_json::from_str(&text).expect("image inspect prints JSON");
        value.get(0).cloned().expect("one image inspected")
    }

    /// The image's config blob as stored (OCI keys: `config`, `history`, `rootfs`, …), read
    /// from the store's OCI layout through the manifest `image inspect` names.
    pub fn config(&self, image: &str) -> Value {
        let inspect = self.inspect(image);
        let manifest_digest = inspect["Descriptor"]["digest"]
            .as_str()
            .expect("inspect names the manifest");
        let manifest = self.blob_json(manifest_digest);
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .expect("manifest names its config");
        self.blob_json(config_digest)
    }

    /// The `Config` section (Env, Cmd, User, …) of the image's config.
    pub fn container_config(&self, image: &str) -> Value {
        self.config(image)["config"].clone()
    }

    /// The image's history as (created_by, empty_layer) pairs, base image entries included.
    pub fn history(&self, image: &str) -> Vec<(String, bool)> {
        self.config(image)["history"]
            .as_array()
            .expect("history is a list")
            .iter()
            .map(|h| {
                (
                    h["created_by"].as_str().unwrap_or_default().to_owned(),
                    h["empty_layer"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    fn blob_json(&self, digest: &str) -> Value {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = self.root().join("blobs/sha256").join(hex);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).expect("blob is JSON")
    }

    /// Files anywhere in the store (blobs, snapshots, cache records, …) whose content holds
    /// `needle`.
    pub fn files_containing(&self, needle: &[u8]) -> Vec<PathBuf> {
        walkdir::WalkDir::new(self.root())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| {
                fs::read(e.path())
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            })
            .map(|e| e.path().to_path_buf())
            .collect()
    }

    /// Asserts that `rbuild system fsck` finds the store consistent.
    pub fn fsck(&self) {
        self.rbuild(&["system", "fsck"]);
    }
}

/// A finished build: its tag, its log and its root filesystem exported into a temp dir.
pub struct Built {
    pub tag: String,
    pub log: String,
    rootfs: tempfile::TempDir,
}

impl Built {
    /// Where `path` (absolute in the image) is in the exported root filesystem.
    pub fn path(&self, path: &str) -> PathBuf {
        self.rootfs.path().join(path.trim_start_matches('/'))
    }

    /// The content of a file of the image.
    pub fn read(&self, path: &str) -> String {
        let host = self.path(path);
        fs::read_to_string(&host)
            .unwrap_or_else(|e| panic!("{path} in {}: {e}\nbuild log:\n{}", self.tag, self.log))
    }

    /// Whether `path` exists in the image (a dangling symlink counts).
    pub fn exists(&self, path: &str) -> bool {
        fs::symlink_metadata(self.path(path)).is_ok()
    }

    /// `(mode & 0o7777, uid, gid)` of `path`, not following a symlink.
    pub fn owner_mode(&self, path: &str) -> (u32, u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(self.path(path))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", self.tag));
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    }

    /// The modification time of `path` in seconds.
    pub fn mtime(&self, path: &str) -> i64 {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(self.path(path))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", self.tag))
            .mtime()
    }

    /// The names in a directory of the image, sorted.
    pub fn list(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(path))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", self.tag))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

/// A build context in a temp dir: a Dockerfile and the files written into it.
pub struct Context {
    dir: tempfile::TempDir,
}

impl Context {
    /// A context whose `Dockerfile` is `dockerfile`.
    pub fn new(dockerfile: &str) -> Context {
        let context = Context {
            dir: tempfile::Builder::new()
                .prefix("rbuild-test-context")
                .tempdir()
                .expect("temp dir"),
        };
        context.file("Dockerfile", dockerfile)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `relative` (parents created) with `content`, mode 0644.
    pub fn file(self, relative: &str, content: &str) -> Context {
        self.bytes(relative, content.as_bytes(), 0o644)
    }

    /// Writes `relative` (parents created) with `content` and `mode`.
    pub fn bytes(self, relative: &str, content: &[u8], mode: u32) -> Context {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::write(&path, content).expect("write context file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        self
    }

    /// Creates a symlink `relative` → `target`.
    pub fn symlink(self, relative: &str, target: &str) -> Context {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        std::os::unix::fs::symlink(target, &path).expect("symlink");
        self
    }

    /// Replaces the Dockerfile.
    pub fn dockerfile(self, text: &str) -> Context {
        self.file("Dockerfile", text)
    }
}

/// What [`HttpServer`] serves at one path.
#[derive(Debug, Clone)]
pub struct Served {
    pub body: Vec<u8>,
    /// The `Last-Modified` header, when given (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub last_modified: Option<String>,
}

/// A tiny HTTP/1.0 server on 127.0.0.1 serving fixed files (404 for anything else); it
/// counts the requests it answered, and stops when dropped.
pub struct HttpServer {
    address: std::net::SocketAddr,
    files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Served>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Starts serving `files` (path → what to answer) on a free port.
    pub fn start<P: Into<String>>(files: impl IntoIterator<Item = (P, Served)>) -> HttpServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let files: std::collections::HashMap<String, Served> = files
            .into_iter()
            .map(|(path, served)| (path.into(), served))
            .collect();
        let files = std::sync::Arc::new(std::sync::Mutex::new(files));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = {
            let files = files.clone();
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        continue;
                    }
                    // Skip the headers.
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
                    // The query is not part of the file's name (git asks for
                    // `info/refs?service=…` and falls back to the plain file).
                    let path = target.split('?').next().unwrap_or(target);
                    let served = files.lock().ok().and_then(|f| f.get(path).cloned());
                    let response = match served {
                        Some(served) => {
                            let mut head = format!(
                                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n",
                                served.body.len()
                            );
                            if let Some(date) = &served.last_modified {
                                head.push_str(&format!("Last-Modified: {date}\r\n"));
                            }
                            head.push_str("Connection: close\r\n\r\n");
                            let mut bytes = head.into_bytes();
                            bytes.extend_from_slice(&served.body);
                            bytes
                        }
                        None => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                    };
                    let _ = stream.write_all(&response);
                }
            })
        };
        HttpServer {
            address,
            files,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// Every file under `dir`, to be served at `prefix` + its path relative to `dir` (a bare
    /// git repository after `git update-server-info` serves clones over git's dumb HTTP).
    pub fn files_under(prefix: &str, dir: &Path) -> Vec<(String, Served)> {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let relative = e.path().strip_prefix(dir).expect("under dir");
                (
                    format!("{prefix}/{}", relative.display()),
                    Served {
                        body: fs::read(e.path()).expect("read served file"),
                        last_modified: None,
                    },
                )
            })
            .collect()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Serves `served` at `path` from now on (replacing what was there).
    pub fn serve(&self, path: &str, served: Served) {
        self.files
            .lock()
            .expect("files lock")
            .insert(path.to_owned(), served);
    }

    /// How many requests were answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
