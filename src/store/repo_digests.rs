//! RepoDigests, as Docker keeps them: `repo@sha256:<manifest digest on the registry>` for an
//! image pulled from or pushed to a registry. The registry's manifest is not the store's
//! (the store keeps layers uncompressed), so repo-digests.json maps each such name to the
//! store manifest it stands for. Entries of images removed since are ignored when read, and
//! name nothing for garbage collection.

use super::{IoContext, Result, Store, StoreError};
use crate::image::{Reference, canonical_json};
use oci_spec::image::{Descriptor, Digest};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

/// `familiar repository@digest` → the store's manifest.
type RepoDigests = BTreeMap<String, Descriptor>;

/// The RepoDigests entry for `repository`'s manifest `digest`: `busybox@sha256:…`.
fn repo_digest_name(repository: &Reference, digest: &Digest) -> String {
    format!("{}@{digest}", repository.familiar_name())
}

impl Store {
    fn repo_digests_path(&self) -> PathBuf {
        self.root().join("repo-digests.json")
    }

    fn read_repo_digests(&self) -> Result<RepoDigests> {
        let path = self.repo_digests_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RepoDigests::new()),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Records that `repository` (its tag, if any, is ignored) holds the stored image
    /// `manifest` under the registry manifest digest `registry_digest`.
    pub fn add_repo_digest(
        &self,
        repository: &Reference,
        registry_digest: &Digest,
        manifest: &Descriptor,
    ) -> Result<()> {
        let _lock = self.lock_index()?;
        let mut entries = self.read_repo_digests()?;
        entries.insert(
            repo_digest_name(repository, registry_digest),
            manifest.clone(),
        );
        let bytes = canonical_json(&entries)?;
        self.write_atomic(&self.repo_digests_path(), &bytes)
    }

    /// The RepoDigests of the stored image with manifest `manifest`, sorted.
    pub fn repo_digests(&self, manifest: &Digest) -> Result<Vec<String>> {
        Ok(self
            .read_repo_digests()?
            .into_iter()
            .filter(|(_, stored)| stored.digest() == manifest)
            .map(|(name, _)| name)
            .collect())
    }

    /// The stored manifest a `repo@sha256:…` reference names through a recorded RepoDigest,
    /// if that image is still in the store.
    pub(super) fn lookup_repo_digest(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let Some(digest) = reference.digest() else {
            return Ok(None);
        };
        let Some(stored) = self
            .read_repo_digests()?
            .remove(&repo_digest_name(reference, digest))
        else {
            return Ok(None);
        };
        let present = self
            .index()?
            .manifests()
            .iter()
            .any(|d| d.digest() == stored.digest());
        Ok(present.then_some(stored))
    }
}
