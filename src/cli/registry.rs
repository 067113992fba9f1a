//! `rbuild login`, `logout`: credentials for registries, in Docker's config format.

use clap::Args;
use rbuild::registry::auth::Credential;
use rbuild::registry::credentials::CredentialFile;
use rbuild::registry::name::{self, DOCKER_HUB, endpoint_host};
use rbuild::registry::{Client, ClientOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

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
