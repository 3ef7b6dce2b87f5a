//! The one contract between reading a capture and showing what it holds,
//! in the spirit of ripgrep's `Sink`: the driver finds items and knows
//! nothing of output; a sink takes them one at a time and knows nothing of
//! how they were found (decoded, read from the index, or live).

use super::{Item, ProcessRow, SessionSummary};
use std::io;

/// Whether the driver goes on after an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The sink has what it wants (`-c N`, or a reader that went away).
    Stop,
}

pub trait Sink {
    /// Whether items must carry their text and raw JSON members. A sink
    /// that needs neither (console lines, tables) lets the index skip
    /// loading them.
    fn needs_text(&self) -> bool {
        true
    }

    /// A process of the capture (its executable and command line): every
    /// one before the first item when a file is read, each as the
    /// recorder finds it when live.
    fn process(&mut self, row: &ProcessRow) {
        let _ = row;
    }

    /// One selected item, in output order. `text_len`: the size of the
    /// item's text as captured, also when the text was not loaded.
    fn item(&mut self, item: &Item<'_>, text_len: u64) -> io::Result<Flow>;

    /// The end: the sessions as they stood when reading stopped.
    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        let _ = sessions;
        Ok(())
    }
}

/// Passes the first `n` items on, then says stop (`-c N`).
pub struct Limit<'s> {
    inner: &'s mut dyn Sink,
    left: u64,
}

impl<'s> Limit<'s> {
    pub fn new(inner: &'s mut dyn Sink, n: u64) -> Self {
        Limit { inner, left: n }
    }
}

impl Sink for Limit<'_> {
    fn needs_text(&self) -> bool {
        self.inner.needs_text()
    }

    fn item(&mut self, item: &Item<'_>, text_len: u64) -> io::Result<Flow> {
        if self.left == 0 {
            return Ok(Flow::Stop);
        }
        self.left -= 1;
        match self.inner.item(item, text_len)? {
            Flow::Continue if self.left > 0 => Ok(Flow::Continue),
            _ => Ok(Flow::Stop),
        }
    }

    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        self.inner.finish(sessions)
    }
}

/// Gives every item to several sinks (the live console and a collector):
/// one decoder, many outputs. A sink that fails or says stop is left out
/// from then on; the others go on, and the read stops when none is left.
pub struct Fanout {
    sinks: Vec<(Box<dyn Sink + Send>, bool)>,
}

impl Fanout {
    pub fn new(sinks: Vec<Box<dyn Sink + Send>>) -> Self {
        Fanout {
            sinks: sinks.into_iter().map(|s| (s, true)).collect(),
        }
    }

    fn active(&mut self) -> impl Iterator<Item = &mut (Box<dyn Sink + Send>, bool)> {
        self.sinks.iter_mut().filter(|(_, on)| *on)
    }
}

impl Sink for Fanout {
    fn needs_text(&self) -> bool {
        self.sinks.iter().any(|(s, _)| s.needs_text())
    }

    fn process(&mut self, row: &ProcessRow) {
        for (s, _) in self.active() {
            s.process(row);
        }
    }

    fn item(&mut self, item: &Item<'_>, text_len: u64) -> io::Result<Flow> {
        for (s, on) in self.active() {
            *on = matches!(s.item(item, text_len), Ok(Flow::Continue));
        }
        Ok(if self.sinks.iter().any(|(_, on)| *on) {
            Flow::Continue
        } else {
            Flow::Stop
        })
    }

    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        let mut first_error = Ok(());
        for (s, _) in self.active() {
            if let Err(e) = s.finish(sessions) {
                first_error = first_error.and(Err(e));
            }
        }
        first_error
    }
}
