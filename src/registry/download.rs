//! Where a pulled layer's bytes go. The compressed bytes are hashed and appended to a
//! resumable partial file in the store's tmp/ (keyed by the blob digest, so a pull killed
//! mid-blob continues next time with a Range request); a thread of its own decompresses them
//! into the store's blob writer, which checks the DiffID. One read of the network stream,
//! and the two halves run on two cores.

use super::compress::{Compression, Decoder};
use super::{BlobSink, Error};
use crate::store::{BlobWriter, CommittedBlob, Store};
use oci_spec::image::{Descriptor, Digest};
use std::io::{self, Read, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Chunks in flight between the download and the decompressing thread.
const QUEUED_CHUNKS: usize = 64;
const REPLAY_BUFFER: usize = 1 << 20;

/// A layer being downloaded: its partial compressed file and the tar being decompressed.
pub(super) struct LayerDownload {
    store: Store,
    blob: Digest,
    size: u64,
    diff_id: Digest,
    compression: Option<Compression>,
    partial: Option<BlobWriter>,
    decoder: Option<DecoderThread>,
    /// Why decompression stopped early. The download goes on, so a digest mismatch (the
    /// likelier cause) is what gets reported.
    decoder_failure: Option<io::Error>,
    resumed_from: u64,
}

impl LayerDownload {
    /// Continues the partial download of `descriptor` an earlier run left, replaying its bytes
    /// into the decompressor, or starts one. A partial larger than the blob, or one the
    /// decompressor rejects, is discarded.
    pub(super) fn open(
        store: &Store,
        descriptor: &Descriptor,
        diff_id: &Digest,
        compression: Option<Compression>,
    ) -> Result<Self, Error> {
        let mut download = LayerDownload {
            store: store.clone(),
            blob: descriptor.digest().clone(),
            size: descriptor.size(),
            diff_id: diff_id.clone(),
            compression,
            partial: Some(store.resume_blob_writer(descriptor.digest())?),
            decoder: None,
            decoder_failure: None,
            resumed_from: 0,
        };
        download.decoder = Some(download.new_decoder()?);
        let held = download.written();
        if held > 0 {
            if held <= download.size && download.replay().is_ok() {
                download.resumed_from = held;
            } else {
                download.start_over()?;
            }
        }
        Ok(download)
    }

    /// Bytes an earlier run left, that this download did not fetch again.
    pub(super) fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn new_decoder(&self) -> Result<DecoderThread, Error> {
        let out = self.store.blob_writer(Some(&self.diff_id))?;
        Ok(DecoderThread::spawn(out, self.compression))
    }

    /// Feeds the partial file's bytes to the decompressor.
    fn replay(&mut self) -> io::Result<()> {
        let (Some(partial), Some(decoder)) = (self.partial.as_mut(), self.decoder.as_mut()) else {
            return Err(io::Error::other("download already finished"));
        };
        let mut file = partial.read_back().map_err(io::Error::other)?;
        let mut left = partial.offset();
        let mut buf = vec![0u8; REPLAY_BUFFER];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            decoder.write(buf.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Drops every byte held, on disk and decompressed, to download the blob whole.
    pub(super) fn start_over(&mut self) -> Result<(), Error> {
        self.decoder = None;
        if let Some(partial) = self.partial.take() {
            partial.discard()?;
        }
        self.partial = Some(self.store.resume_blob_writer(&self.blob)?);
        self.decoder = Some(self.new_decoder()?);
        self.decoder_failure = None;
        self.resumed_from = 0;
        Ok(())
    }

    /// Removes the partial file: its bytes are not a prefix of the blob.
    pub(super) fn discard(mut self) -> Result<(), Error> {
        self.decoder = None;
        if let Some(partial) = self.partial.take() {
            partial.discard()?;
        }
        Ok(())
    }

    /// Ends the decompression and stores the tar (checked against the DiffID); the partial
    /// compressed file is removed either way.
    pub(super) fn finish(mut self) -> Result<CommittedBlob, Error> {
        let decoded = match self.decoder_failure.take() {
            Some(failure) => Err(failure),
            None => self.decoder.take().map_or_else(
                || Err(io::Error::other("download already finished")),
                DecoderThread::finish,
            ),
        };
        if let Some(partial) = self.partial.take() {
            partial.discard()?;
        }
        let writer =
            decoded.map_err(|e| Error::io(format!("decompressing layer {}", self.blob), e))?;
        Ok(writer.commit()?)
    }
}

impl BlobSink for LayerDownload {
    fn written(&self) -> u64 {
        self.partial.as_ref().map_or(0, BlobWriter::offset)
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let Some(partial) = self.partial.as_mut() else {
            return Err(io::Error::other("download already finished"));
        };
        partial.write_all(chunk)?;
        if self.decoder_failure.is_none()
            && let Some(decoder) = self.decoder.as_mut()
            && let Err(failure) = decoder.write(chunk)
        {
            self.decoder_failure = Some(failure);
        }
        Ok(())
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

/// Decompresses on a thread of its own. Dropped unfinished, it stops the thread, whose
/// blob writer then removes its file.
struct DecoderThread {
    chunks: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<BlobWriter>>>,
}

impl DecoderThread {
    fn spawn(out: BlobWriter, compression: Option<Compression>) -> Self {
        let (chunks, received) = sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let thread = std::thread::spawn(move || {
            let mut decoder = Decoder::new(out, compression)?;
            for chunk in received {
                decoder.writer().write_all(&chunk)?;
            }
            decoder.finish()
        });
        DecoderThread {
            chunks: Some(chunks),
            thread: Some(thread),
        }
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let sent = self
            .chunks
            .as_ref()
            .is_some_and(|chunks| chunks.send(chunk.to_vec()).is_ok());
        match sent {
            true => Ok(()),
            // The thread stopped: its result says why.
            false => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("decompression ended early"))),
        }
    }

    fn join(&mut self) -> io::Result<BlobWriter> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the decompressing thread panicked")),
            None => Err(io::Error::other("decompression already ended")),
        }
    }

    fn finish(mut self) -> io::Result<BlobWriter> {
        self.join()
    }
}

impl Drop for DecoderThread {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}
