//! Reading an index: the items a selection may keep, in output order.

use super::codec::{corrupt, get_item, Reading, Row, StoredItem, TextAt};
use super::sessions::get_session;
use super::{fail, IndexError, Key, APPLICATION_ID, FORMAT, MAX_CHUNK};
use crate::query::{Flow, Item, Peer, Selection, SessionSummary};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// An index that matches its capture.
pub struct Index {
    conn: Connection,
    /// Methods and subjects, by number.
    names: Vec<String>,
    peers: Vec<Peer>,
    sessions: Vec<SessionSummary>,
    /// Sessions' identities, by version.
    versions: Vec<SessionSummary>,
}

/// Which rows to read: conditions every item the selection keeps meets (the
/// selection itself still decides on each row read).
pub enum Select<'f> {
    /// Items the selection may keep.
    Matches(&'f Selection),
    /// Responses whose requests the selection may keep (its first pass).
    Answers(&'f Selection),
}

impl Index {
    /// Opens the index at `path` if it exists and answers for `key`.
    pub fn open(path: &Path, key: &Key) -> Result<Index, IndexError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let format: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if (app, format) != (APPLICATION_ID, FORMAT) {
            return Err(fail("not an index of this format"));
        }
        let meta = |k: &str| -> Result<Option<String>, IndexError> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        if meta("key")?.as_deref() != Some(key.text.as_str()) {
            return Err(fail(
                "made for another state of the capture, or another mcpspy",
            ));
        }
        // Items are numbered 1, 2, 3…: the last number is the count.
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(n), 0) FROM items", [], |r| r.get(0))?;
        if meta("items")? != Some(last.to_string()) {
            return Err(fail("its item count does not match"));
        }
        let mut names = Vec::new();
        let mut peers = Vec::new();
        let mut sessions = Vec::new();
        let mut versions = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT id, name FROM names ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, i64>(0)? != names.len() as i64 {
                    return Err(corrupt());
                }
                names.push(row.get(1)?);
            }
            let mut stmt = conn.prepare("SELECT id, pid, comm FROM peers ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, i64>(0)? != peers.len() as i64 {
                    return Err(corrupt());
                }
                let comm = row
                    .get_ref(2)?
                    .as_blob()?
                    .try_into()
                    .map_err(|_| corrupt())?;
                peers.push(Peer {
                    pid: row.get(1)?,
                    comm,
                });
            }
            let mut stmt = conn.prepare("SELECT rec FROM sessions ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                sessions.push(get_session(row.get_ref(0)?.as_blob()?, &peers)?);
            }
            let mut stmt =
                conn.prepare("SELECT version, rec FROM session_versions ORDER BY version")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, i64>(0)? != versions.len() as i64 {
                    return Err(corrupt());
                }
                versions.push(get_session(row.get_ref(1)?.as_blob()?, &peers)?);
            }
        }
        Ok(Index {
            conn,
            names,
            peers,
            sessions,
            versions,
        })
    }

    /// What the decode that built the index found wrong with the seal.
    pub fn seal_alarm(&self) -> Option<String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'seal_alarm'", [], |r| {
                r.get(0)
            })
            .ok()
    }

    /// Pieces of damage to the capture among the items.
    pub fn damage(&self) -> u64 {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'damage'", [], |r| {
                r.get::<_, String>(0)
            })
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The sessions as they stood at the end of the capture.
    pub fn sessions(&self) -> &[SessionSummary] {
        &self.sessions
    }

    /// Calls `f` with each selected item, in output order, and its text's
    /// size. `text`: load the texts (and raw JSON members); flagged items
    /// always have theirs. Stops at the first error `f` returns, or when it
    /// says stop.
    pub fn each<E: From<IndexError>>(
        &self,
        select: Select<'_>,
        text: bool,
        mut f: impl FnMut(&Item<'_>, u64) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        let conds = self.conditions(&select);
        // Through the method index when it narrows much, else one pass in
        // item order (reading most rows through an index costs a sort).
        let narrows = conds.contains("method") && {
            let count = |sql: &str| -> Result<i64, IndexError> {
                Ok(self
                    .conn
                    .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
                    .unwrap_or(0))
            };
            // Counted up to a quarter of the items only.
            let quarter = count("SELECT MAX(n) FROM items")? / 4 + 1;
            let sql =
                format!("SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE {conds} LIMIT {quarter})");
            count(&sql)? < quarter
        };
        let conds = if narrows {
            conds
        } else {
            conds.replace("method", "+method")
        };
        let sql =
            format!("SELECT n, ts_ns, method, subject, rec FROM items WHERE {conds} ORDER BY n");
        let mut stmt = self.conn.prepare(&sql).map_err(IndexError::from)?;
        let mut rows = stmt.query([]).map_err(IndexError::from)?;
        let mut state = Reading::new(self.versions.clone());
        let mut chunk = None;
        while let Some(row) = rows.next().map_err(IndexError::from)? {
            let columns = || -> Result<(Row<'_>, &[u8]), IndexError> {
                let name = |i: usize| -> Result<Option<&str>, IndexError> {
                    match row.get::<_, Option<i64>>(i)? {
                        Some(id) => {
                            let id = usize::try_from(id).map_err(|_| corrupt())?;
                            Ok(Some(self.names.get(id).ok_or_else(corrupt)?))
                        }
                        None => Ok(None),
                    }
                };
                let columns = Row {
                    n: row.get::<_, i64>(0)? as u64,
                    ts_ns: row.get::<_, i64>(1)? as u64,
                    method: name(2)?,
                    subject: name(3)?,
                };
                Ok((columns, row.get_ref(4)?.as_blob()?))
            };
            let (columns, rec) = columns()?;
            let stored = StoredItem::read(rec)?;
            let at = stored.text_at();
            let loaded = if text || stored.is_flagged() {
                Some(self.text(at, &mut chunk)?)
            } else {
                None
            };
            let flow = get_item(columns, &stored, loaded, &self.peers, &mut state, |item| {
                f(item, at.len)
            })??;
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// An item's text, from its chunk (the last chunk read is kept).
    fn text<'c>(
        &self,
        at: TextAt,
        chunk: &'c mut Option<(u64, Vec<u8>)>,
    ) -> Result<&'c [u8], IndexError> {
        // An empty text (an unreadable block's item) may name a chunk that
        // was never written: the writer stores no empty chunk.
        if at.len == 0 {
            return Ok(&[]);
        }
        if chunk.as_ref().is_none_or(|(id, _)| *id != at.chunk) {
            let (raw_len, data): (i64, Vec<u8>) = self
                .conn
                .query_row(
                    "SELECT raw_len, data FROM texts WHERE chunk = ?1",
                    [at.chunk as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(corrupt)?;
            let raw_len = u64::try_from(raw_len).map_err(|_| corrupt())?;
            if raw_len > MAX_CHUNK {
                return Err(corrupt());
            }
            let raw = zstd::bulk::decompress(&data, raw_len as usize).map_err(|_| corrupt())?;
            *chunk = Some((at.chunk, raw));
        }
        let (_, raw) = chunk.as_ref().ok_or_else(corrupt)?;
        let end = at.off.checked_add(at.len).ok_or_else(corrupt)?;
        raw.get(at.off as usize..end as usize).ok_or_else(corrupt)
    }
}

impl Index {
    /// The WHERE clause of a selection: necessary conditions only.
    fn conditions(&self, select: &Select<'_>) -> String {
        let (sel, answers) = match select {
            Select::Matches(f) => (*f, false),
            Select::Answers(f) => (*f, true),
        };
        let mut sql = String::from("1");
        let list = |sql: &mut String, column: &str, ids: Vec<String>| {
            sql.push_str(&format!(" AND {column} IN ({})", ids.join(",")));
        };
        // Names the index has never seen match nothing.
        let ids = |wanted: &[String]| -> Vec<String> {
            wanted
                .iter()
                .filter_map(|w| self.names.iter().position(|n| n == w))
                .map(|id| id.to_string())
                .collect()
        };
        // A response's method and tool are its request's: both passes may
        // narrow by them.
        if !sel.methods.is_empty() {
            list(&mut sql, "method", ids(&sel.methods));
        }
        if !sel.tools.is_empty() {
            list(&mut sql, "method", ids(&["tools/call".to_string()]));
            list(&mut sql, "subject", ids(&sel.tools));
        }
        let numbers = |v: &[u64]| v.iter().map(|&n| (n as i64).to_string()).collect();
        if !sel.answering.is_empty() {
            list(&mut sql, "answers", numbers(&sel.answering));
        }
        if answers {
            sql.push_str(" AND answers IS NOT NULL");
        } else {
            // A request's response may fall outside these; the first pass
            // sees them all.
            if !sel.items.is_empty() {
                list(&mut sql, "n", numbers(&sel.items));
            }
            if !sel.sessions.is_empty() {
                let s = sel.sessions.iter().map(|&s| (s as i64).to_string());
                list(&mut sql, "session", s.collect());
            }
            // Timestamps past i64::MAX are stored negative (as they wrap).
            if let Some(t) = sel.since_ns.and_then(|t| i64::try_from(t).ok()) {
                sql.push_str(&format!(" AND (ts_ns >= {t} OR ts_ns < 0)"));
            }
            if let Some(t) = sel.until_ns.and_then(|t| i64::try_from(t).ok()) {
                sql.push_str(&format!(" AND ts_ns BETWEEN 0 AND {t}"));
            }
        }
        sql
    }
}
