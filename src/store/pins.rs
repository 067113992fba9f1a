//! Pins: named sets of manifests something outside index.json needs (a container, build
//! cache records). Garbage collection keeps what they reach; prune and rmi leave pinned
//! images alone (rmi unless forced).
//!
//! A running container's pin lasts exactly as long as its process: the process holds
//! `containers/<id>` flock(2)ed from the moment the file appears (it is locked under a
//! temporary name, then renamed) until after the pin is gone. An unlocked file under
//! containers/ is therefore what a killed run left; whoever lists the pins next removes it
//! and its pin.

use super::lock::FileLock;
use super::{IoContext, Result, Store, StoreError, canonical_name};
use oci_spec::image::Digest;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::str::FromStr;

/// A running container's hold on its image: while this value lives, rmi refuses the image
/// (unless forced) and prune and garbage collection keep it. Dropping it unpins; a process
/// killed before that leaves a pin the next [`Store::pins`] recognises as dead and removes.
#[derive(Debug)]
pub struct ContainerPin {
    store: Store,
    id: String,
    path: PathBuf,
    /// Released last, after the pin and this file are gone.
    _lock: FileLock,
}

impl ContainerPin {
    /// The container ID: 64 hex digits, as Docker's.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for ContainerPin {
    fn drop(&mut self) {
        // Pin first, lock file second: a pin never outlives the file that proves it alive.
        let _ = self.store.unpin(&self.id);
        let _ = fs::remove_file(&self.path);
    }
}

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

    /// Pins `manifest` for a new container of this process under a fresh container ID, for
    /// as long as the returned value lives.
    pub fn pin_container(&self, manifest: &Digest) -> Result<ContainerPin> {
        let dir = self.containers_dir();
        let id = new_container_id().at(&dir)?;
        let (lock, _, locked) = FileLock::create_locked(&dir, ".new-")?;
        let path = dir.join(&id);
        if let Err(source) = fs::rename(&locked, &path) {
            let _ = fs::remove_file(&locked);
            return Err(StoreError::Io { path, source });
        }
        let pin = ContainerPin {
            store: self.clone(),
            id,
            path,
            _lock: lock,
        };
        self.pin(&pin.id, std::slice::from_ref(manifest))?;
        Ok(pin)
    }

    /// Drops a pin; a missing one is not an error.
    pub fn unpin(&self, name: &str) -> Result<()> {
        let _lock = self.lock_index()?;
        self.remove_pin_file(name)
    }

    fn remove_pin_file(&self, name: &str) -> Result<()> {
        let path = self.root().join("pins").join(canonical_name(name)?);
        remove_if_present(path)
    }

    /// Every pin of a live holder: name → pinned manifests. The pins of containers whose
    /// process was killed are removed first.
    pub fn pins(&self) -> Result<BTreeMap<String, Vec<Digest>>> {
        self.remove_dead_container_pins()?;
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

    /// Removes every file under containers/ nobody holds locked (its run was killed), and the
    /// pin named after it.
    fn remove_dead_container_pins(&self) -> Result<()> {
        let dir = self.containers_dir();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let held = match FileLock::try_exclusive(&path) {
                Ok(held) => held,
                // Its container ended (and removed it) meanwhile.
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(_dead) = held else { continue };
            // No index lock: only the dead process wrote this pin. (Callers may hold it.)
            let id = path.file_name().and_then(|n| n.to_str());
            if let Some(id) = id.filter(|id| canonical_name(id).is_ok()) {
                self.remove_pin_file(id)?;
            }
            remove_if_present(path)?;
        }
        Ok(())
    }

    fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }
}

fn remove_if_present(path: PathBuf) -> Result<()> {
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: e }),
        _ => Ok(()),
    }
}

/// 32 random bytes in hex, as Docker makes container IDs.
fn new_container_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}
