//! sha256 of a large stream on a thread of its own: the producer (the layer writer reading
//! files, the extractor writing them) goes on with the next bytes while the last are hashed.
//! sha256 was a third of the time of writing bigctx's 220 MB layer on one thread.

use super::write::sha256_digest;
use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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
    Behind(Behind),
}

struct Behind {
    batch: Vec<u8>,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
    allocated: usize,
    thread: JoinHandle<Sha256>,
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
            match spawn(std::mem::take(hasher)) {
                Ok(behind) => self.state = State::Behind(behind),
                // No thread to be had: hash here after all.
                Err(mut kept) => {
                    kept.update(bytes);
                    *hasher = kept;
                    return;
                }
            }
        }
        let State::Behind(behind) = &mut self.state else {
            return;
        };
        while !bytes.is_empty() {
            let room = BATCH - behind.batch.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            behind.batch.extend_from_slice(now);
            bytes = rest;
            if behind.batch.len() == BATCH {
                behind.ship();
            }
        }
    }

    pub(crate) fn finish(self) -> Digest {
        let hasher = match self.state {
            State::Here(hasher) => hasher,
            State::Behind(mut behind) => {
                behind.ship();
                let Behind { full, thread, .. } = behind;
                drop(full);
                // The thread only hashes: it cannot fail but by a panic, passed on as one.
                match thread.join() {
                    Ok(hasher) => hasher,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        };
        sha256_digest(hasher)
    }
}

/// Starts the hashing thread with `hasher`'s state; gives the hasher back if it cannot.
fn spawn(hasher: Sha256) -> Result<Behind, Sha256> {
    let (full, batches) = sync_channel::<Vec<u8>>(BATCHES - 1);
    let (recycle, empty) = sync_channel::<Vec<u8>>(BATCHES);
    let mut state = hasher.clone();
    let thread = std::thread::Builder::new()
        .name("sha256".into())
        .spawn(move || {
            for mut batch in batches {
                state.update(&batch);
                batch.clear();
                let _ = recycle.send(batch);
            }
            state
        });
    match thread {
        Ok(thread) => Ok(Behind {
            batch: Vec::with_capacity(BATCH),
            full,
            empty,
            allocated: 1,
            thread,
        }),
        Err(_) => Err(hasher),
    }
}

impl Behind {
    /// Sends the batch to the thread and takes an empty one: a recycled one, a new one while
    /// fewer than [`BATCHES`] exist, else the next the thread gives back.
    fn ship(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = match self.empty.try_recv() {
            Ok(batch) => batch,
            Err(_) if self.allocated < BATCHES => {
                self.allocated += 1;
                Vec::with_capacity(BATCH)
            }
            Err(_) => self.empty.recv().unwrap_or_default(),
        };
        let full = std::mem::replace(&mut self.batch, next);
        // The thread outlives every send: it ends only when `full` is dropped.
        let _ = self.full.send(full);
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
