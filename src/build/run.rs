//! RUN: the command in the sandbox on an overlay of the step's layers and a fresh upper dir,
//! with its `--mount`s, output streamed as events, the end of the output kept for an error.

use super::options::{NetworkMode, SecretSource};
use super::{FsState, Shared};
use crate::dockerfile::values::{CacheSharing, MountType};
use crate::plan::{RunMount, RunOp};
use crate::progress::{Event, StepId, Stream};
use crate::sandbox::{
    self, Mount, MountKind, Network, OutputStream, Request, Rootfs, Runtime, Stdio,
};
use crate::store::WorkDir;
use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Lines of output quoted when a step fails.
const TAIL_LINES: usize = 10;

/// Runs the RUN; returns its work dir, whose `upper/` holds the changes.
pub(super) fn execute(
    shared: &Shared<'_>,
    op: &RunOp,
    fs_state: &FsState,
    sources: &[Option<FsState>],
    step: StepId,
) -> Result<WorkDir, String> {
    let work = shared.run_dir().map_err(|e| e.to_string())?;
    let dir = work.path();
    fs::create_dir(dir.join("upper")).map_err(|e| e.to_string())?;
    // Secrets, scripts and hosts files of this step only: made when needed, gone after it.
    let files = FilesDir(dir.join("files"));
    let mut env = op.env.clone();
    env.extend(op.proxy_env.iter().cloned());
    let mut mounts = Vec::new();
    // Held while the command runs: cache mount locks, copies of mounted stages.
    let mut guards: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut stage_sources = sources.iter();
    for (index, run_mount) in op.mounts.iter().enumerate() {
        let state = match &run_mount.from {
            Some(_) => stage_sources.next().cloned().flatten(),
            None => None,
        };
        prepare_mount(
            shared,
            run_mount,
            state,
            &dir.join("files").join(index.to_string()),
            &mut env,
            &mut mounts,
            &mut guards,
        )?;
    }
    for file in &op.files {
        let host = files.create()?.join(format!("inline-{}", mounts.len()));
        fs::write(&host, file.content.as_bytes()).map_err(|e| e.to_string())?;
        fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        mounts.push(Mount {
            destination: file.name.clone(),
            kind: MountKind::Bind(host),
            read_only: true,
        });
    }
    if !shared.options.add_hosts.is_empty() {
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for entry in &shared.options.add_hosts {
            hosts.push_str(&format!("{}\t{}\n", entry.ip, entry.host));
        }
        let host = files.create()?.join("hosts");
        fs::write(&host, hosts).map_err(|e| e.to_string())?;
        mounts.push(Mount {
            destination: "/etc/hosts".into(),
            kind: MountKind::Bind(host),
            read_only: true,
        });
    }
    let network = match op
        .network
        .map(super::convert_network)
        .unwrap_or(shared.options.network)
    {
        NetworkMode::None => Network::None,
        NetworkMode::Default | NetworkMode::Host => Network::Host,
    };
    let request = Request {
        rootfs: Rootfs::Overlay {
            lowerdirs: fs_state.dirs(),
            upper: dir.join("upper"),
            work: dir.join("work"),
        },
        args: op.args.clone(),
        env,
        cwd: op.cwd.clone(),
        user: op.user.clone(),
        mounts,
        network,
        hostname: "buildkitsandbox".into(),
        read_only: false,
        stdio: Stdio::Lines,
        limits: Default::default(),
        runtime: shared.options.runtime.clone().unwrap_or(Runtime::Embedded),
        forward_signals: false,
    };
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let status = sandbox::run(&request, &mut |stream, line| {
        let line = String::from_utf8_lossy(line).into_owned();
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        shared.emit(Event::Output {
            step,
            stream: match stream {
                OutputStream::Stdout => Stream::Stdout,
                OutputStream::Stderr => Stream::Stderr,
            },
            line,
        });
    });
    drop(guards);
    let shown = || -> String {
        if tail.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = tail.iter().map(|l| format!("  > {l}")).collect();
            format!("\n{}", lines.join("\n"))
        }
    };
    match status {
        Ok(status) if status.success() => Ok(work),
        Ok(status) => Err(format!(
            "process \"{}\" did not complete successfully: exit code: {}{}",
            op.args.join(" "),
            status.code(),
            shown()
        )),
        Err(error) => Err(format!("{error}{}", shown())),
    }
}

/// A step's private files directory, removed when the step ends.
struct FilesDir(PathBuf);

impl FilesDir {
    fn create(&self) -> Result<&Path, String> {
        fs::create_dir_all(&self.0).map_err(|e| format!("{}: {e}", self.0.display()))?;
        Ok(&self.0)
    }
}

impl Drop for FilesDir {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Turns one `RUN --mount` into sandbox mounts (and environment, for secrets as env).
fn prepare_mount(
    shared: &Shared<'_>,
    run_mount: &RunMount,
    state: Option<FsState>,
    scratch: &Path,
    env: &mut Vec<String>,
    mounts: &mut Vec<Mount>,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<(), String> {
    let mount = &run_mount.mount;
    let target = mount.target.clone();
    match mount.kind {
        MountType::Bind => {
            let target = target.ok_or("bind mount needs a target")?;
            let source = mount.source.clone().unwrap_or_default();
            let host = match state {
                Some(state) => {
                    let copy = super::fsop::export(shared.store, &state, &source)?;
                    let path = copy.path().join("out");
                    guards.push(Box::new(copy));
                    path
                }
                // What .dockerignore leaves; a copy when writable (writes are discarded).
                None => {
                    let (path, copy) = super::fsop::context_bind_source(
                        shared.store,
                        shared.context,
                        &source,
                        !mount.readonly,
                    )?;
                    if let Some(copy) = copy {
                        guards.push(Box::new(copy));
                    }
                    path
                }
            };
            mounts.push(Mount {
                destination: target,
                kind: MountKind::Bind(host),
                read_only: mount.readonly,
            });
        }
        MountType::Cache => {
            let target = target.ok_or("cache mount needs a target")?;
            let id = mount.id.clone().unwrap_or_else(|| target.clone());
            // `from`: a new cache starts as a copy of that stage's or image's `source`.
            let new = !shared
                .store
                .cache_mount_path(&id)
                .map_err(|e| e.to_string())?
                .is_dir();
            let seed = match state {
                Some(state) if new => {
                    let source = mount.source.clone().unwrap_or_else(|| "/".into());
                    Some(super::fsop::export(shared.store, &state, &source)?)
                }
                _ => None,
            };
            let dir = shared
                .store
                .cache_mount_dir(
                    &id,
                    mount.mode.unwrap_or(0o755),
                    mount.uid.unwrap_or(0),
                    mount.gid.unwrap_or(0),
                    seed.as_ref().map(|copy| copy.path().join("out")).as_deref(),
                )
                .map_err(|e| e.to_string())?;
            let dir = match mount.sharing {
                CacheSharing::Locked => {
                    guards.push(Box::new(
                        shared
                            .store
                            .lock_cache_mount(&id)
                            .map_err(|e| e.to_string())?,
                    ));
                    dir
                }
                CacheSharing::Private => match shared
                    .store
                    .try_lock_cache_mount(&id)
                    .map_err(|e| e.to_string())?
                {
                    Some(lock) => {
                        guards.push(Box::new(lock));
                        dir
                    }
                    // In use by another build: this one gets a fresh directory of its own.
                    None => {
                        let fresh = scratch.to_path_buf();
                        fs::create_dir_all(&fresh).map_err(|e| e.to_string())?;
                        fresh
                    }
                },
                CacheSharing::Shared => dir,
            };
            mounts.push(Mount {
                destination: target,
                kind: MountKind::Bind(dir),
                read_only: mount.readonly,
            });
        }
        MountType::Tmpfs => {
            mounts.push(Mount {
                destination: target.ok_or("tmpfs mount needs a target")?,
                kind: MountKind::Tmpfs,
                read_only: false,
            });
        }
        MountType::Secret => {
            let id = mount
                .id
                .clone()
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_owned)
                })
                .ok_or("secret mount needs an id or a target")?;
            let Some(secret) = shared.options.secrets.iter().find(|s| s.id == id) else {
                if mount.required {
                    return Err(format!(
                        "secret {id}: not provided (pass --secret id={id},src=PATH)"
                    ));
                }
                return Ok(());
            };
            let value = match &secret.source {
                SecretSource::File(path) => {
                    fs::read(path).map_err(|e| format!("secret {id}: {}: {e}", path.display()))?
                }
                SecretSource::Env(var) => std::env::var(var)
                    .map_err(|_| format!("secret {id}: environment variable {var} is not set"))?
                    .into_bytes(),
            };
            if let Some(var) = &mount.env {
                env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
                if target.is_none() {
                    return Ok(());
                }
            }
            fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
            let file = scratch.join("secret");
            fs::write(&file, &value).map_err(|e| e.to_string())?;
            fs::set_permissions(
                &file,
                fs::Permissions::from_mode(mount.mode.unwrap_or(0o400)),
            )
            .map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(
                &file,
                Some(mount.uid.unwrap_or(0)),
                Some(mount.gid.unwrap_or(0)),
            )
            .map_err(|e| e.to_string())?;
            mounts.push(Mount {
                destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                kind: MountKind::Bind(file),
                read_only: true,
            });
        }
        MountType::Ssh => {
            let target = target.unwrap_or_else(|| "/run/buildkit/ssh_agent.0".to_owned());
            let Some(socket) = &shared.options.ssh_agent else {
                if mount.required {
                    return Err(
                        "ssh mount: no agent (pass --ssh default with SSH_AUTH_SOCK set)".into(),
                    );
                }
                return Ok(());
            };
            env.push(format!("SSH_AUTH_SOCK={target}"));
            mounts.push(Mount {
                destination: target,
                kind: MountKind::Bind(socket.clone()),
                read_only: true,
            });
        }
    }
    Ok(())
}
