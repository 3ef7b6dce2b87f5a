//! The parent's blocks a derivation takes whole: every record kept and
//! none rewritten, so that the child stores the parent's compressed bytes
//! without reading the records again (a capture's raw bytes are some
//! sixteen times its stored ones). What each block holds is learned in the
//! read that finds the secrets; which blocks are whole is decided once
//! everything is found.

use super::Incarnation;
use crate::event::StreamId;
use crate::query::{Block, BlockFacts};
use foldhash::HashMap;
use std::hash::BuildHasher;

/// What is remembered of the blocks is bounded (a stranger's file may
/// hold many blocks, or many streams in one): a block with more than
/// `MAX_ENTRIES` streams, exec processes or ends, or past `BUDGET` in all
/// (a block costs `BLOCK_COST` and its entries), is not remembered, and is
/// copied record by record. Some 100,000 blocks of a recording (a capture
/// of 25 GiB) fit, in a few tens of MiB.
const MAX_ENTRIES: usize = 64;
const BLOCK_COST: usize = 4;
const BUDGET: usize = 1 << 19;

/// One block as the finding read saw it.
pub struct Seen {
    pub facts: BlockFacts,
    /// The bytes [lo, hi) of each stream incarnation its data records hold.
    pub ranges: Vec<(Incarnation, u64, u64)>,
    /// The processes of its exec records.
    pub exec_pids: Vec<u32>,
    /// An exec record holds a secret.
    pub exec_secret: bool,
    /// Its END records' streams, and whether a data record of that stream
    /// came before (an END is copied only after one of its stream's).
    pub ends: Vec<(StreamId, bool)>,
    /// The hash of its stored bytes, to know them again.
    hash: u64,
}

impl Seen {
    /// Its lists' entries (a record adds to two at most).
    fn entries(&self) -> usize {
        self.ranges.len() + self.facts.streams.len() + self.exec_pids.len() + self.ends.len()
    }

    /// A data record of incarnation `at`, holding bytes [off, end).
    pub fn data(&mut self, at: Incarnation, off: u64, end: u64) {
        match self.ranges.iter_mut().find(|(a, ..)| *a == at) {
            Some((_, lo, hi)) => {
                *lo = (*lo).min(off);
                *hi = (*hi).max(end);
            }
            None => self.ranges.push((at, off, end)),
        }
    }
}

/// What the finding read remembers of the blocks it read.
#[derive(Default)]
pub struct Sightings {
    /// Seeded per run: the stored bytes read again must be those read
    /// first, or the child would hold what was not searched.
    hasher: foldhash::quality::RandomState,
    blocks: HashMap<u64, Seen>,
    current: Option<(u64, Seen)>,
    /// Entries remembered so far.
    entries: usize,
}

impl Sightings {
    /// A block begins (its records follow).
    pub fn block(&mut self, b: &Block) {
        self.end_block();
        if self.entries < BUDGET {
            let seen = Seen {
                facts: BlockFacts {
                    raw_bytes: b.data.len() as u64,
                    ..BlockFacts::default()
                },
                ranges: Vec::new(),
                exec_pids: Vec::new(),
                exec_secret: false,
                ends: Vec::new(),
                hash: self.hasher.hash_one(b.stored.as_slice()),
            };
            self.current = Some((b.first_seq, seen));
        }
    }

    /// The block being read, when it is remembered (and still within
    /// bounds: a record makes at most one more entry).
    pub fn current(&mut self) -> Option<&mut Seen> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, s)| s.entries() >= MAX_ENTRIES)
        {
            self.current = None;
        }
        self.current.as_mut().map(|(_, s)| s)
    }

    fn end_block(&mut self) {
        if let Some((first_seq, seen)) = self.current.take() {
            self.entries += seen.entries() + BLOCK_COST;
            self.blocks.insert(first_seq, seen);
        }
    }

    /// Keeps the blocks `whole` says are taken whole.
    pub fn choose(mut self, whole: impl Fn(&Seen) -> bool) -> Whole {
        self.end_block();
        self.blocks.retain(|_, s| whole(s));
        Whole {
            hasher: self.hasher,
            blocks: self.blocks,
        }
    }
}

/// The blocks taken whole, by their first record's number.
#[derive(Default)]
pub struct Whole {
    hasher: foldhash::quality::RandomState,
    blocks: HashMap<u64, Seen>,
}

impl Whole {
    /// Block `first_seq`, when it is taken whole; an error when its stored
    /// bytes are not the ones read before (the file changed meanwhile).
    pub fn get(&self, first_seq: u64, stored: &[u8]) -> Result<Option<&Seen>, String> {
        let Some(seen) = self.blocks.get(&first_seq) else {
            return Ok(None);
        };
        if self.hasher.hash_one(stored) != seen.hash {
            return Err(format!(
                "the block of records from {first_seq} changed while it was being redacted"
            ));
        }
        Ok(Some(seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_read_again_must_be_the_one_read_first() {
        let mut seen = Sightings::default();
        seen.block(&Block {
            block_id: 1,
            first_seq: 7,
            first_ts_ns: None,
            data: vec![0; 10],
            stored: vec![1, 2, 3],
        });
        let whole = seen.choose(|s| s.facts.raw_bytes == 10);
        assert!(whole.get(7, &[1, 2, 3]).unwrap().is_some());
        assert!(whole.get(7, &[1, 2, 4]).is_err(), "changed meanwhile");
        assert!(
            whole.get(8, &[1, 2, 3]).unwrap().is_none(),
            "not taken whole"
        );
    }
}
