//! The OCI runtime spec (`config.json`) of a run: the one description both the embedded runtime
//! and external runtimes execute. Defaults are Docker's (moby's `oci.DefaultSpec` as the daemon
//! fills it in): mounts, the 14 default capabilities, masked and read-only paths.

use super::bundle::Bundle;
use super::embedded::IdMap;
use super::{Error, ExecUser, MountKind, Network, Request, Stdio};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxIdMappingBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

/// Docker's default capabilities, exactly (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// runc's and Docker's masked paths: hidden behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's and Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every sandbox gets in its /dev: (name, major, minor).
pub const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, Error> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The standard mounts, then the generated /etc files, then the request's mounts.
fn mounts(request: &Request, bundle: &Bundle, id_map: Option<&IdMap>) -> Result<Vec<Mount>, Error> {
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    // The tty group must be mapped for gid=5 to be accepted.
    if id_map.is_none_or(|map| map.maps_gid(5)) {
        devpts.push("gid=5");
    }
    let sys = if id_map.is_some() && request.network == Network::Host {
        // sysfs can only be mounted by the owner of the network namespace.
        mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?
    } else {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?
    };
    let mut list = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount("/dev/pts", "devpts", "devpts", &devpts)?,
        sys,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ];
    for name in ["resolv.conf", "hostname", "hosts"] {
        let source = bundle.etc_file(name);
        list.push(mount(
            &format!("/etc/{name}"),
            "bind",
            &source.to_string_lossy(),
            &["rbind", "rprivate"],
        )?);
    }
    for extra in &request.mounts {
        let access = if extra.read_only { "ro" } else { "rw" };
        list.push(match &extra.kind {
            MountKind::Bind(source) => mount(
                &extra.destination,
                "bind",
                &source.to_string_lossy(),
                &["rbind", "rprivate", access],
            )?,
            MountKind::Tmpfs => mount(
                &extra.destination,
                "tmpfs",
                "tmpfs",
                &["nosuid", "nodev", access],
            )?,
        });
    }
    Ok(list)
}

/// Docker's environment rule completed as runc does it: `HOME` from /etc/passwd when unset.
fn environment(request: &Request, user: &ExecUser) -> Vec<String> {
    let mut env = request.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// Generates the spec; `root.path` is the bundle's rootfs mountpoint.
pub fn generate(
    request: &Request,
    user: &ExecUser,
    bundle: &Bundle,
    id_map: Option<&IdMap>,
) -> Result<Spec, Error> {
    Bundle::check_mount_sources(request)?;
    if !request.cwd.starts_with('/') {
        return Err(Error::Invalid {
            what: "working directory",
            value: request.cwd.clone(),
            reason: "must be an absolute path",
        });
    }
    let caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    // moby's SetCapabilities: a non-root user keeps only the bounding set, as execve would.
    // Every set is given: the builder's defaults are not empty.
    let granted = if user.uid == 0 {
        caps.clone()
    } else {
        Capabilities::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .effective(granted.clone())
        .permitted(granted)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(matches!(request.stdio, Stdio::Tty { .. }))
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .umask(0o022u32)
                .additional_gids(user.additional_gids.clone())
                .build()?,
        )
        .args(request.args.clone())
        .env(environment(request, user))
        .cwd(&request.cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .rlimits(Vec::new())
        .build()?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if request.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    if id_map.is_some() {
        namespaces.push(LinuxNamespaceType::User);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;

    let mut devices = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?,
    ];
    for (major, minor) in DEFAULT_DEVICES
        .iter()
        .map(|(_, major, minor)| (*major, Some(*minor)))
        .chain([(5, Some(1)), (5, Some(2)), (136, None)])
    {
        let mut rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(minor) = minor {
            rule = rule.minor(minor);
        }
        devices.push(rule.build()?);
    }
    let mut resources = LinuxResourcesBuilder::default().devices(devices);
    if let Some(limit) = request.limits.memory {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if let Some(cpus) = request.limits.cpus {
        if !(cpus > 0.0 && cpus.is_finite()) {
            return Err(Error::Invalid {
                what: "cpus",
                value: cpus.to_string(),
                reason: "must be a positive number",
            });
        }
        let period: u64 = 100_000;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64).round() as i64)
                .build()?,
        );
    }
    if let Some(limit) = request.limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        );
    if let Some(map) = id_map {
        let ranges = |ranges: &[(u32, u32, u32)]| {
            ranges
                .iter()
                .map(|&(container, host, size)| {
                    LinuxIdMappingBuilder::default()
                        .container_id(container)
                        .host_id(host)
                        .size(size)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
        };
        linux = linux
            .uid_mappings(ranges(&map.uids)?)
            .gid_mappings(ranges(&map.gids)?);
    }

    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(&bundle.rootfs)
                .readonly(request.read_only)
                .build()?,
        )
        .hostname(&request.hostname)
        .mounts(mounts(request, bundle, id_map)?)
        .process(process)
        .linux(linux.build()?)
        .build()?)
}
