//! The per-run bundle directory (rootfs mountpoint, init layer, generated /etc files,
//! config.json for external runtimes) and a read-only view of the rootfs's layers, used before
//! anything is mounted (USER lookup, PATH lookup, mountpoints).

use super::{Error, MountKind, Network, Request, Rootfs};
use oci_spec::runtime::Spec;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_SYMLINK_HOPS: usize = 40;

/// The merged view of a rootfs without mounting it: layer directories, top-most first, with
/// overlay whiteouts (0/0 character devices) hiding what lies below.
pub struct LayerView {
    layers: Vec<PathBuf>,
}

impl LayerView {
    pub fn of(rootfs: &Rootfs) -> LayerView {
        let layers = match rootfs {
            Rootfs::Overlay {
                lowerdirs, upper, ..
            } => std::iter::once(upper.clone())
                .chain(lowerdirs.iter().rev().cloned())
                .collect(),
            Rootfs::Dir(dir) => vec![dir.clone()],
        };
        LayerView { layers }
    }

    /// The top-most entry at `relative` (no symlink followed), or None when absent or whited out.
    fn entry(&self, relative: &Path) -> Option<(PathBuf, fs::Metadata)> {
        for layer in &self.layers {
            let path = layer.join(relative);
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if meta.file_type().is_char_device() && meta.rdev() == 0 {
                    return None;
                }
                return Some((path, meta));
            }
        }
        None
    }

    /// Resolves an absolute or root-relative path inside the rootfs, following symlinks as the
    /// kernel would with this rootfs as `/`; returns the host path of the final entry.
    pub fn resolve(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        let mut pending: Vec<String> = components(path).into_iter().rev().collect();
        let mut resolved = PathBuf::new();
        let mut hops = 0;
        let mut found = None;
        while let Some(name) = pending.pop() {
            if name == ".." {
                resolved.pop();
                found = None;
                continue;
            }
            let candidate = resolved.join(&name);
            let (host_path, meta) = self.entry(&candidate)?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return None;
                }
                let target = fs::read_link(&host_path).ok()?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    resolved = PathBuf::new();
                }
                pending.extend(components(&target).into_iter().rev());
                found = None;
                continue;
            }
            resolved = candidate;
            found = Some((host_path, meta));
        }
        match found {
            Some(entry) => Some(entry),
            // The root itself (or a path that ends at it).
            None if resolved.as_os_str().is_empty() => self
                .layers
                .first()
                .and_then(|top| Some((top.clone(), fs::metadata(top).ok()?))),
            None => self.entry(&resolved),
        }
    }

    /// The content of a regular file in the rootfs, or None when it does not exist.
    pub fn read_to_string(&self, path: &str) -> Result<Option<String>, Error> {
        match self.resolve(path) {
            Some((host_path, meta)) if meta.is_file() => fs::read_to_string(&host_path)
                .map(Some)
                .map_err(Error::io(format!("reading {}", host_path.display()))),
            _ => Ok(None),
        }
    }
}

/// Normal components of a path; `.` dropped, `..` kept for the resolver.
fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

/// The path to execute for `args[0]`: itself when it has a slash, else the first executable
/// regular file named so in the `PATH` of `env` (as execvp would search inside the sandbox).
pub fn find_executable(
    view: &LayerView,
    args: &[String],
    env: &[String],
    cwd: &str,
) -> Result<String, Error> {
    let command = args.first().ok_or(Error::NoCommand)?;
    if command.contains('/') {
        let absolute = if command.starts_with('/') {
            command.clone()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), command)
        };
        return match view.resolve(&absolute) {
            Some((_, meta)) if meta.is_file() && meta.mode() & 0o111 != 0 => Ok(command.clone()),
            Some(_) => Err(Error::Exec {
                command: command.clone(),
                errno: nix::errno::Errno::EACCES,
            }),
            None => Err(Error::CommandNotFound(command.clone())),
        };
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut not_executable = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { cwd } else { dir };
        let candidate = format!("{}/{}", dir.trim_end_matches('/'), command);
        match view.resolve(&candidate) {
            Some((_, meta)) if meta.is_file() && meta.mode() & 0o111 != 0 => return Ok(candidate),
            Some((_, meta)) if meta.is_file() => not_executable = true,
            _ => {}
        }
    }
    if not_executable {
        Err(Error::Exec {
            command: command.clone(),
            errno: nix::errno::Errno::EACCES,
        })
    } else {
        Err(Error::CommandNotFound(command.clone()))
    }
}

/// The bundle: a private temporary directory removed when dropped.
pub struct Bundle {
    dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    /// The top-most lowerdir holding mountpoints and the generated files' placeholders.
    init_layer: Option<PathBuf>,
    view: LayerView,
}

impl Bundle {
    pub fn create(request: &Request) -> Result<Bundle, Error> {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-sandbox-")
            .tempdir_in(super::scratch_dir())
            .map_err(Error::io("creating the bundle directory"))?;
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).map_err(Error::io("creating the rootfs mountpoint"))?;
        let init_layer = match request.rootfs {
            Rootfs::Overlay { .. } => {
                let init = dir.path().join("init");
                fs::create_dir(&init).map_err(Error::io("creating the init layer"))?;
                Some(init)
            }
            Rootfs::Dir(_) => None,
        };
        let bundle = Bundle {
            dir,
            rootfs,
            init_layer,
            view: LayerView::of(&request.rootfs),
        };
        if let Rootfs::Overlay { work, .. } = &request.rootfs {
            // A volatile overlay mount leaves this marker in its work dir, and overlayfs
            // refuses that work dir until it is gone. Removed here, when a work dir is used
            // again, rather than after every run: a build's work dirs are fresh and thrown
            // away, and each removal costs a synchronous discard on file systems mounted so.
            let marker = work.join("work").join("incompat");
            match fs::remove_dir_all(&marker) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", marker.display()))(e));
                }
                _ => {}
            }
        }
        bundle.write_etc_files(request)?;
        Ok(bundle)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Host path of a generated file: `hosts`, `hostname` or `resolv.conf`.
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_etc_files(&self, request: &Request) -> Result<(), Error> {
        let hosts = match request.network {
            Network::Host => fs::read_to_string("/etc/hosts").unwrap_or_default(),
            Network::None => format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
                 ff02::2\tip6-allrouters\n127.0.0.1\t{}\n",
                request.hostname
            ),
        };
        let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for (name, content) in [
            ("hosts", hosts),
            ("hostname", format!("{}\n", request.hostname)),
            ("resolv.conf", resolv),
        ] {
            let path = self.etc_file(name);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, content.as_bytes()))
                .map_err(Error::io(format!("writing {}", path.display())))?;
        }
        Ok(())
    }

    /// lowerdir/upperdir/workdir options for the overlay rootfs, or None for a plain directory.
    pub fn overlay_options(
        &self,
        request: &Request,
        rootless: bool,
    ) -> Result<Option<String>, Error> {
        let Rootfs::Overlay {
            lowerdirs,
            upper,
            work,
        } = &request.rootfs
        else {
            return Ok(None);
        };
        let check = |path: &Path| -> Result<String, Error> {
            let text = path.to_str().unwrap_or_default();
            if text.is_empty() || text.contains([',', ':', '\\']) || !path.is_absolute() {
                return Err(Error::Invalid {
                    what: "overlay directory",
                    value: path.display().to_string(),
                    reason: "must be an absolute UTF-8 path without ',', ':' or '\\'",
                });
            }
            Ok(text.to_string())
        };
        let mut lower = Vec::with_capacity(lowerdirs.len() + 1);
        if let Some(init) = &self.init_layer {
            lower.push(check(init)?);
        }
        let stackable = super::stackable_lowerdirs(lowerdirs.clone(), &self.path().join("l"))?;
        for dir in stackable.iter().rev() {
            lower.push(check(dir)?);
        }
        // volatile: no syncfs on unmount, which costs more than the rest of a run; the upper
        // dir is read (into a layer, fsynced by the store) right after anyway.
        let mut options = format!(
            "lowerdir={},upperdir={},workdir={},volatile",
            lower.join(":"),
            check(upper)?,
            check(work)?
        );
        if rootless {
            options.push_str(",userxattr");
        }
        Ok(Some(options))
    }

    /// Creates every mountpoint of `spec` that the image lacks in the init layer, so that
    /// neither the embedded runtime nor runc has to create it in the upper dir.
    pub fn prepare_init_layer(&self, spec: &Spec) -> Result<(), Error> {
        let Some(init) = &self.init_layer else {
            return Ok(());
        };
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let mut covering: Vec<&Path> = Vec::new();
        for mount in mounts {
            let destination = mount.destination();
            if covering
                .iter()
                .any(|parent| destination.starts_with(parent))
            {
                continue;
            }
            let is_bind = mount.typ().as_deref() == Some("bind");
            if !is_bind {
                covering.push(destination);
            }
            let is_file = is_bind
                && mount
                    .source()
                    .as_ref()
                    .is_some_and(|source| fs::metadata(source).is_ok_and(|m| !m.is_dir()));
            self.create_mountpoint(init, destination, is_file)?;
        }
        // The working directory is not a mountpoint: the runtime creates it when missing, in
        // the upper dir, as Docker does.
        Ok(())
    }

    fn create_mountpoint(
        &self,
        init: &Path,
        destination: &Path,
        is_file: bool,
    ) -> Result<(), Error> {
        let names: Vec<String> = components(&destination.to_string_lossy())
            .into_iter()
            .filter(|n| n != "..")
            .collect();
        let mut relative = PathBuf::new();
        for (index, name) in names.iter().enumerate() {
            relative.push(name);
            let last = index + 1 == names.len();
            match self.view.entry(&relative) {
                Some((_, meta)) if meta.is_dir() => {
                    if last {
                        return Ok(());
                    }
                    // Keep the image's attributes on the directory the init layer shadows.
                    let path = init.join(&relative);
                    if !path.exists() {
                        fs::DirBuilder::new()
                            .mode(meta.mode() & 0o7777)
                            .create(&path)
                            .and_then(|()| {
                                // Rootless: the owner cannot be given away; the mode still is kept.
                                if nix::unistd::geteuid().is_root() {
                                    std::os::unix::fs::lchown(
                                        &path,
                                        Some(meta.uid()),
                                        Some(meta.gid()),
                                    )
                                } else {
                                    Ok(())
                                }
                            })
                            .and_then(|()| {
                                fs::set_permissions(
                                    &path,
                                    std::os::unix::fs::PermissionsExt::from_mode(
                                        meta.mode() & 0o7777,
                                    ),
                                )
                            })
                            .map_err(Error::io(format!("creating {}", path.display())))?;
                    }
                }
                // A file, or a symlink the runtime resolves itself: nothing to shadow.
                Some(_) => return Ok(()),
                None => {
                    let path = init.join(&relative);
                    let made = if last && is_file {
                        fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .mode(0o644)
                            .open(&path)
                            .map(drop)
                    } else {
                        fs::DirBuilder::new()
                            .mode(0o755)
                            .recursive(true)
                            .create(&path)
                    };
                    made.map_err(Error::io(format!("creating {}", path.display())))?;
                }
            }
        }
        Ok(())
    }

    /// Writes config.json for an external runtime.
    pub fn write_config(&self, spec: &Spec) -> Result<(), Error> {
        let path = self.dir.path().join("config.json");
        spec.save(&path)?;
        Ok(())
    }

    /// The destinations of extra bind mounts whose source must exist.
    pub fn check_mount_sources(request: &Request) -> Result<(), Error> {
        for mount in &request.mounts {
            if !mount.destination.starts_with('/') {
                return Err(Error::Invalid {
                    what: "mount destination",
                    value: mount.destination.clone(),
                    reason: "must be an absolute path",
                });
            }
            if let MountKind::Bind(source) = &mount.kind
                && !source.exists()
            {
                return Err(Error::Invalid {
                    what: "bind mount source",
                    value: source.display().to_string(),
                    reason: "does not exist",
                });
            }
        }
        Ok(())
    }
}
