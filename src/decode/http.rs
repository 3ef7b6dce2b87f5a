//! HTTP/1.x framing: one stream of requests or responses becomes frames, one
//! per JSON-RPC message (a JSON body, or one event of a `text/event-stream`
//! body), each with what HTTP said about it ([`HttpMeta`]).
//!
//! Bodies end by Content-Length, by the chunked coding, or with the stream
//! (RFC 9112 §6); responses to HEAD, 1xx, 204 and 304 have none; gzip and
//! deflate content codings are undone. A response learns its request (the
//! method, for HEAD and CONNECT, and the target) from the request stream of
//! the same socket in the same process ([`SocketHttp`]); either end of a
//! connection frames both directions alone.
//!
//! Damage stays local. A loss inside a body whose extent is known is
//! stepped over exactly: the message is cut, framing goes on. A loss in a
//! head or across a chunk boundary loses the framing: the bytes up to the
//! next line that starts an HTTP message (or, inside a chunked body, the
//! next chunk-size line) are reported as a fragment, and framing resumes
//! there. Frame positions depend on the bytes alone, never on how reads
//! split them, so the writer's and the reader's copies of a message pair.

use super::framing::{Cut, Frame, FrameBody, HttpEvent};
use super::item::{FlagReason, HttpMeta};
use super::reassembly::{Loss, Piece};
use super::sniff::Protocol;
use super::sse::{Acc, RawPos, Sse, SseEvent, SseKind};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

/// Longest head (start line and headers) accepted.
const MAX_HEAD: usize = 64 << 10;
/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Longest line kept while looking for the next HTTP message.
const MAX_RESYNC_LINE: usize = 8192;
/// Body bytes kept to show with an HTTP error.
const ERROR_BODY_SHOWN: usize = 256;
/// Requests remembered per socket while their responses are awaited.
const MAX_PENDING_REQUESTS: usize = 4096;

/// What one process knows of one socket (or TLS connection), shared by the
/// framers of its two directions.
#[derive(Debug, Default)]
pub struct SocketHttp {
    protocol: Option<Protocol>,
    /// Requests seen on this socket, not yet answered, oldest first.
    requests: VecDeque<Request>,
    /// The connection switched protocols (101, or CONNECT's 2xx).
    upgraded: bool,
}

impl SocketHttp {
    /// What the first direction to be sniffed carries.
    pub fn protocol(&self) -> Option<&Protocol> {
        self.protocol.as_ref()
    }

    pub fn note_protocol(&mut self, p: &Protocol) {
        if self.protocol.is_none() {
            self.protocol = Some(p.clone());
        }
    }
}

/// What a response needs to know of its request.
#[derive(Clone, Debug, Default)]
struct Request {
    method: Box<str>,
    path: Box<str>,
    host: Option<Box<str>>,
    session_id: Option<Box<str>>,
    protocol_version: Option<Box<str>>,
}

#[derive(Debug)]
pub struct Http {
    max_line: usize,
    state: State,
    /// End of the last frame or loss: the next frame accounts for the
    /// captured bytes from here (heads, chunk framing).
    accounted: Option<u64>,
    /// The last start line was a request line.
    requests: Option<bool>,
}

#[derive(Debug)]
enum State {
    Head(Head),
    Body(Box<Message>),
    Resync(Box<Resync>),
    /// The connection switched protocols: nothing more here is HTTP/1.x.
    Tunnel {
        reported: bool,
        what: String,
    },
}

impl Http {
    /// `after_loss`: the stream's first bytes were lost, so it starts mid-way.
    pub fn new(max_line: usize, after_loss: bool) -> Self {
        Http {
            max_line,
            state: if after_loss {
                State::Resync(Box::new(Resync::new(None)))
            } else {
                State::Head(Head::default())
            },
            accounted: None,
            requests: None,
        }
    }

    pub fn carries_requests(&self) -> Option<bool> {
        self.requests
    }

    pub fn feed(&mut self, piece: Piece<'_>, sock: &mut SocketHttp, out: &mut impl FnMut(Frame)) {
        let mut emit = Emit {
            accounted: self.accounted,
            out,
        };
        match piece {
            Piece::Data {
                off,
                bytes,
                ts,
                seq,
            } => {
                emit.accounted.get_or_insert(off);
                let mut pos = 0;
                while pos < bytes.len() {
                    let at = Input {
                        off: off + pos as u64,
                        bytes: &bytes[pos..],
                        ts,
                        seq,
                    };
                    pos += self.step(at, sock, &mut emit);
                }
            }
            Piece::Lost {
                off,
                len,
                why,
                ts,
                seq,
            } => self.lost(off, len, why, ts, seq, &mut emit),
            Piece::Late { .. } => {}
        }
        self.accounted = emit.accounted;
    }

    /// Consumes some of `at` (at least one byte, or a change of state).
    fn step(
        &mut self,
        at: Input<'_>,
        sock: &mut SocketHttp,
        emit: &mut Emit<'_, impl FnMut(Frame)>,
    ) -> usize {
        match &mut self.state {
            State::Head(head) => {
                if head.is_empty() && sock.upgraded {
                    self.state = State::Tunnel {
                        reported: false,
                        what: "the connection switched protocols".into(),
                    };
                    return 0;
                }
                let (used, done) = head.feed(&at);
                match done {
                    HeadDone::No => {}
                    HeadDone::TooLong => {
                        let head = std::mem::take(head);
                        emit.notice(
                            FlagReason::BadHttp,
                            format!("HTTP header section longer than {MAX_HEAD} bytes"),
                            &head,
                            None,
                        );
                        self.state = State::Resync(Box::new(Resync::new(None)));
                    }
                    HeadDone::Yes => {
                        let head = std::mem::take(head);
                        self.begin(head, sock, emit);
                    }
                }
                used
            }
            State::Body(msg) => {
                let (used, end) = msg.step(&at, self.max_line, emit);
                if let Some(end) = end {
                    self.end_body(end, emit);
                }
                used
            }
            State::Resync(r) => {
                let (used, found) = r.step(&at, self.max_line);
                match found {
                    Found::Nothing => {}
                    Found::StartLine(line, acc) => {
                        let r = std::mem::replace(r, Box::new(Resync::new(None)));
                        let Resync { body, skipped, .. } = *r;
                        skipped.emit(None, emit);
                        if let Some(mut msg) = body {
                            msg.finish(Some(Cut::Loss(Loss::Missing)), self.max_line, emit);
                        }
                        self.state = State::Head(Head::from_line(&line, acc));
                    }
                    Found::ChunkSize(size) => {
                        let r = std::mem::replace(r, Box::new(Resync::new(None)));
                        let Resync { body, skipped, .. } = *r;
                        skipped.emit(None, emit);
                        if let Some(mut msg) = body {
                            msg.resume_chunks(size);
                            self.state = State::Body(msg);
                        }
                    }
                }
                used
            }
            State::Tunnel { reported, what } => {
                if !*reported {
                    *reported = true;
                    let f = Frame::plain(
                        at.off,
                        at.off + at.bytes.len() as u64,
                        at.ts,
                        at.ts,
                        vec![at.seq],
                        FrameBody::Unsupported {
                            protocol: what.clone(),
                            text: Vec::new(),
                        },
                    );
                    emit.frame(f);
                }
                at.bytes.len()
            }
        }
    }

    /// A complete head: the message it starts.
    fn begin(&mut self, head: Head, sock: &mut SocketHttp, emit: &mut Emit<'_, impl FnMut(Frame)>) {
        let Parsed { start, headers: h } = match parse_head(&head.buf) {
            Ok(p) => p,
            Err((start, why)) => {
                // A final response that does not parse still answers its request.
                if let Some(Start::Response { status }) = start {
                    if !(100..200).contains(&status) {
                        sock.requests.pop_front();
                    }
                }
                emit.notice(FlagReason::BadHttp, why, &head, None);
                self.state = State::Resync(Box::new(Resync::new(None)));
                return;
            }
        };
        let (meta, framing) = match start {
            Start::Request { method, target } => {
                self.requests = Some(true);
                let request = Request {
                    method: method.into(),
                    path: target.into(),
                    host: h.host.clone(),
                    session_id: h.session_id.clone(),
                    protocol_version: h.protocol_version.clone(),
                };
                if sock.requests.len() >= MAX_PENDING_REQUESTS {
                    sock.requests.pop_front();
                }
                sock.requests.push_back(request.clone());
                let meta = HttpMeta {
                    is_request: true,
                    method: Some(request.method),
                    path: Some(request.path),
                    host: request.host,
                    session_id: request.session_id,
                    protocol_version: request.protocol_version,
                    ..HttpMeta::default()
                };
                let framing = match (h.chunked, h.content_length) {
                    (true, _) => Framing::chunked(),
                    (false, Some(0) | None) => Framing::Empty,
                    (false, Some(n)) => Framing::Length { left: n },
                };
                (meta, framing)
            }
            Start::Response { status } => {
                self.requests = Some(false);
                if (100..200).contains(&status) && status != 101 {
                    // Interim: the request still awaits its final response.
                    self.state = State::Head(Head::default());
                    return;
                }
                let request = sock.requests.pop_front().unwrap_or_default();
                let method = (!request.method.is_empty()).then_some(&*request.method);
                if status == 101 || (method == Some("CONNECT") && (200..300).contains(&status)) {
                    sock.upgraded = true;
                    let what = match &h.upgrade {
                        Some(u) => format!("the connection switched protocols (101, to {u:.60})"),
                        None => format!("the connection became a tunnel ({status})"),
                    };
                    self.state = State::Tunnel {
                        reported: false,
                        what,
                    };
                    return;
                }
                let no_body = method == Some("HEAD") || status == 204 || status == 304;
                let framing = if no_body {
                    Framing::Empty
                } else if h.chunked {
                    Framing::chunked()
                } else if h.other_transfer_coding {
                    Framing::UntilClose
                } else {
                    match h.content_length {
                        Some(0) => Framing::Empty,
                        Some(n) => Framing::Length { left: n },
                        None => Framing::UntilClose,
                    }
                };
                let known = method.is_some();
                let meta = HttpMeta {
                    is_request: false,
                    method: known.then_some(request.method),
                    path: known.then_some(request.path),
                    host: request.host,
                    status: Some(status),
                    session_id: h.session_id.clone().or(request.session_id),
                    protocol_version: request.protocol_version,
                    ..HttpMeta::default()
                };
                (meta, framing)
            }
        };
        let content = match h.content_type.as_deref() {
            Some(ct) if ct.contains("text/event-stream") => Content::Sse(Sse::new(self.max_line)),
            Some(ct) if ct.contains("json") => Content::Json(TextBody::default()),
            Some(_) => Content::Other(OtherBody::default()),
            None => Content::Undecided,
        };
        let meta = HttpMeta {
            sse: matches!(content, Content::Sse(_)),
            ..meta
        };
        let delete = meta.is_request && meta.method.as_deref() == Some("DELETE");
        let coding = match h.coding {
            Ok(c) => c,
            Err(name) => {
                emit.notice(
                    FlagReason::BadEncoding,
                    format!(
                        "a body in content coding `{name:.60}`, which this version does not decode"
                    ),
                    &head,
                    Some(&meta),
                );
                Some(Coding::Undecodable)
            }
        };
        let undecodable = matches!(coding, Some(Coding::Undecodable));
        let mut msg = Box::new(Message {
            meta: Arc::new(meta),
            first_line: first_line(&head.buf).to_vec(),
            head: head.acc(),
            body: None,
            framing,
            coding,
            pending: None,
            broken: undecodable,
            content,
            messages: 0,
            delete,
        });
        if matches!(msg.framing, Framing::Empty) {
            msg.finish(None, self.max_line, emit);
            self.state = State::Head(Head::default());
        } else {
            self.state = State::Body(msg);
        }
    }

    fn end_body(&mut self, end: BodyEnd, emit: &mut Emit<'_, impl FnMut(Frame)>) {
        let State::Body(mut msg) = std::mem::replace(&mut self.state, State::Head(Head::default()))
        else {
            return;
        };
        match end {
            BodyEnd::Done => msg.finish(None, self.max_line, emit),
            BodyEnd::BadChunk(why, acc) => {
                emit.notice_at(FlagReason::BadHttp, why, Vec::new(), acc, Some(&msg.meta));
                msg.content_lost(Cut::Loss(Loss::Missing), emit);
                self.state = State::Resync(Box::new(Resync::new(Some(msg))));
            }
        }
    }

    /// `len` bytes at `off` were never captured.
    fn lost(
        &mut self,
        off: u64,
        len: u64,
        why: Loss,
        ts: u64,
        seq: Option<u64>,
        emit: &mut Emit<'_, impl FnMut(Frame)>,
    ) {
        // The loss is reported after what came before it (text it cut).
        let lost = super::framing::lost_frame(off, len, why, ts, seq);
        let cut = Cut::Loss(why);
        let max_line = self.max_line;
        let state = std::mem::replace(&mut self.state, State::Head(Head::default()));
        self.state = match state {
            State::Head(_) => {
                emit.frame(lost);
                State::Resync(Box::new(Resync::new(None)))
            }
            State::Body(mut msg) => {
                let skip = msg.skip(len);
                msg.content_lost(cut, emit);
                emit.frame(lost);
                match skip {
                    Skip::Inside => State::Body(msg),
                    Skip::ToEnd => {
                        msg.finish(None, max_line, emit);
                        State::Head(Head::default())
                    }
                    Skip::Past => {
                        msg.finish(Some(cut), max_line, emit);
                        State::Resync(Box::new(Resync::new(None)))
                    }
                    Skip::Framing => State::Resync(Box::new(Resync::new(Some(msg)))),
                }
            }
            State::Resync(mut r) => {
                r.lost(max_line, emit);
                emit.frame(lost);
                State::Resync(r)
            }
            tunnel @ State::Tunnel { .. } => {
                emit.frame(lost);
                tunnel
            }
        };
    }

    /// The stream is over.
    pub fn finish(&mut self, out: &mut impl FnMut(Frame)) {
        let mut emit = Emit {
            accounted: self.accounted,
            out,
        };
        let max_line = self.max_line;
        match std::mem::replace(&mut self.state, State::Head(Head::default())) {
            State::Head(head) if !head.is_empty() => {
                let mut acc = head.acc();
                acc.end = acc.start + head.buf.len() as u64;
                emit.fragment(
                    first_line(&head.buf).to_vec(),
                    acc,
                    None,
                    Some(Cut::CaptureEnd),
                    None,
                );
            }
            State::Body(mut msg) => {
                let cut = match msg.framing {
                    // A body that runs to the end of the connection is whole.
                    Framing::UntilClose => None,
                    _ => Some(Cut::CaptureEnd),
                };
                msg.finish(cut, max_line, &mut emit);
            }
            State::Resync(mut r) => {
                if let Some(acc) = r.line_acc.take() {
                    let line = std::mem::take(&mut r.line);
                    r.skipped.add(&line, acc, max_line);
                }
                let Resync { body, skipped, .. } = *r;
                skipped.emit(Some(Cut::CaptureEnd), &mut emit);
                if let Some(mut msg) = body {
                    msg.finish(Some(Cut::CaptureEnd), max_line, &mut emit);
                }
            }
            _ => {}
        }
    }
}

/// A slice of a data piece.
struct Input<'a> {
    off: u64,
    bytes: &'a [u8],
    ts: u64,
    seq: u64,
}

/// Gives frames out, each accounting for the captured bytes since the last.
struct Emit<'a, F: FnMut(Frame)> {
    accounted: Option<u64>,
    out: &'a mut F,
}

impl<F: FnMut(Frame)> Emit<'_, F> {
    fn frame(&mut self, mut f: Frame) {
        if !matches!(f.body, FrameBody::Lost { .. }) {
            f.covers = self.accounted.map_or(f.start, |a| a.min(f.start));
        }
        self.account(f.end);
        (self.out)(f);
    }

    fn account(&mut self, end: u64) {
        self.accounted = Some(self.accounted.map_or(end, |a| a.max(end)));
    }

    fn notice(&mut self, reason: FlagReason, detail: String, head: &Head, meta: Option<&HttpMeta>) {
        let text = first_line(&head.buf).to_vec();
        self.notice_at(reason, detail, text, head.acc(), meta);
    }

    fn notice_at(
        &mut self,
        reason: FlagReason,
        detail: String,
        text: Vec<u8>,
        acc: Acc,
        meta: Option<&HttpMeta>,
    ) {
        let mut f = Frame::plain(
            acc.start,
            acc.end,
            acc.first_ts,
            acc.last_ts,
            acc.seqs,
            FrameBody::Notice {
                reason,
                detail,
                text,
            },
        );
        f.http = meta.map(|m| Arc::new(m.clone()));
        self.frame(f);
    }

    /// Message text (or part of one).
    fn text(
        &mut self,
        text: Vec<u8>,
        acc: Acc,
        cut_start: Option<Cut>,
        cut_end: Option<Cut>,
        meta: Option<&Arc<HttpMeta>>,
    ) {
        let mut f = Frame::plain(
            acc.start,
            acc.end,
            acc.first_ts,
            acc.last_ts,
            acc.seqs,
            FrameBody::Text {
                text,
                cut_start,
                cut_end,
            },
        );
        f.http = meta.cloned();
        self.frame(f);
    }

    /// Captured bytes that could not be framed (they follow a loss, or the
    /// capture ended inside them): cut at both ends, so that the other
    /// copy, if it has those bytes whole, is shown instead.
    fn fragment(
        &mut self,
        text: Vec<u8>,
        acc: Acc,
        cut_start: Option<Cut>,
        cut_end: Option<Cut>,
        meta: Option<&Arc<HttpMeta>>,
    ) {
        let cut_end = cut_end.or(Some(Cut::Loss(Loss::Missing)));
        self.text(text, acc, cut_start, cut_end, meta);
    }
}

/// A head being read: the start line and headers, up to the blank line.
#[derive(Debug, Default)]
struct Head {
    buf: Vec<u8>,
    start: u64,
    first_ts: u64,
    last_ts: u64,
    seqs: Vec<u64>,
    /// Bytes of the current line so far, and its first byte.
    line_len: usize,
    line_first: u8,
}

enum HeadDone {
    No,
    Yes,
    TooLong,
}

impl Head {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    fn acc(&self) -> Acc {
        Acc {
            start: self.start,
            end: self.end(),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            seqs: self.seqs.clone(),
        }
    }

    fn note(&mut self, at: &Input<'_>) {
        if self.buf.is_empty() {
            self.first_ts = at.ts;
        }
        self.last_ts = self.last_ts.max(at.ts);
        if self.seqs.last() != Some(&at.seq) {
            self.seqs.push(at.seq);
        }
    }

    /// A head whose start line (without its LF) was already found.
    fn from_line(line: &[u8], acc: Acc) -> Head {
        let mut buf = Vec::with_capacity(line.len() + 256);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        Head {
            buf,
            start: acc.start,
            first_ts: acc.first_ts,
            last_ts: acc.last_ts,
            seqs: acc.seqs,
            line_len: 0,
            line_first: 0,
        }
    }

    /// Takes bytes up to the end of the head; returns how many it took.
    fn feed(&mut self, at: &Input<'_>) -> (usize, HeadDone) {
        let bytes = at.bytes;
        let mut i = 0;
        if self.buf.is_empty() {
            // Empty lines before a message are allowed (RFC 9112 §2.2).
            while i < bytes.len() && matches!(bytes[i], b'\r' | b'\n') {
                i += 1;
            }
            if i == bytes.len() {
                return (i, HeadDone::No);
            }
            self.start = at.off + i as u64;
            self.line_len = 0;
        }
        self.note(at);
        let from = i;
        let mut pos = i;
        while let Some(k) = memchr::memchr(b'\n', &bytes[pos..]) {
            let nl = pos + k;
            let len = self.line_len + (nl - pos);
            let first = if self.line_len > 0 {
                self.line_first
            } else {
                bytes.get(pos).copied().unwrap_or(b'\n')
            };
            if len == 0 || (len == 1 && first == b'\r') {
                self.buf.extend_from_slice(&bytes[from..=nl]);
                return (nl + 1, HeadDone::Yes);
            }
            self.line_len = 0;
            pos = nl + 1;
        }
        if pos < bytes.len() {
            if self.line_len == 0 {
                self.line_first = bytes[pos];
            }
            self.line_len += bytes.len() - pos;
        }
        let rest = &bytes[from..];
        if self.buf.len() + rest.len() > MAX_HEAD {
            let room = MAX_HEAD.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&rest[..room.min(rest.len())]);
            return (bytes.len(), HeadDone::TooLong);
        }
        self.buf.extend_from_slice(rest);
        (bytes.len(), HeadDone::No)
    }
}

#[derive(Debug)]
enum Start {
    Request { method: String, target: String },
    Response { status: u16 },
}

/// The headers the decoder uses.
#[derive(Debug)]
struct Headers {
    content_length: Option<u64>,
    chunked: bool,
    /// Transfer codings other than a final `chunked`: the body runs to the end.
    other_transfer_coding: bool,
    /// The content coding to undo, or the name of one this version cannot.
    coding: Result<Option<Coding>, String>,
    content_type: Option<String>,
    host: Option<Box<str>>,
    session_id: Option<Box<str>>,
    protocol_version: Option<Box<str>>,
    upgrade: Option<String>,
}

struct Parsed {
    start: Start,
    headers: Headers,
}

/// Parses a complete head (RFC 9112 §2-§6); Err says what is wrong (and
/// gives the start line, when that much parses).
fn parse_head(buf: &[u8]) -> Result<Parsed, (Option<Start>, String)> {
    let head_text = String::from_utf8_lossy(buf);
    let mut lines = head_text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default();
    let start = parse_start_line(start_line).ok_or_else(|| {
        (
            None,
            format!("not an HTTP/1.x start line: {start_line:.120}"),
        )
    })?;
    match parse_headers(lines) {
        Ok(headers) if std::str::from_utf8(buf).is_ok() => Ok(Parsed { start, headers }),
        Ok(_) => Err((Some(start), "HTTP head that is not UTF-8 text".into())),
        Err(why) => Err((Some(start), why)),
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, String> {
    let mut h = Headers {
        content_length: None,
        chunked: false,
        other_transfer_coding: false,
        coding: Ok(None),
        content_type: None,
        host: None,
        session_id: None,
        protocol_version: None,
        upgrade: None,
    };
    let mut lengths: Vec<&str> = Vec::new();
    // As listed: applied first to last.
    let mut transfer: Vec<String> = Vec::new();
    let mut content: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("HTTP header line without a colon: {line:.120}"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!("bad HTTP header name: {name:.120}"));
        }
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "content-length" => lengths.extend(value.split(',').map(str::trim)),
            "transfer-encoding" => transfer.extend(codings(value)),
            "content-encoding" => content.extend(codings(value)),
            "content-type" => h.content_type = Some(value.to_ascii_lowercase()),
            "host" => h.host = Some(value.into()),
            "mcp-session-id" => h.session_id = Some(value.into()),
            "mcp-protocol-version" => h.protocol_version = Some(value.into()),
            "upgrade" => h.upgrade = Some(value.to_string()),
            _ => {}
        }
    }
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(format!(
                "conflicting Content-Length values: {}",
                lengths.join(", ")
            ));
        }
        let n: u64 = first
            .parse()
            .ok()
            .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("bad Content-Length: {first:.40}"))?;
        h.content_length = Some(n);
    }
    // Chunked must come last; any other transfer coding last means the
    // body runs to the end of the stream (RFC 9112 §6.3).
    if let Some(last) = transfer.last() {
        h.chunked = last == "chunked";
        h.other_transfer_coding = !h.chunked;
    }
    // What is left to undo, last applied first.
    let mut undo: Vec<String> = transfer.into_iter().filter(|c| c != "chunked").collect();
    undo.reverse();
    undo.extend(content.into_iter().rev());
    h.coding = match undo.as_slice() {
        [] => Ok(None),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Some(Coding::gzip())),
            "deflate" => Ok(Some(Coding::Deflate(None))),
            other => Err(other.to_string()),
        },
        several => Err(several.join(", ")),
    };
    Ok(h)
}

/// A coding list (`gzip, chunked`), lower case, without `identity`.
fn codings(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
}

fn parse_start_line(line: &str) -> Option<Start> {
    if let Some(rest) = line.strip_prefix("HTTP/1.") {
        let (minor, rest) = rest.split_at_checked(1)?;
        if !matches!(minor, "0" | "1") {
            return None;
        }
        let rest = rest.strip_prefix(' ')?;
        let code = rest.get(..3)?;
        if !code.bytes().all(|b| b.is_ascii_digit())
            || !matches!(rest.as_bytes().get(3), None | Some(b' '))
        {
            return None;
        }
        return Some(Start::Response {
            status: code.parse().ok()?,
        });
    }
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if parts.next().is_some()
        || !token(method)
        || target.is_empty()
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    Some(Start::Request {
        method: method.to_string(),
        target: target.to_string(),
    })
}

fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() <= MAX_RESYNC_LINE
        && std::str::from_utf8(line)
            .ok()
            .and_then(parse_start_line)
            .is_some()
}

/// A chunk-size line (`1a3`, `1a3;ext=x`): the size.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // After the size: nothing, or whitespace and then an extension.
    let after = line[end..].iter().find(|b| !matches!(b, b' ' | b'\t'));
    if after.is_some_and(|&b| b != b';') {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn first_line(buf: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', buf).unwrap_or(buf.len()).min(256);
    let line = &buf[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// How a body's extent is known.
#[derive(Debug)]
enum Framing {
    Empty,
    Length {
        left: u64,
    },
    Chunked {
        state: ChunkState,
        line: Vec<u8>,
        line_acc: Option<Acc>,
    },
    UntilClose,
}

impl Framing {
    fn chunked() -> Self {
        Framing::Chunked {
            state: ChunkState::Size,
            line: Vec::new(),
            line_acc: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    Data {
        left: u64,
    },
    /// The CRLF after a chunk's data (`seen_cr`: its CR came).
    DataEnd {
        seen_cr: bool,
    },
    /// Trailer lines after the last chunk, up to a blank line.
    Trailer,
}

/// A content coding being undone. Compressed bytes are decompressed a whole
/// chunk (or a whole body) at a time, so that where messages come out does
/// not depend on how reads split the stream.
enum Coding {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    /// zlib-wrapped or raw deflate (both are sent as `deflate`): decided by
    /// the first bytes.
    Deflate(Option<Box<Inflater>>),
    Undecodable,
}

enum Inflater {
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
}

impl std::fmt::Debug for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Coding::Gzip(_) => "gzip",
            Coding::Deflate(_) => "deflate",
            Coding::Undecodable => "undecodable",
        })
    }
}

impl Coding {
    fn gzip() -> Self {
        Coding::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new())))
    }

    fn name(&self) -> &'static str {
        match self {
            Coding::Gzip(_) => "gzip",
            Coding::Deflate(_) => "deflate",
            Coding::Undecodable => "an unknown coding",
        }
    }

    /// Decompresses `input` (`last`: the body ends with it); the output so far.
    fn run(&mut self, input: &[u8], last: bool) -> Result<Vec<u8>, String> {
        fn step<W: Write>(
            w: &mut W,
            input: &[u8],
            last: bool,
            finish: impl FnOnce(&mut W) -> std::io::Result<()>,
            take: impl FnOnce(&mut W) -> Vec<u8>,
        ) -> Result<Vec<u8>, String> {
            w.write_all(input).map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())?;
            if last {
                finish(w).map_err(|e| e.to_string())?;
            }
            Ok(take(w))
        }
        match self {
            Coding::Gzip(d) => step(
                &mut **d,
                input,
                last,
                |d| d.try_finish(),
                |d| std::mem::take(d.get_mut()),
            ),
            Coding::Deflate(state) => {
                if state.is_none() {
                    if input.is_empty() {
                        return Ok(Vec::new());
                    }
                    // A zlib header: CM 8, and a check that makes it a multiple of 31.
                    let zlib = input.len() >= 2
                        && input[0] & 0x0f == 8
                        && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
                    *state = Some(Box::new(if zlib {
                        Inflater::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        Inflater::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
                    }));
                }
                match state.as_deref_mut() {
                    Some(Inflater::Zlib(d)) => step(
                        d,
                        input,
                        last,
                        |d| d.try_finish(),
                        |d| std::mem::take(d.get_mut()),
                    ),
                    Some(Inflater::Raw(d)) => step(
                        d,
                        input,
                        last,
                        |d| d.try_finish(),
                        |d| std::mem::take(d.get_mut()),
                    ),
                    None => Ok(Vec::new()),
                }
            }
            Coding::Undecodable => Err("not decoded".into()),
        }
    }
}

/// What the body holds.
#[derive(Debug)]
enum Content {
    /// No Content-Type: JSON if it starts like JSON.
    Undecided,
    Json(TextBody),
    Sse(Sse),
    Other(OtherBody),
}

/// A JSON body being gathered.
#[derive(Debug, Default)]
struct TextBody {
    text: Vec<u8>,
    dropped: u64,
    acc: Option<Acc>,
    /// The text follows lost bytes of the same body.
    cut_start: Option<Cut>,
}

/// A body that is not a message: its length and first bytes (for errors).
#[derive(Debug, Default)]
struct OtherBody {
    shown: Vec<u8>,
    acc: Option<Acc>,
}

/// One HTTP message after its head.
#[derive(Debug)]
struct Message {
    meta: Arc<HttpMeta>,
    first_line: Vec<u8>,
    head: Acc,
    /// The body's stream bytes so far.
    body: Option<Acc>,
    framing: Framing,
    coding: Option<Coding>,
    /// Compressed bytes waiting for the end of their chunk (or body).
    pending: Option<(Vec<u8>, Acc)>,
    /// The rest of the body cannot be decoded (a loss hit compressed
    /// bytes, or they do not decompress).
    broken: bool,
    content: Content,
    /// Message frames given out.
    messages: u64,
    delete: bool,
}

enum BodyEnd {
    Done,
    /// The chunked framing does not parse (why, where).
    BadChunk(String, Acc),
}

/// Where a loss of some length inside a body leaves the framing.
enum Skip {
    /// Still inside the body (or chunk) at a known place.
    Inside,
    /// Exactly at the end of the body.
    ToEnd,
    /// Past the end of the body: in the next message's head.
    Past,
    /// Somewhere in the chunked framing: unknown.
    Framing,
}

impl Message {
    /// Takes body bytes from `at`; returns how many, and whether the body ended.
    fn step<F: FnMut(Frame)>(
        &mut self,
        at: &Input<'_>,
        max_line: usize,
        emit: &mut Emit<'_, F>,
    ) -> (usize, Option<BodyEnd>) {
        let bytes = at.bytes;
        let (used, data, end) = match &mut self.framing {
            Framing::Empty => (0, 0..0, Some(BodyEnd::Done)),
            Framing::Length { left } => {
                let n = (*left).min(bytes.len() as u64) as usize;
                *left -= n as u64;
                (n, 0..n, (*left == 0).then_some(BodyEnd::Done))
            }
            Framing::UntilClose => (bytes.len(), 0..bytes.len(), None),
            Framing::Chunked {
                state,
                line,
                line_acc,
            } => match *state {
                ChunkState::Size | ChunkState::Trailer => {
                    let (n, complete) = match memchr::memchr(b'\n', bytes) {
                        Some(k) => (k + 1, true),
                        None => (bytes.len(), false),
                    };
                    line_acc
                        .get_or_insert_with(|| Acc::new(at.off, at.ts))
                        .note(at.off + n as u64, at.ts, &[at.seq]);
                    let room = MAX_CHUNK_LINE.saturating_sub(line.len()).min(n);
                    line.extend_from_slice(&bytes[..room]);
                    if !complete && line.len() < MAX_CHUNK_LINE {
                        return (n, None);
                    }
                    let text = std::mem::take(line);
                    let acc = line_acc.take().unwrap_or_default();
                    if !complete {
                        let why = format!("chunk line longer than {MAX_CHUNK_LINE} bytes");
                        return (n, Some(BodyEnd::BadChunk(why, acc)));
                    }
                    let content = text.strip_suffix(b"\n").unwrap_or(&text);
                    if matches!(*state, ChunkState::Trailer) {
                        let blank = content.is_empty() || content == b"\r";
                        return (n, blank.then_some(BodyEnd::Done));
                    }
                    match chunk_size(content) {
                        Some(0) => *state = ChunkState::Trailer,
                        Some(size) => *state = ChunkState::Data { left: size },
                        None => {
                            let why = format!(
                                "not a chunk-size line: {:.60}",
                                String::from_utf8_lossy(content)
                            );
                            return (n, Some(BodyEnd::BadChunk(why, acc)));
                        }
                    }
                    (n, 0..0, None)
                }
                ChunkState::Data { left } => {
                    let n = left.min(bytes.len() as u64) as usize;
                    let rest = left - n as u64;
                    *state = if rest == 0 {
                        ChunkState::DataEnd { seen_cr: false }
                    } else {
                        ChunkState::Data { left: rest }
                    };
                    (n, 0..n, None)
                }
                ChunkState::DataEnd { seen_cr } => match (seen_cr, bytes[0]) {
                    (false, b'\r') => {
                        *state = ChunkState::DataEnd { seen_cr: true };
                        (1, 0..0, None)
                    }
                    (_, b'\n') => {
                        *state = ChunkState::Size;
                        (1, 0..0, None)
                    }
                    _ => {
                        let mut acc = Acc::new(at.off, at.ts);
                        acc.note(at.off + 1, at.ts, &[at.seq]);
                        let why = "chunk data not followed by CRLF".to_string();
                        return (0, Some(BodyEnd::BadChunk(why, acc)));
                    }
                },
            },
        };
        self.body
            .get_or_insert_with(|| Acc::new(at.off, at.ts))
            .note(at.off + used as u64, at.ts, &[at.seq]);
        if !data.is_empty() {
            self.data(
                at.off + data.start as u64,
                &bytes[data],
                at.ts,
                at.seq,
                max_line,
                emit,
            );
        }
        // A chunk's compressed bytes are decompressed when the chunk is whole.
        if let Framing::Chunked {
            state: ChunkState::DataEnd { seen_cr: false },
            ..
        } = self.framing
        {
            self.flush(false, max_line, emit);
        }
        (used, end)
    }

    /// Body bytes at stream offset `off` (still encoded).
    fn data<F: FnMut(Frame)>(
        &mut self,
        off: u64,
        bytes: &[u8],
        ts: u64,
        seq: u64,
        max_line: usize,
        emit: &mut Emit<'_, F>,
    ) {
        if self.broken {
            return;
        }
        if self.coding.is_none() {
            return self.content_feed(bytes, RawPos::Exact(off), ts, &[seq], max_line, emit);
        }
        let (buf, acc) = self
            .pending
            .get_or_insert_with(|| (Vec::new(), Acc::new(off, ts)));
        acc.note(off + bytes.len() as u64, ts, &[seq]);
        if buf.len() + bytes.len() <= max_line {
            buf.extend_from_slice(bytes);
            // Without chunks to wait for, a body running to the end of the
            // stream is decompressed as it comes.
            if matches!(self.framing, Framing::UntilClose) {
                self.flush(false, max_line, emit);
            }
            return;
        }
        let acc = acc.clone();
        self.pending = None;
        self.broken = true;
        emit.notice_at(
            FlagReason::TooLong,
            format!("a piece of compressed body longer than {max_line} bytes: not decoded"),
            Vec::new(),
            acc,
            Some(&self.meta),
        );
    }

    /// Decompresses the bytes that wait (`last`: the body is complete).
    fn flush<F: FnMut(Frame)>(&mut self, last: bool, max_line: usize, emit: &mut Emit<'_, F>) {
        let Some(coding) = &mut self.coding else {
            return;
        };
        if self.broken {
            return;
        }
        let (input, acc) = match self.pending.take() {
            Some(p) => p,
            None if last => {
                let end = self.body.as_ref().map_or(self.head.end, |b| b.end);
                (Vec::new(), Acc::new(end, self.head.last_ts))
            }
            None => return,
        };
        match coding.run(&input, last) {
            Ok(plain) => {
                let pos = RawPos::Span(acc.start, acc.end);
                self.content_feed(&plain, pos, acc.last_ts, &acc.seqs, max_line, emit);
            }
            Err(e) => {
                self.broken = true;
                let why = format!("{} body does not decompress: {e}", coding.name());
                emit.notice_at(
                    FlagReason::BadEncoding,
                    why,
                    Vec::new(),
                    acc,
                    Some(&self.meta),
                );
            }
        }
    }

    /// Decoded body bytes at `pos`, carried by records `seqs`.
    fn content_feed<F: FnMut(Frame)>(
        &mut self,
        bytes: &[u8],
        pos: RawPos,
        ts: u64,
        seqs: &[u64],
        max_line: usize,
        emit: &mut Emit<'_, F>,
    ) {
        if bytes.is_empty() {
            return;
        }
        if let Content::Undecided = self.content {
            let Some(&first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            self.content = if first == b'{' || first == b'[' {
                Content::Json(TextBody::default())
            } else {
                Content::Other(OtherBody::default())
            };
        }
        match &mut self.content {
            Content::Undecided => {}
            Content::Json(t) => {
                t.acc.get_or_insert_with(|| Acc::new(pos.at(0), ts)).note(
                    pos.after(bytes.len() - 1),
                    ts,
                    seqs,
                );
                let room = max_line.saturating_sub(t.text.len()).min(bytes.len());
                t.text.extend_from_slice(&bytes[..room]);
                t.dropped += (bytes.len() - room) as u64;
            }
            Content::Sse(sse) => {
                let (meta, messages) = (&mut self.meta, &mut self.messages);
                let mut events = Vec::new();
                sse.feed(bytes, pos, ts, seqs, &mut |ev| events.push(ev));
                for ev in events {
                    sse_event(ev, meta, messages, emit);
                }
            }
            Content::Other(o) => {
                o.acc.get_or_insert_with(|| Acc::new(pos.at(0), ts)).note(
                    pos.after(bytes.len() - 1),
                    ts,
                    seqs,
                );
                let room = ERROR_BODY_SHOWN
                    .saturating_sub(o.shown.len())
                    .min(bytes.len());
                o.shown.extend_from_slice(&bytes[..room]);
            }
        }
    }

    /// Body bytes were lost (the framing may still know where the body goes on).
    fn content_lost<F: FnMut(Frame)>(&mut self, cut: Cut, emit: &mut Emit<'_, F>) {
        if self.coding.is_some() {
            // Compressed data cannot be picked up mid-way.
            self.broken = true;
            self.pending = None;
            return;
        }
        match &mut self.content {
            Content::Json(t) => {
                if let Some(acc) = t.acc.take() {
                    let text = std::mem::take(&mut t.text);
                    emit.text(text, acc, t.cut_start.take(), Some(cut), Some(&self.meta));
                }
                t.dropped = 0;
                t.cut_start = Some(cut);
            }
            Content::Sse(sse) => {
                let mut events = Vec::new();
                sse.lost(cut, &mut |ev| events.push(ev));
                for ev in events {
                    sse_event(ev, &mut self.meta, &mut self.messages, emit);
                }
            }
            Content::Undecided | Content::Other(_) => {}
        }
    }

    /// A loss of `len` bytes here: where does it leave the framing?
    fn skip(&mut self, len: u64) -> Skip {
        match &mut self.framing {
            Framing::Empty => Skip::Past,
            Framing::UntilClose => Skip::Inside,
            Framing::Length { left } => {
                let skip = match len.cmp(left) {
                    std::cmp::Ordering::Less => Skip::Inside,
                    std::cmp::Ordering::Equal => Skip::ToEnd,
                    std::cmp::Ordering::Greater => Skip::Past,
                };
                *left = left.saturating_sub(len);
                skip
            }
            Framing::Chunked { state, .. } => match *state {
                ChunkState::Data { left } if len < left => {
                    *state = ChunkState::Data { left: left - len };
                    Skip::Inside
                }
                ChunkState::Data { left } if len == left => {
                    *state = ChunkState::DataEnd { seen_cr: false };
                    Skip::Inside
                }
                _ => Skip::Framing,
            },
        }
    }

    /// Picks the chunked framing up again at a chunk-size line.
    fn resume_chunks(&mut self, size: u64) {
        self.framing = Framing::Chunked {
            state: if size == 0 {
                ChunkState::Trailer
            } else {
                ChunkState::Data { left: size }
            },
            line: Vec::new(),
            line_acc: None,
        };
    }

    /// The body is over (`cut`: before its end).
    fn finish<F: FnMut(Frame)>(
        &mut self,
        cut: Option<Cut>,
        max_line: usize,
        emit: &mut Emit<'_, F>,
    ) {
        self.flush(cut.is_none(), max_line, emit);
        let content = std::mem::replace(&mut self.content, Content::Undecided);
        let mut shown = (Vec::new(), None);
        match content {
            Content::Json(t) => {
                let blank = t.dropped == 0 && t.text.iter().all(u8::is_ascii_whitespace);
                match t.acc {
                    Some(acc) if !blank => {
                        let too_long =
                            (t.dropped > 0).then_some(Cut::TooLong { dropped: t.dropped });
                        self.messages += 1;
                        emit.text(t.text, acc, t.cut_start, cut.or(too_long), Some(&self.meta));
                    }
                    acc => shown.1 = acc,
                }
            }
            Content::Sse(mut sse) => {
                let mut events = Vec::new();
                sse.finish(cut, &mut |ev| events.push(ev));
                for ev in events {
                    if cut.is_none() && ev.cut_end == Some(Cut::CaptureEnd) {
                        emit.notice_at(
                            FlagReason::Truncated,
                            "an SSE event that its response ended without the blank line that completes it (clients drop it)".into(),
                            ev.data,
                            ev.acc,
                            Some(&self.meta),
                        );
                    } else {
                        sse_event(ev, &mut self.meta, &mut self.messages, emit);
                    }
                }
            }
            Content::Other(o) => shown = (o.shown, o.acc),
            Content::Undecided => {}
        }
        if self.meta.status.is_some_and(|s| s >= 400) && self.messages == 0 {
            let mut acc = self.head.clone();
            if let Some(body) = shown.1.as_ref().or(self.body.as_ref()) {
                acc.join(body);
            }
            let request = match (&self.meta.method, &self.meta.path) {
                (Some(m), Some(p)) => format!(" to {m} {p:.120}"),
                _ => String::new(),
            };
            let status = String::from_utf8_lossy(self.first_line.get(9..).unwrap_or_default());
            emit.notice_at(
                FlagReason::HttpError,
                format!(
                    "HTTP {}{request}, without a JSON-RPC message",
                    status.trim()
                ),
                shown.0,
                acc,
                Some(&self.meta),
            );
        }
        if self.delete {
            let mut f = Frame::plain(
                self.head.start,
                self.head.end,
                self.head.first_ts,
                self.head.last_ts,
                self.head.seqs.clone(),
                FrameBody::Event(HttpEvent::Delete),
            );
            f.http = Some(self.meta.clone());
            emit.frame(f);
        }
    }
}

/// An SSE event out of a body: a message frame, or the legacy endpoint
/// (which the messages after it on the stream then carry in their meta).
fn sse_event<F: FnMut(Frame)>(
    ev: SseEvent,
    meta: &mut Arc<HttpMeta>,
    messages: &mut u64,
    emit: &mut Emit<'_, F>,
) {
    if ev.kind == SseKind::Endpoint && ev.cut_start.is_none() && ev.cut_end.is_none() {
        let path = endpoint_path(&String::from_utf8_lossy(&ev.data));
        *meta = Arc::new(HttpMeta {
            endpoint: Some(path.clone()),
            ..(**meta).clone()
        });
        let mut f = Frame::plain(
            ev.acc.start,
            ev.acc.end,
            ev.acc.first_ts,
            ev.acc.last_ts,
            ev.acc.seqs,
            FrameBody::Event(HttpEvent::Endpoint(path)),
        );
        f.http = Some(meta.clone());
        return emit.frame(f);
    }
    *messages += 1;
    emit.text(ev.data, ev.acc, ev.cut_start, ev.cut_end, Some(meta));
}

/// An endpoint as a path and query: `http://host:port/messages?x=1` → `/messages?x=1`.
pub fn endpoint_path(endpoint: &str) -> Box<str> {
    let e = endpoint.trim();
    let rest = e
        .split_once("://")
        .map_or(e, |(_, after)| after.find('/').map_or("/", |i| &after[i..]));
    rest.into()
}

/// Looking for where HTTP framing can resume: the next line that starts an
/// HTTP message, or (in a chunked body) a chunk-size line.
#[derive(Debug)]
struct Resync {
    /// A chunked body whose framing was lost.
    body: Option<Box<Message>>,
    /// The line in progress, and its stream bytes.
    line: Vec<u8>,
    line_acc: Option<Acc>,
    /// Captured bytes passed over.
    skipped: Skipped,
}

#[derive(Debug, Default)]
struct Skipped {
    text: Vec<u8>,
    acc: Option<Acc>,
    meta: Option<Arc<HttpMeta>>,
}

impl Skipped {
    fn add(&mut self, text: &[u8], acc: Acc, max_line: usize) {
        let room = max_line.saturating_sub(self.text.len()).min(text.len());
        self.text.extend_from_slice(&text[..room]);
        match &mut self.acc {
            Some(a) => a.join(&acc),
            None => self.acc = Some(acc),
        }
    }

    /// Reports the bytes passed over, unless they are only line ends and
    /// blanks (chunk framing): those say nothing.
    fn emit<F: FnMut(Frame)>(self, cut_end: Option<Cut>, emit: &mut Emit<'_, F>) {
        if self.text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if let Some(acc) = self.acc {
            let cut = Some(Cut::Loss(Loss::Missing));
            emit.fragment(self.text, acc, cut, cut_end, self.meta.as_ref());
        }
    }
}

enum Found {
    Nothing,
    /// An HTTP start line (without its LF) and its stream bytes.
    StartLine(Vec<u8>, Acc),
    /// A chunk-size line of the body being resumed.
    ChunkSize(u64),
}

impl Resync {
    fn new(body: Option<Box<Message>>) -> Self {
        let meta = body.as_ref().map(|m| m.meta.clone());
        Resync {
            body,
            line: Vec::new(),
            line_acc: None,
            skipped: Skipped {
                meta,
                ..Skipped::default()
            },
        }
    }

    /// Another loss while resynchronising: what was passed over so far is
    /// reported, and the line in progress is broken.
    fn lost<F: FnMut(Frame)>(&mut self, max_line: usize, emit: &mut Emit<'_, F>) {
        if let Some(acc) = self.line_acc.take() {
            let line = std::mem::take(&mut self.line);
            self.skipped.add(&line, acc, max_line);
        }
        let meta = self.skipped.meta.clone();
        std::mem::take(&mut self.skipped).emit(None, emit);
        self.skipped.meta = meta;
    }

    fn step(&mut self, at: &Input<'_>, max_line: usize) -> (usize, Found) {
        let bytes = at.bytes;
        let (n, complete) = match memchr::memchr(b'\n', bytes) {
            Some(k) => (k + 1, true),
            None => (bytes.len(), false),
        };
        self.line_acc
            .get_or_insert_with(|| Acc::new(at.off, at.ts))
            .note(at.off + n as u64, at.ts, &[at.seq]);
        let room = MAX_RESYNC_LINE.saturating_sub(self.line.len()).min(n);
        self.line.extend_from_slice(&bytes[..room]);
        if !complete {
            return (n, Found::Nothing);
        }
        let line = std::mem::take(&mut self.line);
        let acc = self.line_acc.take().unwrap_or_default();
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if is_start_line(content) {
            return (n, Found::StartLine(content.to_vec(), acc));
        }
        if self.body.is_some() {
            if let Some(size) = chunk_size(content) {
                return (n, Found::ChunkSize(size));
            }
        }
        self.skipped.add(&line, acc, max_line);
        (n, Found::Nothing)
    }
}
