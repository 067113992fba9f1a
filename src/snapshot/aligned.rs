//! Buffers for O_DIRECT I/O, which wants memory, file offset and length aligned to the
//! logical block size.

/// Bytes in one chunk: a multiple of [`ALIGN`].
pub(crate) const CHUNK: usize = 4 << 20;
/// O_DIRECT's alignment of memory, length and file offset (a logical block is at most this).
pub(crate) const ALIGN: usize = 4096;

/// A [`CHUNK`]-sized buffer whose data starts on an [`ALIGN`] boundary.
pub(crate) struct AlignedChunk {
    storage: Vec<u8>,
    start: usize,
    pub(crate) len: usize,
}

impl AlignedChunk {
    pub(crate) fn new() -> AlignedChunk {
        let storage = vec![0u8; CHUNK + ALIGN];
        let address = storage.as_ptr() as usize;
        AlignedChunk {
            storage,
            start: (ALIGN - address % ALIGN) % ALIGN,
            len: 0,
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The whole chunk, to read into (aligned, [`CHUNK`] bytes).
    pub(crate) fn whole_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + CHUNK]
    }

    /// Copies as much of `bytes` as fits; returns how much.
    pub(crate) fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(CHUNK - self.len);
        let at = self.start + self.len;
        self.storage[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == CHUNK
    }
}
