//! `rbuild pull`, `push`, `login`, `logout`: images to and from registries, and the
//! credentials for them in Docker's config format.

use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rbuild::image::Reference;
use rbuild::registry::Progress;
use rbuild::registry::auth::Credential;
use rbuild::registry::compress::Compression;
use rbuild::registry::credentials::CredentialFile;
use rbuild::registry::name::{self, DOCKER_HUB, endpoint_host};
use rbuild::registry::{Client, ClientOptions};
use rbuild::store::Store;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Args)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG] or NAME@DIGEST.
    reference: String,
    /// Verify the registry's TLS certificate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Print only the image name.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Args)]
pub struct PushArgs {
    /// Image in the store: a name or an image ID.
    image: String,
    /// Where to push it (default: the image's own name).
    destination: Option<String>,
    /// How layers are compressed on the wire.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// Compression level: gzip 0-12 (libdeflate's; default 1, the fastest; 2 is about
    /// zlib's level 6 in size, 4% smaller), zstd 1-22 (default 3).
    #[arg(long)]
    compression_level: Option<i32>,
    /// Verify the registry's TLS certificate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Print only the pushed digest.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host (default: Docker Hub).
    server: Option<String>,
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: command lines are visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Verify the registry's TLS certificate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host (default: Docker Hub).
    server: Option<String>,
}

/// The registry named on the command line, Docker Hub when none.
fn server_host(server: Option<&str>) -> String {
    server.map_or_else(|| DOCKER_HUB.to_string(), name::server_host)
}

fn fail(command: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("rbuild {command}: {message}");
    ExitCode::FAILURE
}

fn prompt(label: &str, hide: bool) -> std::io::Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{label}: ")?;
    stderr.flush()?;
    let stdin = std::io::stdin();
    // Turn off echo for the password while it is typed; restore it whatever happens.
    let saved = if hide && stdin.is_terminal() {
        let saved = nix::sys::termios::tcgetattr(&stdin).map_err(std::io::Error::from)?;
        let mut quiet = saved.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet)
            .map_err(std::io::Error::from)?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
        let _ = writeln!(stderr);
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Per-blob progress: bars on a terminal, a line per state change otherwise.
struct Lines {
    quiet: bool,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Lines {
    fn new(quiet: bool) -> Lines {
        let bars = (!quiet && std::io::stdout().is_terminal())
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Lines { quiet, bars }
    }

    fn bar(&self, id: &str) -> Option<ProgressBar> {
        let (multi, bars) = self.bars.as_ref()?;
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template(
                "{prefix}: {msg:20} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(id.to_string());
            bar
        });
        Some(bar.clone())
    }
}

impl Progress for Lines {
    fn status(&self, id: &str, status: &str) {
        if self.quiet {
            return;
        }
        match self.bar(id) {
            Some(bar) => bar.set_message(status.to_string()),
            None => println!("{id}: {status}"),
        }
    }

    fn bytes(&self, id: &str, done: u64, total: u64) {
        if let Some(bar) = self.bar(id) {
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}

fn open_store(root: Option<PathBuf>) -> Result<Store, String> {
    Store::open(root.unwrap_or_else(Store::default_root)).map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("starting the async runtime: {e}"))
}

pub fn pull(root: Option<PathBuf>, args: PullArgs) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
        let store = open_store(root)?;
        let progress = Lines::new(args.quiet);
        if !args.quiet {
            if reference.digest().is_none() && !args.reference.contains(':') {
                println!("Using default tag: latest");
            }
            let label = reference
                .tag()
                .map_or_else(|| reference.familiar(), str::to_string);
            println!("{label}: Pulling from {}", reference.path());
        }
        let pulled = runtime()?
            .block_on(rbuild::registry::pull(
                &store,
                &reference,
                args.tls_verify,
                &progress,
            ))
            .map_err(|e| e.to_string())?;
        if !args.quiet {
            println!("Digest: {}", pulled.digest);
            let status = match pulled.fetched {
                true => "Downloaded newer image",
                false => "Image is up to date",
            };
            println!("Status: {status} for {}", reference.familiar());
        }
        println!("{reference}");
        Ok(())
    })();
    result.map_or_else(|e| fail("pull", e), |()| ExitCode::SUCCESS)
}

pub fn push(root: Option<PathBuf>, args: PushArgs) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let store = open_store(root)?;
        let image = store.find_image(&args.image).map_err(|e| e.to_string())?;
        let target = Reference::parse(args.destination.as_deref().unwrap_or(&args.image))
            .map_err(|e| format!("{e} (name the destination: rbuild push IMAGE NAME[:TAG])"))?;
        let compression = match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        };
        if let Some(level) = args
            .compression_level
            .filter(|level| !compression.levels().contains(level))
        {
            let levels = compression.levels();
            return Err(format!(
                "--compression-level {level}: {} levels are {} to {}",
                compression.name(),
                levels.start(),
                levels.end()
            ));
        }
        let progress = Lines::new(args.quiet);
        if !args.quiet {
            println!("The push refers to repository [{}]", target.name());
        }
        let pushed = runtime()?
            .block_on(rbuild::registry::push_at_level(
                &store,
                &image,
                &target,
                (compression, args.compression_level),
                args.tls_verify,
                &progress,
            ))
            .map_err(|e| e.to_string())?;
        if args.quiet {
            println!("{}", pushed.digest);
        } else {
            println!(
                "{}: digest: {} size: {}",
                target.tag().unwrap_or("latest"),
                pushed.digest,
                pushed.size
            );
        }
        Ok(())
    })();
    result.map_or_else(|e| fail("push", e), |()| ExitCode::SUCCESS)
}

pub fn login(args: LoginArgs) -> ExitCode {
    let host = server_host(args.server.as_deref());
    let password = if args.password_stdin {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            return fail("login", format!("reading the password from stdin: {e}"));
        }
        Some(text.trim_end_matches(['\r', '\n']).to_string())
    } else {
        if args.password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        args.password
    };
    let username = match args.username {
        Some(username) => username,
        None if args.password_stdin => {
            return fail("login", "--password-stdin needs --username");
        }
        None => match prompt("Username", false) {
            Ok(username) => username,
            Err(e) => return fail("login", format!("reading the username: {e}")),
        },
    };
    let password = match password {
        Some(password) => password,
        None => match prompt("Password", true) {
            Ok(password) => password,
            Err(e) => return fail("login", format!("reading the password: {e}")),
        },
    };
    if username.is_empty() || password.is_empty() {
        return fail("login", "username and password must not be empty");
    }
    let options = ClientOptions {
        tls_verify: args.tls_verify,
        credential: Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        }),
        ..ClientOptions::default()
    };
    let checked = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            let client = Client::new(endpoint_host(&host), options).map_err(|e| e.to_string())?;
            runtime
                .block_on(client.check_login())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = checked {
        return fail("login", format!("{host}: {e}"));
    }
    let file = match CredentialFile::default_location() {
        Ok(file) => file,
        Err(e) => return fail("login", e),
    };
    if let Err(e) = file.store(&host, &username, &password) {
        return fail("login", e);
    }
    println!("Login Succeeded");
    ExitCode::SUCCESS
}

pub fn logout(args: LogoutArgs) -> ExitCode {
    let host = server_host(args.server.as_deref());
    let file = match CredentialFile::default_location() {
        Ok(file) => file,
        Err(e) => return fail("logout", e),
    };
    match file.erase(&host) {
        Ok(true) => {
            println!("Removing login credentials for {host}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("Not logged in to {host}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("logout", e),
    }
}
