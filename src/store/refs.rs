//! index.json: every image the store keeps, by name (`org.opencontainers.image.ref.name`,
//! Docker's familiar form such as `busybox:t`) or untagged (a dangling image, kept until pruned).

use super::{IoContext, Result, Store, StoreError};
use crate::image::{Reference, canonical_json};
use oci_spec::image::{Descriptor, Digest, ImageIndex};
use std::collections::HashMap;
use std::fs;

/// The annotation naming an image in an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image of the store with all the names pointing at it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageEntry {
    /// The manifest in the store (without the name annotation).
    pub manifest: Descriptor,
    /// The names, as written in index.json (`busybox:t`, `localhost:5000/a:b`).
    pub names: Vec<String>,
}

impl Store {
    /// index.json as it is now.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root().join("index.json");
        let bytes = fs::read(&path).at(&path)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// Every image: named ones with their names, and dangling ones with none.
    /// In index.json order (the oldest entry first).
    pub fn images(&self) -> Result<Vec<ImageEntry>> {
        let index = self.index()?;
        let mut out: Vec<ImageEntry> = Vec::new();
        let mut position: HashMap<Digest, usize> = HashMap::new();
        for entry in index.manifests() {
            let name = ref_name(entry).map(str::to_string);
            let at = *position.entry(entry.digest().clone()).or_insert_with(|| {
                out.push(ImageEntry {
                    manifest: without_annotations(entry),
                    names: Vec::new(),
                });
                out.len() - 1
            });
            if let (Some(name), Some(image)) = (name, out.get_mut(at)) {
                image.names.push(name);
            }
        }
        Ok(out)
    }

    /// The manifest descriptor a reference names, if any. A digest reference also matches
    /// a recorded RepoDigest, or a stored manifest with that digest.
    pub fn lookup_ref(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let index = self.index()?;
        let named = index.manifests().iter().find(|d| {
            ref_name(d)
                .and_then(|n| Reference::parse(n).ok())
                .is_some_and(|r| r == *reference)
        });
        if let Some(found) = named {
            return Ok(Some(without_annotations(found)));
        }
        if let Some(found) = self.lookup_repo_digest(reference)? {
            return Ok(Some(found));
        }
        if let (None, Some(digest)) = (reference.tag(), reference.digest()) {
            let by_digest = index.manifests().iter().find(|d| d.digest() == digest);
            return Ok(by_digest.map(without_annotations));
        }
        Ok(None)
    }

    /// Points `reference` at `manifest`. An image left without any name stays in the store
    /// as a dangling image, as Docker keeps it.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        self.tag_all(std::slice::from_ref(reference), manifest)
    }

    /// Points every reference at `manifest` in one update of index.json (one fsync, not one
    /// per name).
    pub fn tag_all(&self, references: &[Reference], manifest: &Descriptor) -> Result<()> {
        self.update_index(|entries| {
            for reference in references {
                let name = reference.familiar();
                let previous = remove_name(entries, reference);
                entries.retain(|d| !(d.digest() == manifest.digest() && ref_name(d).is_none()));
                let mut named = without_annotations(manifest);
                named.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), name)])));
                entries.push(named);
                if let Some(previous) = previous {
                    keep_if_orphaned(entries, previous);
                }
            }
        })
    }

    /// Removes a name. Returns the manifest it pointed at; that image stays (dangling)
    /// when it has no other name, so the caller decides whether to delete it.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let mut removed = None;
        self.update_index(|entries| {
            removed = remove_name(entries, reference);
            if let Some(previous) = &removed {
                keep_if_orphaned(entries, previous.clone());
            }
        })?;
        Ok(removed)
    }

    /// Adds `manifest` as an image without a name, unless the store already has it.
    pub fn add_image(&self, manifest: &Descriptor) -> Result<()> {
        self.update_index(|entries| {
            if !entries.iter().any(|d| d.digest() == manifest.digest()) {
                entries.push(without_annotations(manifest));
            }
        })
    }

    /// Drops the image with this manifest digest and every name pointing at it. Its
    /// blobs stay until garbage collection.
    pub fn forget_image(&self, manifest: &Digest) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.update_index(|entries| {
            entries.retain(|d| {
                if d.digest() != manifest {
                    return true;
                }
                if let Some(name) = ref_name(d) {
                    names.push(name.to_string());
                }
                false
            });
        })?;
        Ok(names)
    }

    /// Read-modify-write of index.json under the index lock, written atomically.
    pub(super) fn update_index(&self, change: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let _lock = self.lock_index()?;
        let mut index = self.index()?;
        let mut entries = index.manifests().clone();
        change(&mut entries);
        index.set_manifests(entries);
        let bytes = canonical_json(&index)?;
        self.write_atomic(&self.root().join("index.json"), &bytes)
    }
}

pub(crate) fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

fn without_annotations(descriptor: &Descriptor) -> Descriptor {
    let mut plain = descriptor.clone();
    let rest: HashMap<String, String> = plain
        .annotations()
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != REF_NAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    plain.set_annotations(if rest.is_empty() { None } else { Some(rest) });
    plain
}

/// Removes every entry carrying `reference`'s name; returns the manifest it named.
fn remove_name(entries: &mut Vec<Descriptor>, reference: &Reference) -> Option<Descriptor> {
    let mut removed = None;
    entries.retain(|d| {
        let matches = ref_name(d)
            .and_then(|n| Reference::parse(n).ok())
            .is_some_and(|r| r == *reference);
        if matches {
            removed = Some(without_annotations(d));
        }
        !matches
    });
    removed
}

/// After a name moved away: the image it named stays as a dangling entry when nothing
/// else names it.
fn keep_if_orphaned(entries: &mut Vec<Descriptor>, previous: Descriptor) {
    if !entries.iter().any(|d| d.digest() == previous.digest()) {
        entries.push(previous);
    }
}
