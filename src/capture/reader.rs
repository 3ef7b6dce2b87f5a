//! Reading a capture file. Readers never modify it: the connection is read-only.

use super::block::Records;
use super::schema::{self, APPLICATION_ID, MAJOR};
use super::{DropRow, ProcessRow, StreamInfo};
use crate::event::counter;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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
    fn named(self, name: &Path) -> Self {
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
    pub data: Vec<u8>,
}

impl Block {
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.data, self.first_seq)
    }
}

/// A block that could not be read: its records are reported, not skipped silently.
#[derive(Debug, Clone)]
pub struct BlockError {
    pub block_id: i64,
    pub first_seq: u64,
    pub records: u64,
    pub why: String,
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
    conn: Connection,
    path: PathBuf,
    /// What the user named the file, when it is not `path` (standard input).
    name: Option<PathBuf>,
    /// Set when a rolled-back copy is read instead of the file itself.
    _rollback_copy: Option<tempfile::TempDir>,
    pub notes: Vec<String>,
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(CaptureError::NotACapture {
                    path: path.into(),
                    why: "not a regular file".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CaptureError::Missing(path.into()))
            }
            Err(err) => {
                return Err(CaptureError::Io {
                    path: path.into(),
                    err,
                })
            }
        }
        match Self::open_read_only(path) {
            Err(OpenFailure::NeedsRollback) => Self::open_rolled_back_copy(path),
            Err(OpenFailure::Capture(e)) => Err(e),
            Ok(conn) => Ok(CaptureReader {
                conn,
                path: path.into(),
                name: None,
                _rollback_copy: None,
                notes: Vec::new(),
            }),
        }
        .map(CaptureReader::note_features)
    }

    /// Names the optional features the file uses that this build does not
    /// know: they are ignored, and the user is told.
    fn note_features(mut self) -> Self {
        let listed = schema::listed_features(&self.conn);
        match listed.as_deref().map(schema::unknown_features) {
            Some(Ok(unknown)) if !unknown.is_empty() => self.notes.push(format!(
                "{} uses features this mcpspy does not know ({}); they are ignored (a newer mcpspy reads them)",
                self.path.display(),
                unknown.join(", ")
            )),
            Some(Err(why)) => self.notes.push(format!("{}: {why}", self.path.display())),
            _ => {}
        }
        self
    }

    fn open_read_only(path: &Path) -> Result<Connection, OpenFailure> {
        let not_capture = |why: String| {
            OpenFailure::Capture(CaptureError::NotACapture {
                path: path.into(),
                why,
            })
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| not_capture(e.to_string()))?;
        let app_id: i32 = match conn.query_row("PRAGMA application_id", [], |r| r.get(0)) {
            Ok(v) => v,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
            {
                return Err(OpenFailure::NeedsRollback)
            }
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::NotADatabase => {
                return Err(not_capture("not an SQLite database".into()))
            }
            Err(e) => return Err(not_capture(e.to_string())),
        };
        if app_id != APPLICATION_ID {
            return Err(not_capture(format!(
                "SQLite application_id is {app_id:#x}, captures have {APPLICATION_ID:#x}"
            )));
        }
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| not_capture(e.to_string()))?;
        if version != MAJOR {
            return Err(OpenFailure::Capture(CaptureError::UnsupportedVersion {
                path: path.into(),
                version,
            }));
        }
        Ok(conn)
    }

    /// The recorder was killed inside a write: the file has a hot journal.
    /// Roll back a private copy, so that the file itself stays untouched.
    fn open_rolled_back_copy(path: &Path) -> Result<Self, CaptureError> {
        let io = |err: std::io::Error| CaptureError::Io {
            path: path.into(),
            err,
        };
        let dir = tempfile::tempdir().map_err(io)?;
        let copy = dir.path().join("capture.db");
        std::fs::copy(path, &copy).map_err(io)?;
        let journal = PathBuf::from(format!("{}-journal", path.display()));
        std::fs::copy(&journal, dir.path().join("capture.db-journal")).map_err(io)?;
        {
            let rw = Connection::open(&copy).map_err(|e| CaptureError::Damaged {
                path: path.into(),
                why: e.to_string(),
            })?;
            rw.query_row("PRAGMA user_version", [], |r| r.get::<_, i32>(0))
                .map_err(|e| CaptureError::Damaged {
                    path: path.into(),
                    why: format!("rolling back the interrupted write: {e}"),
                })?;
        }
        let conn = Self::open_read_only(&copy).map_err(|f| match f {
            OpenFailure::Capture(e) => e,
            OpenFailure::NeedsRollback => CaptureError::Damaged {
                path: path.into(),
                why: "the interrupted write could not be rolled back".into(),
            },
        })?;
        Ok(CaptureReader {
            conn,
            path: path.into(),
            name: None,
            _rollback_copy: Some(dir),
            notes: vec![format!(
                "{} was left mid-write by an interrupted recording; reading it as of its last commit (the file is unchanged)",
                path.display()
            )],
        })
    }

    /// Opens `path`, a copy of what the user named `name` (standard input):
    /// errors and notes speak of `name`.
    pub fn open_as(path: &Path, name: &Path) -> Result<Self, CaptureError> {
        let mut r = Self::open(path).map_err(|e| e.named(name))?;
        r.name = Some(name.to_path_buf());
        let (real, shown) = (path.display().to_string(), name.display().to_string());
        for note in &mut r.notes {
            *note = note.replace(&real, &shown);
        }
        Ok(r)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as the user named it.
    pub fn name(&self) -> &Path {
        self.name.as_deref().unwrap_or(&self.path)
    }

    fn damaged(&self, e: impl fmt::Display) -> CaptureError {
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

    /// Blocks in record order, one decompressed at a time.
    pub fn blocks(&self, filter: &BlockFilter) -> Result<BlockIter<'_>, CaptureError> {
        let mut ids: Vec<(i64, u64, u64, u64)> = Vec::new();
        let mut sql =
            String::from("SELECT block_id, first_seq, records, raw_bytes FROM blocks b WHERE 1");
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
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(|e| self.damaged(e))?;
        for row in rows {
            ids.push(row.map_err(|e| self.damaged(e))?);
        }
        Ok(BlockIter {
            reader: self,
            ids: ids.into_iter(),
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
                })
            })
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.damaged(e))
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

enum OpenFailure {
    NeedsRollback,
    Capture(CaptureError),
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

/// Blocks in record order; reads and decompresses one block per step.
pub struct BlockIter<'r> {
    reader: &'r CaptureReader,
    ids: std::vec::IntoIter<(i64, u64, u64, u64)>,
}

/// Decompressed blocks above this size are refused: no real block comes near it.
const MAX_BLOCK_RAW: u64 = 256 << 20;

impl Iterator for BlockIter<'_> {
    type Item = Result<Block, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (block_id, first_seq, records, raw_bytes) = self.ids.next()?;
        let fail = |why: String| BlockError {
            block_id,
            first_seq,
            records,
            why,
        };
        if raw_bytes > MAX_BLOCK_RAW {
            return Some(Err(fail(format!("declares {raw_bytes} raw bytes"))));
        }
        let data: Vec<u8> = match self.reader.conn.query_row(
            "SELECT data FROM blocks WHERE block_id = ?1",
            params![block_id],
            |r| r.get(0),
        ) {
            Ok(d) => d,
            Err(e) => return Some(Err(fail(e.to_string()))),
        };
        Some(match zstd::bulk::decompress(&data, raw_bytes as usize) {
            Ok(raw) if raw.len() as u64 == raw_bytes => Ok(Block {
                block_id,
                first_seq,
                data: raw,
            }),
            Ok(raw) => Err(fail(format!(
                "decompressed to {} bytes, expected {raw_bytes}",
                raw.len()
            ))),
            Err(e) => Err(fail(format!("zstd: {e}"))),
        })
    }
}
