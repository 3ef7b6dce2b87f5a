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

//!
//! [`h2`] frames HTTP/2 into the same messages. [`head`] reads and parses heads; [`body`] frames bodies, undoing their
//! [`coding`]; [`resync`] finds where framing resumes after a loss.

mod body;
mod coding;
mod h2;
mod head;
mod resync;

pub use h2::{frames_start, server_preface, SocketH2, H2};

use super::frame::{Cut, Frame, FrameBody};
use super::item::{FlagReason, HttpMeta};
use super::reassembly::{Loss, Piece};
use super::sse::{Acc, Sse};
use body::{BodyEnd, Content, Framing, Message, OtherBody, Skip, TextBody};
use coding::Coding;
use head::{first_line, parse_head, Head, HeadDone, Headers, Parsed, Start};
use resync::{Found, Resync};
use std::collections::VecDeque;
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

/// What HTTP knows of one socket (or TLS connection) in one process,
/// shared by the framers of its two directions.
#[derive(Debug, Default)]
pub struct SocketHttp {
    /// Requests seen on this socket, not yet answered, oldest first.
    requests: VecDeque<Request>,
    /// The connection switched protocols (101, or CONNECT's 2xx).
    upgraded: bool,
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

impl Request {
    /// The request's own HTTP context, as its message shows it.
    fn into_meta(self) -> HttpMeta {
        HttpMeta {
            is_request: true,
            method: Some(self.method),
            path: Some(self.path),
            host: self.host,
            session_id: self.session_id,
            protocol_version: self.protocol_version,
            ..HttpMeta::default()
        }
    }

    /// The HTTP context of the response to this request (default when the
    /// request was not seen): the response's session id, else the request's.
    fn response_meta(self, status: Option<u16>, session_id: Option<Box<str>>) -> HttpMeta {
        let known = !self.method.is_empty();
        HttpMeta {
            is_request: false,
            method: known.then_some(self.method),
            path: known.then_some(self.path),
            host: self.host,
            status,
            session_id: session_id.or(self.session_id),
            protocol_version: self.protocol_version,
            ..HttpMeta::default()
        }
    }
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

    /// Bytes held for the message in progress.
    pub fn held(&self) -> usize {
        match &self.state {
            State::Head(h) => h.buf.len(),
            State::Body(m) => m.held(),
            State::Resync(r) => {
                r.line.len() + r.skipped.text.len() + r.body.as_ref().map_or(0, |m| m.held())
            }
            State::Tunnel { .. } => 0,
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
                let meta = request.into_meta();
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
                let meta = request.response_meta(Some(status), h.session_id.clone());
                (meta, framing)
            }
        };
        let mut msg = open_message(meta, framing, h, &head.buf, head.acc(), self.max_line, emit);
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
        let lost = super::frame::lost_frame(off, len, why, ts, seq);
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

/// The message a parsed head opens (HTTP/1.x and HTTP/2 alike): what its
/// body holds, its content coding, and what HTTP says about it. `head` is
/// the head as text (for HTTP/2, rebuilt from its header block).
fn open_message(
    meta: HttpMeta,
    framing: Framing,
    h: Headers,
    head: &[u8],
    head_acc: Acc,
    max_line: usize,
    emit: &mut Emit<'_, impl FnMut(Frame)>,
) -> Box<Message> {
    let content = match h.content_type.as_deref() {
        Some(ct) if ct.contains("text/event-stream") => Content::Sse(Sse::new(max_line)),
        Some(ct) if ct.contains("json") => Content::Json(TextBody::default()),
        Some(_) => Content::Other(OtherBody::default()),
        None => Content::Undecided,
    };
    let meta = HttpMeta {
        sse: matches!(content, Content::Sse(_)),
        head: std::str::from_utf8(head)
            .ok()
            .map(str::trim_end)
            .filter(|h| !h.is_empty())
            .map(Into::into),
        ..meta
    };
    let delete = meta.is_request && meta.method.as_deref() == Some("DELETE");
    let coding = match h.coding {
        Ok(c) => c,
        Err(name) => {
            emit.notice_at(
                FlagReason::BadEncoding,
                format!(
                    "a body in content coding `{name:.60}`, which this version does not decode"
                ),
                first_line(head).to_vec(),
                head_acc.clone(),
                Some(&meta),
            );
            Some(Coding::Undecodable)
        }
    };
    let undecodable = matches!(coding, Some(Coding::Undecodable));
    Box::new(Message {
        meta: Arc::new(meta),
        first_line: first_line(head).to_vec(),
        head: head_acc,
        body: None,
        framing,
        coding,
        pending: None,
        broken: undecodable,
        content,
        messages: 0,
        delete,
    })
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

/// An endpoint as a path and query: `http://host:port/messages?x=1` → `/messages?x=1`.
pub fn endpoint_path(endpoint: &str) -> Box<str> {
    let e = endpoint.trim();
    let rest = e
        .split_once("://")
        .map_or(e, |(_, after)| after.find('/').map_or("/", |i| &after[i..]));
    rest.into()
}
