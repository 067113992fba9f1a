//! Pins: named sets of manifests something outside index.json needs (a container, build
//! cache records). Garbage collection keeps what they reach; prune and rmi leave pinned
//! images alone (rmi unless forced).

use super::{IoContext, Result, Store, StoreError, canonical_name};
use oci_spec::image::Digest;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::str::FromStr;

impl Store {
    /// Pins manifests under `name` (a container ID, `cache`, …), replacing what that name
    /// pinned before.
    pub fn pin(&self, name: &str, manifests: &[Digest]) -> Result<()> {
        let path = self.root().join("pins").join(canonical_name(name)?);
        let mut text = String::new();
        for digest in manifests {
            text.push_str(digest.as_ref());
            text.push('\n');
        }
        let _lock = self.lock_index()?;
        self.write_atomic(&path, text.as_bytes())
    }

    /// Drops a pin; a missing one is not an error.
    pub fn unpin(&self, name: &str) -> Result<()> {
        let path = self.root().join("pins").join(canonical_name(name)?);
        let _lock = self.lock_index()?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Every pin: name → pinned manifests.
    pub fn pins(&self) -> Result<BTreeMap<String, Vec<Digest>>> {
        let dir = self.root().join("pins");
        let mut pins = BTreeMap::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            let digests = text
                .lines()
                .filter_map(|l| Digest::from_str(l.trim()).ok())
                .collect();
            pins.insert(name, digests);
        }
        Ok(pins)
    }
}
