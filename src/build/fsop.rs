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
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

pub(super) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
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
    let total: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    if total > 3000 {
        fs::create_dir_all(links).map_err(|e| e.to_string())?;
        for (index, lower) in lowers.iter_mut().enumerate() {
            let link = links.join(index.to_string());
            symlink(&*lower, &link).map_err(|e| format!("{}: {e}", link.display()))?;
            *lower = link;
        }
    }
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

    /// Mounts `fs` writable at root/.
    fn mount_root(&self, fs: &FsState) -> Result<(), String> {
        mount_layers(
            &fs.dirs(),
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
        dirs.mount_root(fs)?;
        dirs.enter_root()?;
        let owner = if user.is_empty() {
            Owner { uid: 0, gid: 0 }
        } else {
            resolve_owner(user)?
        };
        mkdir_all(Path::new(path), Some(owner))
    })?;
    Ok(dirs.dir)
}

/// COPY and ADD.
pub(super) fn copy(
    shared: &Shared<'_>,
    op: &CopyOp,
    fs: &FsState,
    source: Option<FsState>,
) -> Result<WorkDir, String> {
    let dirs = StepDirs::create(shared.store, "copy-")?;
    let downloads = download_urls(op, &dirs.path("source"))?;
    in_private_namespace(|| {
        dirs.mount_root(fs)?;
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
        let mut selections: Vec<Selection> = Vec::new();
        for source in op.sources.iter().filter(|s| !is_url(s)) {
            selections.push(context.select(source, &options).map_err(|e| match e {
                crate::context::ContextError::NotFound(path) => format!(
                    "failed to compute cache key: \"{}\": not found",
                    path.trim_start_matches('/')
                ),
                other => other.to_string(),
            })?);
        }
        let root_fd = open_dir(context.root())?;
        let downloads_fd = open_dir(&dirs.path("source"))?;
        dirs.enter_root()?;
        let owner = op.chown.as_deref().map(resolve_owner).transpose()?;
        let mut copier = Copier {
            op,
            owner,
            from_context,
            hardlinks: HashMap::new(),
            dir_times: Vec::new(),
        };
        copier.run(&root_fd, &selections, &downloads_fd, &downloads)
    })?;
    Ok(dirs.dir)
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

/// `user[:group]` by name or number, names looked up in the (chrooted) /etc/passwd and
/// /etc/group. A user without a group takes its uid as gid, as BuildKit's --chown.
fn resolve_owner(spec: &str) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, what: &str| -> Result<u32, String> {
        if let Ok(id) = name.parse::<u32>() {
            return Ok(id);
        }
        let text = fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let entry = fields.next()?;
                let id = fields.nth(1)?;
                (entry == name).then(|| id.parse::<u32>().ok()).flatten()
            })
            .next()
            .ok_or_else(|| format!("unable to convert {what} {name:?}: no such {what} in {file}"))
    };
    let uid = lookup("/etc/passwd", user, "user")?;
    let gid = match group {
        Some(group) => lookup("/etc/group", group, "group")?,
        None => uid,
    };
    Ok(Owner { uid, gid })
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
        // As fsutil: a directory destination for files is made (0755); a directory copied
        // creates its destination itself, taking the source directory's metadata.
        let dir_matches = selections
            .iter()
            .flat_map(|s| &s.matches)
            .filter(|m| m.kind == FileKind::Dir)
            .count();
        if into_dir && matches > dir_matches {
            mkdir_all(Path::new(dest), self.owner)?;
        } else if let Some(parent) = Path::new(dest).parent() {
            mkdir_all(parent, self.owner)?;
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
                    PathBuf::from(dest)
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
            let target = if self.op.dest.ends_with('/') || matches > 1 {
                join(dest, &download.name)
            } else {
                PathBuf::from(dest)
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
                PathBuf::from(dest)
            };
            self.write_inline(file, &target)?;
        }
        for (dir, stat) in self.dir_times.drain(..).rev() {
            set_times(&dir, stat.st_atime, stat.st_mtime, false)?;
        }
        Ok(())
    }

    /// Copies a directory match's contents into `dest`.
    fn copy_dir(&mut self, root: &OwnedFd, matched: &Match, dest: &Path) -> Result<(), String> {
        for entry in &matched.entries {
            let relative = matched.context_path_of(entry);
            let target = if entry.path.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(&entry.path)
            };
            self.copy_entry(root, &relative, entry.kind, &target, entry.path.is_empty())?;
        }
        Ok(())
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
        let existing = fs::symlink_metadata(target).ok();
        match kind {
            FileKind::Dir => {
                let exists_as_dir = fs::metadata(target).is_ok_and(|m| m.is_dir());
                if exists_as_dir && top_level {
                    return Ok(());
                }
                if !exists_as_dir {
                    if existing.is_some() {
                        remove(target)?;
                    }
                    fs::create_dir(target)
                        .map_err(|e| format!("mkdir {}: {e}", target.display()))?;
                }
                chown(target, self.owner_of(&stat))?;
                fs::set_permissions(
                    target,
                    fs::Permissions::from_mode(self.mode_of(&stat, true)),
                )
                .map_err(|e| e.to_string())?;
                self.dir_times.push((target.to_path_buf(), stat));
                return Ok(());
            }
            _ => {
                if let Some(existing) = existing {
                    if existing.is_dir() {
                        return Err(format!(
                            "cannot replace directory {} with a file",
                            target.display()
                        ));
                    }
                    remove(target)?;
                }
            }
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
                let fd = openat(
                    root.as_fd(),
                    source,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("{relative}: {e}"))?;
                let mut input = fs::File::from(fd);
                let mut output = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(target)
                    .map_err(|e| format!("{}: {e}", target.display()))?;
                io::copy(&mut input, &mut output)
                    .map_err(|e| format!("{}: {e}", target.display()))?;
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

/// A source file decompressed by its content (gzip, bzip2, xz, zstd or plain).
fn archive_reader(root: &OwnedFd, relative: &str) -> Result<Box<dyn Read>, String> {
    let fd = openat(
        root.as_fd(),
        relative,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{relative}: {e}"))?;
    let mut file = io::BufReader::new(fs::File::from(fd));
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

fn remove(path: &Path) -> Result<(), String> {
    let metadata = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if metadata.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .map_err(|e| format!("removing {}: {e}", path.display()))
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

/// An ADD URL fetched before the copy.
struct Download {
    /// File name under the downloads dir.
    file: String,
    /// The name it takes in a directory destination: the URL's last path segment.
    name: String,
    mtime: Option<i64>,
}

/// Fetches ADD's URLs into `dir`, checking `--checksum`.
fn download_urls(op: &CopyOp, dir: &Path) -> Result<Vec<Download>, String> {
    let urls: Vec<&String> = op.sources.iter().filter(|s| is_url(s)).collect();
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let mut downloads = Vec::new();
    for (index, url) in urls.into_iter().enumerate() {
        let response = runtime
            .block_on(client.get(url.as_str()).send())
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        let mtime = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let body = runtime
            .block_on(response.bytes())
            .map_err(|e| format!("downloading {url}: {e}"))?;
        if let Some(expected) = op.add.as_ref().and_then(|a| a.checksum.as_ref()) {
            let actual = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
            );
            if !expected.starts_with("sha256:") {
                return Err(format!("--checksum {expected}: only sha256 is supported"));
            }
            if &actual != expected {
                return Err(format!(
                    "digest mismatch for {url}: expected {expected}, got {actual}"
                ));
            }
        }
        let file = format!("download-{index}");
        fs::write(dir.join(&file), &body).map_err(|e| e.to_string())?;
        let name = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "__unnamed__".to_owned());
        downloads.push(Download { file, name, mtime });
    }
    Ok(downloads)
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

/// A copy of the host tree `source` as `out/` of a new work dir (a read-write bind mount's
/// writes are discarded).
pub(super) fn copy_tree(store: &Store, source: &Path) -> Result<WorkDir, String> {
    let dir = store.work_dir("bind-").map_err(|e| e.to_string())?;
    copy_host_tree(source, &dir.path().join("out"))?;
    Ok(dir)
}

/// Copies a tree keeping modes, owners, symlinks and times.
fn copy_host_tree(source: &Path, out: &Path) -> Result<(), String> {
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(source).follow_links(false) {
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
        let metadata = entry.metadata().map_err(|e| e.to_string())?;
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            dirs.push((target.clone(), metadata.clone()));
        } else if kind.is_symlink() {
            let link = fs::read_link(entry.path()).map_err(|e| e.to_string())?;
            symlink(link, &target).map_err(|e| e.to_string())?;
        } else {
            fs::copy(entry.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
        use std::os::unix::fs::MetadataExt;
        chown(
            &target,
            Owner {
                uid: metadata.uid(),
                gid: metadata.gid(),
            },
        )?;
        if !kind.is_symlink() {
            fs::set_permissions(
                &target,
                fs::Permissions::from_mode(metadata.mode() & 0o7777),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    for (dir, metadata) in dirs.into_iter().rev() {
        use std::os::unix::fs::MetadataExt;
        set_times(&dir, metadata.atime(), metadata.mtime(), false)?;
    }
    Ok(())
}
