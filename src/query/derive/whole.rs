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
    /// Seeded per run, and kept for every block: the stored bytes copied
    /// must be those searched, or the child would hold what was not
    /// searched. (Not a cryptographic hash: it finds a file changed
    /// meanwhile, by accident or by someone who cannot see the seed.)
    hasher: foldhash::quality::RandomState,
    hashes: HashMap<i64, u64>,
    blocks: HashMap<i64, Seen>,
    current: Option<(i64, Seen)>,
    /// Entries remembered so far.
    entries: usize,
}

impl Sightings {
    /// A block begins (its records follow).
    pub fn block(&mut self, b: &Block) {
        self.end_block();
        let hash = self.hasher.hash_one(b.stored.as_slice());
        self.hashes.insert(b.block_id, hash);
        if self.entries < BUDGET {
            let seen = Seen {
                facts: BlockFacts::new(&b.data),
                ranges: Vec::new(),
                exec_pids: Vec::new(),
                exec_secret: false,
                ends: Vec::new(),
            };
            self.current = Some((b.block_id, seen));
        }
    }

    /// The block being read, when it is remembered (and still within
    /// bounds: a record makes at most two more entries).
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
        if let Some((id, seen)) = self.current.take() {
            self.entries += seen.entries() + BLOCK_COST;
            self.blocks.insert(id, seen);
        }
    }

    /// Keeps the blocks `whole` says are taken whole.
    pub fn choose(mut self, whole: impl Fn(&Seen) -> bool) -> Whole {
        self.end_block();
        self.blocks.retain(|_, s| whole(s));
        Whole {
            hasher: self.hasher,
            hashes: self.hashes,
            blocks: self.blocks,
        }
    }
}

/// Every block's hash, and the blocks taken whole, by block id.
#[derive(Default)]
pub struct Whole {
    hasher: foldhash::quality::RandomState,
    hashes: HashMap<i64, u64>,
    blocks: HashMap<i64, Seen>,
}

impl Whole {
    /// Block `id`, stored as `stored`, when it is taken whole. An error
    /// when it is not what was searched: its stored bytes changed, or it
    /// could not be read then.
    pub fn get(&self, id: i64, stored: &[u8]) -> Result<Option<&Seen>, String> {
        match self.hashes.get(&id) {
            None => Err(format!(
                "block {id} could not be read when it was searched (it is damaged, or it changed since)"
            )),
            Some(&h) if h != self.hasher.hash_one(stored) => Err(format!(
                "block {id} changed while it was being redacted"
            )),
            Some(_) => Ok(self.blocks.get(&id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_read_again_must_be_the_one_read_first() {
        let mut seen = Sightings::default();
        for (block_id, raw) in [(1, 10), (2, 20)] {
            seen.block(&Block {
                block_id,
                first_seq: 7,
                first_ts_ns: None,
                data: vec![0; raw],
                stored: vec![1, 2, 3],
            });
        }
        let whole = seen.choose(|s| s.facts.raw_bytes == 10);
        assert!(whole.get(1, &[1, 2, 3]).unwrap().is_some());
        assert!(whole.get(1, &[1, 2, 4]).is_err(), "changed meanwhile");
        assert!(whole.get(2, &[1, 2, 3]).unwrap().is_none(), "not whole");
        assert!(whole.get(3, &[1, 2, 3]).is_err(), "not read then");
    }
}
