//! Lines that several writers on one pipe wrote and its reader read mixed
//! (`interleaved` items) decode only together: a writer's line is told
//! apart from the reader's lines that hold its pieces, and those hold other
//! writers' pieces. A slice that keeps one item of such a mix keeps the
//! records of all of it (its view still shows what was selected).

use super::slice::CopyEnd;
use crate::query::{CopyInfo, Flow, Item, Kind, Sink, Transport};
use std::collections::{HashMap, HashSet};
use std::io;

/// An interleaved item, by the first record of the copy that places it.
pub type MixKey = u64;

/// A writer on one pipe: (the pipe's inode, pid, fd).
type Writer = (u64, u32, u32);
/// A byte range of a writer's stream.
type Range = (Writer, u64, u64);

/// The item's key, if it is part of a mix.
pub fn key(item: &Item<'_>) -> Option<MixKey> {
    let copy = match &item.kind {
        Kind::Flagged(f) if !f.writers.is_empty() => item.reader.as_ref(),
        _ if item.interleaved => item.writer.as_ref(),
        _ => None,
    }?;
    copy.seqs.first().copied()
}

fn pipe(item: &Item<'_>) -> u64 {
    match item.transport {
        Some(Transport::Pipe { ino }) => ino,
        _ => 0,
    }
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
    /// Writers' lines, by writer: (start, end, node), in the order shown,
    /// which is the writer's order.
    sent: HashMap<Writer, Vec<(u64, u64, usize)>>,
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
        self.nodes.push(Node {
            key,
            copy: CopyEnd::of(copy),
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
        for lines in self.sent.values_mut() {
            lines.sort_unstable();
        }
        for (line, ranges) in std::mem::take(&mut self.read) {
            for (writer, start, end) in ranges {
                let lines = self.sent.get(&writer).map_or(&[][..], Vec::as_slice);
                // The writer's lines are disjoint and sorted: those from the
                // first that ends at or past `start` (a piece of only the
                // newline sits at its line's end) to the last that begins
                // before `end`.
                let from = lines.partition_point(|&(_, e, _)| e < start);
                let touching: Vec<usize> = lines[from..]
                    .iter()
                    .take_while(|&&(s, _, _)| s < end || (s == start && start == end))
                    .filter(|&&(_, e, _)| e > start || start == end)
                    .map(|&(_, _, n)| n)
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
                if let Some(c) = self.nodes[i].copy {
                    CopyEnd::note(copies, c);
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
                let ino = pipe(item);
                let ranges = f
                    .writers
                    .iter()
                    .map(|w| ((ino, w.peer.pid, w.fd), w.start, w.end))
                    .collect();
                self.read.push((n, ranges));
            }
            (_, Some(writer), _) => {
                let n = self.add(key, writer);
                let who = (pipe(item), writer.stream.tgid, writer.fd);
                self.sent
                    .entry(who)
                    .or_default()
                    .push((writer.start, writer.end, n));
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
}
