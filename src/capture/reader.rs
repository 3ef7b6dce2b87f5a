//! Reading a capture file. Readers never modify it: the connection is read-only.

use super::block::Records;
use super::guard::Guard;
use super::schema::MAJOR;
use super::{DropRow, ProcessRow, StreamInfo};
use crate::event::counter;
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The first bytes of every SQLite file, and so of every capture.
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why a file cannot be read as a capture.
#[derive(Debug)]
pub enum CaptureError {
    Missing(PathBuf),
    NotACapture { path: PathBuf, why: String },
    UnsupportedVersion { path: PathBuf, version: i32 },
    Damaged { path: PathBuf, why: String },
    Io { path: PathBuf, err: std::io::Error },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Missing(p) => write!(f, "{}: no such file", p.display()),
            CaptureError::NotACapture { path, why } => {
                write!(f, "{}: not an mcpspy capture ({why})", path.display())
            }
            CaptureError::UnsupportedVersion { path, version } => write!(
                f,
                "{}: capture format major version {version}; this mcpspy reads major version {MAJOR}{}",
                path.display(),
                if *version > MAJOR { " (the file was made by a newer mcpspy)" } else { "" }
            ),
            CaptureError::Damaged { path, why } => {
                write!(f, "{}: damaged capture: {why}", path.display())
            }
            CaptureError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for CaptureError {}

impl CaptureError {
    /// The same error, said of `name` (what the user gave) instead of the
    /// file actually read.
    pub(super) fn named(self, name: &Path) -> Self {
        let name = name.to_path_buf();
        match self {
            CaptureError::Missing(_) => CaptureError::Missing(name),
            CaptureError::NotACapture { why, .. } => CaptureError::NotACapture { path: name, why },
            CaptureError::UnsupportedVersion { version, .. } => CaptureError::UnsupportedVersion {
                path: name,
                version,
            },
            CaptureError::Damaged { why, .. } => CaptureError::Damaged { path: name, why },
            CaptureError::Io { err, .. } => CaptureError::Io { path: name, err },
        }
    }
}

/// A decompressed block of records.
pub struct Block {
    pub block_id: i64,
    pub first_seq: u64,
    /// The smallest event time in the block, as its row says.
    pub first_ts_ns: Option<u64>,
    pub data: Vec<u8>,
    /// `data` as the file stores it (compressed), checked against the seal
    /// when there is one.
    pub stored: Vec<u8>,
}

impl Block {
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.data, self.first_seq)
    }
}

/// A block that could not be read: its records are reported, not skipped silently.
#[derive(Debug, Clone)]
pub struct BlockError {
    /// None: the rest of the blocks table, which does not read.
    pub block_id: Option<i64>,
    pub first_seq: u64,
    pub records: u64,
    /// The block's time range, as its row says (damage is shown there).
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
    pub why: String,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.block_id {
            Some(id) => write!(
                f,
                "block {id} (records {}..={}) cannot be read: {}",
                self.first_seq,
                (self.first_seq + self.records).saturating_sub(1),
                self.why
            ),
            None => f.write_str(&self.why),
        }
    }
}

/// Which blocks to read. Blocks are whole: a filter narrows the blocks, and
/// the caller still sees every record of the blocks it gets.
#[derive(Clone, Debug, Default)]
pub struct BlockFilter {
    /// Only blocks with events in [from, to] (CLOCK_MONOTONIC ns).
    pub ktime_range: Option<(u64, u64)>,
    /// Only blocks holding records of these streams.
    pub streams: Option<Vec<i64>>,
}

pub struct CaptureReader {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// What the user named the file, when it is not `path` (standard input).
    pub(super) name: Option<PathBuf>,
    /// Set when a rolled-back copy is read instead of the file itself.
    pub(super) _rollback_copy: Option<tempfile::TempDir>,
    pub notes: Vec<String>,
    /// Checks the data of the blocks read against the seal (sealed captures).
    pub(super) guard: RefCell<Option<Guard>>,
    /// The seal's structure, worked out once: the open-time warning, `info`
    /// and `check` all ask for it, and it hashes every table.
    pub(super) seal: std::cell::OnceCell<super::verify::Report>,
}

impl CaptureReader {
    /// The first block read whose data does not match its seal, if any.
    pub fn seal_alarm(&self) -> Option<String> {
        self.guard.borrow().as_ref().and_then(|g| g.alarm.clone())
    }

    /// An alarm found by an earlier read of this same file (the query
    /// index keeps what the decode that built it found).
    pub fn raise_seal_alarm(&self, alarm: String) {
        if let Some(g) = self.guard.borrow_mut().as_mut() {
            g.alarm.get_or_insert(alarm);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as the user named it.
    pub fn name(&self) -> &Path {
        self.name.as_deref().unwrap_or(&self.path)
    }

    pub(super) fn damaged(&self, e: impl fmt::Display) -> CaptureError {
        CaptureError::Damaged {
            path: self.path.clone(),
            why: e.to_string(),
        }
    }

    pub fn meta(&self) -> Result<BTreeMap<String, String>, CaptureError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM meta ORDER BY key")
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.damaged(e))
    }

    /// Whether the file's `features` name `feature`.
    pub fn lists_feature(&self, feature: &str) -> bool {
        super::schema::listed_features(&self.conn)
            .is_some_and(|l| super::schema::lists(&l, feature))
    }

    /// Blocks in record order, one decompressed at a time.
    /// Where SQLite itself is damaged, the blocks listed before the damage
    /// are read, and an error says that the rest could not be.
    pub fn blocks(&self, filter: &BlockFilter) -> Result<BlockIter<'_>, CaptureError> {
        let mut ids: Vec<BlockRef> = Vec::new();
        let mut sql = String::from(
            "SELECT block_id, first_seq, records, raw_bytes, first_ts_ns, last_ts_ns FROM blocks b WHERE 1",
        );
        if let Some((lo, hi)) = filter.ktime_range {
            // Blocks with only ticks are kept: they carry the decoder's clock.
            sql.push_str(&format!(
                " AND (first_ts_ns IS NULL OR (last_ts_ns >= {} AND first_ts_ns <= {}))",
                lo as i64, hi as i64
            ));
        }
        if let Some(streams) = &filter.streams {
            let list: Vec<String> = streams.iter().map(i64::to_string).collect();
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM block_streams s WHERE s.block_id = b.block_id AND s.stream_id IN ({}))",
                list.join(",")
            ));
        }
        sql.push_str(" ORDER BY first_seq");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BlockRef {
                    block_id: r.get(0)?,
                    first_seq: r.get::<_, i64>(1)? as u64,
                    records: r.get::<_, i64>(2)? as u64,
                    raw_bytes: r.get::<_, i64>(3)? as u64,
                    first_ts_ns: r.get::<_, Option<i64>>(4)?.map(|t| t as u64),
                    last_ts_ns: r.get::<_, Option<i64>>(5)?.map(|t| t as u64),
                })
            })
            .map_err(|e| self.damaged(e))?;
        let mut rest = None;
        for row in rows {
            match row {
                Ok(b) => ids.push(b),
                Err(e) => {
                    let next = ids.last().map_or(0, |b| b.first_seq + b.records);
                    rest = Some(BlockError {
                        block_id: None,
                        first_seq: next,
                        records: 0,
                        first_ts_ns: ids.last().and_then(|b| b.last_ts_ns),
                        last_ts_ns: None,
                        why: format!("the blocks after record {next} cannot be listed: {e}"),
                    });
                    break;
                }
            }
        }
        Ok(BlockIter {
            reader: self,
            ids: ids.into_iter(),
            rest,
        })
    }

    /// Total raw bytes of all blocks: the work a full read does (for progress bars).
    pub fn raw_bytes(&self) -> Result<u64, CaptureError> {
        self.scalar("SELECT COALESCE(SUM(raw_bytes), 0) FROM blocks")
    }

    fn scalar(&self, sql: &str) -> Result<u64, CaptureError> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .map_err(|e| self.damaged(e))
    }

    pub fn processes(&self) -> Result<Vec<ProcessRow>, CaptureError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT pid, seen_ts_ns, comm, exe, cmdline, ppid, uid, start_time_ns
                 FROM processes ORDER BY seen_ts_ns, pid",
            )
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ProcessRow {
                    pid: r.get(0)?,
                    seen_ts_ns: r.get::<_, i64>(1)? as u64,
                    comm: r.get(2)?,
                    exe: r.get(3)?,
                    cmdline: r.get(4)?,
                    ppid: r.get(5)?,
                    uid: r.get(6)?,
                    start_time_ns: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                    cgroup: None,
                    container_id: None,
                })
            })
            .map_err(|e| self.damaged(e))?;
        let mut rows: Vec<ProcessRow> = rows
            .collect::<Result<_, _>>()
            .map_err(|e| self.damaged(e))?;
        self.read_cgroups(&mut rows)?;
        Ok(rows)
    }

    pub fn drops(&self) -> Result<Vec<DropRow>, CaptureError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT start_ktime_ns, end_ktime_ns, {}, user_lost FROM drops ORDER BY start_ktime_ns",
                counter::NAMES.join(", ")
            ))
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| {
                let mut counts = [0u64; counter::COUNT];
                for (i, c) in counts.iter_mut().enumerate() {
                    *c = r.get::<_, i64>(2 + i)? as u64;
                }
                Ok(DropRow {
                    start_ktime_ns: r.get::<_, i64>(0)? as u64,
                    end_ktime_ns: r.get::<_, i64>(1)? as u64,
                    counts,
                    user_lost: r.get::<_, i64>(2 + counter::COUNT)? as u64,
                })
            })
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.damaged(e))
    }

    pub fn streams(&self) -> Result<Vec<StreamInfo>, CaptureError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT stream_id, pid, fd, fd_kind, tls, ssl, ino, peer_ino, direction, laddr, lport,
                        raddr, rport, first_ts_ns, last_ts_ns, events, bytes
                 FROM streams ORDER BY stream_id",
            )
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StreamInfo {
                    stream_id: r.get(0)?,
                    pid: r.get(1)?,
                    fd: r.get(2)?,
                    fd_kind: r.get(3)?,
                    tls: r.get(4)?,
                    ssl: r.get::<_, i64>(5)? as u64,
                    ino: r.get::<_, i64>(6)? as u64,
                    peer_ino: r.get::<_, i64>(7)? as u64,
                    direction: r.get(8)?,
                    laddr: r.get(9)?,
                    lport: r.get(10)?,
                    raddr: r.get(11)?,
                    rport: r.get(12)?,
                    first_ts_ns: r.get::<_, i64>(13)? as u64,
                    last_ts_ns: r.get::<_, i64>(14)? as u64,
                    events: r.get::<_, i64>(15)? as u64,
                    bytes: r.get::<_, i64>(16)? as u64,
                })
            })
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.damaged(e))
    }

    /// Counts for `info`.
    pub fn totals(&self) -> Result<Totals, CaptureError> {
        let (blocks, records, raw, compressed): (i64, i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(records), 0), COALESCE(SUM(raw_bytes), 0),
                        COALESCE(SUM(length(data)), 0) FROM blocks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| self.damaged(e))?;
        let (events, payload, first, last): (i64, i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(events), 0), COALESCE(SUM(bytes), 0),
                        MIN(first_ts_ns), MAX(last_ts_ns) FROM streams",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| self.damaged(e))?;
        let block_span: (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT MIN(first_ts_ns), MAX(last_ts_ns) FROM blocks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.damaged(e))?;
        let file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(Totals {
            blocks: blocks as u64,
            records: records as u64,
            data_events: events as u64,
            payload_bytes: payload as u64,
            raw_bytes: raw as u64,
            compressed_bytes: compressed as u64,
            file_bytes,
            first_ts_ns: block_span.0.or(first).map(|v| v as u64),
            last_ts_ns: block_span.1.or(last).map(|v| v as u64),
            streams: self.scalar("SELECT COUNT(*) FROM streams")?,
            processes: self.scalar("SELECT COUNT(DISTINCT pid) FROM processes")?,
        })
    }

    /// The block that holds record `seq`, if any.
    pub fn block_of(&self, seq: u64) -> Result<Option<i64>, CaptureError> {
        self.conn
            .query_row(
                "SELECT block_id FROM blocks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1",
                params![seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.damaged(e))
    }
}

/// Counts over the whole file.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub blocks: u64,
    pub records: u64,
    pub data_events: u64,
    pub payload_bytes: u64,
    /// Records as stored, before compression.
    pub raw_bytes: u64,
    /// Blocks after compression.
    pub compressed_bytes: u64,
    pub file_bytes: u64,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
    pub streams: u64,
    pub processes: u64,
}

/// Blocks in record order; reads and decompresses one block per step
/// (or only reads it: [`BlockIter::next_stored`]).
pub struct BlockIter<'r> {
    reader: &'r CaptureReader,
    ids: std::vec::IntoIter<BlockRef>,
    /// The blocks table could not be read to its end.
    rest: Option<BlockError>,
}

/// A block's row, but its data.
struct BlockRef {
    block_id: i64,
    first_seq: u64,
    records: u64,
    raw_bytes: u64,
    first_ts_ns: Option<u64>,
    last_ts_ns: Option<u64>,
}

/// Decompressed blocks above this size are refused: no real block comes near it.
const MAX_BLOCK_RAW: u64 = 256 << 20;

/// A block as the file stores it, checked against the seal when there is
/// one, not yet decompressed.
pub struct StoredBlock {
    pub block_id: i64,
    first_seq: u64,
    records: u64,
    raw_bytes: u64,
    first_ts_ns: Option<u64>,
    last_ts_ns: Option<u64>,
    /// The compressed bytes.
    pub stored: Vec<u8>,
}

impl StoredBlock {
    fn error(&self, why: String) -> BlockError {
        BlockError {
            block_id: Some(self.block_id),
            first_seq: self.first_seq,
            records: self.records,
            first_ts_ns: self.first_ts_ns,
            last_ts_ns: self.last_ts_ns,
            why,
        }
    }

    /// Decompresses it.
    pub fn open(self) -> Result<Block, BlockError> {
        match zstd::bulk::decompress(&self.stored, self.raw_bytes as usize) {
            Ok(raw) if raw.len() as u64 == self.raw_bytes => Ok(Block {
                block_id: self.block_id,
                first_seq: self.first_seq,
                first_ts_ns: self.first_ts_ns,
                data: raw,
                stored: self.stored,
            }),
            Ok(raw) => Err(self.error(format!(
                "decompressed to {} bytes, expected {}",
                raw.len(),
                self.raw_bytes
            ))),
            Err(e) => Err(self.error(format!("zstd: {e}"))),
        }
    }
}

impl BlockIter<'_> {
    /// The next block as stored (read, and checked against the seal).
    pub fn next_stored(&mut self) -> Option<Result<StoredBlock, BlockError>> {
        let Some(b) = self.ids.next() else {
            return self.rest.take().map(Err);
        };
        let BlockRef {
            block_id,
            first_seq,
            records,
            raw_bytes,
            first_ts_ns,
            last_ts_ns,
        } = b;
        let mut block = StoredBlock {
            block_id,
            first_seq,
            records,
            raw_bytes,
            first_ts_ns,
            last_ts_ns,
            stored: Vec::new(),
        };
        if raw_bytes > MAX_BLOCK_RAW {
            return Some(Err(block.error(format!("declares {raw_bytes} raw bytes"))));
        }
        block.stored = match self.reader.conn.query_row(
            "SELECT data FROM blocks WHERE block_id = ?1",
            params![block_id],
            |r| r.get(0),
        ) {
            Ok(d) => d,
            Err(e) => return Some(Err(block.error(e.to_string()))),
        };
        if let Some(guard) = self.reader.guard.borrow_mut().as_mut() {
            guard.check(
                &self.reader.conn,
                block_id,
                first_seq,
                records,
                raw_bytes,
                &block.stored,
            );
        }
        Some(Ok(block))
    }
}

impl Iterator for BlockIter<'_> {
    type Item = Result<Block, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_stored().map(|b| b.and_then(StoredBlock::open))
    }
}
