//! Equivalence with BuildKit: every case under testdata/equivalence/ is built by Docker Engine
//! (Debian's docker.io, DOCKER_BUILDKIT=1, a private daemon shared by this binary) and by
//! `rbuild build`; both images are saved and must have the same flattened root filesystem
//! (paths, types, modes, owners, contents, link targets, hardlink groups; never mtimes) and the
//! same run-time config. A failure lists every difference, each with the case name.
//!
//! A case directory holds its Dockerfile and context, and optionally:
//! - `args`: one build flag a line (`--build-arg K=V`, `--target STAGE`, `-f FILE`), for both;
//! - `prebuild`: lines `TAG DOCKERFILE`, images built first (same context) by both, such as
//!   the parent of an ONBUILD case;
//! - `reference.Dockerfile`: Docker Engine 20.10's built-in frontend speaks Dockerfile 1.2,
//!   without heredocs, `COPY --link`, `--parents` or `--exclude`; for a case using those, this
//!   file spells the same image in 1.2 syntax and BuildKit builds it instead.

#[path = "store_support/mod.rs"]
mod store_support;
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use store_support::{busybox_tar, rbuild, rbuild_output, require_root};
use support::dockerd::Dockerd;
use support::saved_image::{Difference, SavedImage, differences};

const BASE: &str = "busybox:latest";

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/equivalence")
}

/// The busybox root filesystem tar, made once per test binary in the shared daemon's dir (so
/// it goes when the daemon does) and imported into that daemon as busybox:latest.
fn busybox() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| busybox_tar(Dockerd::shared().dir()))
}

fn docker_with_busybox() -> &'static Dockerd {
    static IMPORTED: OnceLock<()> = OnceLock::new();
    let docker = Dockerd::shared();
    IMPORTED.get_or_init(|| {
        docker.docker(&["import", busybox().to_str().expect("utf-8 path"), BASE]);
    });
    docker
}

/// A case's build: flags for both builders, images to build first, the Dockerfile BuildKit reads.
struct Case {
    name: String,
    dir: PathBuf,
    flags: Vec<String>,
    prebuild: Vec<(String, PathBuf)>,
    reference: Option<PathBuf>,
}

impl Case {
    fn load(name: &str) -> Case {
        let dir = cases_dir().join(name);
        assert!(dir.join("Dockerfile").is_file(), "{name}: no Dockerfile");
        let read_lines = |file: &str| -> Vec<String> {
            std::fs::read_to_string(dir.join(file))
                .unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string)
                .collect()
        };
        let mut flags = Vec::new();
        for line in read_lines("args") {
            let (flag, value) = line.split_once(' ').unwrap_or((&line, ""));
            flags.push(flag.to_string());
            // -f is relative to the case, not to the test's working directory.
            let value = if flag == "-f" {
                dir.join(value.trim()).display().to_string()
            } else {
                value.trim().to_string()
            };
            flags.push(value);
        }
        let prebuild = read_lines("prebuild")
            .iter()
            .map(|line| {
                let (tag, file) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{name}/prebuild: want `TAG DOCKERFILE`: {line}"));
                (tag.to_string(), dir.join(file.trim()))
            })
            .collect();
        let reference = Some(dir.join("reference.Dockerfile")).filter(|path| path.is_file());
        Case {
            name: name.to_string(),
            dir,
            flags,
            prebuild,
            reference,
        }
    }

    fn tag(&self) -> String {
        format!("equiv-{}:latest", self.name)
    }

    /// Flags for BuildKit: the reference Dockerfile replaces `-f` when there is one.
    fn docker_flags(&self) -> Vec<String> {
        let Some(reference) = &self.reference else {
            return self.flags.clone();
        };
        let mut flags = Vec::new();
        let mut given = self.flags.iter();
        while let Some(flag) = given.next() {
            let value = given.next().cloned().unwrap_or_default();
            if flag != "-f" {
                flags.extend([flag.clone(), value]);
            }
        }
        flags.extend(["-f".to_string(), reference.display().to_string()]);
        flags
    }
}

fn docker_build(docker: &Dockerd, case: &Case, tag: &str, flags: &[String]) {
    let out = docker
        .command()
        .env("DOCKER_BUILDKIT", "1")
        // The private daemon has no bridge; rbuild's steps use the host network by default.
        .args(["build", "--network", "host", "-t", tag])
        .args(flags)
        .arg(&case.dir)
        .output()
        .expect("run docker build");
    assert!(
        out.status.success(),
        "{}: docker build -t {tag} {flags:?} failed:\n{}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rbuild_build(root: &Path, case: &Case, tag: &str, flags: &[String]) {
    let mut args = vec!["build", "-t", tag];
    args.extend(flags.iter().map(String::as_str));
    args.push(case.dir.to_str().expect("utf-8 path"));
    let out = rbuild_output(root, &args);
    assert!(
        out.status.success(),
        "{}: rbuild build -t {tag} {flags:?} failed:\n{}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the case with both builders and returns every difference, BuildKit's as expected.
fn build_both(case: &Case) -> Vec<Difference> {
    require_root();
    let docker = docker_with_busybox();
    let scratch = tempfile::tempdir().expect("temp dir");
    let tag = case.tag();

    for (parent, file) in &case.prebuild {
        let flags = ["-f".to_string(), file.display().to_string()];
        docker_build(docker, case, parent, &flags);
    }
    docker_build(docker, case, &tag, &case.docker_flags());
    let theirs = scratch.path().join("buildkit.tar");
    docker.docker(&["save", "-o", theirs.to_str().expect("utf-8 path"), &tag]);

    let root = scratch.path().join("store");
    rbuild(
        &root,
        &["import", busybox().to_str().expect("utf-8 path"), BASE],
    );
    for (parent, file) in &case.prebuild {
        let flags = ["-f".to_string(), file.display().to_string()];
        rbuild_build(&root, case, parent, &flags);
    }
    rbuild_build(&root, case, &tag, &case.flags);
    let ours = scratch.path().join("rbuild.tar");
    rbuild(
        &root,
        &["save", "-o", ours.to_str().expect("utf-8 path"), &tag],
    );

    let expected = SavedImage::read(&theirs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let got = SavedImage::read(&ours).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    differences(&expected, &got)
}

fn assert_equivalent(name: &str) {
    let case = Case::load(name);
    let found = build_both(&case);
    assert!(
        found.is_empty(),
        "{name}: rbuild's image differs from BuildKit's ({} differences, as case | what | BuildKit | rbuild):\n{}",
        found.len(),
        found
            .iter()
            .map(|difference| format!("{name} | {difference}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

macro_rules! equivalence_cases {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_equivalent($dir);
            }
        )*

        const CASES: &[&str] = &[$($dir),*];
    };
}

equivalence_cases! {
    case_01_stage_by_name => "01-stage-by-name",
    case_02_stage_by_index => "02-stage-by-index",
    case_03_target => "03-target",
    case_04_unused_stages => "04-unused-stages",
    case_05_copy_several_sources => "05-copy-several-sources",
    case_06_copy_destinations => "06-copy-destinations",
    case_07_copy_workdir_relative => "07-copy-workdir-relative",
    case_08_copy_dir_contents => "08-copy-dir-contents",
    case_09_copy_globs => "09-copy-globs",
    case_10_chown_names => "10-chown-names",
    case_11_chown_numbers => "11-chown-numbers",
    case_12_chmod => "12-chmod",
    case_13_copy_link => "13-copy-link",
    case_14_copy_parents => "14-copy-parents",
    case_15_copy_exclude => "15-copy-exclude",
    case_16_dockerignore => "16-dockerignore",
    case_17_dockerignore_per_dockerfile => "17-dockerignore-per-dockerfile",
    case_18_arg_global => "18-arg-global",
    case_19_build_args => "19-build-args",
    case_20_env_expansion => "20-env-expansion",
    case_21_heredoc_run => "21-heredoc-run",
    case_22_heredoc_copy => "22-heredoc-copy",
    case_23_heredoc_shebang => "23-heredoc-shebang",
    case_24_whiteout_delete => "24-whiteout-delete",
    case_25_whiteout_replace => "25-whiteout-replace",
    case_26_cmd_before_entrypoint => "26-cmd-before-entrypoint",
    case_27_entrypoint_clears_cmd => "27-entrypoint-clears-cmd",
    case_28_entrypoint_empty => "28-entrypoint-empty",
    case_29_user_workdir => "29-user-workdir",
    case_30_labels_expose_volume => "30-labels-expose-volume",
    case_31_healthcheck_cmd => "31-healthcheck-cmd",
    case_32_healthcheck_none => "32-healthcheck-none",
    case_33_shell_stopsignal => "33-shell-stopsignal",
    case_34_onbuild_triggers => "34-onbuild-triggers",
    case_35_onbuild_declared => "35-onbuild-declared",
    case_36_add_archives => "36-add-archives",
    case_37_symlinks_hardlinks => "37-symlinks-hardlinks",
    case_38_run_mounts => "38-run-mounts",
    case_39_scratch => "39-scratch",
    case_40_copy_from_image => "40-copy-from-image",
    case_41_run_as_user => "41-run-as-user",
    case_42_special_files => "42-special-files",
    case_43_file_names => "43-file-names",
    case_44_volume_then_run => "44-volume-then-run",
    case_45_stage_inheritance => "45-stage-inheritance",
    case_46_copy_from_owners => "46-copy-from-owners",
    case_47_arg_selects_stage => "47-arg-selects-stage",
    case_48_symlinked_destinations => "48-symlinked-destinations",
    case_49_copy_overwrite => "49-copy-overwrite",
    case_50_user_unknown_uid => "50-user-unknown-uid",
    case_51_run_exec_form => "51-run-exec-form",
    case_52_escape_directive => "52-escape-directive",
    case_53_dockerignore_patterns => "53-dockerignore-patterns",
    case_54_add_archive_owners => "54-add-archive-owners",
    case_55_copy_from_symlinks => "55-copy-from-symlinks",
}

#[test]
fn every_case_directory_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(cases_dir())
        .expect("testdata/equivalence")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|case| case.to_string()).collect();
    listed.sort();
    assert_eq!(
        listed, dirs,
        "the macro's list and testdata/equivalence/ differ"
    );
    assert!(
        CASES.len() >= 30,
        "at least 30 cases, found {}",
        CASES.len()
    );
}

/// The comparator itself: the same busybox image saved by Docker and by rbuild is identical.
#[test]
fn comparator_finds_busybox_identical_in_docker_and_rbuild() {
    require_root();
    let docker = docker_with_busybox();
    let scratch = tempfile::tempdir().expect("temp dir");
    let theirs = scratch.path().join("docker.tar");
    docker.docker(&["save", "-o", theirs.to_str().expect("utf-8 path"), BASE]);
    let root = scratch.path().join("store");
    rbuild(
        &root,
        &["import", busybox().to_str().expect("utf-8 path"), BASE],
    );
    let ours = scratch.path().join("rbuild.tar");
    rbuild(
        &root,
        &["save", "-o", ours.to_str().expect("utf-8 path"), BASE],
    );
    let expected = SavedImage::read(&theirs).expect("docker's archive");
    let got = SavedImage::read(&ours).expect("rbuild's archive");
    assert!(
        expected.rootfs.len() > 200,
        "busybox has its applets: {}",
        expected.rootfs.len()
    );
    assert_eq!(differences(&expected, &got), Vec::new());
}

/// The harness itself: a daemon that ran a container is gone after its guard drops, with
/// nothing left mounted below its dir and the dir removed.
#[test]
fn dockerd_guard_leaves_no_process_mount_or_dir() {
    require_root();
    let docker = Dockerd::start();
    docker.docker(&["import", busybox().to_str().expect("utf-8 path"), BASE]);
    let out = docker.docker(&["run", "--rm", "--network", "none", BASE, "echo", "ran"]);
    assert_eq!(out.trim(), "ran");
    let (pid, dir) = (docker.pid(), docker.dir().to_path_buf());
    assert!(
        !support::dockerd::mounts_below(&dir).is_empty(),
        "dockerd mounts below its dir"
    );
    drop(docker);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "dockerd {pid} still runs"
    );
    assert_eq!(support::dockerd::mounts_below(&dir), Vec::<PathBuf>::new());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// An entry of a hand-made layer.
enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, u64, &'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    /// A file whose owner and xattrs are in PAX records only (the header says 0).
    PaxFile(&'a str, &'a [(&'a str, &'a str)]),
}

fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_000_000);
        header.set_uid(0);
        header.set_gid(0);
        let (path, content): (&str, &[u8]) = match entry {
            Entry::Dir(path, mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                (path, b"")
            }
            Entry::File(path, mode, owner, content) => {
                header.set_mode(*mode);
                header.set_uid(*owner);
                header.set_gid(*owner);
                (path, content.as_bytes())
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_link_name(target).expect("link name");
                (path, b"")
            }
            Entry::Hardlink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_link_name(target).expect("link name");
                (path, b"")
            }
            Entry::PaxFile(path, records) => {
                header.set_mode(0o644);
                builder
                    .append_pax_extensions(records.iter().map(|(k, v)| (*k, v.as_bytes())))
                    .expect("PAX records");
                (path, b"pax")
            }
        };
        header.set_size(content.len() as u64);
        builder
            .append_data(&mut header, path, content)
            .expect("layer entry");
    }
    builder.into_inner().expect("layer tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A `docker save` archive of one image with these layers and this `config` section.
fn archive(config: serde_json::Value, layers: &[Vec<u8>]) -> SavedImage {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, name, data)
            .expect("archive member");
    };
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    for (name, data) in names.iter().zip(layers) {
        add(name, data);
    }
    let config = serde_json::json!({ "architecture": "amd64", "os": "linux", "config": config });
    add("config.json", config.to_string().as_bytes());
    let manifest = serde_json::json!([{ "Config": "config.json", "Layers": names }]);
    add("./manifest.json", manifest.to_string().as_bytes());
    let bytes = builder.into_inner().expect("archive");
    SavedImage::from_archive(bytes.as_slice()).expect("read the archive back")
}

fn base_layer() -> Vec<u8> {
    layer(&[
        Entry::Dir("./", 0o755),
        Entry::Dir("./etc/", 0o755),
        Entry::File("./etc/passwd", 0o644, 0, "root:x:0:0::/:/bin/sh\n"),
        Entry::Dir("./var/lib/", 0o755),
        Entry::File("./var/lib/a", 0o600, 0, "a"),
        Entry::Dir("./opq/", 0o700),
        Entry::File("./opq/old", 0o644, 0, "old"),
        Entry::File("./x", 0o644, 0, "x"),
        Entry::File("./h1", 0o640, 7, "shared"),
        Entry::Hardlink("./h2", "./h1"),
        Entry::Hardlink("./h3", "h1"),
        Entry::Dir("./d/", 0o755),
        Entry::File("./d/f", 0o644, 0, "f"),
    ])
}

#[test]
fn comparator_applies_whiteouts_opaque_dirs_and_replacements() {
    let upper = layer(&[
        Entry::File("etc/.wh.passwd", 0o600, 0, ""),
        Entry::File("var/.wh.lib", 0o600, 0, ""),
        Entry::Dir("opq/", 0o755),
        Entry::File("opq/new", 0o644, 1000, "new"),
        Entry::File("opq/.wh..wh..opq", 0o600, 0, ""),
        Entry::File("d", 0o755, 0, "now a file"),
        Entry::Symlink("x", "/etc/target"),
        Entry::File("h1", 0o644, 0, "rewritten"),
        Entry::PaxFile(
            "big-ids",
            &[
                ("uid", "3000000"),
                ("gid", "3000001"),
                ("SCHILY.xattr.user.note", "kept"),
            ],
        ),
    ]);
    // rbuild may save layers compressed: the comparator reads gzip as well as plain tars.
    let image = archive(serde_json::json!({}), &[base_layer(), gzip(&upper)]);
    let listing: Vec<String> = image
        .listing()
        .into_iter()
        .map(|(path, line)| format!("/{path} {line}"))
        .collect();
    assert_eq!(
        listing,
        [
            "/big-ids file \"pax\" mode 0644 owner 3000000:3000001 xattr user.note=\"kept\"",
            "/d file \"now a file\" mode 0755 owner 0:0",
            "/etc dir mode 0755 owner 0:0",
            "/h1 file \"rewritten\" mode 0644 owner 0:0",
            "/h2 file \"shared\" mode 0640 owner 7:7 hardlinked with h3",
            "/h3 file \"shared\" mode 0640 owner 7:7 hardlinked with h2",
            "/opq dir mode 0755 owner 0:0",
            "/opq/new file \"new\" mode 0644 owner 1000:1000",
            "/x symlink -> /etc/target mode 0777 owner 0:0",
        ]
        .map(String::from)
    );
}

#[test]
fn comparator_reports_every_difference_in_files_and_config() {
    let expected = archive(
        serde_json::json!({
            "Env": ["PATH=/bin", "A=1"],
            "Cmd": ["sh"],
            "Labels": null,
            "WorkingDir": "/srv",
            "User": "",
            "Volumes": {},
        }),
        &[base_layer()],
    );
    let got = archive(
        serde_json::json!({
            "Env": ["A=1", "PATH=/bin"],
            "Cmd": [],
            "WorkingDir": "/srv",
            "StopSignal": "SIGINT",
        }),
        &[
            base_layer(),
            layer(&[
                Entry::File("etc/passwd", 0o600, 0, "root:x:0:0::/:/bin/sh\n"),
                Entry::File("var/lib/a", 0o600, 0, "b"),
                Entry::File("opq/.wh.old", 0o600, 0, ""),
                Entry::File("extra", 0o644, 5, "extra"),
                Entry::Symlink("x", "elsewhere"),
                Entry::File("h3", 0o640, 7, "shared"),
                Entry::File("d/f", 0o644, 1, "f"),
            ]),
        ],
    );
    let found: Vec<String> = differences(&expected, &got)
        .iter()
        .map(Difference::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "/d/f | expected file \"f\" mode 0644 owner 0:0 | got file \"f\" mode 0644 owner 1:1",
            "/etc/passwd | expected file \"root:x:0:0::/:/bin/sh\\n\" mode 0644 owner 0:0 \
             | got file \"root:x:0:0::/:/bin/sh\\n\" mode 0600 owner 0:0",
            "/extra | expected (absent) | got file \"extra\" mode 0644 owner 5:5",
            "/h1 | expected file \"shared\" mode 0640 owner 7:7 hardlinked with h2,h3 \
             | got file \"shared\" mode 0640 owner 7:7 hardlinked with h2",
            "/h2 | expected file \"shared\" mode 0640 owner 7:7 hardlinked with h1,h3 \
             | got file \"shared\" mode 0640 owner 7:7 hardlinked with h1",
            "/h3 | expected file \"shared\" mode 0640 owner 7:7 hardlinked with h1,h2 \
             | got file \"shared\" mode 0640 owner 7:7",
            "/opq/old | expected file \"old\" mode 0644 owner 0:0 | got (absent)",
            "/var/lib/a | expected file \"a\" mode 0600 owner 0:0 | got file \"b\" mode 0600 owner 0:0",
            "/x | expected file \"x\" mode 0644 owner 0:0 | got symlink -> elsewhere mode 0777 owner 0:0",
            "config.Env | expected [\"PATH=/bin\",\"A=1\"] | got [\"A=1\",\"PATH=/bin\"]",
            "config.Cmd | expected [\"sh\"] | got []",
            "config.StopSignal | expected null | got \"SIGINT\"",
        ]
        .map(String::from)
    );
}
