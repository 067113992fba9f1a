//! `rbuild build` (and `rbuild [OPTIONS] CONTEXT`): docker build's flags in, the library's
//! parse → plan → build out, the image tagged, exported and its ID printed.

use clap::Args;
use nix::sys::signal::{SigHandler, Signal};
use rbuild::build::options::{
    BuildArg, CacheSpec, Destination, HostEntry, NetworkMode, Output, Secret,
};
use rbuild::build::{BuildError, BuildOptions};
use rbuild::context::Context;
use rbuild::image::Reference;
use rbuild::plan::{PlanError, PlanOptions};
use rbuild::progress::{self, Mode};
use rbuild::store::{ArchiveFormat, Image, SaveItem, Store};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (format: "name:tag"); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"); - reads it from STDIN
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// Set build-time variables (NAME=VALUE, or NAME to take it from the environment)
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_args: Vec<BuildArg>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    no_cache_filter: Vec<String>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Set target platform for build (only the host's)
    #[arg(long)]
    platform: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: NetworkMode,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// SSH agent socket to expose to the build ("default" for $SSH_AUTH_SOCK)
    #[arg(long)]
    ssh: Option<String>,
    /// Add a custom host-to-IP mapping (format: "host:ip")
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_hosts: Vec<HostEntry>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write build result metadata to the file
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Set type of progress output: auto, tty, plain, json, quiet
    #[arg(long, default_value = "auto")]
    progress: Mode,
    /// Output destination (format: "type=local,dest=path"); type image, oci, docker, tar, local
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    outputs: Vec<Output>,
    /// OCI runtime for RUN steps: embedded (default), runc, crun or a path
    #[arg(long, default_value = "embedded")]
    runtime: String,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pull: bool,
    /// Push the image to the registry of every -t name (shorthand for --output=type=registry)
    #[arg(long)]
    push: bool,
    /// External cache sources (e.g. "type=registry,ref=NAME", "type=local,src=DIR")
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<CacheSpec>,
    /// Cache export destinations (e.g. "type=registry,ref=NAME", "type=local,dest=DIR")
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Vec<CacheSpec>,
    /// Build context: a directory, or - for a tar stream on STDIN
    #[arg(value_name = "PATH | -")]
    context: String,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Message(String),
    #[error("{file}:{line}:{column}: {message}")]
    Dockerfile {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
}

fn message(text: impl std::fmt::Display) -> CliError {
    CliError::Message(text.to_string())
}

pub fn run(root: Option<PathBuf>, args: BuildArgs) -> ExitCode {
    // Ctrl-C and SIGTERM stop a build even when the shell that started it in the background
    // made it ignore them: the sandbox's processes die with it (parent-death signal), mounts
    // live in namespaces that die with it, and the next build clears its work dirs.
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: restoring the default disposition installs no handler.
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
    }
    match build(root, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {error}");
            ExitCode::FAILURE
        }
    }
}

fn build(root: Option<PathBuf>, args: BuildArgs) -> Result<(), CliError> {
    if let Some(platform) = &args.platform {
        let host = rbuild::dockerfile::vars::Platform::host();
        if rbuild::dockerfile::vars::Platform::parse(platform).as_ref() != Some(&host) {
            return Err(message(format!(
                "--platform {platform}: only the host platform ({host}) can be built"
            )));
        }
    }
    let tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| message(format!("-t {t}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| message(format!("--label {l:?}: expected KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secrets = args
        .secrets
        .iter()
        .map(|s| Secret::parse(s, |name| std::env::var_os(name).is_some()).map_err(message))
        .collect::<Result<Vec<_>, _>>()?;
    let ssh_agent = match args.ssh.as_deref() {
        None => None,
        Some("default") => Some(PathBuf::from(
            std::env::var_os("SSH_AUTH_SOCK")
                .ok_or_else(|| message("--ssh default: SSH_AUTH_SOCK is not set"))?,
        )),
        Some(spec) => Some(PathBuf::from(spec.strip_prefix("default=").unwrap_or(spec))),
    };
    let store = Store::open(root.unwrap_or_else(Store::default_root)).map_err(message)?;

    // The Dockerfile and the context.
    let (dockerfile_name, dockerfile_text, context) = read_inputs(&args)?;
    let parsed = rbuild::dockerfile::parse_bytes(&dockerfile_text);
    if parsed.has_errors() {
        let text = String::from_utf8_lossy(&dockerfile_text);
        return Err(message(format!(
            "failed to parse {dockerfile_name}:\n{}",
            parsed
                .render_diagnostics(&dockerfile_name, &text)
                .trim_end()
        )));
    }
    let build_args: Vec<(String, String)> = args
        .build_args
        .iter()
        .filter_map(|a| a.resolve(|name| std::env::var(name).ok()))
        .collect();
    let source_date_epoch = build_args
        .iter()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                message(format!(
                    "SOURCE_DATE_EPOCH {v:?} is not a number of seconds"
                ))
            })
        })
        .transpose()?;
    let plan_options = PlanOptions {
        build_args,
        target: args.target.clone(),
        labels,
    };
    let plan = rbuild::plan::plan(&parsed, &plan_options, &mut |reference| {
        base_config(&store, reference, args.pull)
    })
    .map_err(|e: PlanError| CliError::Dockerfile {
        file: dockerfile_name.clone(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;

    for spec in &args.cache_from {
        rbuild::build::cache_io::import(&store, spec).map_err(message)?;
    }
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress
    };
    let renderer = Mutex::new(progress::to_stderr(mode));
    let options = BuildOptions {
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        network: args.network,
        secrets,
        add_hosts: args.add_hosts.clone(),
        runtime: Some(super::run::runtime(&args.runtime)),
        source_date_epoch,
        ssh_agent,
        position_prefix: format!("{}\0{dockerfile_name}", context.root().display()),
    };
    let events = |event: rbuild::progress::Event| {
        if let Ok(mut renderer) = renderer.lock() {
            renderer.event(&event);
        }
    };
    let built = rbuild::build::build(&store, &context, &plan, &options, &events);
    if let Ok(mut renderer) = renderer.lock() {
        renderer.finish();
    }
    let built = built.map_err(|e| match e {
        BuildError::Step {
            name,
            line,
            column,
            message,
        } => CliError::Dockerfile {
            file: dockerfile_name.clone(),
            line,
            column,
            message: format!("{name}: {message}"),
        },
        other => self::message(other),
    })?;
    for name in &plan.unused_build_args {
        if mode != Mode::Quiet {
            eprintln!(
                "WARNING: build argument {name:?} was not consumed by any ARG in the Dockerfile"
            );
        }
    }
    let names: &[Reference] = if args.outputs.is_empty()
        || args
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Image | Output::Registry))
    {
        &tags
    } else {
        &[]
    };
    let image = built.store(&store, names).map_err(message)?;
    for spec in &args.cache_to {
        rbuild::build::cache_io::export(&store, &built.cache_keys, spec).map_err(message)?;
    }
    finish(&store, &image, &tags, &args)
}

/// Tags, exports, pushes and reports the built image.
fn finish(
    store: &Store,
    image: &Image,
    tags: &[Reference],
    args: &BuildArgs,
) -> Result<(), CliError> {
    let outputs = if args.outputs.is_empty() {
        vec![Output::Image]
    } else {
        args.outputs.clone()
    };
    for output in &outputs {
        match output {
            // Tagged when stored.
            Output::Image | Output::Registry => {}
            Output::Oci(dest) | Output::Docker(dest) => {
                let format = if matches!(output, Output::Oci(_)) {
                    ArchiveFormat::Oci
                } else {
                    ArchiveFormat::Docker
                };
                let items = [SaveItem {
                    image: image.clone(),
                    names: tags.to_vec(),
                }];
                write_to(dest, |out| {
                    store.save_archive(&items, format, out).map_err(message)
                })?;
            }
            Output::Tar(dest) => {
                let tree = export_tree(store, image)?;
                write_to(dest, |out| {
                    rbuild::snapshot::write_layer(tree.path(), out, &Default::default())
                        .map(|_| ())
                        .map_err(message)
                })?;
            }
            Output::Local(dir) => {
                fs::create_dir_all(dir).map_err(|e| message(format!("{}: {e}", dir.display())))?;
                flatten_into(store, image, dir)?;
            }
        }
    }
    if args.push || outputs.contains(&Output::Registry) {
        if tags.is_empty() {
            return Err(message("--push needs at least one -t name"));
        }
        let runtime = tokio::runtime::Runtime::new().map_err(message)?;
        for tag in tags {
            runtime
                .block_on(rbuild::registry::push(
                    store,
                    image,
                    tag,
                    rbuild::registry::compress::Compression::Gzip,
                    true,
                    &rbuild::registry::NoProgress,
                ))
                .map_err(|e| message(format!("pushing {tag}: {e}")))?;
        }
    }
    let id = image.id().to_string();
    if let Some(path) = &args.iidfile {
        fs::write(path, &id).map_err(|e| message(format!("--iidfile {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.metadata_file {
        let names: Vec<String> = tags.iter().map(ToString::to_string).collect();
        let metadata = serde_json::json!({
            "containerimage.config.digest": id,
            "containerimage.digest": image.manifest_descriptor.digest().to_string(),
            "image.name": names.join(","),
        });
        fs::write(
            path,
            serde_json::to_vec_pretty(&metadata).unwrap_or_default(),
        )
        .map_err(|e| message(format!("--metadata-file {}: {e}", path.display())))?;
    }
    println!("{id}");
    Ok(())
}

fn write_to(
    dest: &Destination,
    write: impl FnOnce(&mut dyn Write) -> Result<(), CliError>,
) -> Result<(), CliError> {
    match dest {
        Destination::Stdout => write(&mut io::stdout().lock()),
        Destination::File(path) => {
            let mut file = io::BufWriter::new(
                fs::File::create(path).map_err(|e| message(format!("{}: {e}", path.display())))?,
            );
            write(&mut file)?;
            file.flush().map_err(message)
        }
    }
}

/// The image's root file system in a temporary directory.
fn export_tree(store: &Store, image: &Image) -> Result<tempfile::TempDir, CliError> {
    let dir = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(message)?;
    flatten_into(store, image, dir.path())?;
    Ok(dir)
}

/// Applies the image's layers in order (whiteouts removing what they name) into `dir`.
fn flatten_into(store: &Store, image: &Image, dir: &Path) -> Result<(), CliError> {
    for layer in image.layers().map_err(message)? {
        let tar = store.layer_tar(&layer.blob).map_err(message)?;
        let extracted =
            rbuild::snapshot::extract_layer(tar, dir, &Default::default()).map_err(message)?;
        if extracted.diff_id != layer.diff_id {
            return Err(message(format!(
                "layer {} is not the layer its image names (DiffID {}, found {})",
                layer.blob.digest(),
                layer.diff_id,
                extracted.diff_id
            )));
        }
    }
    Ok(())
}

/// The configuration of a base image: from the store, pulled when missing (or with --pull).
fn base_config(
    store: &Store,
    reference: &str,
    pull: bool,
) -> Result<rbuild::image::ImageConfig, String> {
    if !pull && let Ok(image) = store.find_image(reference) {
        return Ok(image.config);
    }
    let parsed = Reference::parse(reference).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime
        .block_on(rbuild::registry::pull(
            store,
            &parsed,
            true,
            &rbuild::registry::NoProgress,
        ))
        .map_err(|e| format!("{reference}: not in the store, and pulling it failed: {e}"))?;
    store
        .find_image(reference)
        .map(|image| image.config)
        .map_err(|e| e.to_string())
}

/// Reads the Dockerfile and opens the context (a directory, or a tar on stdin).
fn read_inputs(args: &BuildArgs) -> Result<(String, Vec<u8>, Context), CliError> {
    if args.context == "-" {
        if args.file.as_deref() == Some("-") {
            return Err(message(
                "-f - and a context on STDIN cannot both read STDIN",
            ));
        }
        let name = args.file.clone().unwrap_or_else(|| "Dockerfile".to_owned());
        let context = Context::from_tar(
            io::stdin().lock(),
            // Not the store's tmp/: builds clean unlocked entries there.
            &std::env::temp_dir(),
            Some(Path::new(&name)),
        )
        .map_err(|e| message(format!("reading the context from STDIN: {e}")))?;
        let path = context.root().join(&name);
        let text = fs::read(&path)
            .map_err(|e| message(format!("the context on STDIN has no {name}: {e}")))?;
        return Ok((name, text, context));
    }
    let context_dir = PathBuf::from(&args.context);
    if !context_dir.is_dir() {
        return Err(message(format!(
            "unable to prepare context: path {:?} not found or not a directory",
            args.context
        )));
    }
    let (name, text, dockerfile_path) = match args.file.as_deref() {
        Some("-") => {
            let mut text = Vec::new();
            io::stdin()
                .read_to_end(&mut text)
                .map_err(|e| message(format!("reading the Dockerfile from STDIN: {e}")))?;
            ("Dockerfile".to_owned(), text, None)
        }
        Some(file) => {
            let text = fs::read(file)
                .map_err(|e| message(format!("failed to read dockerfile {file}: {e}")))?;
            (file.to_owned(), text, Some(PathBuf::from(file)))
        }
        None => {
            let candidates = [
                context_dir.join("Dockerfile"),
                context_dir.join("dockerfile"),
            ];
            let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                message(format!(
                    "failed to read dockerfile: open {}: no such file or directory",
                    context_dir.join("Dockerfile").display()
                ))
            })?;
            let text = fs::read(found).map_err(|e| message(format!("{}: {e}", found.display())))?;
            (found.display().to_string(), text, Some(found.clone()))
        }
    };
    let context = Context::open(&context_dir, dockerfile_path.as_deref()).map_err(message)?;
    Ok((name, text, context))
}
