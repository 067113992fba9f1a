//! Images in and out of files: a root filesystem tarball (`import`), Docker archives (legacy
//! `manifest.json` + `repositories`, and the OCI-layout form Docker 25+ writes) and OCI
//! archives (`load`, `save`).

use super::images::Layer;
use super::refs::REF_NAME;
use super::{Image, Result, Store, StoreError};
use crate::image::{ContainerConfig, History, ImageConfig, Reference, canonical_json, time};
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// containerd's (and Docker 25's) annotation for the full image name in an OCI layout.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// How `import` describes the new image.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The history comment (`-m`); Docker's default is "Imported from -".
    pub message: Option<String>,
    /// `os/arch[/variant]`; the host's when unset.
    pub platform: Option<String>,
    /// Runtime defaults (from `--change` instructions).
    pub config: ContainerConfig,
}

impl Store {
    /// Makes a one-layer image from a root filesystem tarball (plain, gzip or zstd), unpacked
    /// as its snapshot on the way in.
    pub fn import_rootfs(&self, tarball: impl Read, options: &ImportOptions) -> Result<Image> {
        let layer = self.import_base_layer(tarball)?;
        let (mut os, mut architecture, mut variant) = crate::image::host_platform();
        if let Some(platform) = &options.platform {
            let mut parts = platform.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(o), Some(a), v, None) if !o.is_empty() && !a.is_empty() => {
                    os = o.to_string();
                    architecture = a.to_string();
                    variant = v.map(str::to_string);
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "--platform {platform:?}: expected os/arch[/variant]"
                    )));
                }
            }
        }
        let created = time::now_rfc3339();
        let comment = options
            .message
            .clone()
            .unwrap_or_else(|| "Imported from -".to_string());
        let mut config = ImageConfig {
            created: Some(created.clone()),
            architecture,
            os,
            variant,
            config: Some(options.config.clone()),
            history: vec![History {
                created: Some(created),
                comment: Some(comment.clone()),
                ..Default::default()
            }],
            ..Default::default()
        };
        config
            .extra
            .insert("comment".to_string(), serde_json::Value::String(comment));
        config.rootfs.diff_ids = vec![layer.diff_id.clone()];
        self.put_image(&config.to_canonical_json()?, &[layer])
    }
}

/// One image of a Docker archive's manifest.json.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What `load` stored.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Names given to loaded images (familiar form, as `docker load` prints them).
    pub tagged: Vec<String>,
    /// IDs of loaded images that have no name.
    pub untagged: Vec<Digest>,
}

/// A regular file read from the archive, stored as a blob (uncompressed when it was compressed).
#[derive(Clone, Debug)]
struct ArchiveFile {
    layer: Layer,
}

impl Store {
    /// Loads a Docker archive (either form) or an OCI archive. Every file of the archive is
    /// streamed into the store as a blob, so memory stays bounded whatever the layer sizes;
    /// the JSON documents are then read back from the store, and whatever is not part of an
    /// image is left for garbage collection.
    pub fn load_archive(&self, archive: impl Read) -> Result<LoadReport> {
        let mut files: HashMap<PathBuf, ArchiveFile> = HashMap::new();
        let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
        let mut tar = tar::Archive::new(archive);
        let bad = |e: std::io::Error| StoreError::Invalid(format!("reading archive: {e}"));
        for entry in tar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let path = normalise(&entry.path().map_err(bad)?)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let layer = self.import_layer(entry)?;
                    files.insert(path, ArchiveFile { layer });
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry.link_name().map_err(bad)?.unwrap_or_default();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Link {
                        normalise(&target)?
                    } else {
                        normalise(&path.parent().unwrap_or(Path::new("")).join(target))?
                    };
                    links.insert(path, resolved);
                }
                _ => {}
            }
        }
        let archive = ArchiveFiles {
            store: self.clone(),
            files,
            links,
        };
        if archive.get(Path::new("manifest.json")).is_ok() {
            self.load_docker_archive(&archive)
        } else if archive.get(Path::new("index.json")).is_ok() {
            self.load_oci_archive(&archive)
        } else {
            Err(StoreError::Invalid(
                "not an image archive: neither manifest.json (Docker) nor index.json (OCI) found"
                    .to_string(),
            ))
        }
    }

    fn load_docker_archive(&self, archive: &ArchiveFiles) -> Result<LoadReport> {
        let entries: Vec<DockerArchiveEntry> = archive.json(Path::new("manifest.json"))?;
        let mut report = LoadReport::default();
        for entry in entries {
            let config_file = archive.get(&normalise(Path::new(&entry.config))?)?;
            let layers = entry
                .layers
                .iter()
                .map(|p| Ok(archive.get(&normalise(Path::new(p))?)?.layer.clone()))
                .collect::<Result<Vec<Layer>>>()?;
            let config = self.read_blob(&config_file.layer.diff_id)?;
            let image = self.put_image(&config, &layers)?;
            let tags = entry.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                report.untagged.push(image.id().clone());
            }
            for tag in tags {
                let reference = Reference::parse(&tag)?;
                self.tag(&reference, &image.manifest_descriptor)?;
                report.tagged.push(reference.familiar());
            }
        }
        Ok(report)
    }

    fn load_oci_archive(&self, archive: &ArchiveFiles) -> Result<LoadReport> {
        let index: ImageIndex = archive.json(Path::new("index.json"))?;
        let mut report = LoadReport::default();
        for descriptor in index.manifests() {
            let manifest_descriptor = self.platform_manifest(archive, descriptor)?;
            let manifest: ImageManifest =
                archive.json(&blob_path(manifest_descriptor.digest())?)?;
            let config_file = archive.get(&blob_path(manifest.config().digest())?)?;
            let layers = manifest
                .layers()
                .iter()
                .map(|l| Ok(archive.get(&blob_path(l.digest())?)?.layer.clone()))
                .collect::<Result<Vec<Layer>>>()?;
            let config = self.read_blob(&config_file.layer.diff_id)?;
            let image = self.put_image(&config, &layers)?;
            match archive_name(descriptor) {
                Some(reference) => {
                    self.tag(&reference, &image.manifest_descriptor)?;
                    report.tagged.push(reference.familiar());
                }
                None => report.untagged.push(image.id().clone()),
            }
        }
        Ok(report)
    }

    /// An index entry may be a multi-platform index: pick the manifest for this host.
    fn platform_manifest(
        &self,
        archive: &ArchiveFiles,
        descriptor: &Descriptor,
    ) -> Result<Descriptor> {
        if *descriptor.media_type() != MediaType::ImageIndex
            && descriptor.media_type().as_ref() != crate::image::DOCKER_MANIFEST_LIST
        {
            return Ok(descriptor.clone());
        }
        let nested: ImageIndex = archive.json(&blob_path(descriptor.digest())?)?;
        let (os, arch, _) = crate::image::host_platform();
        nested
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == os && p.architecture().to_string() == arch
                })
            })
            .cloned()
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "index {} has no manifest for {os}/{arch}",
                    descriptor.digest()
                ))
            })
    }
}

/// The name an OCI archive gives an image: containerd's full name, else a ref.name that
/// is a whole reference (a bare tag like `latest` names no repository).
fn archive_name(descriptor: &Descriptor) -> Option<Reference> {
    let annotations = descriptor.annotations().as_ref()?;
    if let Some(name) = annotations.get(CONTAINERD_IMAGE_NAME) {
        return Reference::parse(name).ok();
    }
    let name = annotations.get(REF_NAME)?;
    if name.contains(['/', ':']) {
        Reference::parse(name).ok()
    } else {
        None
    }
}

fn blob_path(digest: &Digest) -> Result<PathBuf> {
    Ok(PathBuf::from("blobs")
        .join(digest.algorithm().to_string())
        .join(super::sha256_hex(digest)?))
}

/// A relative path without `.` or `..` (an archive may not point outside itself).
fn normalise(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(StoreError::Invalid(format!(
                        "archive path {} points outside the archive",
                        path.display()
                    )));
                }
            }
            Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

struct ArchiveFiles {
    store: Store,
    files: HashMap<PathBuf, ArchiveFile>,
    links: HashMap<PathBuf, PathBuf>,
}

impl ArchiveFiles {
    /// A file by path, following the archive's links (Docker links duplicate layers).
    fn get(&self, path: &Path) -> Result<&ArchiveFile> {
        let mut path = path.to_path_buf();
        for _ in 0..32 {
            if let Some(file) = self.files.get(&path) {
                return Ok(file);
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(StoreError::Invalid(format!(
            "archive has no file {}",
            path.display()
        )))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T> {
        let file = self.get(path)?;
        let bytes = self.store.read_blob(&file.layer.diff_id)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: format!("{} in the archive", path.display()),
            source,
        })
    }
}

/// The layout `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// What Docker 25+ writes: an OCI layout plus manifest.json, loadable by every
    /// `docker load` (and skopeo's docker-archive:).
    Docker,
    /// A plain OCI layout (skopeo's oci-archive:).
    Oci,
}

/// An image to save and the names to give it in the archive.
#[derive(Clone, Debug)]
pub struct SaveItem {
    pub image: Image,
    pub names: Vec<Reference>,
}

impl Store {
    /// Writes images as a tar archive, streaming blobs from the store with the manifests
    /// that list them (layers as stored: plain tars as built or imported, gzip or zstd as
    /// pulled, which `docker load`, skopeo and rbuild all read). Entries are in a fixed order
    /// with fixed metadata, so the same images always give the same bytes.
    pub fn save_archive(
        &self,
        items: &[SaveItem],
        format: ArchiveFormat,
        out: impl Write,
    ) -> Result<()> {
        let bad = |e: std::io::Error| StoreError::Invalid(format!("writing archive: {e}"));
        let mut tar = tar::Builder::new(out);
        let mut written: std::collections::HashSet<Digest> = std::collections::HashSet::new();
        let mut index_entries = Vec::new();
        let mut docker_entries = Vec::new();
        append_dir(&mut tar, "blobs/").map_err(bad)?;
        append_dir(&mut tar, "blobs/sha256/").map_err(bad)?;
        for item in items {
            let manifest = &item.image.manifest;
            let mut blobs = vec![item.image.manifest_descriptor.digest().clone()];
            blobs.push(manifest.config().digest().clone());
            blobs.extend(manifest.layers().iter().map(|l| l.digest().clone()));
            for digest in blobs {
                if !written.insert(digest.clone()) {
                    continue;
                }
                let size = self.blob_size(&digest)?;
                let file = self.open_blob(&digest)?;
                let path = blob_path(&digest)?;
                append_file(&mut tar, &path, size, file).map_err(bad)?;
            }
            let descriptor = &item.image.manifest_descriptor;
            if item.names.is_empty() {
                index_entries.push(descriptor.clone());
            }
            for name in &item.names {
                let mut named = descriptor.clone();
                let mut annotations =
                    HashMap::from([(CONTAINERD_IMAGE_NAME.to_string(), name.to_string())]);
                if let Some(tag) = name.tag() {
                    annotations.insert(REF_NAME.to_string(), tag.to_string());
                }
                named.set_annotations(Some(annotations));
                index_entries.push(named);
            }
            docker_entries.push(DockerArchiveEntry {
                config: path_string(&blob_path(manifest.config().digest())?),
                repo_tags: Some(item.names.iter().map(Reference::familiar).collect()),
                layers: manifest
                    .layers()
                    .iter()
                    .map(|l| Ok(path_string(&blob_path(l.digest())?)))
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        let mut index = ImageIndex::default();
        index.set_media_type(Some(MediaType::ImageIndex));
        index.set_manifests(index_entries);
        let index_bytes = canonical_json(&index)?;
        append_file(
            &mut tar,
            Path::new("index.json"),
            index_bytes.len() as u64,
            &index_bytes[..],
        )
        .map_err(bad)?;
        if format == ArchiveFormat::Docker {
            let bytes = serde_json::to_vec(&docker_entries).map_err(|source| StoreError::Json {
                what: "manifest.json".to_string(),
                source,
            })?;
            append_file(
                &mut tar,
                Path::new("manifest.json"),
                bytes.len() as u64,
                &bytes[..],
            )
            .map_err(bad)?;
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        append_file(
            &mut tar,
            Path::new("oci-layout"),
            layout.len() as u64,
            &layout[..],
        )
        .map_err(bad)?;
        tar.into_inner()
            .and_then(|mut out| out.flush())
            .map_err(bad)
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut header, path, std::io::empty())
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut header, path, data)
}
