//! `system df`, `system prune` and `system fsck`: disk use, clean-up and consistency of the store.

use super::image::{CliError, CliResult, confirm_and_prune, human_size, open, print_rows, report};
use clap::{Args, Subcommand};
use rbuild::store::Store;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show rbuild disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(PruneArgs),
    /// Check the store: re-hash every blob and check every image; exit non-zero on problems
    Fsck(FsckArgs),
}

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct FsckArgs {
    /// Remove what cannot be trusted: corrupt blobs and images that lost a blob
    #[arg(long)]
    repair: bool,
}

/// Runs a system command against the store at `root`.
pub fn run(root: Option<PathBuf>, command: SystemCommand) -> ExitCode {
    let store = match open(root) {
        Ok(store) => store,
        Err(e) => return report(Err(e)),
    };
    match command {
        SystemCommand::Df(a) => report(df(&store, a)),
        SystemCommand::Prune(a) => report(prune(&store, a)),
        SystemCommand::Fsck(a) => fsck(&store, a),
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

fn df(store: &Store, args: DfArgs) -> CliResult {
    let images = store.images()?;
    let mut blobs = std::collections::HashSet::new();
    let mut snapshots = std::collections::HashSet::new();
    let mut size = 0u64;
    // What the images hold on disk: each layer blob as stored (compressed when pulled) and
    // each layer unpacked, once however many images share it.
    for entry in &images {
        if let Ok(image) = store.load_image(&entry.manifest) {
            for layer in image.manifest.layers() {
                if blobs.insert(layer.digest().clone()) {
                    size += layer.size();
                }
            }
            for chain_id in image.config.chain_ids() {
                if let (Ok(whole), Ok(stacked)) =
                    (store.snapshot_path(&chain_id), store.stack_path(&chain_id))
                    && snapshots.insert(chain_id)
                {
                    // One of the two exists (a stacked one counts its own changes).
                    size += dir_size(&whole) + dir_size(&stacked);
                }
            }
        }
    }
    let containers = std::fs::read_dir(store.root().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    let cache = dir_size(&store.root().join("cache"));
    let reclaimable = |total: u64, part: u64| match (part * 100).checked_div(total) {
        Some(percent) => format!("{} ({percent}%)", human_size(part)),
        None => human_size(part),
    };
    let all_reclaimable = if images.is_empty() { 0 } else { size };
    let rows: Vec<Value> = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": "0",
               "Size": human_size(size), "Reclaimable": reclaimable(size, all_reclaimable)}),
        json!({"Type": "Containers", "TotalCount": containers.to_string(), "Active": "0",
               "Size": human_size(dir_size(&store.root().join("containers"))), "Reclaimable": "0B"}),
        json!({"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0",
               "Size": human_size(cache), "Reclaimable": human_size(cache)}),
    ];
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
        "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print_rows(
        args.format.as_deref(),
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &rows,
        &headers,
    )
}

fn prune(store: &Store, args: PruneArgs) -> CliResult {
    let images = if args.all {
        "  - all images without at least one container associated to them"
    } else {
        "  - all dangling images"
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers\n{images}\n  - unused build cache\n"
    );
    confirm_and_prune(store, &warning, args.all, true, args.force)
}

fn fsck(store: &Store, args: FsckArgs) -> ExitCode {
    let checked = store.fsck(args.repair).and_then(|report| {
        // After a repair, what is left decides the exit status.
        let remaining = if args.repair {
            store.fsck(false)?
        } else {
            report.clone()
        };
        Ok((report, remaining))
    });
    let (report, remaining) = match checked {
        Ok(reports) => reports,
        Err(e) => return super::image::report(Err(CliError::Store(e))),
    };
    for problem in &report.problems {
        println!("{problem}");
    }
    for repaired in &report.repaired {
        println!("repaired: {repaired}");
    }
    println!(
        "checked {} blobs and {} images: {} problem(s)",
        report.blobs_checked,
        report.images_checked,
        report.problems.len()
    );
    if args.repair {
        println!("after repair: {} problem(s)", remaining.problems.len());
    }
    if remaining.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
