//! `rbuild run`: runs an image from the store in the sandbox, with `docker run`'s flags and
//! rules (Entrypoint + Cmd, Env, WorkingDir, User, exit statuses 125/126/127).

use clap::Args;
use rbuild::sandbox::{self, Limits, Mount, MountKind, Network, Request, Rootfs, Runtime, Stdio};
use rbuild::store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Args)]
// Docker gives `-h` to --hostname, so help is `--help` only.
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits (always the case: containers are not kept yet)
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Network mode: none (loopback only) or host
    #[arg(long, default_value = "none", value_parser = ["none", "host"])]
    network: String,
    /// Bind mount a volume: HOST:CONTAINER[:ro|rw]
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volume: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Container host name
    #[arg(long, short = 'h')]
    hostname: Option<String>,
    /// Memory limit (bytes, or with a b, k, m or g suffix)
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Tune container pids limit
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// OCI runtime: embedded (default), runc, crun or a path
    #[arg(long, default_value = "embedded")]
    runtime: String,
    /// The image to run
    image: String,
    /// The command and its arguments (replaces the image's Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid volume specification {spec:?} (-v): {reason}")]
    Volume { spec: String, reason: &'static str },
    #[error("invalid value {value:?} for {flag}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{path}:{line}: {reason}")]
    EnvFile {
        path: String,
        line: usize,
        reason: &'static str,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no command specified: the image has no Entrypoint or Cmd")]
    NoCommand,
    #[error("{0}")]
    Store(#[from] rbuild::store::StoreError),
    #[error("{0}")]
    Sandbox(#[from] sandbox::Error),
}

impl RunError {
    /// `docker run`'s convention: 125 for its own errors, 126/127 for the command.
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Sandbox(e) => e.exit_code() as u8,
            _ => 125,
        }
    }
}

/// `-v HOST:CONTAINER[:ro|rw]`: both absolute, the host path existing.
pub fn parse_volume(spec: &str) -> Result<Mount, RunError> {
    let invalid = |reason| RunError::Volume {
        spec: spec.to_string(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [host, container] => (*host, *container, false),
        [host, container, "ro"] => (*host, *container, true),
        [host, container, "rw"] => (*host, *container, false),
        [_, _, _] => return Err(invalid("the mode must be ro or rw")),
        _ => return Err(invalid("expected HOST:CONTAINER[:ro|rw]")),
    };
    if !host.starts_with('/') {
        return Err(invalid(
            "the host path must be absolute (named volumes are not supported)",
        ));
    }
    if !container.starts_with('/') || container == "/" {
        return Err(invalid("the container path must be absolute and not /"));
    }
    if !Path::new(host).exists() {
        return Err(invalid("the host path does not exist"));
    }
    Ok(Mount {
        destination: container.to_string(),
        kind: MountKind::Bind(PathBuf::from(host)),
        read_only,
    })
}

/// `--memory`: a number of bytes with an optional b, k, m or g suffix (Docker's RAMInBytes).
pub fn parse_memory(text: &str) -> Result<i64, RunError> {
    let invalid = |reason| RunError::Flag {
        flag: "--memory",
        value: text.to_string(),
        reason,
    };
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let multiplier: i64 = match unit.trim_start() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => return Err(invalid("expected a size such as 64m")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| invalid("expected a size such as 64m"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(invalid("must be positive"));
    }
    let bytes = (value * multiplier as f64) as i64;
    if bytes < 6 * 1024 * 1024 {
        return Err(invalid("the minimum memory limit is 6m"));
    }
    Ok(bytes)
}

/// A `-e` or `--env-file` entry: `K=V` as is, `K` from this process's environment (dropped
/// when unset), as Docker does.
fn env_entry(entry: &str) -> Option<String> {
    if entry.contains('=') {
        Some(entry.to_string())
    } else {
        std::env::var(entry)
            .ok()
            .map(|value| format!("{entry}={value}"))
    }
}

fn read_env_file(path: &Path) -> Result<Vec<String>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('=') {
            return Err(RunError::EnvFile {
                path: path.display().to_string(),
                line: index + 1,
                reason: "variable name is empty",
            });
        }
        entries.extend(env_entry(line));
    }
    Ok(entries)
}

/// Replaces entries with the same key, appends the others (moby's ReplaceOrAppendEnvValues).
fn replace_or_append(base: &mut Vec<String>, overrides: &[String]) {
    for entry in overrides {
        let key = entry.split('=').next().unwrap_or_default();
        match base
            .iter_mut()
            .find(|e| e.split('=').next().unwrap_or_default() == key)
        {
            Some(existing) => *existing = entry.clone(),
            None => base.push(entry.clone()),
        }
    }
}

/// The container's environment as the Docker daemon builds it: PATH, HOSTNAME, TERM (with a
/// tty), then the image's Env, then the user's -e/--env-file entries.
pub fn container_env(
    image_env: &[String],
    user_env: &[String],
    hostname: &str,
    tty: bool,
) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    let mut config_env = image_env.to_vec();
    replace_or_append(&mut config_env, user_env);
    replace_or_append(&mut env, &config_env);
    env
}

/// Entrypoint + Cmd as Docker combines them: `--entrypoint` replaces the image's Entrypoint
/// and drops its Cmd; command-line arguments replace the Cmd.
pub fn command_line(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_flag: Option<&str>,
    arguments: &[String],
) -> Vec<String> {
    let (entrypoint, default_cmd): (Vec<String>, &[String]) = match entrypoint_flag {
        Some("") => (Vec::new(), &[]),
        Some(flag) => (vec![flag.to_string()], &[]),
        None => (image_entrypoint.to_vec(), image_cmd),
    };
    let cmd = if arguments.is_empty() {
        default_cmd.to_vec()
    } else {
        arguments.to_vec()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// `--runtime`: `embedded` (the default), or an OCI runtime by name (`runc`, `crun`) or path.
pub(crate) fn runtime(name: &str) -> Runtime {
    match name {
        "embedded" | "" => Runtime::Embedded,
        other => Runtime::External(PathBuf::from(other)),
    }
}

/// Runs `rbuild run`; the exit status is the process's.
pub fn run(root: Option<PathBuf>, args: RunArgs) -> ExitCode {
    match execute(root, args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("rbuild: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn execute(root: Option<PathBuf>, args: RunArgs) -> Result<u8, RunError> {
    let mounts = args
        .volume
        .iter()
        .map(|spec| parse_volume(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = Limits {
        memory: args.memory.as_deref().map(parse_memory).transpose()?,
        cpus: args.cpus,
        pids: args.pids_limit,
    };
    let mut user_env = Vec::new();
    for path in &args.env_file {
        user_env.extend(read_env_file(path)?);
    }
    user_env.extend(args.env.iter().filter_map(|e| env_entry(e)));
    let network = match args.network.as_str() {
        "host" => Network::Host,
        _ => Network::None,
    };

    let store = Store::open(root.unwrap_or_else(Store::default_root))?;
    let image = store.find_image(&args.image)?;
    // Held until the container exits (dropped on return): rmi refuses the image meanwhile.
    let pin = store.pin_container(image.manifest_descriptor.digest())?;
    let config = image.config.config.clone().unwrap_or_default();
    let command = command_line(
        config.entrypoint.as_deref().unwrap_or_default(),
        config.cmd.as_deref().unwrap_or_default(),
        args.entrypoint.as_deref(),
        &args.command,
    );
    if command.is_empty() {
        return Err(RunError::NoCommand);
    }
    // Docker's default host name: the container ID's first 12 digits.
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| pin.id().chars().take(12).collect());
    let lowerdirs = store.layer_dirs(&image)?;
    // --rm: the upper dir is thrown away, so it goes on tmpfs where there is one.
    let scratch_parent = sandbox::scratch_dir();
    let scratch = tempfile::Builder::new()
        .prefix("rbuild-run-")
        .tempdir_in(&scratch_parent)
        .map_err(|source| RunError::Read {
            path: scratch_parent.display().to_string(),
            source,
        })?;
    let upper = scratch.path().join("upper");
    let work = scratch.path().join("work");
    for dir in [&upper, &work] {
        std::fs::create_dir(dir).map_err(|source| RunError::Read {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let request = Request {
        rootfs: Rootfs::Overlay {
            lowerdirs,
            upper,
            work,
        },
        args: command,
        env: container_env(
            config.env.as_deref().unwrap_or_default(),
            &user_env,
            &hostname,
            args.tty,
        ),
        cwd: args
            .workdir
            .clone()
            .or(config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string()),
        user: args
            .user
            .clone()
            .or(config.user.clone())
            .unwrap_or_default(),
        mounts,
        network,
        hostname,
        read_only: args.read_only,
        stdio: if args.tty {
            Stdio::Tty {
                stdin: args.interactive,
            }
        } else {
            Stdio::Inherit {
                stdin: args.interactive,
            }
        },
        limits,
        runtime: runtime(&args.runtime),
        forward_signals: true,
    };
    let status = sandbox::run(&request, &mut |_, _| {})?;
    // The container has exited: its image is free again. Its upper dir goes with `scratch`
    // (--rm).
    drop(pin);
    Ok(status.code().clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_docker_does() {
        let entrypoint = strings(&["/entry", "-x"]);
        let cmd = strings(&["default"]);
        assert_eq!(
            command_line(&entrypoint, &cmd, None, &[]),
            strings(&["/entry", "-x", "default"])
        );
        assert_eq!(
            command_line(&entrypoint, &cmd, None, &strings(&["mine"])),
            strings(&["/entry", "-x", "mine"])
        );
        assert_eq!(
            command_line(&entrypoint, &cmd, Some("/other"), &[]),
            strings(&["/other"])
        );
        assert_eq!(
            command_line(&entrypoint, &cmd, Some(""), &strings(&["sh"])),
            strings(&["sh"])
        );
        assert_eq!(command_line(&[], &cmd, None, &[]), strings(&["default"]));
    }

    #[test]
    fn environment_follows_the_daemons_order_and_overrides() {
        let env = container_env(
            &strings(&["PATH=/image", "A=1"]),
            &strings(&["A=2", "B=3"]),
            "host1",
            true,
        );
        assert_eq!(
            env,
            strings(&["PATH=/image", "HOSTNAME=host1", "TERM=xterm", "A=2", "B=3"])
        );
        let env = container_env(&[], &[], "h", false);
        assert_eq!(
            env,
            strings(&[&format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h"])
        );
    }

    #[test]
    fn volumes_are_checked() {
        let mount = parse_volume("/tmp:/data:ro").unwrap();
        assert_eq!(mount.destination, "/data");
        assert!(mount.read_only);
        assert!(matches!(
            parse_volume("named:/data"),
            Err(RunError::Volume { .. })
        ));
        assert!(matches!(
            parse_volume("/tmp:data"),
            Err(RunError::Volume { .. })
        ));
        assert!(matches!(
            parse_volume("/tmp:/data:rx"),
            Err(RunError::Volume { .. })
        ));
        assert!(matches!(parse_volume("/tmp"), Err(RunError::Volume { .. })));
        assert!(matches!(
            parse_volume("/no/such/dir:/data"),
            Err(RunError::Volume { .. })
        ));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("10485760").unwrap(), 10485760);
        assert_eq!(parse_memory("8MB").unwrap(), 8 << 20);
        assert!(parse_memory("1k").is_err());
        assert!(parse_memory("lots").is_err());
    }
}
