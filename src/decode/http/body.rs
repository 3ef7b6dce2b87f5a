//! An HTTP message's body: its extent (Content-Length, chunked, or the
//! stream's end), its content coding, and what it holds (a JSON message,
//! an event stream, or something else), framed into messages.

use super::coding::Coding;
use super::head::chunk_size;
use super::{endpoint_path, Emit, Input, ERROR_BODY_SHOWN, MAX_CHUNK_LINE};
use crate::decode::frame::{Cut, Frame, FrameBody, HttpEvent};
use crate::decode::item::{FlagReason, HttpMeta};
use crate::decode::sse::{Acc, RawPos, Sse, SseEvent, SseKind};
use std::sync::Arc;

/// How a body's extent is known.
#[derive(Debug)]
pub(super) enum Framing {
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

impl Message {
    /// Bytes held for this message's body so far.
    pub(super) fn held(&self) -> usize {
        let line = match &self.framing {
            Framing::Chunked { line, .. } => line.len(),
            _ => 0,
        };
        let content = match &self.content {
            Content::Undecided => 0,
            Content::Json(t) => t.text.len(),
            Content::Sse(s) => s.held(),
            Content::Other(o) => o.shown.len(),
        };
        self.first_line.len() + line + self.pending.as_ref().map_or(0, |p| p.0.len()) + content
    }
}

impl Framing {
    pub(super) fn chunked() -> Self {
        Framing::Chunked {
            state: ChunkState::Size,
            line: Vec::new(),
            line_acc: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum ChunkState {
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

/// What the body holds.
#[derive(Debug)]
pub(super) enum Content {
    /// No Content-Type: JSON if it starts like JSON.
    Undecided,
    Json(TextBody),
    Sse(Sse),
    Other(OtherBody),
}

/// A JSON body being gathered.
#[derive(Debug, Default)]
pub(super) struct TextBody {
    pub(super) text: Vec<u8>,
    dropped: u64,
    pub(super) acc: Option<Acc>,
    /// The text follows lost bytes of the same body.
    pub(super) cut_start: Option<Cut>,
}

/// A body that is not a message: its length and first bytes (for errors).
#[derive(Debug, Default)]
pub(super) struct OtherBody {
    shown: Vec<u8>,
    pub(super) acc: Option<Acc>,
}

/// One HTTP message after its head.
#[derive(Debug)]
pub(super) struct Message {
    pub(super) meta: Arc<HttpMeta>,
    pub(super) first_line: Vec<u8>,
    pub(super) head: Acc,
    /// The body's stream bytes so far.
    pub(super) body: Option<Acc>,
    pub(super) framing: Framing,
    pub(super) coding: Option<Coding>,
    /// Compressed bytes waiting for the end of their chunk (or body).
    pub(super) pending: Option<(Vec<u8>, Acc)>,
    /// The rest of the body cannot be decoded (a loss hit compressed
    /// bytes, or they do not decompress).
    pub(super) broken: bool,
    pub(super) content: Content,
    /// Message frames given out.
    pub(super) messages: u64,
    pub(super) delete: bool,
}

pub(super) enum BodyEnd {
    Done,
    /// The chunked framing does not parse (why, where).
    BadChunk(String, Acc),
}

/// Where a loss of some length inside a body leaves the framing.
pub(super) enum Skip {
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
    pub(super) fn step<F: FnMut(Frame)>(
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
    pub(super) fn data<F: FnMut(Frame)>(
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
    pub(super) fn flush<F: FnMut(Frame)>(
        &mut self,
        last: bool,
        max_line: usize,
        emit: &mut Emit<'_, F>,
    ) {
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
        match coding.run(&input, last, max_line) {
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
            let start = bytes.trim_ascii_start();
            // A body whose headers are unknown (HTTP/2 picked up mid-way)
            // may be an event stream too.
            let sse = [&b"event:"[..], b"data:", b"id:", b":"]
                .iter()
                .any(|f| start.starts_with(f));
            self.content = if first == b'{' || first == b'[' {
                Content::Json(TextBody::default())
            } else if sse && self.meta.head.is_none() {
                Content::Sse(Sse::new(max_line))
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
    pub(super) fn content_lost<F: FnMut(Frame)>(&mut self, cut: Cut, emit: &mut Emit<'_, F>) {
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
    pub(super) fn skip(&mut self, len: u64) -> Skip {
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
    pub(super) fn resume_chunks(&mut self, size: u64) {
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
    pub(super) fn finish<F: FnMut(Frame)>(
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
