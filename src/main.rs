//! The `rbuild` binary: argument parsing and dispatch only.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rbuild",
    version,
    about = "A daemonless Dockerfile build engine"
)]
struct Cli {
    /// The store: an OCI image layout with snapshots, cache and containers beside it.
    #[arg(long, global = true, env = "RBUILD_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile (also: rbuild [OPTIONS] PATH)
    Build(cli::build::BuildArgs),
    /// Pull an image from a registry into the store.
    Pull(cli::registry::PullArgs),
    /// Push an image from the store to a registry.
    Push(cli::registry::PushArgs),
    /// Log in to a registry (credentials saved in Docker's config.json).
    Login(cli::registry::LoginArgs),
    /// Log out from a registry.
    Logout(cli::registry::LogoutArgs),
    #[command(flatten)]
    Image(cli::image::ImageCommand),
    /// Manage rbuild: disk usage, clean-up, store checks
    System {
        #[command(subcommand)]
        command: cli::system::SystemCommand,
    },
    /// Print the syntax tree of a Dockerfile.
    Parse(cli::parse::ParseArgs),
    /// Run a command in a new container
    Run(cli::run::RunArgs),
    /// Lint Dockerfiles: hadolint rules and BuildKit checks
    Lint(cli::lint::LintArgs),
}

/// `rbuild -t NAME .` means `rbuild build -t NAME .`: when the first argument (after a
/// global `--root`) is not a command or help/version, `build` is inserted before it.
fn with_implicit_build(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut index = 1;
    while let Some(arg) = args.get(index).and_then(|a| a.to_str()) {
        if arg == "--root" {
            index += 2;
        } else if arg.starts_with("--root=") {
            index += 1;
        } else {
            break;
        }
    }
    let Some(first) = args.get(index).and_then(|a| a.to_str()) else {
        return args;
    };
    let is_command = command
        .get_subcommands()
        .any(|c| c.get_name() == first || c.get_all_aliases().any(|a| a == first))
        || first == "help";
    let is_meta = matches!(first, "-h" | "--help" | "-V" | "--version");
    if !is_command && !is_meta {
        args.insert(index, "build".into());
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_implicit_build(std::env::args_os().collect()));
    match cli.command {
        Command::Build(args) => cli::build::run(cli.root, args),
        Command::Pull(args) => cli::registry::pull(cli.root, args),
        Command::Push(args) => cli::registry::push(cli.root, args),
        Command::Login(args) => cli::registry::login(args),
        Command::Logout(args) => cli::registry::logout(args),
        Command::Image(command) => cli::image::run(cli.root, command),
        Command::System { command } => cli::system::run(cli.root, command),
        Command::Parse(args) => cli::parse::run(args),
        Command::Run(args) => cli::run::run(cli.root, args),
        Command::Lint(args) => cli::lint::run(cli.root, args),
    }
}
