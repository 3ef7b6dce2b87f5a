//! The index's item records: a stored mirror of each [`Item`], encoded by
//! serde (postcard). The mirror differs from the item only where storing
//! the item as it is would cost: processes are numbered, times are
//! relative to the item's, record numbers are packed deltas, raw JSON
//! members point into the item's text, and the method and subject live in
//! the row's columns.

use super::{fail, IndexError};
use crate::event::StreamId;
use crate::query::{
    BatchPos, CopyInfo, Direction, Flag, FlagReason, HttpMeta, HttpView, Item, Kind, Peer,
    RequestRef, Round, SessionSummary, Transport, WriterPiece,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

type R<T> = Result<T, IndexError>;

pub(super) fn corrupt() -> IndexError {
    fail("a record does not read back")
}

/// Where an item's text was put: chunk, offset in it, length.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct TextAt {
    pub chunk: u64,
    pub off: u64,
    pub len: u64,
}

/// An item, as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredItem<'a> {
    text: TextAt,
    session: Option<SessionAt>,
    transport: Option<Transport>,
    http: Option<(u64, Option<Box<HttpMeta>>)>,
    from: Option<u32>,
    to: Option<u32>,
    direction: Option<Direction>,
    batch: Option<BatchPos>,
    #[serde(borrow)]
    writer: Option<StoredCopy<'a>>,
    #[serde(borrow)]
    reader: Option<StoredCopy<'a>>,
    copies_differ: bool,
    interleaved: bool,
    truncated: bool,
    #[serde(borrow)]
    kind: StoredKind<'a>,
}

/// A writer's piece of an interleaved line; `peer` numbers the process.
#[derive(Serialize, Deserialize)]
struct StoredPiece {
    peer: u32,
    fd: u32,
    start: u64,
    end: u64,
}

/// The item's session: its identity by version (see Builder), its
/// counters as they stood at the item.
#[derive(Serialize, Deserialize)]
struct SessionAt {
    version: u64,
    messages: u64,
    flagged: u64,
    requests: u64,
    unanswered: u64,
    first_ts: i64,
    last_ts: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredCopy<'a> {
    stream: StreamId,
    fd: u32,
    start: u64,
    /// Relative to `start`, and to the item's time.
    end: i64,
    first_ts: i64,
    last_ts: i64,
    /// The record numbers, each relative to the one before.
    #[serde(borrow)]
    seqs: Packed<'a>,
}

#[derive(Serialize, Deserialize)]
enum StoredKind<'a> {
    Request {
        id: &'a str,
        params: Option<StoredRaw<'a>>,
        round: Option<Round>,
    },
    Notification {
        params: Option<StoredRaw<'a>>,
        #[serde(borrow)]
        refers_to: Option<StoredRequest<'a>>,
    },
    Response {
        id: &'a str,
        result: StoredRaw<'a>,
        #[serde(borrow)]
        answers: Option<StoredRequest<'a>>,
        latency_ns: Option<u64>,
        tool_error: bool,
    },
    Error {
        id: Option<&'a str>,
        error: StoredRaw<'a>,
        code: Option<i64>,
        message: Option<&'a str>,
        #[serde(borrow)]
        answers: Option<StoredRequest<'a>>,
        latency_ns: Option<u64>,
    },
    Flagged {
        reason: FlagReason,
        detail: &'a str,
        len: u64,
        #[serde(borrow)]
        cancels: Option<StoredRequest<'a>>,
        writers: Vec<StoredPiece>,
    },
}

/// A raw JSON member: where it sits in the item's text, or its own text
/// when it is not a slice of it (a `null` the decoder supplied).
#[derive(Clone, Copy, Serialize, Deserialize)]
enum StoredRaw<'a> {
    At { off: u64, len: u64 },
    Own(&'a str),
}

/// The request an item refers to. A response's method and subject are its
/// own columns, so they are stored for notifications only.
#[derive(Serialize, Deserialize)]
struct StoredRequest<'a> {
    n: u64,
    id: &'a str,
    method: Option<&'a str>,
    subject: Option<&'a str>,
    ts: i64,
    round: Option<Round>,
}

/// Bytes written as one length-prefixed run (serde's sequence of u8 would
/// be read back one element at a time, into an allocation).
struct Packed<'a>(&'a [u8]);

impl Serialize for Packed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Packed<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(d).map(Packed)
    }
}

fn rel(v: u64, base: u64) -> i64 {
    v.wrapping_sub(base) as i64
}

fn abs(base: u64, delta: i64) -> u64 {
    base.wrapping_add(delta as u64)
}

/// Numbers the processes records name; the numbers index the `peers` table.
#[derive(Default)]
pub(super) struct Peers {
    ids: HashMap<(u32, [u8; crate::event::COMM_LEN]), u32>,
    /// Processes numbered since the last look (to be stored).
    pub fresh: Vec<Peer>,
}

impl Peers {
    pub fn count(&self) -> usize {
        self.ids.len()
    }

    pub fn id(&mut self, p: Option<Peer>) -> Option<u32> {
        let p = p?;
        let next = self.ids.len() as u32;
        Some(*self.ids.entry((p.pid, p.comm)).or_insert_with(|| {
            self.fresh.push(p);
            next
        }))
    }
}

pub(super) fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> R<()> {
    out.clear();
    postcard::to_extend(value, std::mem::take(out))
        .map(|v| *out = v)
        .map_err(fail)
}

/// Encodes every field of an item but its columns (`n`, `ts_ns`, method
/// and subject) into `out`. `version`: of the item's session's identity.
pub(super) fn put_item<'a>(
    item: &'a Item<'a>,
    at: TextAt,
    version: u64,
    peers: &mut Peers,
    out: &mut Vec<u8>,
) -> R<()> {
    // Destructured whole: a field added to Item does not compile until it
    // is stored here too.
    let Item {
        n: _,
        ts_ns,
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
        interleaved,
        truncated,
    } = item;
    let ts = *ts_ns;
    let pack = |c: &Option<CopyInfo<'_>>| -> R<Vec<u8>> {
        let mut packed = Vec::new();
        let mut prev = 0;
        for &s in c.as_ref().map_or(&[][..], |c| c.seqs) {
            packed = postcard::to_extend(&rel(s, prev), packed).map_err(fail)?;
            prev = s;
        }
        Ok(packed)
    };
    let (writer_seqs, reader_seqs) = (pack(writer)?, pack(reader)?);
    let copy = |c: &Option<CopyInfo<'_>>, seqs| {
        c.map(|c| StoredCopy {
            stream: c.stream,
            fd: c.fd,
            start: c.start,
            end: rel(c.end, c.start),
            first_ts: rel(c.first_ts, ts),
            last_ts: rel(c.last_ts, ts),
            seqs: Packed(seqs),
        })
    };
    let raw = |r: &'a RawValue| stored_raw(r, text);
    let request = |r: &Option<&'a RequestRef>, named: bool| r.map(|r| stored_request(r, named, ts));
    let kind = match kind {
        Kind::Request {
            id, params, round, ..
        } => StoredKind::Request {
            id: id.get(),
            params: params.map(raw),
            round: *round,
        },
        Kind::Notification {
            params, refers_to, ..
        } => StoredKind::Notification {
            params: params.map(raw),
            refers_to: request(refers_to, false),
        },
        Kind::Response {
            id,
            result,
            answers,
            latency_ns,
            tool_error,
        } => StoredKind::Response {
            id: id.get(),
            result: raw(result),
            answers: request(answers, true),
            latency_ns: *latency_ns,
            tool_error: *tool_error,
        },
        Kind::Error {
            id,
            error,
            code,
            message,
            answers,
            latency_ns,
        } => StoredKind::Error {
            id: id.map(RawValue::get),
            error: raw(error),
            code: *code,
            message: message.as_deref(),
            answers: request(answers, true),
            latency_ns: *latency_ns,
        },
        Kind::Flagged(Flag {
            reason,
            detail,
            len,
            cancels,
            writers,
        }) => StoredKind::Flagged {
            reason: *reason,
            detail,
            len: *len,
            cancels: request(&cancels.as_ref(), false),
            writers: writers
                .iter()
                .map(|w| StoredPiece {
                    peer: peers.id(Some(w.peer)).unwrap_or_default(),
                    fd: w.fd,
                    start: w.start,
                    end: w.end,
                })
                .collect(),
        },
    };
    let stored = StoredItem {
        text: at,
        session: session.map(|s| SessionAt {
            version,
            messages: s.messages,
            flagged: s.flagged,
            requests: s.requests,
            unanswered: s.unanswered,
            first_ts: rel(s.first_ts, ts),
            last_ts: rel(s.last_ts, ts),
        }),
        transport: *transport,
        http: http.map(|h| (h.connection, h.meta.map(|m| Box::new(m.clone())))),
        from: peers.id(*from),
        to: peers.id(*to),
        direction: *direction,
        batch: *batch,
        writer: copy(writer, &writer_seqs),
        reader: copy(reader, &reader_seqs),
        copies_differ: *copies_differ,
        interleaved: *interleaved,
        truncated: *truncated,
        kind,
    };
    encode(&stored, out)
}

/// A raw member that is a slice of `text` is stored as its place in it.
fn stored_raw<'t>(raw: &'t RawValue, text: &[u8]) -> StoredRaw<'t> {
    let r = raw.get();
    let off = (r.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    if off <= text.len() && r.len() <= text.len() - off {
        StoredRaw::At {
            off: off as u64,
            len: r.len() as u64,
        }
    } else {
        StoredRaw::Own(r)
    }
}

/// `named`: the method and subject are the item's own columns.
fn stored_request(r: &RequestRef, named: bool, ts: u64) -> StoredRequest<'_> {
    StoredRequest {
        n: r.n,
        id: &r.id,
        method: (!named).then_some(&*r.method),
        subject: if named { None } else { r.subject.as_deref() },
        ts: rel(r.ts_ns, ts),
        round: r.round,
    }
}

/// A raw member read back: from the text when it is loaded, else `null`.
fn raw_member<'t>(r: StoredRaw<'t>, text: Option<&'t [u8]>) -> R<&'t RawValue> {
    let slice = match r {
        StoredRaw::At { off, len } => {
            let Some(text) = text else {
                return Ok(RawValue::NULL);
            };
            let end = off.checked_add(len).ok_or_else(corrupt)?;
            let bytes = text.get(off as usize..end as usize).ok_or_else(corrupt)?;
            std::str::from_utf8(bytes).map_err(|_| corrupt())?
        }
        StoredRaw::Own(s) => s,
    };
    serde_json::from_str(slice).map_err(|_| corrupt())
}

fn raw_id(s: &str) -> R<&RawValue> {
    serde_json::from_str(s).map_err(|_| corrupt())
}

/// An item's columns that its record does not repeat.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    pub n: u64,
    pub ts_ns: u64,
    /// `Kind::method` and `Kind::subject`.
    pub method: Option<&'a str>,
    pub subject: Option<&'a str>,
}

/// What reading items keeps from one to the next, so that an item's
/// borrowed parts need no allocation of their own.
pub(super) struct Reading {
    /// Each version of each session, its counters set item by item.
    pub sessions: Vec<SessionSummary>,
    /// The records of the writer's and the reader's copy.
    pub seqs: [Vec<u64>; 2],
    /// The request the item refers to.
    pub request: RequestRef,
    /// What HTTP said about the item.
    pub http: Option<HttpMeta>,
}

impl Reading {
    pub fn new(sessions: Vec<SessionSummary>) -> Self {
        Reading {
            sessions,
            seqs: Default::default(),
            request: RequestRef {
                n: 0,
                id: "".into(),
                method: "".into(),
                subject: None,
                ts_ns: 0,
                round: None,
            },
            http: None,
        }
    }
}

impl<'a> StoredItem<'a> {
    pub fn read(rec: &'a [u8]) -> R<Self> {
        postcard::from_bytes(rec).map_err(|_| corrupt())
    }

    /// Where its text is.
    pub fn text_at(&self) -> TextAt {
        self.text
    }

    /// Flagged items are shown with their text always.
    pub fn is_flagged(&self) -> bool {
        matches!(self.kind, StoredKind::Flagged { .. })
    }
}

/// Rebuilds an item from its row and stored record, and calls `f` with it.
/// `text`: its text, when loaded (without it, raw members other than the
/// id read `null`).
pub(super) fn get_item<T>(
    row: Row<'_>,
    stored: &StoredItem<'_>,
    text: Option<&[u8]>,
    peers: &[Peer],
    state: &mut Reading,
    f: impl FnOnce(&Item<'_>) -> T,
) -> R<T> {
    let ts = row.ts_ns;
    let Reading {
        sessions,
        seqs,
        request,
        http,
    } = state;
    let session = match &stored.session {
        Some(at) => {
            let s = usize::try_from(at.version)
                .ok()
                .and_then(|v| sessions.get_mut(v))
                .ok_or_else(corrupt)?;
            s.messages = at.messages;
            s.flagged = at.flagged;
            s.requests = at.requests;
            s.unanswered = at.unanswered;
            s.first_ts = abs(ts, at.first_ts);
            s.last_ts = abs(ts, at.last_ts);
            Some(&*s)
        }
        None => None,
    };
    let peer = |id: Option<u32>| -> R<Option<Peer>> {
        id.map(|i| peers.get(i as usize).copied().ok_or_else(corrupt))
            .transpose()
    };
    let [writer_seqs, reader_seqs] = seqs;
    let copy = |c: &Option<StoredCopy<'_>>, into: &mut Vec<u64>| -> R<Option<CopyFields>> {
        let Some(c) = c else { return Ok(None) };
        into.clear();
        let (mut rest, mut prev) = (c.seqs.0, 0u64);
        while !rest.is_empty() {
            let (delta, more) = postcard::take_from_bytes::<i64>(rest).map_err(|_| corrupt())?;
            prev = abs(prev, delta);
            into.push(prev);
            rest = more;
        }
        Ok(Some(CopyFields {
            stream: c.stream,
            fd: c.fd,
            start: c.start,
            end: abs(c.start, c.end),
            first_ts: abs(ts, c.first_ts),
            last_ts: abs(ts, c.last_ts),
        }))
    };
    let writer = copy(&stored.writer, writer_seqs)?;
    let reader = copy(&stored.reader, reader_seqs)?;
    let method = || row.method.ok_or_else(corrupt);
    let subject = row.subject.map(Cow::Borrowed);
    // The request a response or notification points at is kept in `request`.
    let refers = match &stored.kind {
        StoredKind::Notification { refers_to: r, .. }
        | StoredKind::Flagged { cancels: r, .. }
        | StoredKind::Response { answers: r, .. }
        | StoredKind::Error { answers: r, .. } => r.as_ref(),
        _ => None,
    };
    if let Some(r) = refers {
        let (m, s) = match r.method {
            Some(m) => (m, r.subject),
            None => (method()?, row.subject),
        };
        request.n = r.n;
        request.id = r.id.into();
        if *request.method != *m {
            request.method = m.into();
        }
        if request.subject.as_deref() != s {
            request.subject = s.map(Into::into);
        }
        request.ts_ns = abs(ts, r.ts);
        request.round = r.round;
    }
    let refer = refers.is_some().then_some(&*request);
    let raw = |r| raw_member(r, text);
    let kind = match &stored.kind {
        StoredKind::Request { id, params, round } => Kind::Request {
            id: raw_id(id)?,
            method: method()?,
            params: params.map(raw).transpose()?,
            subject,
            round: *round,
        },
        StoredKind::Notification { params, .. } => Kind::Notification {
            method: method()?,
            params: params.map(raw).transpose()?,
            subject,
            refers_to: refer,
        },
        StoredKind::Response {
            id,
            result,
            latency_ns,
            tool_error,
            ..
        } => Kind::Response {
            id: raw_id(id)?,
            result: raw(*result)?,
            answers: refer,
            latency_ns: *latency_ns,
            tool_error: *tool_error,
        },
        StoredKind::Error {
            id,
            error,
            code,
            message,
            latency_ns,
            ..
        } => Kind::Error {
            id: id.map(raw_id).transpose()?,
            error: raw(*error)?,
            code: *code,
            message: message.map(Cow::Borrowed),
            answers: refer,
            latency_ns: *latency_ns,
        },
        StoredKind::Flagged {
            reason,
            detail,
            len,
            writers,
            ..
        } => Kind::Flagged(Flag {
            reason: *reason,
            detail: detail.to_string(),
            len: *len,
            cancels: refer.cloned(),
            writers: writers
                .iter()
                .map(|w| {
                    Ok(WriterPiece {
                        peer: peer(Some(w.peer))?.ok_or_else(corrupt)?,
                        fd: w.fd,
                        start: w.start,
                        end: w.end,
                    })
                })
                .collect::<R<_>>()?,
        }),
    };
    // What the columns say is what the record rebuilds.
    if kind.method() != row.method || kind.subject() != row.subject {
        return Err(corrupt());
    }
    let connection = stored.http.as_ref().map(|(c, _)| *c);
    *http = stored
        .http
        .as_ref()
        .and_then(|(_, meta)| meta.as_deref().cloned());
    let item = Item {
        n: row.n,
        ts_ns: ts,
        transport: stored.transport,
        http: connection.map(|connection| HttpView {
            connection,
            meta: http.as_ref(),
        }),
        from: peer(stored.from)?,
        to: peer(stored.to)?,
        session,
        direction: stored.direction,
        kind,
        text: text.unwrap_or_default(),
        batch: stored.batch,
        writer: writer.map(|c| c.info(writer_seqs)),
        reader: reader.map(|c| c.info(reader_seqs)),
        copies_differ: stored.copies_differ,
        interleaved: stored.interleaved,
        truncated: stored.truncated,
    };
    Ok(f(&item))
}

/// A copy's fields but its records, which go to a buffer kept from item
/// to item (CopyInfo borrows them).
struct CopyFields {
    stream: StreamId,
    fd: u32,
    start: u64,
    end: u64,
    first_ts: u64,
    last_ts: u64,
}

impl CopyFields {
    fn info<'s>(&self, seqs: &'s [u64]) -> CopyInfo<'s> {
        CopyInfo {
            stream: self.stream,
            fd: self.fd,
            start: self.start,
            end: self.end,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            seqs,
        }
    }
}
