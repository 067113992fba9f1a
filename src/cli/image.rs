//! Image commands, with Docker's flags and output: import, load, save, images / image ls,
//! tag, rmi / image rm, image inspect, history, image prune.

pub(crate) mod template;

use clap::{Args, Subcommand};
use rbuild::image::time::{format_rfc3339, human_since, parse_rfc3339};
use rbuild::image::{ImageError, Reference};
use rbuild::store::{ArchiveFormat, Image, ImportOptions, SaveItem, Store, StoreError};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use template::Format;

/// Errors of the image and system commands, as printed after `Error: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Format(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// The top-level image commands and the `image` group.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// List images
    Images(ListArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RemoveArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageSubcommand,
    },
}

#[derive(Subcommand)]
pub enum ImageSubcommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RemoveArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// A root filesystem tarball (plain, gzip or zstd), or - for STDIN
    file: String,
    /// Name the image: REPOSITORY[:TAG]
    reference: Option<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, USER, VOLUME, WORKDIR); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    change: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Archive layout: docker (Docker archive with an OCI layout, what Docker 25+ writes) or oci
    #[arg(long, default_value = "docker", value_parser = ["docker", "oci"])]
    format: String,
}

#[derive(Args)]
pub struct ListArgs {
    /// REPOSITORY[:TAG] to list
    reference: Option<String>,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (dangling=true|false, reference=PATTERN)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct RemoveArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Format output using a custom template: 'json', or a Go template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct HistoryArgs {
    image: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Runs an image command against the store at `root`.
pub fn run(root: Option<PathBuf>, command: ImageCommand) -> ExitCode {
    let result = open(root).and_then(|store| match command {
        ImageCommand::Import(a) => import(&store, a),
        ImageCommand::Load(a) => load(&store, a),
        ImageCommand::Save(a) => save(&store, a),
        ImageCommand::Images(a) => list(&store, a),
        ImageCommand::Tag(a) => tag(&store, a),
        ImageCommand::Rmi(a) => remove(&store, a),
        ImageCommand::History(a) => history(&store, a),
        ImageCommand::Image { command } => match command {
            ImageSubcommand::Ls(a) => list(&store, a),
            ImageSubcommand::Rm(a) => remove(&store, a),
            ImageSubcommand::Inspect(a) => inspect(&store, a),
            ImageSubcommand::History(a) => history(&store, a),
            ImageSubcommand::Import(a) => import(&store, a),
            ImageSubcommand::Load(a) => load(&store, a),
            ImageSubcommand::Save(a) => save(&store, a),
            ImageSubcommand::Tag(a) => tag(&store, a),
            ImageSubcommand::Prune(a) => prune(&store, a),
        },
    });
    report(result)
}

/// Prints an error the way the other commands do and turns it into the exit status.
pub(crate) fn report(result: CliResult) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn open(root: Option<PathBuf>) -> CliResult<Store> {
    Ok(Store::open(root.unwrap_or_else(Store::default_root))?)
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

fn input(path: &str) -> CliResult<Box<dyn Read>> {
    if path == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path).map_err(io_error(path))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

fn import(store: &Store, args: ImportArgs) -> CliResult {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let config = rbuild::plan::config_changes(&args.change).map_err(|e| {
        CliError::Usage(format!(
            "--change: {} (line {} of the changes)",
            e.message,
            e.line.saturating_sub(1)
        ))
    })?;
    let options = ImportOptions {
        message: args.message,
        platform: args.platform,
        config,
    };
    let image = store.import_rootfs(input(&args.file)?, &options)?;
    if let Some(reference) = reference {
        store.tag(&reference, &image.manifest_descriptor)?;
    }
    println!("{}", image.id());
    Ok(())
}

fn load(store: &Store, args: LoadArgs) -> CliResult {
    let reader: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(path).map_err(io_error(path.display().to_string()))?,
        )),
        None => {
            if io::stdin().is_terminal() {
                return Err(CliError::Usage(
                    "requested load from stdin, but stdin is empty".to_string(),
                ));
            }
            Box::new(io::stdin().lock())
        }
    };
    let report = store.load_archive(reader)?;
    if !args.quiet {
        for name in &report.tagged {
            println!("Loaded image: {name}");
        }
        for id in &report.untagged {
            println!("Loaded image ID: {id}");
        }
    }
    Ok(())
}

fn save(store: &Store, args: SaveArgs) -> CliResult {
    let mut items: Vec<SaveItem> = Vec::new();
    for text in &args.images {
        let image = store.find_image(text)?;
        let name = Reference::parse(text)
            .ok()
            .filter(|r| store.lookup_ref(r).ok().flatten().is_some() && r.tag().is_some());
        match items.iter_mut().find(|i| i.image.id() == image.id()) {
            Some(item) => item.names.extend(name),
            None => items.push(SaveItem {
                image,
                names: name.into_iter().collect(),
            }),
        }
    }
    let format = if args.format == "oci" {
        ArchiveFormat::Oci
    } else {
        ArchiveFormat::Docker
    };
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failed save leaves no partial file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(io_error(dir.display().to_string()))?;
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
            store.save_archive(&items, format, &mut out)?;
            out.flush().map_err(io_error(path.display().to_string()))?;
            drop(out);
            tmp.persist(path)
                .map_err(|e| io_error(path.display().to_string())(e.error))?;
        }
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(CliError::Usage(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        .to_string(),
                ));
            }
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            store.save_archive(&items, format, &mut out)?;
            out.flush().map_err(io_error("stdout"))?;
        }
    }
    Ok(())
}

fn tag(store: &Store, args: TagArgs) -> CliResult {
    let image = store.find_image(&args.source)?;
    let target = Reference::parse(&args.target)?;
    if target.digest().is_some() {
        return Err(CliError::Usage(format!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        )));
    }
    store.tag(&target, &image.manifest_descriptor)?;
    Ok(())
}

/// `12 hex` image ID or the full `sha256:…` one.
fn short_id(digest: &oci_spec::image::Digest, no_trunc: bool) -> String {
    if no_trunc {
        digest.to_string()
    } else {
        digest.digest().chars().take(12).collect()
    }
}

/// go-units HumanSizeWithPrecision(size, 3): decimal units, three significant digits.
pub(crate) fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits_before_point = if value >= 100.0 {
        3
    } else if value >= 10.0 {
        2
    } else {
        1
    };
    let decimals = 3usize.saturating_sub(digits_before_point);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS.get(unit).copied().unwrap_or("B"))
}

/// Go's time.Time String(): `2024-01-02 03:04:05 +0000 UTC`.
fn go_time(created: Option<&str>) -> String {
    created
        .and_then(parse_rfc3339)
        .map(|secs| {
            format_rfc3339(secs, 0)
                .replace('T', " ")
                .replace('Z', " +0000 UTC")
        })
        .unwrap_or_default()
}

fn since(created: Option<&str>) -> String {
    created
        .and_then(parse_rfc3339)
        .map(human_since)
        .unwrap_or_else(|| "N/A".to_string())
}

/// Renders rows with a `--format` (or the default table); `json` prints one object per line.
pub(crate) fn print_rows(
    format: Option<&str>,
    default_table: &str,
    rows: &[Value],
    headers: &Value,
) -> CliResult {
    let text = match format {
        Some("json") => rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        Some(f) if f != "table" => Format::parse(f)
            .and_then(|t| t.render_rows(rows, headers))
            .map_err(CliError::Format)?,
        _ => Format::parse(default_table)
            .and_then(|t| t.render_rows(rows, headers))
            .map_err(CliError::Format)?,
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(io_error("stdout"))
}

/// Matches Docker's `reference=` filter: a glob over the familiar name with or without tag.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                go(p.get(1..).unwrap_or_default(), t)
                    || (t.first().is_some_and(|&c| c != b'/')
                        && go(p, t.get(1..).unwrap_or_default()))
            }
            (Some(b'?'), Some(&c)) if c != b'/' => go(
                p.get(1..).unwrap_or_default(),
                t.get(1..).unwrap_or_default(),
            ),
            (Some(a), Some(b)) if a == b => go(
                p.get(1..).unwrap_or_default(),
                t.get(1..).unwrap_or_default(),
            ),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn list(store: &Store, args: ListArgs) -> CliResult {
    let mut dangling_filter: Option<bool> = None;
    let mut reference_filters: Vec<String> = args.reference.iter().cloned().collect();
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("dangling", v)) => {
                dangling_filter = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--filter {filter}: invalid filter 'dangling={v}'"
                        )));
                    }
                });
            }
            Some(("reference", v)) => reference_filters.push(v.to_string()),
            _ => {
                return Err(CliError::Usage(format!(
                    "--filter {filter}: invalid filter"
                )));
            }
        }
    }
    let mut rows: Vec<(i64, Value)> = Vec::new();
    for entry in store.images()? {
        let image = store.load_image(&entry.manifest)?;
        let repo_digests = store.repo_digests(entry.manifest.digest())?;
        let dangling = entry.names.is_empty();
        if dangling_filter.is_some_and(|want| want != dangling) {
            continue;
        }
        let created = image.config.created.as_deref();
        let secs = created.and_then(parse_rfc3339).unwrap_or(0);
        let names: Vec<Option<Reference>> = if dangling {
            vec![None]
        } else {
            entry
                .names
                .iter()
                .map(|n| Reference::parse(n).ok())
                .collect()
        };
        for name in names {
            let (repository, tag) = match &name {
                Some(r) => (r.familiar_name(), r.tag().unwrap_or("<none>").to_string()),
                None => ("<none>".to_string(), "<none>".to_string()),
            };
            if !reference_filters.is_empty() {
                let Some(r) = &name else { continue };
                let full = format!("{repository}:{tag}");
                if !reference_filters.iter().any(|p| {
                    glob_match(p, &repository)
                        || glob_match(p, &full)
                        || glob_match(p, &r.familiar())
                }) {
                    continue;
                }
            }
            let size = human_size(image.size());
            rows.push((
                secs,
                json!({
                    "Containers": "N/A",
                    "CreatedAt": go_time(created),
                    "CreatedSince": since(created),
                    "Digest": row_digest(name.as_ref(), &repo_digests),
                    "ID": short_id(image.id(), args.no_trunc),
                    "Repository": repository,
                    "SharedSize": "N/A",
                    "Size": size,
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": size,
                }),
            ));
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let rows: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            if let Some(id) = row.get("ID").and_then(Value::as_str)
                && seen.insert(id.to_string())
            {
                println!("{id}");
            }
        }
        return Ok(());
    }
    let headers = json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    let default = if args.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    print_rows(args.format.as_deref(), default, &rows, &headers)
}

/// The DIGEST of an `images` row, as Docker shows it: the digest in the name, else the
/// image's RepoDigest in the row's repository.
fn row_digest(name: Option<&Reference>, repo_digests: &[String]) -> String {
    let Some(name) = name else {
        return "<none>".to_string();
    };
    if let Some(digest) = name.digest() {
        return digest.to_string();
    }
    repo_digests
        .iter()
        .filter_map(|entry| Reference::parse(entry).ok())
        .find(|entry| entry.name() == name.name())
        .and_then(|entry| entry.digest().map(ToString::to_string))
        .unwrap_or_else(|| "<none>".to_string())
}

/// `docker image inspect`'s shape for an image.
fn inspect_value(image: &Image, names: &[String], repo_digests: &[String]) -> Value {
    let config = &image.config;
    let repo_tags: Vec<String> = names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.tag().is_some())
        .map(|r| r.familiar())
        .collect();
    let comment = config.extra.get("comment").cloned().unwrap_or(json!(""));
    json!({
        "Id": image.id().to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": config.extra.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config.as_ref().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
        "Architecture": config.architecture,
        "Variant": config.variant,
        "Os": config.os,
        "Size": image.size(),
        "RootFS": {
            "Type": config.rootfs.kind,
            "Layers": config.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "Descriptor": serde_json::to_value(&image.manifest_descriptor).unwrap_or(Value::Null),
    })
}

/// JSON indented by four spaces, as `docker inspect` prints it.
pub(crate) fn pretty_json(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    match serde::Serialize::serialize(value, &mut serializer) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => value.to_string(),
    }
}

fn names_of(store: &Store, image: &Image) -> CliResult<Vec<String>> {
    Ok(store
        .images()?
        .into_iter()
        .find(|e| e.manifest.digest() == image.manifest_descriptor.digest())
        .map(|e| e.names)
        .unwrap_or_default())
}

fn inspect(store: &Store, args: InspectArgs) -> CliResult {
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for text in &args.images {
        match store.find_image(text) {
            Ok(image) => values.push(inspect_value(
                &image,
                &names_of(store, &image)?,
                &store.repo_digests(image.manifest_descriptor.digest())?,
            )),
            Err(StoreError::ImageNotFound(_)) => missing.push(text.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    let out = match args.format.as_deref() {
        None | Some("json") => format!("{}\n", pretty_json(&Value::Array(values))),
        Some(f) => {
            let template = Format::parse(f).map_err(CliError::Format)?;
            values
                .iter()
                .map(|v| template.render(v).map(|s| format!("{s}\n")))
                .collect::<Result<String, _>>()
                .map_err(CliError::Format)?
        }
    };
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(io_error("stdout"))?;
    match missing.first() {
        Some(first) => Err(CliError::Store(StoreError::ImageNotFound(first.clone()))),
        None => Ok(()),
    }
}

/// Docker's Ellipsis: at most `max` characters, the last one `…` when cut.
fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn history(store: &Store, args: HistoryArgs) -> CliResult {
    let image = store.find_image(&args.image)?;
    let layers = image.manifest.layers();
    let mut layer_sizes = layers.iter().map(|l| l.size());
    let mut rows: Vec<Value> = Vec::new();
    let entries = &image.config.history;
    for (i, entry) in entries.iter().enumerate() {
        let size = if entry.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = entry.created.as_deref();
        let created_by = entry
            .created_by
            .clone()
            .unwrap_or_default()
            .replace('\t', " ");
        let id = if i + 1 == entries.len() {
            short_id(image.id(), args.no_trunc)
        } else {
            "<missing>".to_string()
        };
        rows.push(json!({
            "ID": id,
            "CreatedAt": created.unwrap_or_default(),
            "CreatedSince": if args.human { since(created) } else { created.unwrap_or_default().to_string() },
            "CreatedBy": if args.no_trunc { created_by } else { ellipsis(&created_by, 45) },
            "Size": if args.human { human_size(size) } else { size.to_string() },
            "Comment": entry.comment.clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    if args.quiet {
        for row in &rows {
            println!(
                "{}",
                row.get("ID").and_then(Value::as_str).unwrap_or_default()
            );
        }
        return Ok(());
    }
    let headers = json!({"ID": "IMAGE", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    print_rows(
        args.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &rows,
        &headers,
    )
}

fn remove(store: &Store, args: RemoveArgs) -> CliResult {
    let mut failed = None;
    let mut deleted_any = false;
    for text in &args.images {
        match remove_one(store, text, args.force) {
            Ok(deleted) => deleted_any |= deleted,
            Err(e) => {
                eprintln!("Error: {e}");
                failed = Some(e);
            }
        }
    }
    if deleted_any && !args.no_prune {
        store.collect_garbage()?;
    }
    match failed {
        Some(_) => Err(CliError::Usage(
            "some images could not be removed".to_string(),
        )),
        None => Ok(()),
    }
}

/// Untags a name, or deletes an image given by ID; deletes the image once no name is left,
/// unless a container uses it (pinned). Returns whether an image was deleted.
fn remove_one(store: &Store, text: &str, force: bool) -> CliResult<bool> {
    let image = store.find_image(text)?;
    let names = names_of(store, &image)?;
    let by_name = Reference::parse(text)
        .ok()
        .filter(|r| store.lookup_ref(r).ok().flatten().is_some());
    let last_name = by_name.is_none() || names.len() <= 1;
    let user = store
        .pins()?
        .into_iter()
        .find(|(_, pinned)| pinned.contains(image.manifest_descriptor.digest()))
        // Container IDs shown truncated, as Docker's TruncateID.
        .map(|(name, _)| name.chars().take(12).collect::<String>());
    if let (true, Some(user), false) = (last_name, &user, force) {
        return Err(CliError::Usage(format!(
            "conflict: unable to remove repository reference {text:?} (must force) - container {user} is using its referenced image {}",
            short_id(image.id(), false)
        )));
    }
    match by_name {
        Some(reference) => {
            store.untag(&reference)?;
            println!("Untagged: {}", reference.familiar());
            if names.len() > 1 {
                return Ok(false);
            }
        }
        None => {
            if names.len() > 1 && !force {
                return Err(CliError::Usage(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(image.id(), false)
                )));
            }
            for name in &names {
                store.untag(&Reference::parse(name)?)?;
                println!("Untagged: {name}");
            }
        }
    }
    // Forced off an image a container uses: the image stays, untagged, as Docker leaves it.
    if user.is_some() {
        return Ok(false);
    }
    store.forget_image(image.manifest_descriptor.digest())?;
    println!("Deleted: {}", image.id());
    Ok(true)
}

/// Asks "Are you sure?" unless forced; false when the answer is not yes.
pub(crate) fn confirm(warning: &str, force: bool) -> CliResult<bool> {
    if force {
        return Ok(true);
    }
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    io::stdout().flush().map_err(io_error("stdout"))?;
    let mut answer = String::new();
    io::stdin()
        .read_line(&mut answer)
        .map_err(io_error("stdin"))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Deletes dangling images (all unused with `all`); returns Docker's report lines.
pub(crate) fn prune_images(store: &Store, all: bool) -> CliResult<Vec<String>> {
    let mut lines = Vec::new();
    for image in store.prune_images(all)? {
        lines.extend(image.names.iter().map(|n| format!("untagged: {n}")));
        lines.extend(image.id.map(|id| format!("deleted: {id}")));
    }
    Ok(lines)
}

fn prune(store: &Store, args: PruneArgs) -> CliResult {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    confirm_and_prune(store, warning, args.all, false, args.force)
}

/// Asks (unless `force`), removes unused images (all unused ones with `all`) and, with
/// `build_cache`, the build cache, collects what nothing references any more and reports it
/// as `docker image prune` / `system prune` do.
pub(crate) fn confirm_and_prune(
    store: &Store,
    warning: &str,
    all: bool,
    build_cache: bool,
    force: bool,
) -> CliResult {
    if !confirm(warning, force)? {
        return Ok(());
    }
    let deleted = prune_images(store, all)?;
    if build_cache {
        store.clear_build_cache()?;
    }
    let report = store.collect_garbage()?;
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for line in &deleted {
            println!("{line}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
        assert_eq!(human_size(12_345), "12.3kB");
    }

    #[test]
    fn reference_filter_globs() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:t", "busybox:t"));
        assert!(!glob_match("busy*", "a/busybox"));
        assert!(glob_match("*/app", "user/app"));
    }
}
