//! Reads an image archive as `docker save` and `rbuild save` write it (manifest.json, a config,
//! layer tars plain, gzip or zstd), flattens its layers into one root filesystem the way a
//! runtime would see it (whiteouts and opaque dirs applied, hardlinks kept as groups), and lists
//! every difference between two images: paths, file types, modes, owners, contents, link
//! targets, hardlink groups, extended attributes and the run-time config. Modification times
//! are never compared.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

/// The config fields a built image is compared on.
pub const CONFIG_FIELDS: [&str; 12] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
    "Shell",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        sha256: String,
        text: Option<String>,
        size: u64,
    },
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// A hardlink entry whose target is in no layer below or before it.
    DanglingHardlink(String),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub xattrs: BTreeMap<String, String>,
    /// Shared by the paths of one hardlink group.
    inode: usize,
}

/// A saved image: the config JSON and the flattened root filesystem.
pub struct SavedImage {
    pub config: serde_json::Value,
    pub rootfs: BTreeMap<String, Node>,
}

/// One difference: what differs (a path or `config.Field`), BuildKit's value and rbuild's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub what: String,
    pub expected: String,
    pub got: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} | expected {} | got {}",
            self.what, self.expected, self.got
        )
    }
}

impl SavedImage {
    /// Reads the first image of an archive file.
    pub fn read(archive: &Path) -> Result<SavedImage, String> {
        let file =
            std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        SavedImage::from_archive(file).map_err(|e| format!("{}: {e}", archive.display()))
    }

    pub fn from_archive(reader: impl Read) -> Result<SavedImage, String> {
        let mut members: HashMap<String, Vec<u8>> = HashMap::new();
        let mut outer = tar::Archive::new(reader);
        for entry in outer.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = normalize(&entry.path().map_err(|e| e.to_string())?.to_string_lossy());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
            members.insert(name, data);
        }
        let member = |name: &str| {
            members
                .get(&normalize(name))
                .ok_or_else(|| format!("{name} is not in the archive"))
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(member("manifest.json")?).map_err(|e| e.to_string())?;
        let image = manifest.get(0).ok_or("manifest.json lists no image")?;
        let config_name = image["Config"].as_str().ok_or("manifest.json: no Config")?;
        let config: serde_json::Value =
            serde_json::from_slice(member(config_name)?).map_err(|e| e.to_string())?;
        let layers = image["Layers"]
            .as_array()
            .ok_or("manifest.json: no Layers")?;
        let mut rootfs = RootFs::default();
        for layer in layers {
            let name = layer
                .as_str()
                .ok_or("manifest.json: a layer is not a string")?;
            rootfs
                .apply(&decompress(member(name)?)?)
                .map_err(|e| format!("layer {name}: {e}"))?;
        }
        Ok(SavedImage {
            config,
            rootfs: rootfs.nodes,
        })
    }

    /// One line per path: type, mode, owner, content or link target, hardlink group.
    pub fn listing(&self) -> BTreeMap<String, String> {
        let mut groups: HashMap<usize, Vec<&str>> = HashMap::new();
        for (path, node) in &self.rootfs {
            groups.entry(node.inode).or_default().push(path);
        }
        self.rootfs
            .iter()
            .map(|(path, node)| {
                let mut line = describe(node);
                let others: Vec<&str> = groups
                    .get(&node.inode)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|other| other != path)
                    .collect();
                if !others.is_empty() {
                    line.push_str(&format!(" hardlinked with {}", others.join(",")));
                }
                (path.clone(), line)
            })
            .collect()
    }

    /// A config field as compared. Absent, null, "" and {} all mean unset (Go's Docker writes
    /// unset strings as "" and maps as null or {}); an empty list does not: `ENTRYPOINT []`
    /// is written as one.
    pub fn config_field(&self, field: &str) -> serde_json::Value {
        use serde_json::Value;
        match self
            .config
            .get("config")
            .and_then(|config| config.get(field))
        {
            None => Value::Null,
            Some(Value::String(text)) if text.is_empty() => Value::Null,
            Some(Value::Object(map)) if map.is_empty() => Value::Null,
            Some(value) => value.clone(),
        }
    }
}

/// Every difference between BuildKit's image (`expected`) and rbuild's (`got`).
pub fn differences(expected: &SavedImage, got: &SavedImage) -> Vec<Difference> {
    let absent = || "(absent)".to_string();
    let mut found = Vec::new();
    let ours = got.listing();
    let theirs = expected.listing();
    let mut paths: Vec<&String> = theirs.keys().chain(ours.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let (want, have) = (theirs.get(path), ours.get(path));
        if want != have {
            found.push(Difference {
                what: format!("/{path}"),
                expected: want.cloned().unwrap_or_else(absent),
                got: have.cloned().unwrap_or_else(absent),
            });
        }
    }
    for field in CONFIG_FIELDS {
        let (want, have) = (expected.config_field(field), got.config_field(field));
        if want != have {
            found.push(Difference {
                what: format!("config.{field}"),
                expected: want.to_string(),
                got: have.to_string(),
            });
        }
    }
    found
}

fn describe(node: &Node) -> String {
    let what = match &node.kind {
        Kind::Dir => "dir".to_string(),
        Kind::File {
            text: Some(text), ..
        } => format!("file {text:?}"),
        Kind::File { sha256, size, .. } => format!("file sha256:{sha256} ({size} bytes)"),
        Kind::Symlink(target) => format!("symlink -> {target}"),
        Kind::Char(major, minor) => format!("char device {major}:{minor}"),
        Kind::Block(major, minor) => format!("block device {major}:{minor}"),
        Kind::Fifo => "fifo".to_string(),
        Kind::DanglingHardlink(target) => format!("hardlink to missing {target}"),
    };
    let mut line = format!(
        "{what} mode {:04o} owner {}:{}",
        node.mode, node.uid, node.gid
    );
    for (name, value) in &node.xattrs {
        line.push_str(&format!(" xattr {name}={value:?}"));
    }
    line
}

/// Layer archive paths as keys: no `./`, no leading or trailing `/`; the root is "".
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match data {
        [0x1f, 0x8b, ..] => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => zstd::stream::read::Decoder::new(data)
            .and_then(|mut decoder| decoder.read_to_end(&mut out))
            .map_err(|e| format!("zstd: {e}"))?,
        _ => return Ok(data.to_vec()),
    };
    Ok(out)
}

#[derive(Default)]
struct RootFs {
    nodes: BTreeMap<String, Node>,
    next_inode: usize,
}

/// One entry of a layer, read before any is applied: whiteouts act on the layers below only.
struct LayerEntry {
    path: String,
    header: tar::Header,
    /// PAX records: they override the header's owner ids and carry xattrs.
    pax: BTreeMap<String, String>,
    link: Option<String>,
    content: Vec<u8>,
}

impl RootFs {
    fn apply(&mut self, layer: &[u8]) -> Result<(), String> {
        let mut entries = Vec::new();
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = normalize(&entry.path().map_err(|e| e.to_string())?.to_string_lossy());
            let link = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|link| link.to_string_lossy().into_owned());
            let mut pax = BTreeMap::new();
            for extension in entry
                .pax_extensions()
                .map_err(|e| e.to_string())?
                .into_iter()
                .flatten()
            {
                let extension = extension.map_err(|e| e.to_string())?;
                let key = extension.key().map_err(|e| e.to_string())?;
                pax.insert(
                    key.to_string(),
                    String::from_utf8_lossy(extension.value_bytes()).into_owned(),
                );
            }
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(|e| e.to_string())?;
            entries.push(LayerEntry {
                path,
                header: entry.header().clone(),
                pax,
                link,
                content,
            });
        }
        let (whiteouts, additions): (Vec<LayerEntry>, Vec<LayerEntry>) = entries
            .into_iter()
            .partition(|entry| base_name(&entry.path).starts_with(".wh."));
        for whiteout in whiteouts {
            let (dir, name) = whiteout
                .path
                .rsplit_once('/')
                .unwrap_or(("", &whiteout.path));
            match name.strip_prefix(".wh.") {
                Some(".wh..opq") => self.remove_below(dir),
                Some(hidden) => self.remove(&join(dir, hidden)),
                None => {}
            }
        }
        for entry in additions {
            if entry.path.is_empty() {
                continue; // the root itself
            }
            self.add(entry)?;
        }
        Ok(())
    }

    fn add(&mut self, entry: LayerEntry) -> Result<(), String> {
        let header = &entry.header;
        let mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
        let id = |key: &str, from_header: std::io::Result<u64>| match entry.pax.get(key) {
            Some(value) => value
                .parse::<u64>()
                .map_err(|e| format!("{}: PAX {key} {value:?}: {e}", entry.path)),
            None => from_header.map_err(|e| e.to_string()),
        };
        let uid = id("uid", header.uid())?;
        let gid = id("gid", header.gid())?;
        let xattrs: BTreeMap<String, String> = entry
            .pax
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix("SCHILY.xattr.")?;
                Some((name.to_string(), value.clone()))
            })
            .collect();
        let device = || {
            Ok::<_, String>((
                header
                    .device_major()
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0),
                header
                    .device_minor()
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0),
            ))
        };
        self.next_inode += 1;
        let node = match header.entry_type() {
            tar::EntryType::Link => {
                let target = normalize(entry.link.as_deref().unwrap_or_default());
                match self.nodes.get(&target) {
                    Some(existing) => existing.clone(),
                    None => Node {
                        kind: Kind::DanglingHardlink(target),
                        mode,
                        uid,
                        gid,
                        xattrs,
                        inode: self.next_inode,
                    },
                }
            }
            kind => {
                let kind = match kind {
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => {
                        Kind::Symlink(entry.link.clone().unwrap_or_default())
                    }
                    tar::EntryType::Char => {
                        let (major, minor) = device()?;
                        Kind::Char(major, minor)
                    }
                    tar::EntryType::Block => {
                        let (major, minor) = device()?;
                        Kind::Block(major, minor)
                    }
                    tar::EntryType::Fifo => Kind::Fifo,
                    tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                        sha256: hex::encode(Sha256::digest(&entry.content)),
                        text: std::str::from_utf8(&entry.content)
                            .ok()
                            .filter(|text| text.len() <= 80)
                            .map(str::to_string),
                        size: entry.content.len() as u64,
                    },
                    other => {
                        return Err(format!("{}: unexpected entry type {other:?}", entry.path));
                    }
                };
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    xattrs,
                    inode: self.next_inode,
                }
            }
        };
        let replaces_dir = self
            .nodes
            .get(&entry.path)
            .is_some_and(|old| old.kind == Kind::Dir);
        if replaces_dir && node.kind != Kind::Dir {
            self.remove_below(&entry.path);
        }
        self.nodes.insert(entry.path, node);
        Ok(())
    }

    fn remove(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_below(path);
    }

    fn remove_below(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .retain(|path, _| path.is_empty() || !path.starts_with(&prefix));
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
