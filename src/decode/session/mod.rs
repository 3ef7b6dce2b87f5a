//! Sessions and pairing: merged messages become items. Messages between the
//! same two ends form a session; roles come from the handshake (or the
//! methods each side sends); requests pair with responses per session and
//! per direction, and progress and cancellation notices find their request.
//!
//! Over HTTP a session spans connections. The HTTP client is the MCP
//! client. A message joins, in this order: the session of its
//! `Mcp-Session-Id` (or of the legacy transport's endpoint it was posted
//! to, or announced on); the session its connection carries; the session
//! between the same client and server processes (MCP 2026-07-28 has no
//! session id). The response that first names a session id gives it to the
//! session its connection carries (the one `initialize` opened).

mod headers;
mod http;
mod state;

use super::channel::TcpEnd;
use super::frame::{Cut, FrameBody};
use super::item::{
    BatchPos, CopyInfo, Flag, FlagReason, HttpMeta, HttpView, Implementation, Item, Kind, Peer,
    RequestRef, SessionSummary, Transport, WriterPiece,
};
use super::jsonrpc::{self, Invalid, InvalidReason, Message, MessageKind, Parsed};
use super::mcp;
use http::HttpSessions;
use serde_json::value::RawValue;
use state::{Pending, Session};
use std::borrow::Cow;
use std::collections::HashMap;

/// What identifies a session: its two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionKey {
    /// Pipes or Unix sockets between two processes (lower pid first): a
    /// pipe each way, a socket pair each way (Node's child stdio), or one
    /// socket pair both ways.
    Pids(u32, u32),
    /// Pipes or sockets of one process whose peer was not seen.
    OnePid(u32),
    /// A TCP connection: (address, port) of each end, lower first.
    Tcp(TcpEnd, TcpEnd),
}

/// A TCP connection, or a TLS connection whose socket was never learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnKey {
    /// Its two ends, lower first.
    Tcp {
        tls: bool,
        a: TcpEnd,
        b: TcpEnd,
    },
    Ssl {
        pid: u32,
        ssl: u64,
    },
}

/// An HTTP message's place: its connection, what HTTP said, and whether the
/// HTTP client sent it (None: not known, for damage before any message).
#[derive(Clone, Copy, Debug)]
pub struct HttpRoute<'a> {
    pub conn: ConnKey,
    pub meta: Option<&'a HttpMeta>,
    pub from_client: Option<bool>,
}

/// Where a merged message goes: decided by the decoder from its streams.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    pub ts_ns: u64,
    pub transport: Option<Transport>,
    pub key: Option<SessionKey>,
    /// Which end of the session sent it (0 or 1, in the key's order).
    pub from_end: usize,
    pub from: Option<Peer>,
    pub to: Option<Peer>,
    pub writer: Option<CopyInfo<'a>>,
    pub reader: Option<CopyInfo<'a>>,
    pub copies_differ: bool,
    /// A writer's line the reader received mixed with another writer's.
    pub interleaved: bool,
    /// A line the reader read mixed: the writers' pieces it is made of.
    pub pieces: &'a [WriterPiece],
    /// HTTP transports (`key` is then None: sessions join by HTTP's rules).
    pub http: Option<HttpRoute<'a>>,
}

#[derive(Default)]
pub struct Sessions {
    /// The session of each key, and whether the key numbers the ends the
    /// other way round from the session (a session first seen with one end
    /// unknown, and adopted by the pair later).
    current: HashMap<SessionKey, (usize, bool)>,
    /// Sessions of one process whose peer was never seen, by pid.
    half_open: HashMap<u32, Vec<usize>>,
    sessions: Vec<Session>,
    next_n: u64,
    http: HttpSessions,
}

impl Sessions {
    pub fn summaries(&self) -> impl Iterator<Item = &SessionSummary> {
        self.sessions.iter().map(|s| &s.summary)
    }

    /// Turns one merged frame into items.
    pub fn handle(
        &mut self,
        route: &Route<'_>,
        body: &FrameBody,
        sink: &mut impl FnMut(&Item<'_>),
    ) {
        if !route.pieces.is_empty() {
            let text = match body {
                FrameBody::Text { text, .. } => text.as_slice(),
                _ => &[],
            };
            let mut flag = Flag::new(
                FlagReason::Interleaved,
                interleaved_text(route.pieces),
                text.len() as u64,
            );
            flag.writers = route.pieces.to_vec();
            return self.flag(route, flag, text, None, false, sink);
        }
        match body {
            FrameBody::Text {
                text,
                cut_start,
                cut_end: None,
            } => match jsonrpc::parse(text) {
                Parsed::One(msg) => self.message(route, msg, text, None, sink),
                Parsed::Batch(elements) => {
                    let len = elements.len();
                    for (index, el) in elements.into_iter().enumerate() {
                        let pos = Some(BatchPos { index, len });
                        match el.parsed {
                            Ok(msg) => self.message(route, msg, el.text.as_bytes(), pos, sink),
                            Err(e) => {
                                let flag = invalid_flag(&e, el.text.len());
                                self.flag(route, flag, el.text.as_bytes(), pos, false, sink)
                            }
                        }
                    }
                }
                // Text after lost bytes that is not a message: the end of one.
                Parsed::Invalid(_) if cut_start.is_some() => {
                    let flag = Flag::new(
                        FlagReason::Truncated,
                        format!(
                            "end of a message whose start was lost ({} bytes kept)",
                            text.len()
                        ),
                        text.len() as u64,
                    );
                    self.flag(route, flag, text, None, true, sink)
                }
                Parsed::Invalid(e) => {
                    self.flag(route, invalid_flag(&e, text.len()), text, None, false, sink)
                }
            },
            FrameBody::Text {
                text,
                cut_end: Some(cut),
                ..
            } => {
                let (reason, why) = match cut {
                    Cut::Loss(loss) => (FlagReason::Truncated, loss.as_str().to_string()),
                    Cut::CaptureEnd => (
                        FlagReason::Truncated,
                        "the capture ended inside it".to_string(),
                    ),
                    Cut::Reset => (
                        FlagReason::Truncated,
                        "its sender reset the HTTP/2 stream that carried it".to_string(),
                    ),
                    Cut::TooLong { dropped } => (
                        FlagReason::TooLong,
                        format!("longer than the decoder keeps; {dropped} more bytes not kept"),
                    ),
                };
                let flag = Flag::new(
                    reason,
                    format!("message cut short: {why} ({} bytes kept)", text.len()),
                    route.span_len(),
                );
                self.flag(route, flag, text, None, true, sink)
            }
            FrameBody::Lost { why } => {
                let len = route.span_len();
                let flag = Flag::new(
                    FlagReason::Lost(*why),
                    format!("{len} bytes lost: {}", why.as_str()),
                    len,
                );
                self.flag(route, flag, b"", None, true, sink)
            }
            FrameBody::Late => {
                let len = route.span_len();
                let flag = Flag::new(FlagReason::Late, format!(
                        "{len} bytes arrived after their place in the stream was passed; not decoded"
                    ), len);
                self.flag(route, flag, b"", None, false, sink)
            }
            FrameBody::Unsupported { protocol, text } => {
                let flag = Flag::new(
                    FlagReason::Unsupported,
                    format!("{protocol}: not decoded by this version of mcpspy"),
                    route.span_len(),
                );
                self.flag(route, flag, text, None, false, sink)
            }
            FrameBody::Notice {
                reason,
                detail,
                text,
            } => {
                let flag = Flag::new(*reason, detail.clone(), route.span_len());
                let truncated = *reason == FlagReason::Truncated;
                self.flag(route, flag, text, None, truncated, sink)
            }
            FrameBody::Event(event) => self.http_event(route, event),
        }
    }

    /// A record or block that cannot be read, outside any stream.
    pub fn damage(&mut self, ts_ns: u64, flag: Flag, sink: &mut impl FnMut(&Item<'_>)) {
        let route = Route {
            ts_ns,
            transport: None,
            key: None,
            from_end: 0,
            from: None,
            to: None,
            writer: None,
            reader: None,
            copies_differ: false,
            interleaved: false,
            pieces: &[],
            http: None,
        };
        self.flag(&route, flag, b"", None, true, sink);
    }

    fn next_n(&mut self) -> u64 {
        self.next_n += 1;
        self.next_n
    }

    fn flag(
        &mut self,
        route: &Route<'_>,
        mut flag: Flag,
        text: &[u8],
        batch: Option<BatchPos>,
        truncated: bool,
        sink: &mut impl FnMut(&Item<'_>),
    ) {
        let n = self.next_n();
        let conn = self.connection(route);
        if flag.reason == FlagReason::Reset {
            self.cancelled(conn, route, &mut flag);
        }
        // An HTTP/1.1 error response ends its connection's exchange: a
        // close after it cancels nothing.
        if let (FlagReason::HttpError, Some(c)) = (flag.reason, conn) {
            if let Some(&i) = self.http.by_conn.get(&c) {
                self.sessions[i].forget_stream((c, 0));
            }
        }
        // Damage joins the session its channel (or connection) already
        // has; it opens none.
        let found = match conn {
            Some(c) => self.http.by_conn.get(&c).map(|&i| (i, false)),
            None => route.key.and_then(|k| self.current.get(&k).copied()),
        };
        let e = route.from_end ^ usize::from(found.is_some_and(|(_, flip)| flip));
        if let Some((i, _)) = found {
            let s = &mut self.sessions[i];
            s.summary.flagged += 1;
            s.note_ends(route, e);
        }
        let session = found.map(|(i, _)| &self.sessions[i]);
        let shown = Shown {
            n,
            conn,
            session,
            from_end: e,
        };
        sink(&route.item(shown, Kind::Flagged(flag), text, batch, truncated));
    }

    /// An HTTP/2 stream the client reset before its request had a response:
    /// MCP 2026-07-28 cancels a request this way, and the reset says which.
    fn cancelled(&mut self, conn: Option<u64>, route: &Route<'_>, flag: &mut Flag) {
        let Some(meta) = route.http.and_then(|h| h.meta).filter(|m| m.is_request) else {
            return;
        };
        let (Some(c), Some(stream)) = (conn, meta.stream) else {
            return;
        };
        let Some(&i) = self.http.by_conn.get(&c) else {
            return;
        };
        if let Some(p) = self.sessions[i].take_pending_stream((c, stream)) {
            flag.detail
                .push_str(&format!("; {}", cancels_text(&p.request)));
            flag.cancels = Some(p.request);
        }
    }

    /// The session of a message (opening one if needed), and whether its
    /// key numbers the ends the other way round.
    fn session_for(&mut self, route: &Route<'_>, msg: &Message<'_>) -> Option<(usize, bool)> {
        if route.http.is_some() {
            return self.http_session(route, msg).map(|i| (i, false));
        }
        let key = route.key?;
        let reopens =
            msg.kind == MessageKind::Request && msg.method.as_deref() == Some("initialize");
        match self.current.get(&key) {
            Some(&(i, flip)) if !(reopens && self.sessions[i].initialized) => {
                return Some((i, flip))
            }
            Some(_) => {}
            None => {
                // A process's first message was shown before its reader was
                // seen (a server slow to start reading): the pair, once seen,
                // takes over that session, if it is the only such one.
                if let SessionKey::Pids(lo, hi) = key {
                    for p in [lo, hi] {
                        if let Some(&[i]) = self.half_open.get(&p).map(Vec::as_slice) {
                            self.half_open.remove(&p);
                            let flip = p != lo;
                            self.current.insert(key, (i, flip));
                            return Some((i, flip));
                        }
                    }
                }
            }
        }
        let i = self.sessions.len();
        self.sessions.push(Session::new(i as u64 + 1, route));
        self.current.insert(key, (i, false));
        if let SessionKey::OnePid(p) = key {
            self.half_open.entry(p).or_default().push(i);
        }
        Some((i, false))
    }

    fn message(
        &mut self,
        route: &Route<'_>,
        msg: Message<'_>,
        text: &[u8],
        batch: Option<BatchPos>,
        sink: &mut impl FnMut(&Item<'_>),
    ) {
        let n = self.next_n();
        let found = self.session_for(route, &msg);
        let idx = found.map(|(i, _)| i);
        let e = route.from_end ^ usize::from(found.is_some_and(|(_, flip)| flip));
        let mut answered: Option<(RequestRef, Option<u64>)> = None;
        let mut refers: Option<RequestRef> = None;
        let mut subject: Option<Cow<'_, str>> = None;
        let mut round = None;
        let conn = self.connection(route);
        // The stream a request travelled on: HTTP/2's, or over HTTP/1.1 its
        // connection (stream 0), unless its response comes on another.
        let h2 = route
            .http
            .and_then(|h| h.meta)
            .filter(|m| m.stream.is_some() || !self.posted_to_legacy(route))
            .map(|m| (m.is_request, m.stream.unwrap_or(0)));
        let method = msg.method.as_deref().unwrap_or_default();
        let params = match msg.kind {
            MessageKind::Request | MessageKind::Notification => mcp::params(method, msg.params),
            _ => mcp::Params::default(),
        };
        if let Some(s) = idx.map(|i| &mut self.sessions[i]) {
            s.note_ends(route, e);
            s.summary.messages += 1;
            match msg.kind {
                MessageKind::Request => {
                    s.learn_roles(e, method, true);
                    s.learn_from_request(method, &params);
                    subject = request_subject(method, &params);
                    s.summary.requests += 1;
                    s.summary.unanswered += 1;
                    let id = raw_key(msg.id);
                    round = mcp::multi_round(method)
                        .then(|| s.retry_of(params.request_state))
                        .flatten();
                    let request = RequestRef {
                        n,
                        id: id.clone(),
                        method: method.into(),
                        subject: subject.as_deref().map(Into::into),
                        ts_ns: route.ts_ns,
                        round,
                    };
                    let token = params
                        .meta
                        .as_ref()
                        .and_then(|m| m.progress_token)
                        .map(|t| Box::<str>::from(t.get()));
                    if let Some(t) = &token {
                        s.tokens[e].insert(t.clone(), request.clone());
                    }
                    let stream = match (conn, h2) {
                        (Some(c), Some((true, stream))) => Some((c, stream)),
                        _ => None,
                    };
                    s.wait(
                        e,
                        id,
                        Pending {
                            request,
                            token,
                            stream,
                        },
                    );
                }
                MessageKind::Notification => {
                    s.learn_roles(e, method, false);
                    subject = notification_subject(method, &params);
                    refers = match method {
                        "notifications/progress" => params
                            .progress_token
                            .and_then(|t| s.tokens[1 - e].get(t.get()).cloned()),
                        "notifications/cancelled" => params.request_id.and_then(|id| {
                            s.pending[e]
                                .get(id.get())
                                .and_then(|q| q.front())
                                .map(|p| p.request.clone())
                        }),
                        _ => None,
                    };
                }
                MessageKind::Response | MessageKind::Error => {
                    if let Some(mut p) = s.take_pending(1 - e, msg.id) {
                        let latency = route.ts_ns.saturating_sub(p.request.ts_ns);
                        if msg.kind == MessageKind::Response {
                            s.learn_from_result(&p.request.method, msg.result);
                            let asked = (msg.result)
                                .filter(|_| mcp::multi_round(&p.request.method))
                                .and_then(mcp::input_required);
                            if let Some(state) = asked {
                                p.request.round = Some(s.asked_input(&p.request, state));
                            }
                        }
                        answered = Some((p.request, Some(latency)));
                    }
                }
            }
        }
        // A request whose Mcp-* headers say something else than its body.
        let header_flag = match (msg.kind, route.http.and_then(|h| h.meta)) {
            (MessageKind::Request | MessageKind::Notification, Some(m)) if m.is_request => m
                .head
                .as_deref()
                .and_then(|h| headers::mismatch(h, method, subject.as_deref())),
            _ => None,
        };
        let kind = match msg.kind {
            MessageKind::Request => Kind::Request {
                id: msg.id.unwrap_or(RawValue::NULL),
                method,
                params: msg.params,
                subject,
                round,
            },
            MessageKind::Notification => Kind::Notification {
                method,
                params: msg.params,
                subject,
                refers_to: refers.as_ref(),
            },
            MessageKind::Response => Kind::Response {
                id: msg.id.unwrap_or(RawValue::NULL),
                result: msg.result.unwrap_or(RawValue::NULL),
                answers: answered.as_ref().map(|a| &a.0),
                latency_ns: answered.as_ref().and_then(|a| a.1),
                tool_error: answered
                    .as_ref()
                    .is_some_and(|a| &*a.0.method == "tools/call")
                    && msg.result.is_some_and(mcp::is_tool_error),
            },
            MessageKind::Error => {
                let info = msg.error.map(jsonrpc::error_info).unwrap_or_default();
                Kind::Error {
                    id: msg.id,
                    error: msg.error.unwrap_or(RawValue::NULL),
                    code: info.code,
                    message: info.message,
                    answers: answered.as_ref().map(|a| &a.0),
                    latency_ns: answered.as_ref().and_then(|a| a.1),
                }
            }
        };
        let shown = Shown {
            n,
            conn,
            session: idx.map(|i| &self.sessions[i]),
            from_end: e,
        };
        sink(&route.item(shown, kind, text, batch, false));
        if let Some(detail) = header_flag {
            let flag = Flag::new(FlagReason::HeaderMismatch, detail, 0);
            self.flag(route, flag, b"", None, false, sink);
        }
    }
}

/// Where an item stands: its number, its HTTP connection, its session and
/// which end of it sent the message.
struct Shown<'s> {
    n: u64,
    conn: Option<u64>,
    session: Option<&'s Session>,
    from_end: usize,
}

impl<'a> Route<'a> {
    /// The item of a message (or damage) that took this route.
    fn item<'s>(
        &self,
        at: Shown<'s>,
        kind: Kind<'s>,
        text: &'s [u8],
        batch: Option<BatchPos>,
        truncated: bool,
    ) -> Item<'s>
    where
        'a: 's,
    {
        Item {
            n: at.n,
            ts_ns: self.ts_ns,
            transport: self.transport,
            http: at.conn.map(|connection| HttpView {
                connection,
                meta: self.http.and_then(|h| h.meta),
            }),
            from: self.from,
            to: self.to,
            session: at.session.map(|s| &s.summary),
            direction: at.session.and_then(|s| s.direction(at.from_end)),
            kind,
            text,
            batch,
            writer: self.writer,
            reader: self.reader,
            copies_differ: self.copies_differ,
            interleaved: self.interleaved,
            truncated,
        }
    }

    /// Stream bytes the message spans (either copy's).
    fn span_len(&self) -> u64 {
        self.writer
            .or(self.reader)
            .map_or(0, |c| c.end.saturating_sub(c.start))
    }
}

/// An id (or token) as a map key: its exact JSON text.
fn raw_key(raw: Option<&RawValue>) -> Box<str> {
    raw.map_or("null", |r| r.get()).into()
}

/// What an interleaved line holds, in words.
fn interleaved_text(pieces: &[WriterPiece]) -> String {
    let name = |p: &WriterPiece| format!("{}[{}]", p.peer.comm(), p.peer.pid);
    let mut writers: Vec<String> = pieces.iter().map(name).collect();
    writers.dedup();
    match writers.as_slice() {
        [one] => format!(
            "a piece of a line written by {one}, whose other pieces were read mixed with another writer's"
        ),
        _ => format!(
            "pieces of lines written by {}, mixed on one pipe",
            writers.join(" and ")
        ),
    }
}

fn invalid_flag(e: &Invalid, len: usize) -> Flag {
    let reason = match e.reason {
        InvalidReason::Utf8 => FlagReason::InvalidUtf8,
        InvalidReason::Json => FlagReason::InvalidJson,
        InvalidReason::TooDeep => FlagReason::TooDeep,
        InvalidReason::NotJsonRpc => FlagReason::NotJsonRpc,
    };
    Flag::new(reason, e.detail.clone(), len as u64)
}

fn request_subject<'a>(method: &str, p: &mcp::Params<'a>) -> Option<Cow<'a, str>> {
    match method {
        "tools/call" | "prompts/get" => p.name.clone(),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => p.uri.clone(),
        _ => None,
    }
}

fn notification_subject<'a>(method: &str, p: &mcp::Params<'a>) -> Option<Cow<'a, str>> {
    match method {
        "notifications/progress" => p.progress.map(|done| {
            Cow::Owned(match p.total {
                Some(total) => format!("{done}/{total}"),
                None => format!("{done}"),
            })
        }),
        "notifications/message" => p.level.clone(),
        "notifications/resources/updated" => p.uri.clone(),
        _ => None,
    }
}

fn implementation(i: &mcp::Implementation<'_>) -> Implementation {
    Implementation {
        name: i.name.as_deref().map(str::to_string),
        version: i.version.as_deref().map(str::to_string),
    }
}

/// What a reset or a close that cancels a request says of it.
fn cancels_text(r: &RequestRef) -> String {
    format!(
        "it cancels request #{} ({}{}), which had no response",
        r.n,
        r.method,
        r.subject
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default(),
    )
}
