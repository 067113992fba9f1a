//! File-system steps (COPY, ADD, WORKDIR) done by rbuild itself, not in a container.
//!
//! Each runs on a thread of its own in a private mount namespace: the step's root file system
//! is an overlay (the layers below + a fresh upper dir) mounted there, and the thread chroots
//! into it, so destination paths and symlinks resolve inside the image exactly as they would in
//! a container, and the upper dir ends up holding exactly the step's changes (copy-up keeps
//! parent directories' metadata). Mounts made there vanish with the thread, even when the
//! process is killed: nothing is ever left mounted on the host.

use super::{FsState, Shared};
use crate::context::{Context, FileKind, Match, SelectOptions, Selection};
use crate::plan::{CopyOp, InlineFile};
use crate::store::{Store, WorkDir};
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{FileStat, Mode, fstatat};
use oci_spec::image::Digest;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Whether an ADD source is remote (an http(s) URL or a git repository), not a context path.
pub(super) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || is_git(source)
}

/// Whether an ADD source is a git repository, as BuildKit tells them apart: `git://`,
/// `ssh://` and `git@host:` addresses, and http(s) URLs whose path ends in `.git` or that name
/// github.com; a `#ref:subdir` fragment may follow.
fn is_git(source: &str) -> bool {
    let address = source.split('#').next().unwrap_or(source);
    if address.starts_with("git://") || address.starts_with("ssh://") || address.starts_with("git@")
    {
        return true;
    }
    let Some(rest) = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
    else {
        return false;
    };
    let path = rest.split('?').next().unwrap_or(rest);
    path.trim_end_matches('/').ends_with(".git") || rest.starts_with("github.com/")
}

/// Runs `work` on a new thread with a private mount namespace.
fn in_private_namespace<T: Send>(
    work: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // CLONE_NEWNS implies CLONE_FS: the chroot below stays on this thread.
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(|e| format!("making mounts private: {e}"))?;
                work()
            })
            .join()
            .unwrap_or_else(|_| Err("file-system step panicked".to_owned()))
    })
}

/// Mounts `lowers` (base first) at `at`: an overlay with `upper` and `work` when given, else
/// read-only. Paths too long for the mount options go through short symlinks in `links`.
fn mount_layers(
    lowers: &[PathBuf],
    writable: Option<(&Path, &Path)>,
    at: &Path,
    links: &Path,
) -> Result<(), String> {
    let failed = |e: nix::Error| format!("mounting the root file system at {}: {e}", at.display());
    let mut lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    match (lowers.len(), writable) {
        (0, None) => return Ok(()),
        (1, None) => {
            mount(
                Some(lowers[0].as_path()),
                at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(failed)?;
            return mount(
                None::<&str>,
                at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(failed);
        }
        (0, Some(_)) => {
            let empty = links.join("empty");
            fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
            lowers.push(empty);
        }
        _ => {}
    }
    let lowers = crate::sandbox::stackable_lowerdirs(lowers, links).map_err(|e| e.to_string())?;
    let lowerdir: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut options = format!("lowerdir={}", lowerdir.join(":"));
    if let Some((upper, work)) = writable {
        options.push_str(&format!(
            ",upperdir={},workdir={},volatile",
            upper.display(),
            work.display()
        ));
    }
    let flags = if writable.is_some() {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    mount(
        Some("overlay"),
        at,
        Some("overlay"),
        flags,
        Some(options.as_str()),
    )
    .map_err(failed)
}

/// A step's work directory: `upper` (the changes), `work` (overlay's), `root` (the mount).
struct StepDirs {
    dir: WorkDir,
}

impl StepDirs {
    fn create(store: &Store, prefix: &str) -> Result<StepDirs, String> {
        let dir = store.work_dir(prefix).map_err(|e| e.to_string())?;
        for sub in ["upper", "work", "root", "source"] {
            fs::create_dir(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        Ok(StepDirs { dir })
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Mounts `lowers` (lowest first) writable at root/.
    fn mount_root(&self, lowers: &[PathBuf]) -> Result<(), String> {
        mount_layers(
            lowers,
            Some((&self.path("upper"), &self.path("work"))),
            &self.path("root"),
            &self.path("links"),
        )
    }

    fn enter_root(&self) -> Result<(), String> {
        nix::unistd::chroot(&self.path("root")).map_err(|e| format!("chroot: {e}"))?;
        nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))
    }
}

/// WORKDIR: creates `path` and missing parents, owned by `user` as resolved in the image.
pub(super) fn mkdir(
    store: &Store,
    fs: &FsState,
    path: &str,
    user: &str,
) -> Result<WorkDir, String> {
    let dirs = StepDirs::create(store, "workdir-")?;
    in_private_namespace(|| {
        dirs.mount_root(&fs.dirs())?;
        dirs.enter_root()?;
        let owner = if user.is_empty() {
            Owner { uid: 0, gid: 0 }
        } else {
            resolve_owner(user)
        };
        mkdir_all(Path::new(path), Some(owner))
    })?;
    Ok(dirs.dir)
}

/// The last result of a COPY from the context, to start this one from: its snapshot, and the
/// context paths whose entries changed or were added since (nothing was removed).
pub(super) struct CopyBase {
    /// The last result's snapshot, lowest directory first.
    pub dirs: Vec<PathBuf>,
    pub changed: HashSet<String>,
    /// Its layer, when this step's changes are stacked on it (otherwise its files are
    /// linked into the upper dir).
    pub stack_on: Option<StackBase>,
}

/// The last result of a COPY whose snapshot this one's changes lie on, and whose layer tar
/// gives the new layer every entry they do not replace.
pub(super) struct StackBase {
    pub chain_id: Digest,
    /// Its snapshot's directories, lowest first.
    pub dirs: Vec<PathBuf>,
    pub layer: crate::snapshot::BaseLayer,
    /// Its stack is [`crate::store::MAX_STACK`] deep: the new snapshot is made whole (its
    /// files linked) while the layer is written, rather than stacked.
    pub flatten: bool,
}

/// What a COPY made: its work dir (the changes in `upper/`), what they lie on if stacked, and
/// how many bytes of files it copied.
pub(super) struct Copied {
    pub dir: WorkDir,
    pub stack_on: Option<StackBase>,
    pub bytes: u64,
}

/// COPY and ADD. `context_selections` are the context sources as the cache key selected them;
/// a stage or image source (`source`) is selected here, once mounted.
pub(super) fn copy(
    shared: &Shared<'_>,
    op: &CopyOp,
    fs: &FsState,
    source: Option<FsState>,
    context_selections: Vec<Selection>,
    base: Option<CopyBase>,
    remote: RemoteSources,
) -> Result<Copied, String> {
    let dirs = StepDirs::create(shared.store, "copy-")?;
    // With a last result, only what changed is copied: one edited file in a large context
    // costs one file's copy, not the context's. The rest is seen through the last result's
    // snapshot laid under the upper dir, or else as hard links to it in the upper dir
    // (snapshots are never written to; a changed file is unlinked and written anew).
    let mut lowers = fs.dirs();
    let mut stack_on = None;
    let only = match base {
        Some(CopyBase {
            changed,
            stack_on: Some(stack),
            ..
        }) => {
            lowers.extend(stack.dirs.iter().cloned());
            stack_on = Some(stack);
            Some(changed)
        }
        Some(base) => match link_snapshot(&base.dirs, &dirs.path("upper")) {
            Ok(true) => Some(base.changed),
            Ok(false) | Err(_) => {
                let upper = dirs.path("upper");
                crate::snapshot::remove_tree(&upper).map_err(|e| e.to_string())?;
                fs::create_dir(&upper).map_err(|e| e.to_string())?;
                None
            }
        },
        None => None,
    };
    let downloads = download_urls(op, &dirs.path("source"), remote.fetched)?;
    let checkouts = clone_repositories(op, &dirs.path("source"))?;
    let bytes = in_private_namespace(|| {
        dirs.mount_root(&lowers)?;
        let stage_context;
        let (context, from_context) = match &source {
            Some(state) => {
                mount_layers(
                    &state.dirs(),
                    None,
                    &dirs.path("source"),
                    &dirs.path("links-source"),
                )?;
                stage_context =
                    Context::without_ignore(&dirs.path("source")).map_err(|e| e.to_string())?;
                (&stage_context, false)
            }
            None => (shared.context, true),
        };
        let options = SelectOptions {
            excludes: op.excludes.clone(),
            parents: op.parents,
        };
        let mut selections = context_selections;
        if !from_context {
            for source in op.sources.iter().filter(|s| !is_url(s)) {
                selections.push(
                    context
                        .select(source, &options)
                        .map_err(super::context_error_message)?,
                );
            }
        }
        let mut repositories = Vec::new();
        for checkout in &checkouts {
            let tree = Context::without_ignore(checkout).map_err(|e| e.to_string())?;
            let selection = tree
                .select(".", &SelectOptions::default())
                .map_err(|e| e.to_string())?;
            repositories.push((open_dir(checkout)?, selection));
        }
        let root_fd = open_dir(context.root())?;
        let downloads_fd = open_dir(&dirs.path("source"))?;
        let layers = LayerDirs::open(&dirs.path("upper"), &lowers)?;
        dirs.enter_root()?;
        let owner = op.chown.as_deref().map(resolve_owner);
        let mut copier = Copier {
            op,
            owner,
            from_context,
            hardlinks: HashMap::new(),
            dir_times: Vec::new(),
            only,
            layers,
            copied: std::sync::atomic::AtomicU64::new(0),
        };
        copier.run(&root_fd, &selections, &downloads_fd, &downloads)?;
        // A repository's tree goes into the destination as a directory source does.
        let dest = op.dest.trim_end_matches('/');
        let dest = Path::new(if dest.is_empty() { "/" } else { dest });
        for (root, selection) in &repositories {
            mkdir_all(dest, copier.owner)?;
            for matched in &selection.matches {
                copier.copy_dir(root, matched, dest)?;
            }
        }
        for (dir, stat) in copier.dir_times.drain(..).rev() {
            restore_dir_times(&dir, &stat)?;
        }
        Ok(copier.copied.into_inner())
    })?;
    Ok(Copied {
        dir: dirs.dir,
        stack_on,
        bytes,
    })
}

fn open_dir(path: &Path) -> Result<OwnedFd, String> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// `user[:group]` by name or number, as BuildKit's file operations resolve it: names are
/// looked up in the (chrooted) /etc/passwd and /etc/group; a user name alone takes the user's
/// primary group, a number alone is also the gid; a name that is not found counts as 0 (BuildKit
/// does not fail on it either).
fn resolve_owner(spec: &str) -> Owner {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    /// The numeric fields after the name in a passwd or group line (`name:x:ID:GID…`).
    fn ids(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
        let text = fs::read_to_string(file).ok()?;
        text.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == name).then_some(())?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((id, fields.next().and_then(|g| g.parse().ok())))
        })
    }
    let mut owner = match user.parse::<u32>() {
        Ok(id) => Owner { uid: id, gid: id },
        Err(_) => match ids("/etc/passwd", user) {
            Some((uid, gid)) => Owner {
                uid,
                gid: gid.unwrap_or(0),
            },
            None => Owner { uid: 0, gid: 0 },
        },
    };
    if let Some(group) = group {
        match group.parse::<u32>() {
            Ok(id) => owner.gid = id,
            Err(_) => {
                if let Some((gid, _)) = ids("/etc/group", group) {
                    owner.gid = gid;
                }
            }
        }
    }
    owner
}

/// Creates `path` and its missing parents, mode 0755, owned by `owner` (root when `None`).
fn mkdir_all(path: &Path, owner: Option<Owner>) -> Result<(), String> {
    let mut current = PathBuf::from("/");
    for component in path.components().skip(1) {
        current.push(component);
        match fs::metadata(&current) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(format!("mkdir {}: not a directory", current.display()));
            }
            Err(_) => {
                fs::create_dir(&current)
                    .map_err(|e| format!("mkdir {}: {e}", current.display()))?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
                let owner = owner.unwrap_or(Owner { uid: 0, gid: 0 });
                chown(&current, owner)?;
            }
        }
    }
    Ok(())
}

fn chown(path: &Path, owner: Owner) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

fn join(dir: &str, name: &str) -> PathBuf {
    Path::new(dir).join(name)
}

/// One COPY/ADD in progress inside the chrooted root.
struct Copier<'a> {
    op: &'a CopyOp,
    owner: Option<Owner>,
    /// Files from the build context belong to root unless --chown; from an image or a stage
    /// they keep their owners.
    from_context: bool,
    /// (device, inode) of copied files with several links → where the first went.
    hardlinks: HashMap<(u64, u64), PathBuf>,
    /// Directories whose times are set after their contents are copied.
    dir_times: Vec<(PathBuf, FileStat)>,
    /// With a last result to start from ([`CopyBase`]), the context paths to copy; the rest
    /// is there already.
    only: Option<HashSet<String>>,
    /// The step's layers, for files made in the upper dir directly.
    layers: LayerDirs,
    /// Bytes of regular files copied so far (by every copying thread).
    copied: std::sync::atomic::AtomicU64,
}

impl Copier<'_> {
    fn run(
        &mut self,
        root: &OwnedFd,
        selections: &[Selection],
        downloads_fd: &OwnedFd,
        downloads: &[Download],
    ) -> Result<(), String> {
        let written = self.op.sources.len() + self.op.inline.len();
        let matches: usize = selections.iter().map(|s| s.matches.len()).sum::<usize>()
            + downloads.len()
            + self.op.inline.len();
        if written > 1 && !self.op.dest.ends_with('/') {
            return Err(
                "When using COPY with more than one source file, the destination must be a directory and end with a /"
                    .to_owned(),
            );
        }
        let dest = self.op.dest.trim_end_matches('/');
        let dest = if dest.is_empty() { "/" } else { dest };
        let into_dir = self.op.dest.ends_with('/') || matches > 1 || Path::new(dest).is_dir();
        // As fsutil's prepareTargetDir: a missing destination directory is made 0755, owned
        // by --chown or root, also for a directory source, whose own mode and owner are not
        // copied onto it (BuildKit does so; checked against docker build).
        let dest_dir = if into_dir
            || selections
                .iter()
                .any(|s| s.matches.iter().any(|m| m.kind == FileKind::Dir))
        {
            Path::new(dest)
        } else {
            Path::new(dest).parent().unwrap_or(Path::new("/"))
        };
        mkdir_all(dest_dir, self.owner)?;
        if self.op.link {
            // BuildKit copies a --link step onto an empty tree laid over the image: the
            // destination's directories come from that tree, 0755 and owned by --chown or root.
            let owner = self.owner.unwrap_or(Owner { uid: 0, gid: 0 });
            for dir in dest_dir.ancestors().filter(|d| *d != Path::new("/")) {
                chown(dir, owner)?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        for selection in selections {
            for matched in &selection.matches {
                if matched.kind == FileKind::Dir {
                    self.copy_dir(root, matched, Path::new(dest))?;
                    continue;
                }
                let target = if into_dir {
                    join(dest, &matched.name)
                } else {
                    follow_in_root(Path::new(dest))
                };
                let relative = matched.context_path_of(&matched.entries[0]);
                if self.unpacks(root, &relative)? {
                    let target_dir = PathBuf::from(dest);
                    mkdir_all(&target_dir, self.owner)?;
                    self.unpack(root, &relative, &target_dir)?;
                } else {
                    self.copy_entry(root, &relative, matched.kind, &target, false)?;
                }
            }
        }
        for download in downloads {
            let target = if into_dir {
                join(dest, &download.name)
            } else {
                follow_in_root(Path::new(dest))
            };
            self.copy_entry(downloads_fd, &download.file, FileKind::File, &target, false)?;
            let mode = self
                .op
                .chmod
                .as_ref()
                .map_or(0o600, |c| c.apply(0o600, false));
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
            if let Some(mtime) = download.mtime {
                set_times(&target, mtime, mtime, false)?;
            }
        }
        for file in &self.op.inline {
            let target = if into_dir {
                join(dest, &file.name)
            } else {
                follow_in_root(Path::new(dest))
            };
            self.write_inline(file, &target)?;
        }
        for (dir, stat) in self.dir_times.drain(..).rev() {
            restore_dir_times(&dir, &stat)?;
        }
        Ok(())
    }

    /// Copies a directory match's contents into `dest`.
    fn copy_dir(&mut self, root: &OwnedFd, matched: &Match, dest: &Path) -> Result<(), String> {
        let mut files = Vec::new();
        for entry in &matched.entries {
            let relative = matched.context_path_of(entry);
            if entry.kind != FileKind::Dir
                && self
                    .only
                    .as_ref()
                    .is_some_and(|changed| !changed.contains(&relative))
            {
                continue;
            }
            let target = if entry.path.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(&entry.path)
            };
            if entry.kind == FileKind::File && !entry.path.is_empty() {
                files.push((relative, target));
            } else {
                self.copy_entry(root, &relative, entry.kind, &target, entry.path.is_empty())?;
            }
        }
        self.copy_files(root, &files)
    }

    /// Copies regular files into directories that exist by now, on every core: most of a
    /// large COPY is creating files through the overlay. (The threads share this thread's
    /// mount namespace and root.) A file with several links waits for the sequential pass,
    /// which links it to the first copy.
    fn copy_files(&mut self, root: &OwnedFd, files: &[(String, PathBuf)]) -> Result<(), String> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(files.len().div_ceil(PARALLEL_FILES_MIN));
        let mut uppers: HashMap<&Path, Option<OwnedFd>> = HashMap::new();
        for (_, target) in files {
            if let Some(parent) = target.parent() {
                uppers
                    .entry(parent)
                    .or_insert_with(|| self.layers.upper_only(parent));
            }
        }
        // Threads take a directory's files in batches: two creating in one directory wait
        // for each other on its lock.
        let mut batches = Vec::new();
        let mut start = 0;
        for end in 1..=files.len() {
            let same_dir = files
                .get(end)
                .zip(files.get(end - 1))
                .is_some_and(|((_, a), (_, b))| a.parent() == b.parent());
            if !same_dir || end - start == PARALLEL_FILES_MIN {
                batches.push(start..end);
                start = end;
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failure = std::sync::Mutex::new(None);
        let linked = std::sync::Mutex::new(Vec::new());
        let this = &*self;
        let uppers = &uppers;
        let batches = &batches;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some(batch) =
                        batches.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        for index in batch.clone() {
                            let Some((relative, target)) = files.get(index) else {
                                continue;
                            };
                            let upper = target
                                .parent()
                                .and_then(|parent| uppers.get(parent))
                                .and_then(Option::as_ref);
                            match this.copy_single_file(root, relative, target, upper) {
                                Ok(true) => {}
                                Ok(false) => {
                                    linked.lock().unwrap_or_else(|e| e.into_inner()).push(index)
                                }
                                Err(message) => {
                                    failure
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .get_or_insert(message);
                                    next.store(batches.len(), std::sync::atomic::Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(message) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(message);
        }
        let mut linked = linked.into_inner().unwrap_or_else(|e| e.into_inner());
        linked.sort_unstable();
        for index in linked {
            if let Some((relative, target)) = files.get(index) {
                self.copy_entry(root, relative, FileKind::File, target, false)?;
            }
        }
        Ok(())
    }

    /// Copies a regular file with one link; returns false, copying nothing, for one with
    /// several (for [`Copier::copy_entry`], which keeps them linked). `upper` is the upper
    /// dir's own copy of the target's directory when no lower layer has that directory.
    fn copy_single_file(
        &self,
        root: &OwnedFd,
        relative: &str,
        target: &Path,
        upper: Option<&OwnedFd>,
    ) -> Result<bool, String> {
        let stat = fstatat(root.as_fd(), relative, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| format!("{relative}: {e}"))?;
        if stat.st_nlink > 1 {
            return Ok(false);
        }
        let created = match (upper, target.file_name()) {
            (Some(dir), Some(name)) => create_in_upper(dir, name),
            _ => None,
        };
        let output = match created {
            Some(output) => output,
            None => {
                clear_file_target(target)?;
                create_file(target)?
            }
        };
        self.copy_file_content(root, relative, output, target, &stat)?;
        Ok(true)
    }

    fn owner_of(&self, stat: &FileStat) -> Owner {
        match self.owner {
            Some(owner) => owner,
            None if self.from_context => Owner { uid: 0, gid: 0 },
            None => Owner {
                uid: stat.st_uid,
                gid: stat.st_gid,
            },
        }
    }

    fn mode_of(&self, stat: &FileStat, is_dir: bool) -> u32 {
        let mode = stat.st_mode & 0o7777;
        self.op
            .chmod
            .as_ref()
            .map_or(mode, |c| c.apply(mode, is_dir))
    }

    /// Copies one entry (`relative` to `root`, "" for the root itself) to `target`.
    fn copy_entry(
        &mut self,
        root: &OwnedFd,
        relative: &str,
        kind: FileKind,
        target: &Path,
        top_level: bool,
    ) -> Result<(), String> {
        let source = if relative.is_empty() { "." } else { relative };
        let stat = fstatat(root.as_fd(), source, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| format!("{relative}: {e}"))?;
        match kind {
            FileKind::Dir => {
                let exists_as_dir = fs::metadata(target).is_ok_and(|m| m.is_dir());
                if exists_as_dir && top_level {
                    return Ok(());
                }
                if !exists_as_dir {
                    if fs::symlink_metadata(target).is_ok() {
                        remove(target)?;
                    }
                    fs::create_dir(target)
                        .map_err(|e| format!("mkdir {}: {e}", target.display()))?;
                }
                // Only what differs is set: on the overlay, any change copies a directory
                // of a lower layer up, and each one there costs later readdirs a merge.
                let current = fs::metadata(target).map_err(|e| e.to_string())?;
                let owner = self.owner_of(&stat);
                if (current.uid(), current.gid()) != (owner.uid, owner.gid) {
                    chown(target, owner)?;
                }
                let mode = self.mode_of(&stat, true);
                if current.mode() & 0o7777 != mode {
                    fs::set_permissions(target, fs::Permissions::from_mode(mode))
                        .map_err(|e| e.to_string())?;
                }
                self.dir_times.push((target.to_path_buf(), stat));
                return Ok(());
            }
            _ => clear_file_target(target)?,
        }
        if stat.st_nlink > 1 && kind == FileKind::File {
            let id = (stat.st_dev, stat.st_ino);
            if let Some(first) = self.hardlinks.get(&id) {
                return fs::hard_link(first, target)
                    .map_err(|e| format!("link {}: {e}", target.display()));
            }
            self.hardlinks.insert(id, target.to_path_buf());
        }
        match kind {
            FileKind::Symlink => {
                let link =
                    readlinkat(root.as_fd(), source).map_err(|e| format!("{relative}: {e}"))?;
                symlink(&link, target).map_err(|e| format!("symlink {}: {e}", target.display()))?;
                chown(target, self.owner_of(&stat))?;
                set_times(target, stat.st_atime, stat.st_mtime, true)?;
                return Ok(());
            }
            FileKind::File => {
                return self.copy_file_content(root, relative, create_file(target)?, target, &stat);
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice | FileKind::Socket => {
                let kind = nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT);
                nix::sys::stat::mknod(target, kind, Mode::from_bits_truncate(0o600), stat.st_rdev)
                    .map_err(|e| format!("mknod {}: {e}", target.display()))?;
            }
            FileKind::Dir => {}
        }
        chown(target, self.owner_of(&stat))?;
        fs::set_permissions(
            target,
            fs::Permissions::from_mode(self.mode_of(&stat, false)),
        )
        .map_err(|e| e.to_string())?;
        set_times(target, stat.st_atime, stat.st_mtime, false)
    }

    /// Fills `output`, the new file at `target`, with the content of `relative` and gives it
    /// the owner, mode and times COPY gives.
    fn copy_file_content(
        &self,
        root: &OwnedFd,
        relative: &str,
        mut output: fs::File,
        target: &Path,
        stat: &FileStat,
    ) -> Result<(), String> {
        let mut input = open_source(root, relative)?;
        let bytes =
            io::copy(&mut input, &mut output).map_err(|e| format!("{}: {e}", target.display()))?;
        self.copied
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        // Metadata through the open file: no more path lookups in the overlay, which
        // cost more than the copy for small files. Owner before mode (chown clears
        // set-id bits); a new file is root's already.
        let failed = |e: std::io::Error| format!("{}: {e}", target.display());
        let owner = self.owner_of(stat);
        if (owner.uid, owner.gid) != (0, 0) {
            std::os::unix::fs::fchown(&output, Some(owner.uid), Some(owner.gid)).map_err(failed)?;
        }
        output
            .set_permissions(fs::Permissions::from_mode(self.mode_of(stat, false)))
            .map_err(failed)?;
        let time = |secs: i64| {
            let offset = std::time::Duration::from_secs(secs.unsigned_abs());
            if secs < 0 {
                std::time::UNIX_EPOCH - offset
            } else {
                std::time::UNIX_EPOCH + offset
            }
        };
        output
            .set_times(
                fs::FileTimes::new()
                    .set_accessed(time(stat.st_atime))
                    .set_modified(time(stat.st_mtime)),
            )
            .map_err(failed)
    }

    fn write_inline(&mut self, file: &InlineFile, target: &Path) -> Result<(), String> {
        if fs::symlink_metadata(target).is_ok() {
            remove(target)?;
        }
        fs::write(target, file.content.as_bytes())
            .map_err(|e| format!("{}: {e}", target.display()))?;
        let mode = self
            .op
            .chmod
            .as_ref()
            .map_or(0o644, |c| c.apply(0o644, false));
        fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
        chown(target, self.owner.unwrap_or(Owner { uid: 0, gid: 0 }))
    }

    /// Whether ADD unpacks this file: a local tar archive, plain or compressed.
    fn unpacks(&self, root: &OwnedFd, relative: &str) -> Result<bool, String> {
        let Some(add) = &self.op.add else {
            return Ok(false);
        };
        if add.unpack == Some(false) {
            return Ok(false);
        }
        let mut reader = archive_reader(root, relative)?;
        let mut header = [0u8; 512];
        let mut filled = 0;
        while filled < header.len() {
            match reader.read(&mut header[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(_) => return Ok(false),
            }
        }
        Ok(filled == 512 && &header[257..262] == b"ustar")
    }

    fn unpack(&mut self, root: &OwnedFd, relative: &str, dest: &Path) -> Result<(), String> {
        let reader = archive_reader(root, relative)?;
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive
            .unpack(dest)
            .map_err(|e| format!("unpacking {relative}: {e}"))
    }
}

/// A source file (`relative` to `root`, a final symlink not followed), open for reading.
fn open_source(root: &OwnedFd, relative: &str) -> Result<fs::File, String> {
    openat(
        root.as_fd(),
        relative,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(fs::File::from)
    .map_err(|e| format!("{relative}: {e}"))
}

/// A source file decompressed by its content (gzip, bzip2, xz, zstd or plain).
fn archive_reader(root: &OwnedFd, relative: &str) -> Result<Box<dyn Read>, String> {
    let mut file = io::BufReader::new(open_source(root, relative)?);
    let prefix = io::BufRead::fill_buf(&mut file)
        .map_err(|e| e.to_string())?
        .to_vec();
    if prefix.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::read::MultiBzDecoder::new(file)));
    }
    if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)));
    }
    let (_, reader) = crate::snapshot::decompress(file).map_err(|e| format!("{relative}: {e}"))?;
    Ok(reader)
}

/// Where a destination named by the instruction leads: symlinks followed inside the root (the
/// thread is chrooted), as BuildKit resolves the destination path, so `COPY a /link` writes
/// through `/link -> /victim`. A dangling link leads to its target's path.
fn follow_in_root(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let Ok(link) = fs::read_link(&current) else {
            return current;
        };
        let parent = current.parent().unwrap_or(Path::new("/")).to_path_buf();
        current = if link.is_absolute() {
            link
        } else {
            parent.join(link)
        };
    }
    current
}

/// Below this many files a COPY copies on one thread.
const PARALLEL_FILES_MIN: usize = 64;

/// A new file at `target` (which must not exist), only its creator may read it yet.
fn create_file(target: &Path) -> Result<fs::File, String> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(|e| format!("{}: {e}", target.display()))
}

/// The file `name` made anew in `dir`, an upper-only directory, replacing a file or link an
/// earlier step of this COPY left there; None when that is not a plain case (a directory is
/// in the way), for the overlay path to handle.
fn create_in_upper(dir: &OwnedFd, name: &std::ffi::OsStr) -> Option<fs::File> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let create = || openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600));
    match create() {
        Ok(fd) => Some(fd.into()),
        Err(nix::errno::Errno::EEXIST) => {
            let existing = fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
            if existing.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return None;
            }
            nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .ok()?;
            create().ok().map(fs::File::from)
        }
        Err(_) => None,
    }
}

/// The step's upper dir and the layers below it, opened before the step chroots into their
/// overlay. Creating and writing a file through the overlay costs about twice what it costs
/// in the upper dir itself (copying bigctx's 20,000 files: 2.4 s of system time against 1.4 s),
/// so a COPY's bulk of files goes straight into the upper dir wherever that is what the
/// overlay would do anyway: new names in a directory no lower layer has.
struct LayerDirs {
    upper: OwnedFd,
    lowers: Vec<OwnedFd>,
}

impl LayerDirs {
    fn open(upper: &Path, lowers: &[PathBuf]) -> Result<LayerDirs, String> {
        Ok(LayerDirs {
            upper: open_dir(upper)?,
            lowers: lowers
                .iter()
                .map(|l| open_dir(l))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The upper dir's own `dir` (a path in the chrooted root, resolved there as the overlay
    /// shows it) when no lower layer has that directory, so the overlay shows the upper's
    /// entries alone; None otherwise, or when anything is unclear.
    fn upper_only(&self, dir: &Path) -> Option<OwnedFd> {
        use nix::fcntl::{OpenHow, ResolveFlag, openat2};
        let real = fs::canonicalize(dir).ok()?;
        let relative = real.strip_prefix("/").ok()?;
        if relative.as_os_str().is_empty() {
            return None;
        }
        // As overlay looks a path up in a layer: component by component, no symlinks.
        let exact = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS;
        let lookup = |layer: &OwnedFd, flags: OFlag| {
            openat2(
                layer.as_fd(),
                relative,
                OpenHow::new()
                    .flags(flags | OFlag::O_CLOEXEC)
                    .resolve(exact),
            )
        };
        for lower in &self.lowers {
            match lookup(lower, OFlag::O_PATH) {
                // Missing, or behind a non-directory or a symlink: overlay merges only
                // directories, so this layer adds nothing there.
                Err(
                    nix::errno::Errno::ENOENT
                    | nix::errno::Errno::ENOTDIR
                    | nix::errno::Errno::ELOOP,
                ) => {}
                _ => return None,
            }
        }
        lookup(&self.upper, OFlag::O_RDONLY | OFlag::O_DIRECTORY).ok()
    }
}

/// Makes way for a file at `target`: whatever non-directory is there is removed.
fn clear_file_target(target: &Path) -> Result<(), String> {
    match fs::symlink_metadata(target) {
        Ok(existing) if existing.is_dir() => Err(format!(
            "cannot replace directory {} with a file",
            target.display()
        )),
        Ok(_) => remove(target),
        Err(_) => Ok(()),
    }
}

fn remove(path: &Path) -> Result<(), String> {
    let metadata = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if metadata.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .map_err(|e| format!("removing {}: {e}", path.display()))
}

/// Gives a copied directory its source's mtime (and atime) back, unless it has it already:
/// setting it copies a directory of a lower layer up.
fn restore_dir_times(dir: &Path, source: &FileStat) -> Result<(), String> {
    let current = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if (current.mtime(), current.mtime_nsec()) == (source.st_mtime, 0) {
        return Ok(());
    }
    set_times(dir, source.st_atime, source.st_mtime, false)
}

fn set_times(path: &Path, atime: i64, mtime: i64, symlink: bool) -> Result<(), String> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let flags = if symlink {
        UtimensatFlags::NoFollowSymlink
    } else {
        UtimensatFlags::FollowSymlink
    };
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::new(atime, 0),
        &TimeSpec::new(mtime, 0),
        flags,
    )
    .map_err(|e| format!("setting times of {}: {e}", path.display()))
}

/// Clones ADD's git sources (`URL#ref:subdir`) into `dir`; returns the trees to copy: the
/// checkout, or its subdir, without `.git` unless `--keep-git-dir`.
fn clone_repositories(op: &CopyOp, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let keep_git_dir = op.add.as_ref().is_some_and(|a| a.keep_git_dir);
    let mut trees = Vec::new();
    for (index, source) in op.sources.iter().filter(|s| is_git(s)).enumerate() {
        let (address, fragment) = source.split_once('#').unwrap_or((source, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let checkout = dir.join(format!("git-{index}"));
        let git = |args: &[&std::ffi::OsStr]| -> Result<(), String> {
            let output = std::process::Command::new("git")
                .args(args)
                .env("GIT_TERMINAL_PROMPT", "0")
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("running git: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "git {}: {}",
                    args.first()
                        .map_or(String::new(), |a| a.to_string_lossy().into_owned()),
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        let cloned = git(&[
            &os("clone"),
            &os("--quiet"),
            &os("--no-checkout"),
            &os("--"),
            &os(address),
            checkout.as_os_str(),
        ]);
        cloned.map_err(|e| format!("{source}: {e}"))?;
        // A branch, a tag or a commit; the remote's default branch when none is given.
        let target = if reference.is_empty() {
            "HEAD".to_owned()
        } else if git(&[
            &os("-C"),
            checkout.as_os_str(),
            &os("rev-parse"),
            &os("--verify"),
            &os("--quiet"),
            &os(&format!("refs/remotes/origin/{reference}^{{commit}}")),
        ])
        .is_ok()
        {
            format!("refs/remotes/origin/{reference}")
        } else {
            reference.to_owned()
        };
        git(&[
            &os("-C"),
            checkout.as_os_str(),
            &os("checkout"),
            &os("--quiet"),
            &os("--detach"),
            &os(&target),
            &os("--"),
        ])
        .map_err(|e| format!("{source}: ref {reference:?}: {e}"))?;
        if !keep_git_dir {
            fs::remove_dir_all(checkout.join(".git")).map_err(|e| e.to_string())?;
        }
        let tree = checkout.join(subdir.trim_start_matches('/'));
        if !tree.starts_with(&checkout) || !tree.is_dir() || subdir.contains("..") {
            return Err(format!(
                "{source}: {subdir:?} is not a directory of the repository"
            ));
        }
        trees.push(tree);
    }
    Ok(trees)
}

/// An ADD URL fetched before the copy.
struct Download {
    /// File name under the downloads dir.
    file: String,
    /// The name it takes in a directory destination: the URL's last path segment.
    name: String,
    mtime: Option<i64>,
}

/// A blocking HTTP client for ADD's URLs.
struct Fetcher {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Fetcher {
    fn new() -> Result<Fetcher, String> {
        Ok(Fetcher {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?,
            client: reqwest::Client::builder()
                .build()
                .map_err(|e| e.to_string())?,
        })
    }

    /// The body of `url` and its Last-Modified time.
    fn get(&self, url: &str) -> Result<(Vec<u8>, Option<i64>), String> {
        let response = self
            .runtime
            .block_on(self.client.get(url).send())
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        let mtime = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let body = self
            .runtime
            .block_on(response.bytes())
            .map_err(|e| format!("downloading {url}: {e}"))?;
        Ok((body.to_vec(), mtime))
    }
}

fn sha256_text(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// What keys an ADD's remote sources, and the bodies fetched for that, which the copy uses
/// rather than fetching them again.
#[derive(Default)]
pub(super) struct RemoteSources {
    /// `(source, identity)` pairs: what each source holds now.
    pub identities: Vec<(String, String)>,
    /// URL → its body and Last-Modified time.
    fetched: HashMap<String, (Vec<u8>, Option<i64>)>,
}

/// What each remote ADD source holds now, for the step's cache key (BuildKit keys a URL by the
/// digest of its content, or by `--checksum`, and a git source by the commit its ref names).
pub(super) fn remote_identities(op: &CopyOp) -> Result<RemoteSources, String> {
    let checksum = op.add.as_ref().and_then(|a| a.checksum.clone());
    let mut fetcher = None;
    let mut remote = RemoteSources::default();
    for source in op.sources.iter().filter(|s| is_url(s)) {
        let identity = if is_git(source) {
            git_commit(source)?
        } else if let Some(checksum) = &checksum {
            checksum.clone()
        } else {
            if fetcher.is_none() {
                fetcher = Some(Fetcher::new()?);
            }
            let fetched = fetcher.as_ref().ok_or("no HTTP client")?.get(source)?;
            let identity = sha256_text(&fetched.0);
            remote.fetched.insert(source.clone(), fetched);
            identity
        };
        remote.identities.push((source.clone(), identity));
    }
    Ok(remote)
}

/// The commit a git source's ref names on the remote (`git ls-remote`); a ref the remote does
/// not list (a commit id) stands for itself.
fn git_commit(source: &str) -> Result<String, String> {
    let (address, fragment) = source.split_once('#').unwrap_or((source, ""));
    let reference = fragment.split(':').next().unwrap_or("");
    let reference = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let output = std::process::Command::new("git")
        .args(["ls-remote", "--", address])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{source}: git ls-remote: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    let refs: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect();
    // Branches before tags, and a tag's commit (`^{}`) before the tag object.
    let candidates = [
        reference.to_owned(),
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}^{{}}"),
        format!("refs/tags/{reference}"),
    ];
    Ok(candidates
        .iter()
        .find_map(|name| refs.iter().find(|(_, r)| r == name).map(|(id, _)| id))
        .map_or_else(|| reference.to_owned(), |id| (*id).to_owned()))
}

/// Fetches ADD's URLs into `dir`, checking `--checksum`.
fn download_urls(
    op: &CopyOp,
    dir: &Path,
    mut fetched: HashMap<String, (Vec<u8>, Option<i64>)>,
) -> Result<Vec<Download>, String> {
    let mut fetcher = None;
    let mut downloads = Vec::new();
    let urls = op.sources.iter().filter(|s| is_url(s) && !is_git(s));
    for (index, url) in urls.enumerate() {
        let (body, mtime) = match fetched.remove(url) {
            Some(body) => body,
            None => {
                if fetcher.is_none() {
                    fetcher = Some(Fetcher::new()?);
                }
                fetcher.as_ref().ok_or("no HTTP client")?.get(url)?
            }
        };
        if let Some(expected) = op.add.as_ref().and_then(|a| a.checksum.as_ref()) {
            if !expected.starts_with("sha256:") {
                return Err(format!("--checksum {expected}: only sha256 is supported"));
            }
            let actual = sha256_text(&body);
            if &actual != expected {
                return Err(format!(
                    "digest mismatch for {url}: expected {expected}, got {actual}"
                ));
            }
        }
        let file = format!("download-{index}");
        fs::write(dir.join(&file), &body).map_err(|e| e.to_string())?;
        let name = url_file_name(url);
        downloads.push(Download { file, name, mtime });
    }
    Ok(downloads)
}

/// The name an ADD URL takes in a directory, as dockerfile2llb names it: Go's `path.Base` of
/// the decoded URL path (`/a/b/` → `b`), `__unnamed__` when there is none.
fn url_file_name(url: &str) -> String {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let decoded = percent_decode(base);
    if decoded.is_empty() || decoded == "." {
        "__unnamed__".to_owned()
    } else {
        decoded
    }
}

/// `%XX` escapes decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                index += 3;
            }
            None => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) in seconds since the epoch.
fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?
        + 1;
    crate::image::time::parse_rfc3339(&format!("{year}-{month:02}-{day:0>2}T{time}Z"))
}

/// A copy of `source` (a path in the file system `fs`) as `out/` of a new work dir, for a
/// `RUN --mount=type=bind,from=…`.
pub(super) fn export(store: &Store, fs: &FsState, source: &str) -> Result<WorkDir, String> {
    let dirs = StepDirs::create(store, "export-")?;
    let out = dirs.path("out");
    in_private_namespace(|| {
        mount_layers(&fs.dirs(), None, &dirs.path("source"), &dirs.path("links"))?;
        let context = Context::without_ignore(&dirs.path("source")).map_err(|e| e.to_string())?;
        let selection = context
            .select(source, &SelectOptions::default())
            .map_err(|e| e.to_string())?;
        let host = selection
            .matches
            .first()
            .map(|m| m.host_path.clone())
            .ok_or_else(|| format!("{source}: not found"))?;
        copy_host_tree(&host, &out)
    })?;
    Ok(dirs.dir)
}

/// The host directory a `RUN --mount=type=bind` from the build context shows: the context's
/// own files when the mount is read-only and .dockerignore leaves out nothing under `source`;
/// else a copy of what `source` selects (ignored files left out, a read-write mount's writes
/// discarded) as `out/` of the returned work dir, which must live as long as the mount.
pub(super) fn context_bind_source(
    store: &Store,
    context: &Context,
    source: &str,
    writable: bool,
) -> Result<(PathBuf, Option<WorkDir>), String> {
    let selection = context
        .select(source, &SelectOptions::default())
        .map_err(|e| e.to_string())?;
    let matched = selection
        .matches
        .first()
        .ok_or_else(|| format!("{source}: not found in the build context"))?;
    let on_disk = walkdir::WalkDir::new(&matched.host_path)
        .follow_links(false)
        .into_iter()
        .count();
    if !writable && on_disk == matched.entries.len() {
        return Ok((matched.host_path.clone(), None));
    }
    let dir = store.work_dir("bind-").map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    copy_host_entries(matched.entries.iter().map(|entry| {
        let target = if entry.path.is_empty() {
            out.clone()
        } else {
            out.join(&entry.path)
        };
        (context.root().join(matched.context_path_of(entry)), target)
    }))?;
    Ok((out, Some(dir)))
}

/// Copies a tree keeping modes, owners, symlinks and times.
fn copy_host_tree(source: &Path, out: &Path) -> Result<(), String> {
    let entries = entries_under(source, out)
        .map(|entry| entry.map(|(entry, target)| (entry.into_path(), target)))
        .collect::<Result<Vec<_>, String>>()?;
    copy_host_entries(entries)
}

/// Every entry under `source` (itself first, parents before children) with its place under
/// `out`.
fn entries_under<'a>(
    source: &'a Path,
    out: &'a Path,
) -> impl Iterator<Item = Result<(walkdir::DirEntry, PathBuf), String>> + 'a {
    walkdir::WalkDir::new(source)
        .follow_links(false)
        .into_iter()
        .map(move |entry| {
            let entry = entry.map_err(|e| e.to_string())?;
            let relative = entry
                .path()
                .strip_prefix(source)
                .map_err(|e| e.to_string())?;
            let target = if relative.as_os_str().is_empty() {
                out.to_path_buf()
            } else {
                out.join(relative)
            };
            Ok((entry, target))
        })
}

/// Fills the empty dir `upper` with the tree of a snapshot's `dirs` (lowest first, a higher
/// one's entries replacing a lower's): directories made anew with their metadata, files and
/// symlinks hard-linked (on every core: a link costs a path lookup or two, and a large context
/// has tens of thousands). Returns false, doing nothing, for a snapshot with what a link cannot
/// carry or overlay reads specially: whiteouts and other devices, fifos, sockets, directories
/// with extended attributes other than overlay's bookkeeping (an opaque marker, or one a layer
/// would carry), an entry of one kind over another.
pub(super) fn link_snapshot(snapshot: &[PathBuf], upper: &Path) -> Result<bool, String> {
    use rayon::prelude::*;
    // Ordered by component: parents before children.
    let mut entries: std::collections::BTreeMap<PathBuf, (PathBuf, bool)> = Default::default();
    for layer in snapshot {
        for entry in entries_under(layer, upper) {
            let (entry, target) = entry?;
            let kind = entry.file_type();
            let is_dir = if kind.is_file() || kind.is_symlink() {
                false
            } else if kind.is_dir()
                && crate::snapshot::list_xattrs(entry.path().as_os_str().as_encoded_bytes())
                    .map_err(|e| e.to_string())?
                    .iter()
                    .all(|(name, _)| {
                        crate::snapshot::is_overlay_xattr(name) && !name.ends_with(b".opaque")
                    })
            {
                true
            } else {
                return Ok(false);
            };
            if let Some((_, was_dir)) = entries.insert(target, (entry.into_path(), is_dir))
                && was_dir != is_dir
            {
                return Ok(false);
            }
        }
    }
    let (mut dirs, mut links) = (Vec::new(), Vec::new());
    for (target, (source, is_dir)) in entries {
        if is_dir { &mut dirs } else { &mut links }.push((source, target));
    }
    // Parents before children; `upper` (the first) exists already.
    let mut times = Vec::with_capacity(dirs.len());
    for (index, (dir, target)) in dirs.iter().enumerate() {
        let metadata = fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
        if index > 0 {
            fs::create_dir(target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
        set_owner_mode(target, &metadata)?;
        times.push((target, metadata));
    }
    links.par_iter().try_for_each(|(from, to)| {
        fs::hard_link(from, to).map_err(|e| format!("{}: {e}", to.display()))
    })?;
    for (dir, metadata) in times.into_iter().rev() {
        set_times(dir, metadata.atime(), metadata.mtime(), false)?;
    }
    Ok(true)
}

fn set_owner_mode(target: &Path, metadata: &fs::Metadata) -> Result<(), String> {
    chown(
        target,
        Owner {
            uid: metadata.uid(),
            gid: metadata.gid(),
        },
    )?;
    if !metadata.file_type().is_symlink() {
        fs::set_permissions(target, fs::Permissions::from_mode(metadata.mode() & 0o7777))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies `(host path, target)` pairs, parents before children, keeping modes, owners,
/// symlinks and directory times.
fn copy_host_entries(entries: impl IntoIterator<Item = (PathBuf, PathBuf)>) -> Result<(), String> {
    let mut dirs = Vec::new();
    for (host, target) in entries {
        let metadata =
            fs::symlink_metadata(&host).map_err(|e| format!("{}: {e}", host.display()))?;
        let kind = metadata.file_type();
        if kind.is_dir() {
            fs::create_dir(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            dirs.push((target.clone(), metadata.clone()));
        } else if kind.is_symlink() {
            let link = fs::read_link(&host).map_err(|e| e.to_string())?;
            symlink(link, &target).map_err(|e| e.to_string())?;
        } else if kind.is_file() {
            fs::copy(&host, &target).map_err(|e| format!("{}: {e}", target.display()))?;
        } else {
            // Sockets, fifos and devices are not copied into a mount.
            continue;
        }
        set_owner_mode(&target, &metadata)?;
    }
    for (dir, metadata) in dirs.into_iter().rev() {
        set_times(&dir, metadata.atime(), metadata.mtime(), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names_follow_go_path_base() {
        assert_eq!(url_file_name("http://h/files/a.txt"), "a.txt");
        assert_eq!(url_file_name("http://h/files/dir/"), "dir");
        assert_eq!(url_file_name("http://h/a%20b.txt?x=1"), "a b.txt");
        assert_eq!(url_file_name("http://h/"), "__unnamed__");
        assert_eq!(url_file_name("http://h"), "__unnamed__");
    }

    #[test]
    fn git_sources_are_told_from_urls_as_buildkit_does() {
        assert!(is_git("https://example.com/repo.git#main:sub"));
        assert!(is_git("git@github.com:moby/buildkit.git"));
        assert!(is_git("git://example.com/repo"));
        assert!(is_git("https://github.com/moby/buildkit"));
        assert!(!is_git("https://example.com/file.tar.gz"));
        assert!(!is_git("dir/file.git"));
    }
}
