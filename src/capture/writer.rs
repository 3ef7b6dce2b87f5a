//! Writing a capture file: the recorder's only way to touch it. The writer
//! is the recorder's [`Store`]; a [`Tap`] sees each record as it is stored.

use super::beside::{remove_orphans, remove_side_files};
use super::block::{self, BlockFacts};
use super::keys::SigningIdentity;
use super::schema;
use super::seal::{BlockRow, Hash};
use super::sealer::{self, Counts, Sealer};
use super::streams::Streams;
use super::{DropRow, ProcessRow};
use crate::event::RawEvent;
use crate::event::{Batch, Recorded, Store, StoreStats};
use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection};
// A fast seeded hash: the block's stream counts are looked up for every record.
use foldhash::{HashMap, HashMapExt};
use std::path::{Path, PathBuf};

/// Raw bytes per block before it is sealed. Larger blocks compress better;
/// smaller ones make time-range reads cheaper. See BENCHMARKS.md.
pub const BLOCK_TARGET: usize = 4 << 20;
const ZSTD_LEVEL: i32 = 3;

/// Sees every record as it is stored, numbered as readers number it, every
/// fact of the `meta` table and every process: the live view of a recording,
/// and what streams it elsewhere.
pub trait Tap: Send {
    fn meta(&mut self, key: &str, value: &str);
    fn record(&mut self, rec: &super::Numbered<'_>);
    fn process(&mut self, row: &ProcessRow) {
        let _ = row;
    }
    /// The recording is over (everything is committed). Returns what the
    /// tap did with it, for the file to keep: each a `meta` key of the
    /// optional feature of the same name (schema/README.md).
    fn finish(&mut self) -> Vec<(&'static str, String)>;
}

/// How a new capture file is made.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Replace an existing file.
    pub force: bool,
    /// Give the file to this (uid, gid): the user who ran sudo.
    pub owner: Option<(u32, u32)>,
}

pub struct CaptureWriter {
    pub(super) conn: Connection,
    path: PathBuf,
    next_seq: u64,
    block_id: Option<i64>,
    block_first_seq: u64,
    block_buf: Vec<u8>,
    block_records: u64,
    /// `tls_keylog` is in `meta.features` already.
    keylog_listed: bool,
    /// `stream_ends` is in `meta.features` already.
    ends_listed: bool,
    block_ts: Option<(u64, u64)>,
    block_streams: HashMap<i64, u64>,
    streams: Streams,
    /// The streams table was given whole ([`Self::give_streams`]): records
    /// are counted in their blocks only.
    streams_given: bool,
    /// The growing block was taken whole ([`Self::take_block`]), and holds
    /// this many raw bytes (its buffer is empty).
    taken_raw: Option<u64>,
    stats: StoreStats,
    tap: Option<Box<dyn Tap>>,
    sealer: Sealer,
}

impl CaptureWriter {
    /// Creates a new capture file, mode 0600. It is built under a
    /// temporary name beside `path` and renamed into place once its schema
    /// is committed, so that `path` is at every moment either absent or a
    /// capture that readers open. An existing file is an error unless `force`.
    pub fn create(path: &Path, opts: &CreateOptions) -> Result<Self> {
        if !opts.force && std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} already exists; choose another name or pass --force to overwrite it",
                path.display()
            );
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        remove_orphans(dir);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".mcpspy-{}-", std::process::id()))
            .suffix(".db.part")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)
            .with_context(|| format!("creating a capture in {}", dir.display()))?;
        let sealer = {
            let conn = Connection::open(tmp.path())
                .with_context(|| format!("opening {}", tmp.path().display()))?;
            conn.execute_batch("PRAGMA journal_mode = DELETE;")?;
            schema::create(&conn)?;
            let sealer = Sealer::start(&conn)?;
            for (k, v) in sealer.meta() {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )?;
            }
            conn.close().map_err(|(_, e)| e)?;
            sealer
        };
        if let Some((uid, gid)) = opts.owner {
            std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid))
                .with_context(|| format!("giving {} to uid {uid}", path.display()))?;
        }
        if opts.force {
            remove_side_files(path)?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("creating {}", path.display()))?;
        } else {
            match tmp.persist_noclobber(path) {
                Ok(_) => {}
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                    "{} already exists; choose another name or pass --force to overwrite it",
                    path.display()
                ),
                Err(e) => {
                    return Err(e.error).with_context(|| format!("creating {}", path.display()))
                }
            }
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = NORMAL;",
        )?;
        conn.execute_batch("BEGIN")?;
        let mut w = CaptureWriter {
            conn,
            path: path.to_path_buf(),
            next_seq: 0,
            block_id: None,
            block_first_seq: 0,
            block_buf: Vec::with_capacity(BLOCK_TARGET + (64 << 10)),
            block_records: 0,
            keylog_listed: false,
            ends_listed: false,
            block_ts: None,
            block_streams: HashMap::new(),
            streams: Streams::default(),
            streams_given: false,
            taken_raw: None,
            stats: StoreStats::default(),
            tap: None,
            sealer,
        };
        w.set_meta("compression", &format!("zstd level {ZSTD_LEVEL}"))?;
        Ok(w)
    }

    /// Signs every commit and the manifest with `signer`, whose public key
    /// the capture names from the start (a killed recording has no manifest).
    pub fn with_signer(mut self, signer: SigningIdentity) -> Result<Self> {
        let public = signer.public_key();
        self.set_meta("signer_public_key", &hex::encode(public))?;
        self.set_meta("signer_fingerprint", &super::keys::fingerprint(&public))?;
        self.sealer.sign_with(signer);
        Ok(self)
    }

    /// Shows every record to `tap` as it is stored.
    /// The tap first sees the facts already in `meta` (the capture's id).
    pub fn with_tap(mut self, mut tap: Box<dyn Tap>) -> Result<Self> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM meta ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (k, v) = row?;
            tap.meta(&k, &v);
        }
        drop(stmt);
        self.tap = Some(tap);
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        if let Some(tap) = self.tap.as_mut() {
            tap.meta(key, value);
        }
        Ok(())
    }

    /// Stores one ring-buffer record given as bytes: a header and exactly
    /// `len` payload bytes.
    pub fn push_event(&mut self, bytes: &[u8]) -> Result<()> {
        let ev = RawEvent::parse(bytes).context("storing a ring-buffer record")?;
        if ev.stored_len() != bytes.len() {
            bail!(
                "record has {} bytes after its payload",
                bytes.len() - ev.stored_len()
            );
        }
        self.store_event(&ev)
    }

    fn store_event(&mut self, ev: &RawEvent<'_>) -> Result<()> {
        if ev.hdr.kind == crate::event::kind::END {
            return self.store_end(ev);
        }
        self.seal_if_full()?;
        let ts = ev.hdr.ts_ns;
        self.block_ts = Some(match self.block_ts {
            None => (ts, ts),
            Some((lo, hi)) => (lo.min(ts), hi.max(ts)),
        });
        if ev.hdr.kind == crate::event::kind::DATA {
            let stream_id = if self.streams_given {
                self.streams
                    .id(&ev.stream_id())
                    .context("a record of a stream the given streams table lacks")?
            } else {
                self.streams.note(ev)
            };
            *self.block_streams.entry(stream_id).or_insert(0) += 1;
            self.stats.payload_bytes += ev.payload.len() as u64;
        }
        block::append_event(&mut self.block_buf, &ev.hdr, ev.payload);
        self.stats.events += 1;
        self.numbered(super::Record::Event(*ev));
        Ok(())
    }

    /// A stream's end (feature `stream_ends`): its own tag, and not a
    /// ring-buffer record of the manifest's count (the kernel counts it
    /// apart, in `meta.stream_ends`).
    fn store_end(&mut self, ev: &RawEvent<'_>) -> Result<()> {
        if !self.ends_listed {
            self.add_feature(super::block::END_FEATURE)?;
            self.ends_listed = true;
        }
        self.seal_if_full()?;
        block::append_event(&mut self.block_buf, &ev.hdr, ev.payload);
        self.numbered(super::Record::End(*ev));
        Ok(())
    }

    fn seal_if_full(&mut self) -> Result<()> {
        if self.block_buf.len() >= BLOCK_TARGET {
            self.seal_block()?;
        }
        Ok(())
    }

    /// Marks that every record submitted before `ts_ns` has been stored.
    pub fn push_tick(&mut self, ts_ns: u64) -> Result<()> {
        self.seal_if_full()?;
        block::append_tick(&mut self.block_buf, ts_ns);
        self.numbered(super::Record::Tick { ts_ns });
        Ok(())
    }

    /// Keeps a line of a TLS key log (feature `tls_keylog`).
    pub fn push_keylog(&mut self, ts_ns: u64, line: &[u8]) -> Result<()> {
        if !self.keylog_listed {
            self.add_feature(super::block::KEYLOG_FEATURE)?;
            self.keylog_listed = true;
        }
        self.seal_if_full()?;
        block::append_keylog(&mut self.block_buf, ts_ns, line);
        self.numbered(super::Record::KeyLog { ts_ns, line });
        Ok(())
    }

    /// Counts the record just appended and shows it to the tap.
    fn numbered(&mut self, record: super::Record<'_>) {
        if let Some(tap) = self.tap.as_mut() {
            tap.record(&super::Numbered {
                seq: self.next_seq,
                record,
            });
        }
        self.block_records += 1;
        self.next_seq += 1;
        self.stats.records += 1;
    }

    pub fn add_process(&mut self, p: &ProcessRow) -> Result<()> {
        if let Some(tap) = self.tap.as_mut() {
            tap.process(p);
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO processes
               (pid, seen_ts_ns, comm, exe, cmdline, ppid, uid, start_time_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                p.pid,
                p.seen_ts_ns as i64,
                p.comm,
                p.exe,
                p.cmdline,
                p.ppid,
                p.uid,
                p.start_time_ns.map(|t| t as i64)
            ],
        )?;
        self.add_process_cgroup(p)
    }

    pub fn add_drops(&mut self, d: &DropRow) -> Result<()> {
        let c = &d.counts;
        self.conn.execute(
            "INSERT INTO drops (start_ktime_ns, end_ktime_ns, events, bytes, ring_full,
               ring_full_bytes, read_failed, map_full, truncated, truncated_bytes, user_lost)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                d.start_ktime_ns as i64,
                d.end_ktime_ns as i64,
                c[0] as i64,
                c[1] as i64,
                c[2] as i64,
                c[3] as i64,
                c[4] as i64,
                c[5] as i64,
                c[6] as i64,
                c[7] as i64,
                d.user_lost as i64
            ],
        )?;
        Ok(())
    }

    /// Writes the growing block and the stream index, and commits: after this
    /// returns, a killed recorder leaves everything so far in the file.
    pub fn commit(&mut self) -> Result<()> {
        self.streams.write(&self.conn)?;
        let growing = self.write_block(None)?.map(|(_, digest)| digest);
        self.checkpoint(growing)?;
        self.conn.execute_batch("COMMIT; BEGIN")?;
        Ok(())
    }

    /// The seal's checkpoint of this commit.
    fn checkpoint(&mut self, growing: Option<Hash>) -> Result<()> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let ktime = crate::event::monotonic_ns();
        self.sealer
            .checkpoint(&self.conn, self.next_seq, growing, ktime, at)?;
        Ok(())
    }

    /// Seals the last block, writes the manifest, commits, and leaves the
    /// file closed and complete.
    pub fn finish(mut self) -> Result<StoreStats> {
        self.streams.write(&self.conn)?;
        self.seal_growing(None)?;
        self.checkpoint(None)?;
        if let Some(mut tap) = self.tap.take() {
            // After a commit: however long the tap takes, the records are
            // safe. What it reports is kept, and sealed, before the manifest.
            self.conn.execute_batch("COMMIT; BEGIN")?;
            let facts = tap.finish();
            if !facts.is_empty() {
                self.keep_facts(&facts)
                    .context("keeping what the live tap did")?;
                self.checkpoint(None)?;
            }
        }
        let counts = Counts {
            records: self.next_seq,
            events: self.stats.events,
            payload_bytes: self.stats.payload_bytes,
        };
        self.sealer.manifest(&self.conn, counts)?;
        self.conn.execute_batch("COMMIT")?;
        self.conn.execute_batch("PRAGMA optimize")?;
        let mut stats = self.stats();
        self.conn
            .close()
            .map_err(|(_, e)| e)
            .context("closing the capture file")?;
        stats.file_bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        Ok(stats)
    }

    /// Records stored so far: the number the next one takes.
    pub fn records(&self) -> u64 {
        self.next_seq
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            streams: self.streams.len() as u64,
            file_bytes: self.file_bytes(),
            ..self.stats
        }
    }

    /// Bytes the file takes now (pages, including free ones).
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Stores `facts` as meta keys, each named among the file's features.
    fn keep_facts(&mut self, facts: &[(&'static str, String)]) -> Result<()> {
        for (key, value) in facts {
            self.set_fact(key, value)?;
        }
        Ok(())
    }

    /// A meta key that is also one of the file's features (a fact a tap
    /// kept, or one a derived capture carries over from its parent).
    pub fn set_fact(&mut self, key: &str, value: &str) -> Result<()> {
        self.add_feature(key)?;
        self.set_meta(key, value)
    }

    /// Names `feature` among the file's features (once).
    pub(super) fn add_feature(&mut self, feature: &str) -> Result<()> {
        let mut features: Vec<String> = match schema::listed_features(&self.conn) {
            Some(l) => serde_json::from_str(&l).context("meta `features`")?,
            None => Vec::new(),
        };
        if features.iter().any(|f| f == feature) {
            return Ok(());
        }
        features.push(feature.to_string());
        self.set_meta(schema::FEATURES_KEY, &serde_json::to_string(&features)?)
    }

    fn seal_block(&mut self) -> Result<()> {
        self.seal_block_as(None)
    }

    /// Ends the growing block here: a derived capture ends its blocks where
    /// its parent's end. When the block holds exactly the parent block's
    /// records (`raw`), and `stored` is one plain zstd frame of them, the
    /// parent's compressed bytes are written as they are instead of
    /// compressing the same bytes again.
    pub fn end_block(&mut self, raw: &[u8], stored: &[u8]) -> Result<()> {
        if self.block_records == 0 {
            return Ok(());
        }
        let same = self.block_buf == raw && one_plain_frame(stored, raw.len());
        self.seal_block_as(same.then_some(stored))
    }

    /// Takes the whole `streams` table, before any record is stored, from
    /// a derivation that knows every kept stream's row beforehand (it keeps
    /// streams whole): records are then counted in their blocks only, and
    /// blocks can be taken whole ([`Self::take_block`]).
    pub fn give_streams(&mut self, streams: Streams) -> Result<()> {
        if self.next_seq != 0 {
            bail!("a streams table is given before any record");
        }
        self.streams = streams;
        self.streams_given = true;
        Ok(())
    }

    /// Stores a parent's block as it is, without reading its records:
    /// `stored` is its compressed bytes, `facts` what its records are
    /// (learned when they were read). Only with a given streams table, and
    /// between blocks; and only when `stored` is one plain zstd frame of
    /// the block's size. False when it cannot: the caller then pushes the
    /// block's records.
    pub fn take_block(&mut self, stored: &[u8], facts: &BlockFacts) -> Result<bool> {
        if !self.streams_given
            || self.tap.is_some()
            || self.block_records != 0
            || facts.records == 0
            || facts.damaged != 0
            || facts.skipped != 0
            || !one_plain_frame(stored, facts.raw_bytes as usize)
        {
            return Ok(false);
        }
        for (key, n) in &facts.streams {
            let id = self
                .streams
                .id(key)
                .context("a block of a stream the given streams table lacks")?;
            *self.block_streams.entry(id).or_insert(0) += n;
        }
        if facts.ends > 0 && !self.ends_listed {
            self.add_feature(super::block::END_FEATURE)?;
            self.ends_listed = true;
        }
        if facts.keylog_lines > 0 && !self.keylog_listed {
            self.add_feature(super::block::KEYLOG_FEATURE)?;
            self.keylog_listed = true;
        }
        self.block_ts = facts.ts;
        self.block_records = facts.records;
        self.taken_raw = Some(facts.raw_bytes);
        self.next_seq += facts.records;
        self.stats.records += facts.records;
        self.stats.events += facts.events;
        self.stats.payload_bytes += facts.payload_bytes;
        self.seal_block_as(Some(stored))?;
        Ok(true)
    }

    fn seal_block_as(&mut self, stored: Option<&[u8]>) -> Result<()> {
        self.streams.write(&self.conn)?;
        self.seal_growing(stored)?;
        self.block_id = None;
        self.block_first_seq = self.next_seq;
        self.block_buf.clear();
        self.taken_raw = None;
        self.block_records = 0;
        self.block_ts = None;
        self.block_streams.clear();
        self.stats.blocks += 1;
        Ok(())
    }

    /// Writes the growing block for the last time, into the seal's chain.
    fn seal_growing(&mut self, stored: Option<&[u8]>) -> Result<()> {
        if let Some((block_id, digest)) = self.write_block(stored)? {
            self.sealer.seal_block(&self.conn, digest, block_id)?;
        }
        Ok(())
    }

    /// Writes the growing block (rewritten in place until it is sealed),
    /// compressed here unless `stored` is its compression already; returns
    /// its id and its digest as written.
    fn write_block(&mut self, stored: Option<&[u8]>) -> Result<Option<(i64, Hash)>> {
        if self.block_records == 0 {
            return Ok(None);
        }
        let raw_bytes = self.taken_raw.unwrap_or(self.block_buf.len() as u64);
        let compressed;
        let data = match stored {
            Some(d) => d,
            None => {
                compressed = zstd::bulk::compress(&self.block_buf, ZSTD_LEVEL)
                    .context("compressing a block")?;
                &compressed
            }
        };
        let (lo, hi) = match self.block_ts {
            Some((lo, hi)) => (Some(lo as i64), Some(hi as i64)),
            None => (None, None),
        };
        // The growing block is rewritten in place until it is sealed.
        self.conn.execute(
            "INSERT INTO blocks (block_id, first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (block_id) DO UPDATE SET records = excluded.records,
               first_ts_ns = excluded.first_ts_ns, last_ts_ns = excluded.last_ts_ns,
               raw_bytes = excluded.raw_bytes, data = excluded.data",
            params![
                self.block_id,
                self.block_first_seq as i64,
                self.block_records as i64,
                lo,
                hi,
                raw_bytes as i64,
                data
            ],
        )?;
        let block_id = *self
            .block_id
            .get_or_insert_with(|| self.conn.last_insert_rowid());
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO block_streams (block_id, stream_id, records) VALUES (?1, ?2, ?3)
             ON CONFLICT (stream_id, block_id) DO UPDATE SET records = excluded.records",
        )?;
        for (stream_id, n) in &self.block_streams {
            stmt.execute(params![block_id, stream_id, *n as i64])?;
        }
        let row = BlockRow {
            block_id,
            first_seq: self.block_first_seq as i64,
            records: self.block_records as i64,
            first_ts_ns: lo,
            last_ts_ns: hi,
            raw_bytes: raw_bytes as i64,
            data,
        };
        Ok(Some((
            block_id,
            sealer::block_digest(&row, &self.block_streams),
        )))
    }
}

/// Whether `stored` is one zstd frame that says it holds `len` bytes and
/// nothing else: no skippable frame, second frame, trailing bytes or
/// dictionary, which would ride along unseen into a derived capture (and
/// under its seal) though they decompress to the same records.
fn one_plain_frame(stored: &[u8], len: usize) -> bool {
    use zstd::zstd_safe;
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    stored.starts_with(&MAGIC)
        && zstd_safe::find_frame_compressed_size(stored) == Ok(stored.len())
        && zstd_safe::get_frame_content_size(stored).ok().flatten() == Some(len as u64)
        && zstd_safe::get_dict_id_from_frame(stored).is_none()
}

impl Store for CaptureWriter {
    fn meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_meta(key, value)
    }

    fn records(&mut self, batch: &Batch) -> Result<()> {
        for rec in batch.iter() {
            match rec {
                Recorded::Event(ev) => self.store_event(&ev)?,
                Recorded::Tick { ts_ns } => self.push_tick(ts_ns)?,
                Recorded::KeyLog { ts_ns, line } => self.push_keylog(ts_ns, line)?,
            }
        }
        Ok(())
    }

    fn process(&mut self, row: &ProcessRow) -> Result<()> {
        self.add_process(row)
    }

    fn drops(&mut self, row: &DropRow) -> Result<()> {
        self.add_drops(row)
    }

    fn commit(&mut self) -> Result<()> {
        CaptureWriter::commit(self)
    }

    fn stats(&self) -> StoreStats {
        CaptureWriter::stats(self)
    }

    fn finish(self: Box<Self>) -> Result<StoreStats> {
        CaptureWriter::finish(*self)
    }

    fn discard(self: Box<Self>) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}
