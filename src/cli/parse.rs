//! `rbuild parse [--format json|buildkit] FILE|-`: prints the syntax tree of a Dockerfile.

use clap::{Args, ValueEnum};
use rbuild::dockerfile;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// rbuild's JSON: instructions (BuildKit's keys plus spans and typed values) and diagnostics.
    Json,
    /// BuildKit's s-expression dump.
    Buildkit,
}

#[derive(Args)]
pub struct ParseArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// The Dockerfile, or `-` for standard input.
    file: PathBuf,
}

pub fn run(args: ParseArgs) -> ExitCode {
    let (name, bytes) = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
            eprintln!("rbuild parse: reading standard input: {e}");
            return ExitCode::from(2);
        }
        ("-".to_string(), bytes)
    } else {
        match std::fs::read(&args.file) {
            Ok(bytes) => (args.file.display().to_string(), bytes),
            Err(e) => {
                eprintln!("rbuild parse: {}: {e}", args.file.display());
                return ExitCode::from(2);
            }
        }
    };
    let parsed = dockerfile::parse_bytes(&bytes);
    let output = match args.format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&dockerfile::dump::to_json(&parsed))
                .unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Buildkit => dockerfile::dump::buildkit_dump(&parsed),
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("rbuild parse: writing output: {e}");
        return ExitCode::from(2);
    }
    let source = String::from_utf8_lossy(&bytes);
    eprint!("{}", parsed.render_diagnostics(&name, &source));
    if parsed.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
