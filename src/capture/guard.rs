//! What a reader checks of the seal while it reads: the data of every block
//! it reads against that block's digest. The first mismatch is kept, for
//! the reader to warn about once; reading goes on (damaged evidence is
//! still evidence).

use super::seal::{self, BlockRow, Hash};
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

pub(super) struct Guard {
    /// The digest of each sealed block.
    sealed: HashMap<i64, Hash>,
    /// The digest of the block growing at the last commit, if any.
    growing: Option<Hash>,
    /// Blocks that matched: a reader that passes over the file again
    /// (redact, slice, verify --deep) does not hash them again.
    matched: HashSet<i64>,
    /// The first block that did not match, said for people.
    pub alarm: Option<String>,
}

impl Guard {
    /// The guard of a sealed capture (None for a capture without a seal, or
    /// whose seal tables do not read: `verify` says why).
    pub fn load(conn: &Connection) -> Option<Guard> {
        let mut stmt = conn
            .prepare("SELECT block_id, digest FROM seal_blocks")
            .ok()?;
        let sealed = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .ok()?
            .filter_map(|r| r.ok())
            .filter_map(|(id, d)| Some((id, Hash::try_from(d).ok()?)))
            .collect();
        let growing = conn
            .query_row(
                "SELECT growing FROM seal_commits ORDER BY commit_no DESC LIMIT 1",
                [],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .ok()
            .flatten()
            .and_then(|g| Hash::try_from(g).ok());
        Some(Guard {
            sealed,
            growing,
            matched: HashSet::new(),
            alarm: None,
        })
    }

    /// Checks one block as read: its row (`first_seq`, `records`,
    /// `raw_bytes` and the compressed `data`), with the rest of its row and
    /// its `block_streams` rows from `conn`.
    pub fn check(
        &mut self,
        conn: &Connection,
        block_id: i64,
        first_seq: u64,
        records: u64,
        raw_bytes: u64,
        data: &[u8],
    ) {
        if self.alarm.is_some() || self.matched.contains(&block_id) {
            return;
        }
        let expected = self.sealed.get(&block_id).or(self.growing.as_ref());
        let digest = digest_of(conn, block_id, first_seq, records, raw_bytes, data);
        if expected.is_none() || digest.is_none() || expected != digest.as_ref() {
            self.alarm = Some(format!(
                "block {block_id} (records {first_seq}..{}) does not match its seal",
                first_seq + records
            ));
        } else {
            self.matched.insert(block_id);
        }
    }
}

fn digest_of(
    conn: &Connection,
    block_id: i64,
    first_seq: u64,
    records: u64,
    raw_bytes: u64,
    data: &[u8],
) -> Option<Hash> {
    let (first_ts_ns, last_ts_ns): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT first_ts_ns, last_ts_ns FROM blocks WHERE block_id = ?1",
            params![block_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT stream_id, records FROM block_streams WHERE block_id = ?1 ORDER BY stream_id",
        )
        .ok()?;
    let streams: Vec<(i64, i64)> = stmt
        .query_map(params![block_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let row = BlockRow {
        block_id,
        first_seq: first_seq as i64,
        records: records as i64,
        first_ts_ns,
        last_ts_ns,
        raw_bytes: raw_bytes as i64,
        data,
    };
    Some(seal::block_digest(&row, &streams))
}
