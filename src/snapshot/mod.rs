//! Overlay snapshots and layer diffs: a directory (optionally an overlay upper dir) becomes a
//! deterministic layer tar, and layer tars (plain, gzip or zstd) are extracted safely onto a
//! directory with their whiteouts applied or kept as overlay whiteouts.
//!
//! Writing: [`write_layer`]. Reading: [`extract_layer`]. Compression: [`Compression`].

pub(crate) mod aligned;
mod base;
pub(crate) mod behind;
mod compression;
mod extract;
mod fsat;
mod hash;
mod write;

pub use base::BaseLayer;
pub use compression::{Compression, decoder, decompress, sniff};
pub use extract::{
    ExtractOptions, ExtractSummary, MAX_WARNINGS, OverlayXattrs, WhiteoutHandling, extract_layer,
};
pub(crate) use fsat::list_xattrs;
pub use fsat::remove_tree;
pub use write::{LayerDigest, WriteOptions, write_layer, write_layer_over};

use std::io;
use std::path::PathBuf;

/// Prefix of a whiteout entry: `.wh.NAME` deletes NAME from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the entry that marks its directory opaque: the layers below contribute nothing to it.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Whether an xattr is in a namespace overlayfs uses for its own bookkeeping (opaque markers,
/// uuids, origins): never part of a layer as such.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Everything that can go wrong writing or extracting a layer.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file of the source tree or the target directory could not be read or changed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The layer stream could not be read (truncated, corrupt compression, bad tar header).
    #[error("reading layer: {0}")]
    Read(io::Error),
    /// The layer could not be written to its destination.
    #[error("writing layer: {0}")]
    Write(io::Error),
    /// An entry would write outside the target directory, or is otherwise refused.
    #[error("layer entry {entry:?} refused: {reason}")]
    Refused { entry: String, reason: String },
    /// Applying one entry failed.
    #[error("layer entry {entry:?}: {source}")]
    Entry { entry: String, source: io::Error },
    /// A file in the source tree cannot be represented in a layer tar.
    #[error("{}: {reason}", path.display())]
    Unrepresentable { path: PathBuf, reason: String },
}
