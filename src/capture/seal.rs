//! The seal (schema/seal.sql; the bytes each digest covers are in
//! schema/README.md, "The seal"): SHA-256 digests of blocks chained in
//! record order, a digest of the tables at every commit, the commits
//! chained in turn, and a manifest at a clean end. The writer and the
//! verifier compute every digest with these same functions.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FEATURE: &str = "seal";
pub const SQL: &str = include_str!("../../schema/seal.sql");

pub type Hash = [u8; 32];

/// Canonical bytes of SQL values, each tagged with its type.
struct Canon(Sha256);

impl Canon {
    fn new(domain: &str) -> Self {
        let mut c = Canon(Sha256::new());
        c.0.update(domain.as_bytes());
        c.0.update([0]);
        c
    }

    fn value(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => self.0.update([0]),
            ValueRef::Integer(i) => self.int(i),
            ValueRef::Real(r) => {
                self.0.update([4]);
                self.0.update(r.to_le_bytes());
            }
            ValueRef::Text(t) => self.bytes(2, t),
            ValueRef::Blob(b) => self.bytes(3, b),
        }
    }

    fn int(&mut self, i: i64) {
        self.0.update([1]);
        self.0.update(i.to_le_bytes());
    }

    fn bytes(&mut self, tag: u8, b: &[u8]) {
        self.0.update([tag]);
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }

    fn done(self) -> Hash {
        self.0.finalize().into()
    }
}

/// What a block's digest covers, as the `blocks` row holds it.
pub struct BlockRow<'a> {
    pub block_id: i64,
    pub first_seq: i64,
    pub records: i64,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub raw_bytes: i64,
    pub data: &'a [u8],
}

/// The digest of a block: its row, and its `block_streams` rows as
/// (stream_id, records) in stream order.
pub fn block_digest(b: &BlockRow<'_>, streams: &[(i64, i64)]) -> Hash {
    let mut c = Canon::new("mcpspy-block");
    c.int(b.block_id);
    c.int(b.first_seq);
    c.int(b.records);
    c.value(b.first_ts_ns.map_or(ValueRef::Null, ValueRef::Integer));
    c.value(b.last_ts_ns.map_or(ValueRef::Null, ValueRef::Integer));
    c.int(b.raw_bytes);
    c.bytes(3, b.data);
    c.int(streams.len() as i64);
    for &(stream, records) in streams {
        c.int(stream);
        c.int(records);
    }
    c.done()
}

/// The chain's first link, before any block: it names the capture.
pub fn chain_start(capture_id: &str) -> Hash {
    let mut c = Canon::new("mcpspy-chain");
    c.bytes(2, capture_id.as_bytes());
    c.done()
}

pub fn chain_next(prev: &Hash, digest: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(digest);
    h.finalize().into()
}

/// The tables a commit covers, each in a fixed order: the query, and the
/// name the digest gives it.
const TABLES: [(&str, &str); 5] = [
    ("meta", "SELECT key, value FROM meta ORDER BY key"),
    (
        "streams",
        "SELECT stream_id, pid, fd, fd_kind, tls, ssl, ino, peer_ino, direction, laddr, lport, \
         raddr, rport, first_ts_ns, last_ts_ns, events, bytes FROM streams ORDER BY stream_id",
    ),
    (
        "processes",
        "SELECT pid, seen_ts_ns, comm, exe, cmdline, ppid, uid, start_time_ns FROM processes \
         ORDER BY pid, seen_ts_ns",
    ),
    (
        "drops",
        "SELECT start_ktime_ns, end_ktime_ns, events, bytes, ring_full, ring_full_bytes, \
         read_failed, map_full, truncated, truncated_bytes, user_lost FROM drops \
         ORDER BY start_ktime_ns, end_ktime_ns, rowid",
    ),
    // Rows of sealed blocks are in their blocks' digests.
    (
        "block_streams",
        "SELECT block_id, stream_id, records FROM block_streams \
         WHERE block_id NOT IN (SELECT block_id FROM seal_blocks) ORDER BY block_id, stream_id",
    ),
];

/// Tables of optional features, covered when the file has them (a file
/// without them digests as it always did).
const OPTIONAL_TABLES: [(&str, &str); 2] = [
    (
        "derived_view",
        "SELECT seq, offset FROM derived_view ORDER BY seq, offset",
    ),
    super::cgroups::SEAL_QUERY,
];

/// The digest of the tables a commit covers, as they are in `conn` now.
pub fn tables_digest(conn: &Connection) -> rusqlite::Result<Hash> {
    let mut c = Canon::new("mcpspy-tables");
    let mut present = Vec::new();
    for (name, sql) in OPTIONAL_TABLES {
        if super::schema::has_table(conn, name)? {
            present.push((name, sql));
        }
    }
    for (name, sql) in TABLES.into_iter().chain(present) {
        c.bytes(2, name.as_bytes());
        let mut stmt = conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut n = 0i64;
        while let Some(row) = rows.next()? {
            for i in 0..columns {
                c.value(row.get_ref(i)?);
            }
            n += 1;
        }
        c.int(n);
    }
    Ok(c.done())
}

/// A row of `seal_commits`, but its digest and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub commit_no: i64,
    pub ktime_ns: i64,
    pub at: String,
    pub sealed_blocks: i64,
    pub records: i64,
    pub chain: Hash,
    pub growing: Option<Hash>,
    pub tables: Hash,
}

impl Commit {
    /// Its digest, which covers the previous commit's.
    pub fn digest(&self, prev: Option<&Hash>) -> Hash {
        let mut c = Canon::new("mcpspy-commit");
        c.bytes(3, prev.map_or(&[][..], |p| &p[..]));
        c.int(self.commit_no);
        c.int(self.ktime_ns);
        c.bytes(2, self.at.as_bytes());
        c.int(self.sealed_blocks);
        c.int(self.records);
        c.bytes(3, &self.chain);
        c.bytes(3, self.growing.as_ref().map_or(&[][..], |g| &g[..]));
        c.bytes(3, &self.tables);
        c.done()
    }

    pub fn insert(
        &self,
        conn: &Connection,
        digest: &Hash,
        signature: Option<&[u8]>,
    ) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO seal_commits (commit_no, ktime_ns, at, sealed_blocks, records, chain,
               growing, tables, digest, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            self.commit_no,
            self.ktime_ns,
            self.at,
            self.sealed_blocks,
            self.records,
            &self.chain[..],
            self.growing.as_ref().map(|g| &g[..]),
            &self.tables[..],
            &digest[..],
            signature
        ])?;
        Ok(())
    }
}

/// What a clean end vouches for. Its JSON bytes are what is signed; the
/// digest of those bytes names the capture to other tools.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub capture_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub end_reason: String,
    pub hostname: String,
    pub kernel_release: String,
    pub tool_version: String,
    pub attach_rung: String,
    pub filters: String,
    pub blocks: u64,
    pub records: u64,
    pub events: u64,
    pub payload_bytes: u64,
    /// The chain's head over every block, hex.
    pub chain: String,
    /// The tables' digest at the end, hex.
    pub tables: String,
    /// The last commit's digest, hex.
    pub last_commit: String,
    /// The kernel's counters at the end (as `meta.final_counters`).
    pub final_counters: String,
}

pub const MANIFEST_FORMAT: &str = "mcpspy-seal-1";

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// A fresh capture id: 128 random bits, hex.
pub fn new_capture_id() -> std::io::Result<String> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(std::io::Error::other)?;
    Ok(hex::encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_counts() {
        let data = b"records".to_vec();
        fn row(first_seq: i64, data: &[u8]) -> BlockRow<'_> {
            BlockRow {
                block_id: 1,
                first_seq,
                records: 2,
                first_ts_ns: Some(5),
                last_ts_ns: None,
                raw_bytes: 7,
                data,
            }
        }
        let base = block_digest(&row(0, &data), &[(1, 2)]);
        assert_ne!(base, block_digest(&row(1, &data), &[(1, 2)]));
        assert_ne!(base, block_digest(&row(0, b"recordz"), &[(1, 2)]));
        assert_ne!(base, block_digest(&row(0, &data), &[(1, 3)]));
        assert_ne!(base, block_digest(&row(0, &data), &[]));
        assert_eq!(base, block_digest(&row(0, &data), &[(1, 2)]));
        let c = Commit {
            commit_no: 0,
            ktime_ns: 1,
            at: "t".into(),
            sealed_blocks: 0,
            records: 0,
            chain: chain_start("id"),
            growing: None,
            tables: [0; 32],
        };
        assert_ne!(c.digest(None), c.digest(Some(&[0; 32])));
        assert_ne!(chain_start("a"), chain_start("b"));
    }
}
