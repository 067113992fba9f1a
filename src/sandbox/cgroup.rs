//! Resource limits for the embedded runtime: one cgroup per run under `rbuild/`, in the v2
//! hierarchy when /sys/fs/cgroup is cgroup2, else in the v1 controllers (this machine's hybrid
//! layout mounts v1 controllers and a controller-less v2 tree). Removed on drop.

use super::Error;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::write(path, value).map_err(Error::io(format!("writing {value} to {}", path.display())))
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

fn is_unified() -> bool {
    nix::sys::statfs::statfs(CGROUP_ROOT)
        .is_ok_and(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

impl Cgroup {
    /// Creates the cgroup with the spec's memory, cpu and pids limits; None without limits.
    pub fn create(spec: &Spec) -> Result<Option<Cgroup>, Error> {
        let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
            return Ok(None);
        };
        let memory = resources.memory().as_ref().and_then(|m| m.limit());
        let cpu = resources
            .cpu()
            .as_ref()
            .and_then(|c| Some((c.quota()?, c.period().unwrap_or(100_000))));
        let pids = resources.pids().as_ref().map(|p| p.limit());
        if memory.is_none() && cpu.is_none() && pids.is_none() {
            return Ok(None);
        }
        let name = unique_name();
        let mut cgroup = Cgroup { dirs: Vec::new() };
        if is_unified() {
            // The shared parent stays: other runs may be using it.
            let parent = Path::new(CGROUP_ROOT).join("rbuild");
            std::fs::create_dir_all(&parent)
                .map_err(Error::io(format!("creating cgroup {}", parent.display())))?;
            for dir in [Path::new(CGROUP_ROOT), parent.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
            }
            let dir = parent.join(&name);
            cgroup.make(&dir)?;
            if let Some(limit) = memory {
                write(&dir.join("memory.max"), &limit.to_string())?;
            }
            if let Some((quota, period)) = cpu {
                write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
            }
            if let Some(limit) = pids {
                write(&dir.join("pids.max"), &limit.to_string())?;
            }
        } else {
            let v1 = |controller: &str| {
                Path::new(CGROUP_ROOT)
                    .join(controller)
                    .join("rbuild")
                    .join(&name)
            };
            if let Some(limit) = memory {
                let dir = v1("memory");
                cgroup.make(&dir)?;
                write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
            if let Some((quota, period)) = cpu {
                let dir = v1("cpu");
                cgroup.make(&dir)?;
                write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            if let Some(limit) = pids {
                let dir = v1("pids");
                cgroup.make(&dir)?;
                write(&dir.join("pids.max"), &limit.to_string())?;
            }
        }
        Ok(Some(cgroup))
    }

    fn make(&mut self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir)
            .map_err(Error::io(format!("creating cgroup {}", dir.display())))?;
        self.dirs.push(dir.to_path_buf());
        Ok(())
    }

    /// Moves a process (and so its future children) into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), Error> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The processes are reaped by now; the kernel may take a moment to empty the cgroup.
        for dir in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// v1 controllers with a v2 tree at /sys/fs/cgroup/unified.
pub fn is_hybrid() -> bool {
    !is_unified()
        && nix::sys::statfs::statfs("/sys/fs/cgroup/unified")
            .is_ok_and(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}
