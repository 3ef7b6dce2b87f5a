//! A sink's encoding on a second thread: the reading thread decodes and
//! hands over batches (Arrow record batches, OTLP requests); the other
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
        match self.worker.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the encoding thread failed"))),
            None => Ok(()),
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
    fn the_workers_error_is_returned_to_the_sender() {
        std::thread::scope(|s| {
            let mut o = Offload::start(s, |b: Option<u32>| match b {
                Some(3) => Err(io::Error::other("disk full")),
                _ => Ok(()),
            })
            .unwrap();
            let err = (0..100).find_map(|i| o.send(i).err()).unwrap();
            assert_eq!(err.to_string(), "disk full");
            assert!(o.finish().is_ok(), "the error is returned once");
        });
    }
}
