//! Building an index: a sink that stores every item of one full decode.

use super::codec::{put_item, Peers, TextAt};
use super::sessions::{put_session, same_identity};
use super::{fail, IndexError, Key, APPLICATION_ID, CHUNK_BYTES, FORMAT, SCHEMA};
use crate::query::{Flow, Item, SessionSummary, Sink};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Writes an index from the items of one full decode, in output order. It
/// is written beside its destination and put in place by [`Builder::install`].
pub struct Builder {
    conn: Connection,
    file: tempfile::NamedTempFile,
    dest: PathBuf,
    key: Key,
    texts: Vec<u8>,
    chunk: u64,
    rec: Vec<u8>,
    peers: Peers,
    /// The latest identity stored for each session (by id), and its version.
    versions: HashMap<u64, (u64, SessionSummary)>,
    version_count: u64,
    names: HashMap<Box<str>, i64>,
    items: u64,
    finished: bool,
    /// What the decode that built it found wrong with the capture's seal.
    seal_alarm: Option<String>,
    /// Pieces of damage to the capture among the items.
    damage: u64,
}

impl Builder {
    /// An index of the capture `key` names, to replace whatever is at `dest`.
    pub fn create(dest: &Path, key: Key) -> Result<Builder, IndexError> {
        let dir = dest.parent().ok_or_else(|| fail("no folder"))?;
        let file = tempfile::Builder::new()
            .prefix(".building-")
            .suffix(".index")
            .tempfile_in(dir)
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let conn = Connection::open(file.path())?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 16384;",
        )?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch("BEGIN")?;
        Ok(Builder {
            conn,
            file,
            dest: dest.to_path_buf(),
            key,
            texts: Vec::new(),
            chunk: 0,
            rec: Vec::new(),
            peers: Peers::default(),
            versions: HashMap::new(),
            version_count: 0,
            names: HashMap::new(),
            items: 0,
            finished: false,
            seal_alarm: None,
            damage: 0,
        })
    }

    fn add(&mut self, item: &Item<'_>) -> Result<(), IndexError> {
        self.damage += u64::from(item.kind.is_damage());
        let at = TextAt {
            chunk: self.chunk,
            off: self.texts.len() as u64,
            len: item.text.len() as u64,
        };
        self.texts.extend_from_slice(item.text);
        let version = match item.session {
            Some(s) => self.session_version(s)?,
            None => 0,
        };
        put_item(item, at, version, &mut self.peers, &mut self.rec)?;
        self.store_peers()?;
        let method = self.name(item.kind.method())?;
        let subject = self.name(item.kind.subject())?;
        self.conn
            .prepare_cached(
                "INSERT INTO items (n, ts_ns, method, subject, session, answers, rec)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                item.n as i64,
                item.ts_ns as i64,
                method,
                subject,
                item.session.map(|s| s.id as i64),
                item.kind.answers().map(|a| a.n as i64),
                &self.rec,
            ])?;
        self.items += 1;
        if self.texts.len() >= CHUNK_BYTES {
            self.flush_texts()?;
        }
        Ok(())
    }

    /// The version of the session's identity this item sees (stored when new).
    fn session_version(&mut self, s: &SessionSummary) -> Result<u64, IndexError> {
        if let Some((v, last)) = self.versions.get(&s.id) {
            if same_identity(last, s) {
                return Ok(*v);
            }
        }
        let version = self.version_count;
        self.version_count += 1;
        put_session(s, &mut self.peers, &mut self.rec)?;
        self.store_peers()?;
        self.conn.execute(
            "INSERT INTO session_versions (version, rec) VALUES (?1, ?2)",
            params![version as i64, &self.rec],
        )?;
        self.versions.insert(s.id, (version, s.clone()));
        Ok(version)
    }

    /// The number of a method or subject (stored when new).
    fn name(&mut self, name: Option<&str>) -> Result<Option<i64>, IndexError> {
        let Some(name) = name else {
            return Ok(None);
        };
        if let Some(&id) = self.names.get(name) {
            return Ok(Some(id));
        }
        let id = self.names.len() as i64;
        self.conn.execute(
            "INSERT INTO names (id, name) VALUES (?1, ?2)",
            params![id, name],
        )?;
        self.names.insert(name.into(), id);
        Ok(Some(id))
    }

    /// Stores the processes the last record numbered.
    fn store_peers(&mut self) -> Result<(), IndexError> {
        let first = self.peers.count() - self.peers.fresh.len();
        for (i, p) in self.peers.fresh.drain(..).enumerate() {
            self.conn.execute(
                "INSERT INTO peers (id, pid, comm) VALUES (?1, ?2, ?3)",
                params![(first + i) as i64, p.pid, &p.comm[..]],
            )?;
        }
        Ok(())
    }

    fn flush_texts(&mut self) -> Result<(), IndexError> {
        if self.texts.is_empty() {
            return Ok(());
        }
        let data = zstd::bulk::compress(&self.texts, 1)?;
        self.conn.execute(
            "INSERT INTO texts (chunk, raw_len, data) VALUES (?1, ?2, ?3)",
            params![self.chunk as i64, self.texts.len() as i64, data],
        )?;
        self.chunk += 1;
        self.texts.clear();
        Ok(())
    }

    /// Keeps what the decode found wrong with the capture's seal, so that
    /// later reads of the index say it too.
    pub fn seal_alarm(&mut self, alarm: Option<String>) {
        self.seal_alarm = alarm;
    }

    /// Stores the final sessions and the key, and commits.
    fn complete(&mut self, sessions: &[SessionSummary]) -> Result<(), IndexError> {
        self.flush_texts()?;
        for s in sessions {
            put_session(s, &mut self.peers, &mut self.rec)?;
            self.store_peers()?;
            self.conn.execute(
                "INSERT INTO sessions (id, rec) VALUES (?1, ?2)",
                params![s.id as i64, &self.rec],
            )?;
        }
        let alarm = self
            .seal_alarm
            .clone()
            .into_iter()
            .map(|a| ("seal_alarm", a));
        for (k, v) in [
            ("key", self.key.text.clone()),
            ("items", self.items.to_string()),
            ("damage", self.damage.to_string()),
        ]
        .into_iter()
        .chain(alarm)
        {
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
        }
        self.conn
            .execute_batch("CREATE INDEX items_by_method ON items (method, subject);")?;
        self.conn
            .pragma_update(None, "application_id", APPLICATION_ID)?;
        self.conn.pragma_update(None, "user_version", FORMAT)?;
        self.conn.execute_batch("COMMIT")?;
        self.finished = true;
        Ok(())
    }

    /// Puts the finished index in place (an unfinished one is discarded).
    pub fn install(self) -> Result<(), IndexError> {
        if !self.finished {
            return Err(fail("the decode that builds it did not finish"));
        }
        self.conn.close().map_err(|(_, e)| fail(e))?;
        self.file.as_file().sync_all()?;
        self.file
            .persist(&self.dest)
            .map_err(|e| fail(format!("{}: {}", self.dest.display(), e.error)))?;
        Ok(())
    }
}

impl Sink for Builder {
    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        self.add(item).map_err(io::Error::other)?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        self.complete(sessions).map_err(io::Error::other)
    }
}
