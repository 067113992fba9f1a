//! Where a pulled layer's bytes go: a resumable partial file in the store's tmp/ (keyed by
//! the blob digest, so a pull killed mid-blob continues next time with a Range request),
//! hashed as it is written and committed under its digest, as the registry sent it, once
//! complete and checked.

use super::{BlobSink, Error};
use crate::store::{BlobWriter, CommittedBlob, Store};
use oci_spec::image::{Descriptor, Digest};
use std::io::{self, Write};

/// A layer blob being downloaded into its partial file.
pub(super) struct LayerDownload {
    store: Store,
    blob: Digest,
    partial: Option<BlobWriter>,
    resumed_from: u64,
}

impl LayerDownload {
    /// Continues the partial download of `descriptor` an earlier run left, or starts one.
    /// A partial larger than the blob is discarded.
    pub(super) fn open(store: &Store, descriptor: &Descriptor) -> Result<Self, Error> {
        let partial = store.resume_blob_writer(descriptor.digest())?;
        let held = partial.offset();
        let mut download = LayerDownload {
            store: store.clone(),
            blob: descriptor.digest().clone(),
            partial: Some(partial),
            resumed_from: held,
        };
        if held > descriptor.size() {
            download.start_over()?;
        }
        Ok(download)
    }

    /// Bytes an earlier run left, that this download did not fetch again.
    pub(super) fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// Drops every byte held, to download the blob whole.
    pub(super) fn start_over(&mut self) -> Result<(), Error> {
        if let Some(partial) = self.partial.take() {
            partial.discard()?;
        }
        self.partial = Some(self.store.resume_blob_writer(&self.blob)?);
        self.resumed_from = 0;
        Ok(())
    }

    /// Removes the partial file: its bytes are not a prefix of the blob.
    pub(super) fn discard(mut self) -> Result<(), Error> {
        match self.partial.take() {
            Some(partial) => Ok(partial.discard()?),
            None => Ok(()),
        }
    }

    /// Makes the complete blob durable under its digest name.
    pub(super) fn finish(mut self) -> Result<CommittedBlob, Error> {
        let partial = self
            .partial
            .take()
            .ok_or_else(|| Error::io("finishing a download", io::Error::other("no file")))?;
        Ok(partial.commit()?)
    }
}

impl BlobSink for LayerDownload {
    fn written(&self) -> u64 {
        self.partial.as_ref().map_or(0, BlobWriter::offset)
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self.partial.as_mut() {
            Some(partial) => partial.write_all(chunk),
            None => Err(io::Error::other("download already finished")),
        }
    }

    fn restart(&mut self) -> io::Result<()> {
        self.start_over().map_err(io::Error::other)
    }

    fn digest(&self) -> Digest {
        self.partial.as_ref().map_or_else(
            || crate::image::sha256_digest(b""),
            BlobWriter::digest_so_far,
        )
    }
}
