//! A worker thread fed full buffers, which it hands back empty to be filled again: the
//! producer fills the next buffer while the last is consumed. The layer writer's sha256
//! (`hash.rs`) and the store's O_DIRECT blob writes (`store/direct.rs`) both run so; the
//! readers of a base layer (`base.rs`) take their buffers the same way ([`empty_buffer`]).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// The thread and the channels that carry buffers to it and back. At most `buffers` exist,
/// counting the one the producer is filling, which bounds the memory used.
pub(crate) struct Behind<B, R> {
    full: SyncSender<B>,
    empty: Receiver<B>,
    allocated: usize,
    buffers: usize,
    thread: JoinHandle<R>,
}

impl<B: Send + 'static, S: Send + 'static, E: Send + 'static> Behind<B, Result<S, E>> {
    /// Starts the thread `name`, which runs `consume` on each full buffer with `state`, and
    /// ends with the state or at the first error. `consume` leaves the buffer empty.
    pub(crate) fn spawn(
        name: &str,
        buffers: usize,
        state: S,
        consume: impl Fn(&mut S, &mut B) -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (full, full_buffers) = sync_channel::<B>(buffers - 1);
        let (empty_buffers, empty) = sync_channel::<B>(buffers);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut state = state;
                for mut buffer in full_buffers {
                    consume(&mut state, &mut buffer)?;
                    let _ = empty_buffers.send(buffer);
                }
                Ok(state)
            })?;
        Ok(Behind {
            full,
            empty,
            allocated: 1,
            buffers,
            thread,
        })
    }
}

impl<B, R> Behind<B, R> {
    /// Sends `current` to the thread and puts an empty buffer in its place: a returned one, a
    /// new one from `new` while fewer than `buffers` exist, else the next the thread gives
    /// back. False when the thread has ended (on an error [`Behind::finish`] returns).
    pub(crate) fn ship(&mut self, current: &mut B, new: impl FnOnce() -> B) -> bool {
        let Some(next) = empty_buffer(&self.empty, &mut self.allocated, self.buffers, new) else {
            return false;
        };
        let full = std::mem::replace(current, next);
        self.full.send(full).is_ok()
    }

    /// Waits for the buffers in flight to be consumed; the thread's result, or its panic.
    pub(crate) fn finish(self) -> std::thread::Result<R> {
        drop(self.full);
        self.thread.join()
    }
}

/// An empty buffer to fill: one given back on `empty`, a new one from `new` while fewer than
/// `limit` exist (`allocated` counts them), else the next one given back; `None` when none
/// will be (the other side has ended).
pub(crate) fn empty_buffer<B>(
    empty: &Receiver<B>,
    allocated: &mut usize,
    limit: usize,
    new: impl FnOnce() -> B,
) -> Option<B> {
    match empty.try_recv() {
        Ok(buffer) => Some(buffer),
        Err(_) if *allocated < limit => {
            *allocated += 1;
            Some(new())
        }
        Err(_) => empty.recv().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_every_buffer_in_order_and_reuses_at_most_the_bound() {
        let mut behind = Behind::spawn(
            "test",
            3,
            Vec::new(),
            |seen: &mut Vec<u32>, buffer: &mut Vec<u32>| {
                seen.append(buffer);
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        let mut created = 1;
        let mut current = Vec::new();
        for value in 0..100u32 {
            current.push(value);
            assert!(behind.ship(&mut current, || {
                created += 1;
                Vec::new()
            }));
        }
        assert!(created <= 3, "{created} buffers");
        assert_eq!(behind.finish().unwrap(), Ok((0..100).collect::<Vec<_>>()));
    }

    #[test]
    fn an_error_ends_the_thread_and_is_returned() {
        let mut behind = Behind::spawn("test", 2, (), |_: &mut (), buffer: &mut u32| {
            if *buffer == 3 { Err(*buffer) } else { Ok(()) }
        })
        .unwrap();
        let mut shipped = 0;
        while shipped < 100 {
            let mut current = shipped;
            if !behind.ship(&mut current, || 0) {
                break;
            }
            shipped += 1;
        }
        assert!(shipped < 100, "the thread went on after its error");
        assert_eq!(behind.finish().unwrap(), Err(3));
    }
}
