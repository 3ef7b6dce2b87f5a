//! A derived index of a capture's decoded items, so that `query` reads
//! what it selects instead of decoding the whole capture each time.
//!
//! The index is a cache, never evidence. It is one SQLite file in the
//! user's own cache folder (`$XDG_CACHE_HOME/mcpspy`, else
//! `~/.cache/mcpspy`), never beside the capture: the capture's folder is
//! left as it was, and nobody who can write there can plant an index that
//! makes a verified capture say something else. It is keyed to the exact
//! capture (path, device and inode, size, mtime and ctime, block and record
//! counts) and to the exact build of mcpspy that made it (a better decoder
//! gives other items); an index with another key, or one that does not read
//! back cleanly, is rebuilt, never trusted. A build writes a temporary file
//! beside its destination and renames it into place, so concurrent queries
//! see either the old index or the new one, whole.
//!
//! Every field of every [`Item`] is stored, its session as it stood at that
//! item included, so any renderer can run on items read back (a test checks
//! them field by field). The texts (and the raw JSON members, which are
//! slices of them) sit in zstd-compressed chunks, read only for callers that
//! ask for them ([`Index::each`]'s `text`): without them an item's text is
//! empty, its raw members other than the id read `null`, and its size is
//! passed beside it. Console lines, filters and tables need no text.

use crate::capture::{CaptureReader, Totals};
use crate::decode::reassembly::Loss;
use crate::decode::{
    BatchPos, CopyInfo, Direction, Flag, FlagReason, HttpMeta, HttpSession, HttpView,
    Implementation, Item, Kind, Peer, RequestRef, SessionSummary, Transport,
};
use crate::render::filter::Filter;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// 'MCPI': PRAGMA application_id of index files.
const APPLICATION_ID: i32 = 0x4d43_5049;
/// PRAGMA user_version: the layout of this file and of its records.
const FORMAT: i32 = 3;
/// Texts are compressed together in chunks of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Decompressed chunks above this size are refused (a chunk holds one
/// item's text at most once it passes CHUNK_BYTES; the decoder keeps 64 MiB).
const MAX_CHUNK: u64 = 256 << 20;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per item, in output order; the columns are what query selects on.
CREATE TABLE items (
    n INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    method INTEGER,
    subject INTEGER,
    session INTEGER,
    answers INTEGER,
    rec BLOB NOT NULL
);
-- Texts of consecutive items, concatenated and zstd-compressed.
CREATE TABLE texts (chunk INTEGER PRIMARY KEY, raw_len INTEGER NOT NULL, data BLOB NOT NULL);
-- Each session's identity each time it changed (numbered over all
-- sessions, 0, 1, 2…), and its final summary.
CREATE TABLE session_versions (version INTEGER PRIMARY KEY, rec BLOB NOT NULL);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, rec BLOB NOT NULL);
-- The methods and subjects (Kind::method, Kind::subject) items name, by number.
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
-- The processes records name, by number (0, 1, 2… in order of appearance).
CREATE TABLE peers (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, comm BLOB NOT NULL);
";

/// Why an index cannot be used (it is then rebuilt, or skipped).
#[derive(Debug)]
pub struct IndexError(String);

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexError {}

fn fail(why: impl fmt::Display) -> IndexError {
    IndexError(why.to_string())
}

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> Self {
        fail(e)
    }
}

impl From<rusqlite::types::FromSqlError> for IndexError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        fail(e)
    }
}

impl From<std::io::Error> for IndexError {
    fn from(e: std::io::Error) -> Self {
        fail(e)
    }
}

/// What the index answers for: one capture, as it is now, decoded by this
/// build of mcpspy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The capture's canonical path.
    pub capture: PathBuf,
    text: String,
}

impl Key {
    pub fn of(reader: &CaptureReader) -> Result<Key, IndexError> {
        let capture = std::fs::canonicalize(reader.path())?;
        let m = std::fs::metadata(&capture)?;
        let Totals {
            blocks,
            records,
            raw_bytes,
            compressed_bytes,
            ..
        } = reader.totals().map_err(fail)?;
        let text = format!(
            "capture={} dev={} ino={} size={} mtime={}.{:09} ctime={}.{:09} blocks={blocks} \
             records={records} raw_bytes={raw_bytes} compressed_bytes={compressed_bytes}; {}",
            capture.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            decoder_identity()
        );
        Ok(Key { capture, text })
    }
}

/// This build of mcpspy: its version and its executable's identity, so that
/// a rebuilt or upgraded decoder never reads an index an older one made.
fn decoder_identity() -> String {
    let exe = std::env::current_exe().and_then(std::fs::metadata);
    match exe {
        Ok(m) => format!(
            "mcpspy {} index {FORMAT} exe ino={} size={} mtime={}.{:09}",
            env!("CARGO_PKG_VERSION"),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        // Unknown build: a key that matches nothing, so nothing is reused.
        Err(e) => format!("mcpspy {} unknown executable ({e})", std::process::id()),
    }
}

/// The user's index folder: $XDG_CACHE_HOME/mcpspy, else ~/.cache/mcpspy.
pub fn cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("mcpspy"))
}

/// Where the index of `capture` (a canonical path) lives in `dir`.
pub fn path_in(dir: &Path, capture: &Path) -> PathBuf {
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let hash = capture
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let name: String = capture
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    dir.join(format!("{name}-{hash:016x}.index"))
}

/// Creates the index folder if needed (mode 0700: indexes show what
/// captures hold), and makes sure that only this user can write in it: an
/// index someone else could have put there is not trusted.
pub fn private_dir(dir: &Path) -> Result<(), IndexError> {
    let failed = |why: String| fail(format!("{}: {why}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(e.to_string()))?;
    let m = std::fs::metadata(dir).map_err(|e| failed(e.to_string()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(failed(format!(
            "owned by uid {} with mode {:o}; indexes are kept only in a folder that this user \
             (uid {me}) alone can write",
            m.uid(),
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Records: a compact, bounds-checked encoding of everything but the columns.

/// The encoder, with the processes met so far: records name them by number.
#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
    peers: HashMap<(u32, [u8; crate::event::COMM_LEN]), u64>,
    /// Processes numbered since the last look (to be stored).
    fresh: Vec<Peer>,
}

impl Enc {
    fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }
    fn flag(&mut self, b: bool) {
        self.buf.push(u8::from(b));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    fn opt<T>(&mut self, v: Option<T>, mut f: impl FnMut(&mut Self, T)) {
        self.flag(v.is_some());
        if let Some(v) = v {
            f(self, v);
        }
    }
    fn opt_str(&mut self, s: Option<&str>) {
        self.opt(s, |e, s| e.bytes(s.as_bytes()));
    }
    fn opt_u(&mut self, v: Option<u64>) {
        self.opt(v, Self::u);
    }
}

struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    peers: &'a [Peer],
}

type R<T> = Result<T, IndexError>;

fn corrupt() -> IndexError {
    fail("a record does not read back")
}

impl<'a> Dec<'a> {
    fn new(buf: &'a [u8], peers: &'a [Peer]) -> Self {
        Dec { buf, pos: 0, peers }
    }
    fn byte(&mut self) -> R<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(corrupt)?;
        self.pos += 1;
        Ok(b)
    }
    fn u(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt())
    }
    fn i(&mut self) -> R<i64> {
        let v = self.u()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    fn u32(&mut self) -> R<u32> {
        u32::try_from(self.u()?).map_err(|_| corrupt())
    }
    fn usize(&mut self) -> R<usize> {
        usize::try_from(self.u()?).map_err(|_| corrupt())
    }
    fn flag(&mut self) -> R<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt()),
        }
    }
    fn bytes(&mut self) -> R<&'a [u8]> {
        let len = self.usize()?;
        let end = self.pos.checked_add(len).ok_or_else(corrupt)?;
        let b = self.buf.get(self.pos..end).ok_or_else(corrupt)?;
        self.pos = end;
        Ok(b)
    }
    fn str(&mut self) -> R<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt())
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.flag()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_str(&mut self) -> R<Option<&'a str>> {
        self.opt(Self::str)
    }
    fn opt_u(&mut self) -> R<Option<u64>> {
        self.opt(Self::u)
    }
    fn end(&self) -> R<()> {
        (self.pos == self.buf.len())
            .then_some(())
            .ok_or_else(corrupt)
    }
}

fn put_peer(e: &mut Enc, p: Option<Peer>) {
    e.opt(p, |e, p| {
        let next = e.peers.len() as u64;
        let id = *e.peers.entry((p.pid, p.comm)).or_insert_with(|| {
            e.fresh.push(p);
            next
        });
        e.u(id);
    });
}

fn get_peer(d: &mut Dec<'_>) -> R<Option<Peer>> {
    d.opt(|d| d.peers.get(d.usize()?).copied().ok_or_else(corrupt))
}

fn put_addr(e: &mut Enc, a: SocketAddr) {
    match a {
        SocketAddr::V4(a) => {
            e.u(4);
            e.bytes(&a.ip().octets());
            e.u(u64::from(a.port()));
        }
        SocketAddr::V6(a) => {
            e.u(6);
            e.bytes(&a.ip().octets());
            e.u(u64::from(a.port()));
            e.u(u64::from(a.flowinfo()));
            e.u(u64::from(a.scope_id()));
        }
    }
}

fn get_addr(d: &mut Dec<'_>) -> R<SocketAddr> {
    let port = |d: &mut Dec<'_>| u16::try_from(d.u()?).map_err(|_| corrupt());
    match d.u()? {
        4 => {
            let ip: [u8; 4] = d.bytes()?.try_into().map_err(|_| corrupt())?;
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(ip),
                port(d)?,
            )))
        }
        6 => {
            let ip: [u8; 16] = d.bytes()?.try_into().map_err(|_| corrupt())?;
            let port = port(d)?;
            let (flow, scope) = (d.u32()?, d.u32()?);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => Err(corrupt()),
    }
}

fn put_transport(e: &mut Enc, t: Option<Transport>) {
    e.opt(t, |e, t| match t {
        Transport::Pipe { ino } => {
            e.u(0);
            e.u(ino);
        }
        Transport::Unix { ino, peer_ino } => {
            e.u(1);
            e.u(ino);
            e.u(peer_ino);
        }
        Transport::Tcp { tls, from, to } => {
            e.u(2);
            e.flag(tls);
            put_addr(e, from);
            put_addr(e, to);
        }
        Transport::Other { ino } => {
            e.u(3);
            e.u(ino);
        }
        Transport::Http {
            tls,
            client,
            server,
        } => {
            e.u(4);
            e.flag(tls);
            e.opt(client, put_addr);
            e.opt(server, put_addr);
        }
    });
}

fn get_transport(d: &mut Dec<'_>) -> R<Option<Transport>> {
    d.opt(|d| {
        Ok(match d.u()? {
            0 => Transport::Pipe { ino: d.u()? },
            1 => Transport::Unix {
                ino: d.u()?,
                peer_ino: d.u()?,
            },
            2 => Transport::Tcp {
                tls: d.flag()?,
                from: get_addr(d)?,
                to: get_addr(d)?,
            },
            3 => Transport::Other { ino: d.u()? },
            4 => Transport::Http {
                tls: d.flag()?,
                client: d.opt(get_addr)?,
                server: d.opt(get_addr)?,
            },
            _ => return Err(corrupt()),
        })
    })
}

/// A request an item refers to. `named`: its method and subject are the
/// item's own columns (a response's are its request's), not stored twice.
fn put_request(e: &mut Enc, r: Option<&RequestRef>, item_ts: u64, named: bool) {
    e.opt(r, |e, r| {
        let RequestRef {
            n,
            id,
            method,
            subject,
            ts_ns,
        } = r;
        e.u(*n);
        e.bytes(id.as_bytes());
        if !named {
            e.bytes(method.as_bytes());
            e.opt_str(subject.as_deref());
        }
        e.i(ts_ns.wrapping_sub(item_ts) as i64);
    });
}

/// Reads a request reference into `slot`, which is kept from item to item:
/// its method and subject repeat, and are then not allocated again.
fn get_request<'r>(
    d: &mut Dec<'_>,
    item_ts: u64,
    names: Option<Names<'_>>,
    slot: &'r mut RequestRef,
) -> R<Option<&'r RequestRef>> {
    if !d.flag()? {
        return Ok(None);
    }
    let (n, id) = (d.u()?, d.str()?);
    let (method, subject) = match names {
        Some(Names { method, subject }) => (method.ok_or_else(corrupt)?, subject),
        None => (d.str()?, d.opt_str()?),
    };
    slot.n = n;
    slot.id = id.into();
    if *slot.method != *method {
        slot.method = method.into();
    }
    if slot.subject.as_deref() != subject {
        slot.subject = subject.map(Into::into);
    }
    slot.ts_ns = item_ts.wrapping_add(d.i()? as u64);
    Ok(Some(slot))
}

/// An item's columns that its record does not repeat.
struct Row<'a> {
    n: u64,
    ts_ns: u64,
    names: Names<'a>,
}

/// An item's `method` and `subject` columns: `Kind::method` and
/// `Kind::subject`.
#[derive(Clone, Copy)]
struct Names<'a> {
    method: Option<&'a str>,
    subject: Option<&'a str>,
}

/// Times are stored relative to the item's, offsets relative to the
/// copy's start and record numbers relative to the previous one: small
/// numbers take a byte or two.
fn put_copy(e: &mut Enc, c: Option<CopyInfo<'_>>, ts_ns: u64) {
    let rel = |v: u64, base: u64| v.wrapping_sub(base) as i64;
    e.opt(c, |e, c| {
        let CopyInfo {
            pid,
            fd,
            start,
            end,
            first_ts,
            last_ts,
            seqs,
        } = c;
        e.u(u64::from(pid));
        e.u(u64::from(fd));
        e.u(start);
        e.i(rel(end, start));
        e.i(rel(first_ts, ts_ns));
        e.i(rel(last_ts, ts_ns));
        e.u(seqs.len() as u64);
        let mut prev = 0;
        for &s in seqs {
            e.i(rel(s, prev));
            prev = s;
        }
    });
}

/// A copy's fields but its records, which go to a buffer kept from item
/// to item (CopyInfo borrows them).
struct CopyFields {
    pid: u32,
    fd: u32,
    start: u64,
    end: u64,
    first_ts: u64,
    last_ts: u64,
}

fn get_copy(d: &mut Dec<'_>, ts_ns: u64, seqs: &mut Vec<u64>) -> R<Option<CopyFields>> {
    let abs = |base: u64, delta: i64| base.wrapping_add(delta as u64);
    d.opt(|d| {
        let (pid, fd, start) = (d.u32()?, d.u32()?, d.u()?);
        let c = CopyFields {
            pid,
            fd,
            start,
            end: abs(start, d.i()?),
            first_ts: abs(ts_ns, d.i()?),
            last_ts: abs(ts_ns, d.i()?),
        };
        let count = d.usize()?;
        // Each record number takes a byte at least: a count beyond the
        // bytes left is damage, not a reason to reserve memory.
        if count > d.buf.len() - d.pos {
            return Err(corrupt());
        }
        seqs.clear();
        let mut prev = 0;
        for _ in 0..count {
            prev = abs(prev, d.i()?);
            seqs.push(prev);
        }
        Ok(c)
    })
}

impl CopyFields {
    fn info<'s>(&self, seqs: &'s [u64]) -> CopyInfo<'s> {
        CopyInfo {
            pid: self.pid,
            fd: self.fd,
            start: self.start,
            end: self.end,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            seqs,
        }
    }
}

fn put_flag_reason(e: &mut Enc, r: FlagReason) {
    let (code, loss) = match r {
        FlagReason::InvalidUtf8 => (0, None),
        FlagReason::InvalidJson => (1, None),
        FlagReason::TooDeep => (2, None),
        FlagReason::NotJsonRpc => (3, None),
        FlagReason::Lost(loss) => (4, Some(loss)),
        FlagReason::Truncated => (5, None),
        FlagReason::TooLong => (6, None),
        FlagReason::Late => (7, None),
        FlagReason::DamagedRecord => (8, None),
        FlagReason::UnreadableBlock => (9, None),
        FlagReason::Unsupported => (10, None),
        FlagReason::BadHttp => (11, None),
        FlagReason::BadEncoding => (12, None),
        FlagReason::HttpError => (13, None),
    };
    e.u(code);
    if let Some(loss) = loss {
        e.u(match loss {
            Loss::Missing => 0,
            Loss::ReadFailed => 1,
            Loss::Truncated => 2,
        });
    }
}

fn get_flag_reason(d: &mut Dec<'_>) -> R<FlagReason> {
    Ok(match d.u()? {
        0 => FlagReason::InvalidUtf8,
        1 => FlagReason::InvalidJson,
        2 => FlagReason::TooDeep,
        3 => FlagReason::NotJsonRpc,
        4 => FlagReason::Lost(match d.u()? {
            0 => Loss::Missing,
            1 => Loss::ReadFailed,
            2 => Loss::Truncated,
            _ => return Err(corrupt()),
        }),
        5 => FlagReason::Truncated,
        6 => FlagReason::TooLong,
        7 => FlagReason::Late,
        8 => FlagReason::DamagedRecord,
        9 => FlagReason::UnreadableBlock,
        10 => FlagReason::Unsupported,
        11 => FlagReason::BadHttp,
        12 => FlagReason::BadEncoding,
        13 => FlagReason::HttpError,
        _ => return Err(corrupt()),
    })
}

fn put_http(e: &mut Enc, h: Option<HttpView<'_>>) {
    e.opt(h, |e, HttpView { connection, meta }| {
        e.u(connection);
        e.opt(meta, |e, m| {
            let HttpMeta {
                is_request,
                method,
                path,
                host,
                status,
                session_id,
                protocol_version,
                sse,
                endpoint,
            } = m;
            e.flag(*is_request);
            for s in [method, path, host] {
                e.opt_str(s.as_deref());
            }
            e.opt_u(status.map(u64::from));
            for s in [session_id, protocol_version] {
                e.opt_str(s.as_deref());
            }
            e.flag(*sse);
            e.opt_str(endpoint.as_deref());
        });
    });
}

/// An item's HTTP view: its connection, and what HTTP said (owned here,
/// the view borrows it).
fn get_http(d: &mut Dec<'_>) -> R<Option<(u64, Option<HttpMeta>)>> {
    let text = |d: &mut Dec<'_>| -> R<Option<Box<str>>> { Ok(d.opt_str()?.map(Box::from)) };
    d.opt(|d| {
        let connection = d.u()?;
        let meta = d.opt(|d| {
            Ok(HttpMeta {
                is_request: d.flag()?,
                method: text(d)?,
                path: text(d)?,
                host: text(d)?,
                status: d
                    .opt_u()?
                    .map(|s| u16::try_from(s).map_err(|_| corrupt()))
                    .transpose()?,
                session_id: text(d)?,
                protocol_version: text(d)?,
                sse: d.flag()?,
                endpoint: text(d)?,
            })
        })?;
        Ok((connection, meta))
    })
}

/// A raw JSON member: where it sits in the item's text, or its own text
/// when it is not a slice of it (a `null` the decoder supplied).
fn put_raw(e: &mut Enc, raw: &RawValue, text: &[u8]) {
    let r = raw.get();
    let off = (r.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    if off <= text.len() && r.len() <= text.len() - off {
        e.u(0);
        e.u(off as u64);
        e.u(r.len() as u64);
    } else {
        e.u(1);
        e.bytes(r.as_bytes());
    }
}

fn put_opt_raw(e: &mut Enc, raw: Option<&RawValue>, text: &[u8]) {
    e.opt(raw, |e, r| put_raw(e, r, text));
}

/// A raw member read back: from the text when it is loaded, else `null`.
fn get_raw<'a>(d: &mut Dec<'a>, text: Option<&'a [u8]>) -> R<&'a RawValue> {
    let slice = match d.u()? {
        0 => {
            let (off, len) = (d.usize()?, d.usize()?);
            let Some(text) = text else {
                return Ok(RawValue::NULL);
            };
            let end = off.checked_add(len).ok_or_else(corrupt)?;
            let bytes = text.get(off..end).ok_or_else(corrupt)?;
            crate::decode::jsonrpc::utf8(bytes).map_err(|_| corrupt())?
        }
        1 => d.str()?,
        _ => return Err(corrupt()),
    };
    serde_json::from_str(slice).map_err(|_| corrupt())
}

fn get_opt_raw<'a>(d: &mut Dec<'a>, text: Option<&'a [u8]>) -> R<Option<&'a RawValue>> {
    d.opt(|d| get_raw(d, text))
}

fn raw_id(s: &str) -> R<&RawValue> {
    serde_json::from_str(s).map_err(|_| corrupt())
}

/// Where an item's text was put: chunk, offset in it, length.
#[derive(Clone, Copy, Debug)]
struct TextAt {
    chunk: u64,
    off: u64,
    len: u64,
}

/// Encodes every field of an item except `n` and `ts_ns` (columns).
/// `version`: of the item's session's identity (see Builder::session_version).
fn put_item(e: &mut Enc, item: &Item<'_>, at: TextAt, version: u64) {
    // Destructured whole: a field added to Item does not compile until it
    // is stored here too.
    let Item {
        n: _,
        ts_ns: _,
        transport,
        http,
        from,
        to,
        session,
        direction,
        kind,
        text,
        batch,
        writer,
        reader,
        copies_differ,
        truncated,
    } = item;
    e.u(at.chunk);
    e.u(at.off);
    e.u(at.len);
    // The session: its identity by version, its counters as they stood.
    e.opt(*session, |e, s| {
        e.u(version);
        for v in [s.messages, s.flagged, s.requests, s.unanswered] {
            e.u(v);
        }
        e.i(s.first_ts.wrapping_sub(item.ts_ns) as i64);
        e.i(s.last_ts.wrapping_sub(item.ts_ns) as i64);
    });
    put_transport(e, *transport);
    put_http(e, *http);
    put_peer(e, *from);
    put_peer(e, *to);
    e.u(match direction {
        None => 0,
        Some(Direction::ClientToServer) => 1,
        Some(Direction::ServerToClient) => 2,
    });
    e.opt(*batch, |e, BatchPos { index, len }| {
        e.u(index as u64);
        e.u(len as u64);
    });
    put_copy(e, *writer, item.ts_ns);
    put_copy(e, *reader, item.ts_ns);
    e.flag(*copies_differ);
    e.flag(*truncated);
    match kind {
        Kind::Request {
            id,
            method,
            params,
            subject,
        } => {
            // The method and subject are the columns.
            let _ = (method, subject);
            e.u(0);
            e.bytes(id.get().as_bytes());
            put_opt_raw(e, *params, text);
        }
        Kind::Notification {
            method,
            params,
            subject,
            refers_to,
        } => {
            let _ = (method, subject);
            e.u(1);
            put_opt_raw(e, *params, text);
            put_request(e, *refers_to, item.ts_ns, false);
        }
        Kind::Response {
            id,
            result,
            answers,
            latency_ns,
            tool_error,
        } => {
            e.u(2);
            e.bytes(id.get().as_bytes());
            put_raw(e, result, text);
            put_request(e, *answers, item.ts_ns, true);
            e.opt_u(*latency_ns);
            e.flag(*tool_error);
        }
        Kind::Error {
            id,
            error,
            code,
            message,
            answers,
            latency_ns,
        } => {
            e.u(3);
            e.opt_str(id.map(RawValue::get));
            put_raw(e, error, text);
            e.opt(*code, Enc::i);
            e.opt_str(message.as_deref());
            put_request(e, *answers, item.ts_ns, true);
            e.opt_u(*latency_ns);
        }
        Kind::Flagged(Flag {
            reason,
            detail,
            len,
        }) => {
            e.u(4);
            put_flag_reason(e, *reason);
            e.bytes(detail.as_bytes());
            e.u(*len);
        }
    }
}

fn put_implementation(e: &mut Enc, i: Option<&Implementation>) {
    e.opt(i, |e, Implementation { name, version }| {
        e.opt_str(name.as_deref());
        e.opt_str(version.as_deref());
    });
}

fn get_implementation(d: &mut Dec<'_>) -> R<Option<Implementation>> {
    d.opt(|d| {
        Ok(Implementation {
            name: d.opt_str()?.map(str::to_string),
            version: d.opt_str()?.map(str::to_string),
        })
    })
}

fn put_session(e: &mut Enc, s: &SessionSummary) {
    let SessionSummary {
        id,
        transport,
        client,
        server,
        ends,
        protocol_version,
        handshake,
        client_info,
        server_info,
        client_capabilities,
        server_capabilities,
        messages,
        flagged,
        requests,
        unanswered,
        first_ts,
        last_ts,
        http,
    } = s;
    e.u(*id);
    put_transport(e, *transport);
    put_peer(e, *client);
    put_peer(e, *server);
    put_peer(e, ends[0]);
    put_peer(e, ends[1]);
    e.opt_str(protocol_version.as_deref());
    e.opt_str(*handshake);
    put_implementation(e, client_info.as_ref());
    put_implementation(e, server_info.as_ref());
    e.opt_str(client_capabilities.as_deref());
    e.opt_str(server_capabilities.as_deref());
    for v in [messages, flagged, requests, unanswered, first_ts, last_ts] {
        e.u(*v);
    }
    e.opt(http.as_ref(), |e, h| {
        let HttpSession {
            session_id,
            host,
            connections,
            deleted,
        } = h;
        e.opt_str(session_id.as_deref());
        e.opt_str(host.as_deref());
        e.u(*connections);
        e.flag(*deleted);
    });
}

/// The decoder names handshakes with string constants.
fn handshake_name(s: &str) -> &'static str {
    match s {
        "initialize" => "initialize",
        "server/discover" => "server/discover",
        // A name this build does not know: kept (sessions are few).
        other => Box::leak(other.to_string().into_boxed_str()),
    }
}

fn get_session(buf: &[u8], peers: &[Peer]) -> R<SessionSummary> {
    let d = &mut Dec::new(buf, peers);
    let s = SessionSummary {
        id: d.u()?,
        transport: get_transport(d)?,
        client: get_peer(d)?,
        server: get_peer(d)?,
        ends: [get_peer(d)?, get_peer(d)?],
        protocol_version: d.opt_str()?.map(str::to_string),
        handshake: d.opt_str()?.map(handshake_name),
        client_info: get_implementation(d)?,
        server_info: get_implementation(d)?,
        client_capabilities: d.opt_str()?.map(str::to_string),
        server_capabilities: d.opt_str()?.map(str::to_string),
        messages: d.u()?,
        flagged: d.u()?,
        requests: d.u()?,
        unanswered: d.u()?,
        first_ts: d.u()?,
        last_ts: d.u()?,
        http: d.opt(|d| {
            Ok(HttpSession {
                session_id: d.opt_str()?.map(str::to_string),
                host: d.opt_str()?.map(str::to_string),
                connections: d.u()?,
                deleted: d.flag()?,
            })
        })?,
    };
    d.end()?;
    Ok(s)
}

/// Everything of a session but its counters and times.
fn same_identity(a: &SessionSummary, b: &SessionSummary) -> bool {
    // Destructured whole: a field added to SessionSummary is compared here too.
    let SessionSummary {
        id,
        transport,
        client,
        server,
        ends,
        protocol_version,
        handshake,
        client_info,
        server_info,
        client_capabilities,
        server_capabilities,
        messages: _,
        flagged: _,
        requests: _,
        unanswered: _,
        first_ts: _,
        last_ts: _,
        http,
    } = a;
    *id == b.id
        && *transport == b.transport
        && *client == b.client
        && *server == b.server
        && *ends == b.ends
        && *protocol_version == b.protocol_version
        && *handshake == b.handshake
        && *client_info == b.client_info
        && *server_info == b.server_info
        && *client_capabilities == b.client_capabilities
        && *server_capabilities == b.server_capabilities
        && *http == b.http
}

// ---------------------------------------------------------------------------
// Building.

/// Writes an index from the items of one full decode, in output order.
pub struct Builder {
    conn: Connection,
    file: tempfile::NamedTempFile,
    dest: PathBuf,
    texts: Vec<u8>,
    chunk: u64,
    rec: Enc,
    /// The latest identity stored for each session, and its version.
    /// The latest identity of each session (by id), and its version.
    versions: HashMap<u64, (u64, SessionSummary)>,
    version_count: u64,
    names: HashMap<Box<str>, i64>,
    items: u64,
}

impl Builder {
    /// An index that will replace whatever is at `dest` when finished.
    pub fn create(dest: &Path) -> Result<Builder, IndexError> {
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
            texts: Vec::new(),
            chunk: 0,
            rec: Enc::default(),
            versions: HashMap::new(),
            version_count: 0,
            names: HashMap::new(),
            items: 0,
        })
    }

    pub fn add(&mut self, item: &Item<'_>) -> Result<(), IndexError> {
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
        self.rec.buf.clear();
        put_item(&mut self.rec, item, at, version);
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
                &self.rec.buf,
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
        let rec = self.session_record(s)?;
        self.conn.execute(
            "INSERT INTO session_versions (version, rec) VALUES (?1, ?2)",
            params![version as i64, rec],
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

    fn session_record(&mut self, s: &SessionSummary) -> Result<Vec<u8>, IndexError> {
        self.rec.buf.clear();
        put_session(&mut self.rec, s);
        self.store_peers()?;
        Ok(self.rec.buf.clone())
    }

    /// Stores the processes the last record numbered.
    fn store_peers(&mut self) -> Result<(), IndexError> {
        let first = self.rec.peers.len() - self.rec.fresh.len();
        for (i, p) in self.rec.fresh.drain(..).enumerate() {
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

    /// Stores the final sessions and the key, and puts the index in place.
    pub fn finish(mut self, key: &Key, sessions: &[SessionSummary]) -> Result<(), IndexError> {
        self.flush_texts()?;
        for s in sessions {
            let rec = self.session_record(s)?;
            self.conn.execute(
                "INSERT INTO sessions (id, rec) VALUES (?1, ?2)",
                params![s.id as i64, rec],
            )?;
        }
        for (k, v) in [("key", key.text.clone()), ("items", self.items.to_string())] {
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
        self.conn.close().map_err(|(_, e)| fail(e))?;
        self.file.as_file().sync_all()?;
        self.file
            .persist(&self.dest)
            .map_err(|e| fail(format!("{}: {}", self.dest.display(), e.error)))?;
        Ok(())
    }
}

/// Removes indexes whose capture is gone, and builds abandoned long ago.
pub fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = std::time::Duration::from_secs(86_400);
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".index") {
            continue;
        }
        let stale = if name.starts_with(".building-") {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > day)
        } else {
            capture_of(&path).is_some_and(|c| !c.exists())
        };
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The capture an index file was built for, if it reads as one.
fn capture_of(index: &Path) -> Option<PathBuf> {
    let conn = Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let key: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'key'", [], |r| r.get(0))
        .ok()?;
    let path = key.strip_prefix("capture=")?.split(" dev=").next()?;
    Some(PathBuf::from(path))
}

// ---------------------------------------------------------------------------
// Reading.

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

/// What reading items keeps from one to the next.
struct Reading {
    /// Each version of each session, its counters set item by item.
    sessions: Vec<SessionSummary>,
    /// The records of the writer's and the reader's copy.
    seqs: [Vec<u64>; 2],
    /// The last chunk of texts read: (chunk, texts).
    chunk: Option<(u64, Vec<u8>)>,
    /// The request the item refers to.
    request: RequestRef,
}

/// Which rows to read: conditions every item the filter keeps meets (the
/// filter itself still decides on each row read).
pub enum Select<'f> {
    /// Items the filter may keep.
    Matches(&'f Filter),
    /// Responses whose requests the filter may keep (its first pass).
    Answers(&'f Filter),
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

    /// The sessions as they stood at the end of the capture.
    pub fn sessions(&self) -> &[SessionSummary] {
        &self.sessions
    }

    /// Calls `f` with each selected item, in output order, and its text's
    /// size. `text`: load the texts (and raw JSON members); flagged items
    /// always have theirs. Stops at the first error `f` returns.
    pub fn each<E: From<IndexError>>(
        &self,
        select: Select<'_>,
        text: bool,
        mut f: impl FnMut(&Item<'_>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
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
        let mut state = Reading {
            sessions: self.versions.clone(),
            seqs: Default::default(),
            chunk: None,
            request: RequestRef {
                n: 0,
                id: "".into(),
                method: "".into(),
                subject: None,
                ts_ns: 0,
            },
        };
        while let Some(row) = rows.next().map_err(IndexError::from)? {
            let columns = || -> R<(Row<'_>, &[u8])> {
                let text = |i: usize| -> R<Option<&str>> {
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
                    names: Names {
                        method: text(2)?,
                        subject: text(3)?,
                    },
                };
                Ok((columns, row.get_ref(4)?.as_blob()?))
            };
            let (columns, rec) = columns()?;
            self.item(columns, rec, text, &mut state, &mut f)?;
        }
        Ok(())
    }

    fn item<E: From<IndexError>>(
        &self,
        Row { n, ts_ns, names }: Row<'_>,
        rec: &[u8],
        want_text: bool,
        state: &mut Reading,
        f: &mut impl FnMut(&Item<'_>, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let Reading {
            sessions,
            seqs,
            chunk,
            request,
        } = state;
        let d = &mut Dec::new(rec, &self.peers);
        let at = TextAt {
            chunk: d.u()?,
            off: d.u()?,
            len: d.u()?,
        };
        let session = match d.opt(Dec::usize)? {
            Some(version) => {
                let s = sessions.get_mut(version).ok_or_else(corrupt)?;
                s.messages = d.u()?;
                s.flagged = d.u()?;
                s.requests = d.u()?;
                s.unanswered = d.u()?;
                s.first_ts = ts_ns.wrapping_add(d.i()? as u64);
                s.last_ts = ts_ns.wrapping_add(d.i()? as u64);
                Some(&*s)
            }
            None => None,
        };
        let transport = get_transport(d)?;
        let http = get_http(d)?;
        let from = get_peer(d)?;
        let to = get_peer(d)?;
        let direction = match d.u()? {
            0 => None,
            1 => Some(Direction::ClientToServer),
            2 => Some(Direction::ServerToClient),
            _ => return Err(corrupt().into()),
        };
        let batch = d.opt(|d| {
            Ok(BatchPos {
                index: d.usize()?,
                len: d.usize()?,
            })
        })?;
        let [writer_seqs, reader_seqs] = seqs;
        let writer = get_copy(d, ts_ns, writer_seqs)?;
        let reader = get_copy(d, ts_ns, reader_seqs)?;
        let copies_differ = d.flag()?;
        let truncated = d.flag()?;
        let tag = d.u()?;
        let text = if want_text || tag == 4 {
            Some(self.text(at, chunk)?)
        } else {
            None
        };
        let method = || names.method.ok_or_else(corrupt);
        let subject = names.subject.map(Cow::Borrowed);
        // The request a response or notification points at lives here.
        let kind = match tag {
            0 => Kind::Request {
                id: raw_id(d.str()?)?,
                method: method()?,
                params: get_opt_raw(d, text)?,
                subject,
            },
            1 => {
                let params = get_opt_raw(d, text)?;
                let request = get_request(d, ts_ns, None, request)?;
                Kind::Notification {
                    method: method()?,
                    params,
                    subject,
                    refers_to: request,
                }
            }
            2 => {
                let id = raw_id(d.str()?)?;
                let result = get_raw(d, text)?;
                let request = get_request(d, ts_ns, Some(names), request)?;
                Kind::Response {
                    id,
                    result,
                    answers: request,
                    latency_ns: d.opt_u()?,
                    tool_error: d.flag()?,
                }
            }
            3 => {
                let id = match d.opt_str()? {
                    Some(s) => Some(raw_id(s)?),
                    None => None,
                };
                let error = get_raw(d, text)?;
                let code = d.opt(Dec::i)?;
                let message = d.opt_str()?.map(Cow::Borrowed);
                let request = get_request(d, ts_ns, Some(names), request)?;
                Kind::Error {
                    id,
                    error,
                    code,
                    message,
                    answers: request,
                    latency_ns: d.opt_u()?,
                }
            }
            4 => Kind::Flagged(Flag {
                reason: get_flag_reason(d)?,
                detail: d.str()?.to_string(),
                len: d.u()?,
            }),
            _ => return Err(corrupt().into()),
        };
        d.end()?;
        // What the columns say is what the record rebuilds.
        if kind.method() != names.method || kind.subject() != names.subject {
            return Err(corrupt().into());
        }
        let item = Item {
            n,
            ts_ns,
            transport,
            http: http.as_ref().map(|(connection, meta)| HttpView {
                connection: *connection,
                meta: meta.as_ref(),
            }),
            from,
            to,
            session,
            direction,
            kind,
            text: text.unwrap_or_default(),
            batch,
            writer: writer.map(|c| c.info(writer_seqs)),
            reader: reader.map(|c| c.info(reader_seqs)),
            copies_differ,
            truncated,
        };
        f(&item, at.len)
    }

    /// An item's text, from its chunk (the last chunk read is kept).
    fn text<'c>(
        &self,
        at: TextAt,
        chunk: &'c mut Option<(u64, Vec<u8>)>,
    ) -> Result<&'c [u8], IndexError> {
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
        let (filter, answers) = match select {
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
        if !filter.methods.is_empty() {
            list(&mut sql, "method", ids(&filter.methods));
        }
        if !filter.tools.is_empty() {
            list(&mut sql, "method", ids(&["tools/call".to_string()]));
            list(&mut sql, "subject", ids(&filter.tools));
        }
        if answers {
            sql.push_str(" AND answers IS NOT NULL");
        } else {
            // A request's response may fall outside these; the first pass
            // sees them all.
            if !filter.sessions.is_empty() {
                let s = filter.sessions.iter().map(|&s| (s as i64).to_string());
                list(&mut sql, "session", s.collect());
            }
            // Timestamps past i64::MAX are stored negative (as they wrap).
            if let Some(t) = filter.since_ns.and_then(|t| i64::try_from(t).ok()) {
                sql.push_str(&format!(" AND (ts_ns >= {t} OR ts_ns < 0)"));
            }
            if let Some(t) = filter.until_ns.and_then(|t| i64::try_from(t).ok()) {
                sql.push_str(&format!(" AND ts_ns BETWEEN 0 AND {t}"));
            }
        }
        sql
    }
}
