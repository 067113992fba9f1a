//! sha256 of a large stream on a thread of its own: the producer (the layer writer reading
//! files, the extractor writing them) goes on with the next bytes while the last are hashed.
//! sha256 was a third of the time of writing bigctx's 220 MB layer on one thread.

use super::behind::Behind;
use super::write::sha256_digest;
use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};
use std::convert::Infallible;

/// Streams shorter than this are hashed where they are written: a thread costs more.
const THREAD_AFTER: u64 = 4 << 20;
/// Bytes handed to the hashing thread at once.
const BATCH: usize = 1 << 20;
/// Batches in flight (this bounds the memory used): one filling, the rest queued or hashing.
const BATCHES: usize = 3;

/// A sha256 and a byte count, moved to a thread once the stream is large.
pub(crate) struct StreamHasher {
    state: State,
    size: u64,
}

enum State {
    Here(Sha256),
    /// The batch being filled, and the thread hashing the ones before it.
    Behind(Vec<u8>, Behind<Vec<u8>, Result<Sha256, Infallible>>),
}

impl StreamHasher {
    pub(crate) fn new() -> StreamHasher {
        StreamHasher {
            state: State::Here(Sha256::new()),
            size: 0,
        }
    }

    /// Bytes hashed so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if let State::Here(hasher) = &mut self.state {
            if self.size < THREAD_AFTER {
                hasher.update(bytes);
                return;
            }
            let spawned = Behind::spawn(
                "sha256",
                BATCHES,
                hasher.clone(),
                |state, batch: &mut Vec<u8>| {
                    state.update(batch.as_slice());
                    batch.clear();
                    Ok(())
                },
            );
            match spawned {
                Ok(behind) => self.state = State::Behind(Vec::with_capacity(BATCH), behind),
                // No thread to be had: hash here after all.
                Err(_) => {
                    hasher.update(bytes);
                    return;
                }
            }
        }
        let State::Behind(batch, behind) = &mut self.state else {
            return;
        };
        while !bytes.is_empty() {
            let room = BATCH - batch.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            batch.extend_from_slice(now);
            bytes = rest;
            if batch.len() == BATCH {
                // The thread only hashes: it ends only when finished.
                behind.ship(batch, || Vec::with_capacity(BATCH));
            }
        }
    }

    pub(crate) fn finish(self) -> Digest {
        let hasher = match self.state {
            State::Here(hasher) => hasher,
            State::Behind(mut batch, mut behind) => {
                if !batch.is_empty() {
                    behind.ship(&mut batch, Vec::new);
                }
                // The thread only hashes: it cannot fail but by a panic, passed on as one.
                match behind.finish() {
                    Ok(Ok(hasher)) => hasher,
                    Ok(Err(never)) => match never {},
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        };
        sha256_digest(hasher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_as_one_pass_does_whatever_the_pieces() {
        let data: Vec<u8> = (0..(THREAD_AFTER as usize * 3 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut whole = Sha256::new();
        whole.update(&data);
        let expected = sha256_digest(whole);
        for piece in [1usize << 16, BATCH - 1, BATCH * 3 + 7] {
            let mut hasher = StreamHasher::new();
            for chunk in data.chunks(piece) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.size(), data.len() as u64);
            assert_eq!(hasher.finish(), expected, "pieces of {piece}");
        }
        let mut small = StreamHasher::new();
        small.update(b"abc");
        let mut one = Sha256::new();
        one.update(b"abc");
        assert_eq!(small.finish(), sha256_digest(one));
    }
}
