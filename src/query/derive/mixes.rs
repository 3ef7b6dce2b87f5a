//! Lines that several writers on one pipe wrote and its reader read mixed
//! (`interleaved` items) decode only together: a writer's line is told
//! apart from the reader's lines that hold its pieces, and those hold other
//! writers' pieces. A slice that keeps one item of such a mix keeps the
//! records of all of it (its view still shows what was selected).

use super::slice::{note_copy, CopyEnd};
use crate::query::{CopyInfo, Flow, Item, Kind, Sink};
use std::collections::{HashMap, HashSet};
use std::io;

/// An interleaved item, by the copy that places it: (pid, fd, start).
pub type MixKey = (u32, u32, u64);

/// A writer's byte range: (pid, fd), start, end.
type Range = ((u32, u32), u64, u64);

/// The item's key, if it is part of a mix.
pub fn key(item: &Item<'_>) -> Option<MixKey> {
    let copy = match &item.kind {
        Kind::Flagged(f) if !f.writers.is_empty() => item.reader.as_ref(),
        _ if item.interleaved => item.writer.as_ref(),
        _ => None,
    }?;
    Some((copy.pid, copy.fd, copy.start))
}

struct Node {
    key: MixKey,
    copy: Option<(u64, CopyEnd)>,
    parent: usize,
}

/// Every interleaved item of a capture, joined into mixes: the sink of a
/// read of everything.
pub struct Mixes {
    wanted: HashSet<MixKey>,
    nodes: Vec<Node>,
    /// Writers' lines, by writer: their ranges and nodes.
    sent: HashMap<(u32, u32), Vec<(Range, usize)>>,
    /// The reader's lines (nodes), and the writers' ranges each holds.
    read: Vec<(usize, Vec<Range>)>,
}

impl Mixes {
    pub fn new(wanted: HashSet<MixKey>) -> Self {
        Mixes {
            wanted,
            nodes: Vec::new(),
            sent: HashMap::new(),
            read: Vec::new(),
        }
    }

    fn add(&mut self, key: MixKey, copy: &CopyInfo<'_>) -> usize {
        let i = self.nodes.len();
        let mut one = HashMap::new();
        note_copy(&mut one, copy);
        self.nodes.push(Node {
            key,
            copy: one.into_iter().next(),
            parent: i,
        });
        i
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.nodes[i].parent != i {
            let up = self.nodes[self.nodes[i].parent].parent;
            self.nodes[i].parent = up;
            i = up;
        }
        i
    }

    /// Adds the copies of every mix that holds a wanted item.
    pub fn add_to(mut self, copies: &mut HashMap<u64, CopyEnd>) {
        for (line, ranges) in std::mem::take(&mut self.read) {
            for (writer, start, end) in ranges {
                let touching: Vec<usize> = self
                    .sent
                    .get(&writer)
                    .into_iter()
                    .flatten()
                    .filter(|&&((_, s, e), _)| s < end && start < e)
                    .map(|&(_, n)| n)
                    .collect();
                for n in touching {
                    let (a, b) = (self.root(line), self.root(n));
                    self.nodes[a].parent = b;
                }
            }
        }
        let wanted: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.wanted.contains(&self.nodes[i].key))
            .collect();
        let roots: HashSet<usize> = wanted.into_iter().map(|i| self.root(i)).collect();
        for i in 0..self.nodes.len() {
            if roots.contains(&self.root(i)) {
                if let Some((first, c)) = self.nodes[i].copy {
                    let e = copies.entry(first).or_insert(c);
                    e.end = e.end.max(c.end);
                    e.last_ts = e.last_ts.max(c.last_ts);
                    e.last_seq = e.last_seq.max(c.last_seq);
                }
            }
        }
    }
}

impl Sink for Mixes {
    fn needs_text(&self) -> bool {
        false
    }

    fn item(&mut self, item: &Item<'_>, _: u64) -> io::Result<Flow> {
        let Some(key) = key(item) else {
            return Ok(Flow::Continue);
        };
        match (&item.kind, &item.writer, &item.reader) {
            (Kind::Flagged(f), _, Some(reader)) => {
                let n = self.add(key, reader);
                let ranges = f
                    .writers
                    .iter()
                    .map(|w| ((w.peer.pid, w.fd), w.start, w.end))
                    .collect();
                self.read.push((n, ranges));
            }
            (_, Some(writer), _) => {
                let n = self.add(key, writer);
                let who = (writer.pid, writer.fd);
                let range = (who, writer.start, writer.end);
                self.sent.entry(who).or_default().push((range, n));
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
}
