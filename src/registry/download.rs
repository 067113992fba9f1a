//! Where a pulled layer's bytes go. The compressed bytes are hashed and appended to a
//! resumable partial file in the store's tmp/ (keyed by the blob digest, so a pull killed
//! mid-blob continues next time with a Range request); a thread of its own decompresses them
//! into the store's blob writer, which checks the DiffID. One read of the network stream,
//! and the two halves run on two cores.

use super::compress::{Compression, Decoder};
use super::{BlobSink, Error};
use crate::store::{BlobWriter, CommittedBlob, Store};
use oci_spec::image::{Descriptor, Digest};
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Chunks in flight to a writing thread.
const QUEUED_CHUNKS: usize = 64;
/// The decompressed tar goes to its hashing and writing thread in pieces this large.
const HANDOFF: usize = 1 << 20;
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
        DecoderThread::spawn(out, self.compression)
            .map_err(|e| Error::io(format!("decompressing layer {}", self.blob), e))
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

/// The tar's way into the store: inflated on one thread, hashed and written on another, so
/// a download keeps three cores busy (receiving and keeping the compressed bytes is the third).
struct DecoderThread(WriterThread<Decoder<BufWriter<WriterThread<BlobWriter>>>>);

impl DecoderThread {
    fn spawn(out: BlobWriter, compression: Option<Compression>) -> io::Result<Self> {
        let stored = BufWriter::with_capacity(HANDOFF, WriterThread::spawn(out));
        Ok(DecoderThread(WriterThread::spawn(Decoder::new(
            stored,
            compression,
        )?)))
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }

    fn finish(self) -> io::Result<BlobWriter> {
        let stored = self.0.finish()?.finish()?;
        stored.into_inner().map_err(|e| e.into_error())?.finish()
    }
}

/// A writer on a thread of its own, fed through a bounded queue. Dropped unfinished, it
/// stops the thread and drops the writer there.
struct WriterThread<W> {
    chunks: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> WriterThread<W> {
    fn spawn(mut out: W) -> Self {
        let (chunks, received) = sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let thread = std::thread::spawn(move || {
            for chunk in received {
                out.write_all(&chunk)?;
            }
            Ok(out)
        });
        WriterThread {
            chunks: Some(chunks),
            thread: Some(thread),
        }
    }

    /// Waits for everything queued to be written and returns the writer.
    fn finish(mut self) -> io::Result<W> {
        self.join()
    }
}

impl<W> WriterThread<W> {
    fn join(&mut self) -> io::Result<W> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("a writing thread panicked")),
            None => Err(io::Error::other("writing already ended")),
        }
    }
}

impl<W> Write for WriterThread<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sent = self
            .chunks
            .as_ref()
            .is_some_and(|chunks| chunks.send(buf.to_vec()).is_ok());
        match sent {
            true => Ok(buf.len()),
            // The thread stopped: its result says why.
            false => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("writing ended early"))),
        }
    }

    /// Errors show at the next write or at [`WriterThread::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W> Drop for WriterThread<W> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}
