//! A sink's encoding on a second thread: the reading thread decodes and
//! hands over batches (the Parquet export's record batches); the other
//! encodes, compresses and writes them, so that an export costs its decode
//! plus the larger of the two halves, not their sum. A bounded queue keeps
//! memory flat; the thread lives in the caller's scope, so the output it
//! writes may be borrowed.

use std::io;
use std::sync::mpsc::{self, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

/// Batches that may wait between the two threads.
const DEPTH: usize = 2;

/// What goes over: a batch, or the end (an export that fails on the way
/// drops its end without saying it, and its output is left unfinished).
enum Msg<T> {
    Batch(T),
    End,
}

/// The handing-over end: `send` each batch, then `finish`.
pub struct Offload<'scope, T> {
    queue: Option<SyncSender<Msg<T>>>,
    worker: Option<ScopedJoinHandle<'scope, io::Result<()>>>,
    /// The worker's error was returned: the output is not whole.
    failed: bool,
}

impl<'scope, T: Send + 'scope> Offload<'scope, T> {
    /// Starts `work` on a thread of `scope`: it gets every batch in order
    /// (`Some`), then `None` at `finish` (not when dropped unfinished). Its
    /// first error stops it, and is what the next `send` or `finish`
    /// returns.
    pub fn start<'env, F>(scope: &'scope Scope<'scope, 'env>, mut work: F) -> io::Result<Self>
    where
        F: FnMut(Option<T>) -> io::Result<()> + Send + 'scope,
    {
        let (tx, rx) = mpsc::sync_channel::<Msg<T>>(DEPTH);
        let worker = std::thread::Builder::new()
            .name("mcpspy-encode".into())
            .spawn_scoped(scope, move || {
                for msg in rx {
                    match msg {
                        Msg::Batch(batch) => work(Some(batch))?,
                        Msg::End => return work(None),
                    }
                }
                Ok(())
            })?;
        Ok(Offload {
            queue: Some(tx),
            worker: Some(worker),
            failed: false,
        })
    }

    pub fn send(&mut self, batch: T) -> io::Result<()> {
        let sent = match &self.queue {
            Some(q) => q.send(Msg::Batch(batch)).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The worker stopped: its error says why.
        self.finish()?;
        Err(io::Error::other("the output is already closed"))
    }

    /// Waits for the worker to write everything handed over.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(q) = self.queue.take() {
            // A worker that stopped has its error to give.
            let _ = q.send(Msg::End);
        }
        let done = match self.worker.take() {
            Some(w) => w.join().unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(io::Error::other(format!(
                    "the encoding thread failed: {why}"
                )))
            }),
            None if self.failed => Err(io::Error::other("the output failed earlier")),
            None => Ok(()),
        };
        self.failed |= done.is_err();
        done
    }
}

impl<T> Drop for Offload<'_, T> {
    /// Dropped unfinished (the read failed): the worker stops without the
    /// end, and whatever befell it stays here, not in the caller's scope.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker that notes what it gets.
    fn noting(
        seen: &mut Vec<Option<u32>>,
    ) -> impl FnMut(Option<u32>) -> io::Result<()> + Send + '_ {
        move |b| {
            seen.push(b);
            Ok(())
        }
    }

    #[test]
    fn batches_arrive_in_order_and_the_end_is_said_once() {
        let mut seen = Vec::new();
        std::thread::scope(|s| {
            let mut o = Offload::start(s, noting(&mut seen)).unwrap();
            for i in 0..100 {
                o.send(i).unwrap();
            }
            o.finish().unwrap();
            o.finish().unwrap();
        });
        let want: Vec<Option<u32>> = (0..100).map(Some).chain([None]).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn an_offload_dropped_unfinished_never_says_the_end() {
        let mut seen = Vec::new();
        std::thread::scope(|s| {
            let mut o = Offload::start(s, noting(&mut seen)).unwrap();
            o.send(1).unwrap();
        });
        assert_eq!(seen, vec![Some(1)]);
    }

    #[test]
    fn a_worker_that_panics_is_an_error_and_never_the_callers_panic() {
        let boom = |b: Option<u32>| -> io::Result<()> {
            assert_ne!(b, Some(1), "boom");
            Ok(())
        };
        std::thread::scope(|s| {
            let mut o = Offload::start(s, boom).unwrap();
            let err = (0..100).find_map(|i| o.send(i).err()).unwrap();
            assert!(err.to_string().contains("boom"), "{err}");
        });
        // Dropped unfinished after the worker's panic: the scope ends well.
        std::thread::scope(|s| {
            let mut o = Offload::start(s, boom).unwrap();
            let _ = o.send(1);
        });
    }

    #[test]
    fn the_workers_error_is_returned_to_the_sender() {
        std::thread::scope(|s| {
            let mut o = Offload::start(s, |b: Option<u32>| match b {
                Some(3) => Err(io::Error::other("disk full")),
                _ => Ok(()),
            })
            .unwrap();
            let err = (0..100).find_map(|i| o.send(i).err()).unwrap();
            assert_eq!(err.to_string(), "disk full");
            assert!(o.finish().is_err(), "an output that failed never finishes");
        });
    }
}
