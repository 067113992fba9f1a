//! Consistency check: every blob re-hashed against its name, every image in index.json
//! complete, and every compressed layer (as pulled) inflated and hashed against its DiffID
//! unless an unpack proved it already. With repair, what cannot be trusted is dropped:
//! corrupt blobs, and index entries of images that lost a blob or hold a lying layer.

use super::blob::HashingReader;
use super::images::{FormKind, Image, Layer, read_error};
use super::{IoContext, Result, Store, digest_named};
use crate::image::digest_from_hash;
use oci_spec::image::{Digest, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};

/// What a check found and, with repair, what it removed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub images_checked: usize,
    pub problems: Vec<String>,
    pub repaired: Vec<String>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Checks the store; with `repair`, removes corrupt blobs and images that cannot be used.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let mut corrupt: HashSet<Digest> = HashSet::new();
        let dir = self.root().join("blobs/sha256");
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let Some(expected) = digest_named(&path) else {
                report
                    .problems
                    .push(format!("{}: not a sha256 blob name", path.display()));
                continue;
            };
            report.blobs_checked += 1;
            let actual = hash_file(&path).at(&path)?;
            if actual != expected {
                report.problems.push(format!(
                    "blob {expected} is corrupt: its content hashes to {actual}"
                ));
                corrupt.insert(expected.clone());
                if repair {
                    self.remove_blob(&expected)?;
                    report
                        .repaired
                        .push(format!("removed corrupt blob {expected}"));
                }
            }
        }
        for entry in self.images()? {
            report.images_checked += 1;
            let label = match entry.names.first() {
                Some(name) => format!("image {name} (manifest {})", entry.manifest.digest()),
                None => format!("image {}", entry.manifest.digest()),
            };
            let problems = self.image_problems(&entry.manifest, &corrupt);
            if problems.is_empty() {
                continue;
            }
            for problem in &problems {
                report.problems.push(format!("{label}: {problem}"));
            }
            if repair {
                self.forget_image(entry.manifest.digest())?;
                report.repaired.push(format!("removed {label}"));
            }
        }
        for kind in FormKind::ALL {
            let mappings = self.root().join(kind.dir());
            for entry in fs::read_dir(&mappings).at(&mappings)? {
                let path = entry.at(&mappings)?.path();
                let parsed = digest_named(&path).map(|d| self.layer_forms(kind, &d));
                if !matches!(parsed, Some(Ok(_))) {
                    report.problems.push(format!(
                        "{}: unreadable compressed-layer record",
                        path.display()
                    ));
                    if repair {
                        fs::remove_file(&path).at(&path)?;
                        report.repaired.push(format!("removed {}", path.display()));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Why an image cannot be used (missing or corrupt manifest, config or layer).
    fn image_problems(
        &self,
        manifest: &oci_spec::image::Descriptor,
        corrupt: &HashSet<Digest>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let usable = |digest: &Digest, what: &str, problems: &mut Vec<String>| {
            if corrupt.contains(digest) {
                problems.push(format!("{what} {digest} is corrupt"));
                false
            } else if !self.has_blob(digest) {
                problems.push(format!("{what} {digest} is missing"));
                false
            } else {
                true
            }
        };
        if !usable(manifest.digest(), "manifest", &mut problems) {
            return problems;
        }
        if *manifest.media_type() == MediaType::ImageIndex {
            return problems;
        }
        let image: Image = match self.load_image(manifest) {
            Ok(image) => image,
            Err(e) => {
                // Tell a missing config from an unreadable document.
                if let Ok(bytes) = self.read_blob(manifest.digest())
                    && let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&bytes)
                {
                    usable(parsed.config().digest(), "config", &mut problems);
                }
                if problems.is_empty() {
                    problems.push(e.to_string());
                }
                return problems;
            }
        };
        usable(image.id(), "config", &mut problems);
        let layers = match image.layers() {
            Ok(layers) => layers,
            Err(e) => {
                problems.push(e.to_string());
                return problems;
            }
        };
        for layer in layers {
            if usable(layer.blob.digest(), "layer", &mut problems)
                && let Some(problem) = self.diff_id_problem(&layer)
            {
                problems.push(problem);
            }
        }
        problems
    }

    /// Whether a compressed layer blob holds the tar its DiffID names; inflated and hashed
    /// unless an unpack or an earlier check proved it. Plain blobs are their DiffID's name.
    fn diff_id_problem(&self, layer: &Layer) -> Option<String> {
        let proven = layer.blob.digest() == &layer.diff_id
            || self
                .compressed_forms(&layer.diff_id)
                .is_ok_and(|forms| forms.iter().any(|f| f.digest() == layer.blob.digest()));
        if proven {
            return None;
        }
        let hashed = self
            .layer_tar(&layer.blob)
            .and_then(|tar| HashingReader::new(tar).finish().map_err(read_error));
        match hashed {
            Ok((actual, _)) if actual == layer.diff_id => {
                // Remembered, so the next check and push trust it without inflating.
                self.record_compressed(&layer.diff_id, &layer.blob)
                    .err()
                    .map(|e| e.to_string())
            }
            Ok((actual, _)) => Some(format!(
                "layer {} holds a tar that hashes to {actual}, not the config's DiffID {}",
                layer.blob.digest(),
                layer.diff_id
            )),
            Err(e) => Some(format!("layer {}: {e}", layer.blob.digest())),
        }
    }
}

fn hash_file(path: &std::path::Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(digest_from_hash(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}
