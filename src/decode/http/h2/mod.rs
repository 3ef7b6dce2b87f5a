//! HTTP/2 framing (RFC 9113): one direction of a connection becomes the
//! same frames HTTP/1.x gives, one per JSON-RPC message, each with its
//! [`HttpMeta`](crate::decode::item::HttpMeta).
//!
//! Frames are read one by one; a HEADERS block (with its CONTINUATIONs) is
//! decoded with this direction's HPACK table ([`headers`]) and opens a
//! message on its stream; DATA payloads (without padding) are that
//! message's body, whatever the flow control split them into; END_STREAM
//! ends it, RST_STREAM cuts it (and says so). Bodies go through the same
//! [`Message`] as HTTP/1.x bodies: JSON, SSE events, content codings. A
//! response learns its request by stream id from the other direction of
//! the same socket ([`SocketH2`]).
//!
//! Damage stays local. A loss inside a DATA payload is stepped over
//! exactly. A loss anywhere else loses the framing and the HPACK state:
//! framing resumes at the next run of plausible frame headers
//! ([`wire::frames_start`]), and from then on header blocks are not decoded
//! (a guess at the table would give wrong headers silently), while DATA
//! still is, as bodies without headers. A connection picked up mid-way
//! starts that way, and is flagged.

mod frames;
mod headers;
mod resync;
mod wire;

pub use wire::{frames_start, server_preface};

use super::body::{Framing, Message};
use super::{open_message, Emit, Request, MAX_PENDING_REQUESTS};
use crate::decode::frame::{lost_frame, Cut, Frame};
use crate::decode::item::{FlagReason, HttpMeta};
use crate::decode::reassembly::{Loss, Piece};
use crate::decode::sse::Acc;
use frames::response_meta;
use headers::{BlockKind, Decoded};
use resync::Scan;
use std::collections::{BTreeMap, HashMap};
use wire::{FrameHead, HEADER_LEN};

/// Largest dynamic table a peer may make this decoder keep.
const MAX_TABLE: usize = 64 << 10;
/// Longest header block (HEADERS and CONTINUATIONs) decoded.
const MAX_BLOCK: usize = 256 << 10;
/// Payload bytes kept of a control frame (the rest is not needed).
const MAX_CONTROL: usize = 1024;
/// Bytes held while looking for the next frame after a loss.
const MAX_RESYNC: usize = 64 << 10;
/// Messages open at once on one direction.
const MAX_OPEN: usize = 4096;

/// What HTTP/2 knows of one socket (or TLS connection) in one process,
/// shared by its two directions: the requests awaiting their responses.
#[derive(Debug, Default)]
pub struct SocketH2 {
    requests: HashMap<u32, Request>,
}

pub struct H2 {
    max_line: usize,
    hpack: loona_hpack::Decoder<'static>,
    /// The HPACK table is no longer known (a loss, a block that did not
    /// decode, a connection picked up mid-way): header blocks are skipped.
    hpack_lost: bool,
    read: Read,
    /// This direction's open messages, by stream.
    open: BTreeMap<u32, Open>,
    /// A header block still waiting for its CONTINUATIONs.
    block: Option<Block>,
    accounted: Option<u64>,
    /// This direction carries requests (it sent the preface or a :method).
    requests: Option<bool>,
}

impl std::fmt::Debug for H2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2")
            .field("hpack_lost", &self.hpack_lost)
            .field("open", &self.open.len())
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Read {
    /// The first bytes: the client preface, or (the server) a frame.
    Start,
    Preface {
        matched: usize,
    },
    Head {
        buf: [u8; HEADER_LEN],
        have: usize,
        acc: Acc,
    },
    Payload(Box<Payload>),
    /// After a loss: bytes held until a frame header is found.
    Resync(Box<Scan>),
}

#[derive(Debug)]
struct Payload {
    head: FrameHead,
    /// Payload bytes taken so far.
    at: u32,
    /// The frame's bytes so far, its header included.
    acc: Acc,
    /// Padded DATA: the pad length, once read.
    pad: Option<u8>,
    /// Payload kept (header blocks and control frames).
    kept: Vec<u8>,
    /// Part of the payload was lost, or did not fit.
    damaged: bool,
}

#[derive(Debug)]
struct Held {
    off: u64,
    bytes: Vec<u8>,
    ts: u64,
    seq: u64,
}

#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    promise: bool,
    bytes: Vec<u8>,
    acc: Acc,
    damaged: bool,
}

#[derive(Debug)]
struct Open {
    msg: Box<Message>,
    /// Its meta is a guess (no headers, direction unknown): not shown.
    hide_meta: bool,
}

impl H2 {
    /// `after_loss`: the stream's first bytes were lost (picked up mid-way).
    pub fn new(max_line: usize, after_loss: bool) -> Self {
        H2 {
            max_line,
            hpack: headers::decoder(MAX_TABLE),
            hpack_lost: after_loss,
            read: if after_loss {
                Read::Resync(Box::default())
            } else {
                Read::Start
            },
            open: BTreeMap::new(),
            block: None,
            accounted: None,
            requests: None,
        }
    }

    pub fn carries_requests(&self) -> Option<bool> {
        self.requests
    }

    /// Bytes held for messages and frames in progress.
    pub fn held(&self) -> usize {
        let read = match &self.read {
            Read::Payload(p) => p.kept.len(),
            Read::Resync(scan) => scan.all.len(),
            _ => 0,
        };
        let open: usize = self.open.values().map(|o| o.msg.held()).sum();
        read + open + self.block.as_ref().map_or(0, |b| b.bytes.len())
    }

    pub fn feed(&mut self, piece: Piece<'_>, sock: &mut SocketH2, out: &mut impl FnMut(Frame)) {
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
                self.data(off, bytes, ts, seq, sock, &mut emit);
            }
            Piece::Lost { .. } => self.lost(piece, sock, &mut emit),
            Piece::Late { .. } => {}
        }
        self.accounted = emit.accounted;
    }

    fn data<F: FnMut(Frame)>(
        &mut self,
        off: u64,
        bytes: &[u8],
        ts: u64,
        seq: u64,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let mut pos = 0;
        while pos < bytes.len() {
            let at = At {
                off: off + pos as u64,
                bytes: &bytes[pos..],
                ts,
                seq,
            };
            pos += self.step(at, sock, emit);
        }
    }

    /// Consumes some of `at` (at least one byte, or a change of state).
    fn step<F: FnMut(Frame)>(
        &mut self,
        at: At<'_>,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) -> usize {
        match &mut self.read {
            Read::Start => {
                self.read = if at.bytes[0] == wire::PREFACE[0] {
                    Read::Preface { matched: 0 }
                } else {
                    self.requests.get_or_insert(false);
                    Read::Head {
                        buf: [0; HEADER_LEN],
                        have: 0,
                        acc: Acc::new(at.off, at.ts),
                    }
                };
                0
            }
            Read::Preface { matched } => {
                let want = &wire::PREFACE[*matched..];
                let n = want.len().min(at.bytes.len());
                if at.bytes[..n] != want[..n] {
                    let mut acc = Acc::new(at.off, at.ts);
                    acc.note(at.off + n as u64, at.ts, &[at.seq]);
                    let text = at.bytes[..n].to_vec();
                    let why = "bytes that are not the HTTP/2 client preface".to_string();
                    emit.notice_at(FlagReason::BadHttp, why, text, acc, None);
                    self.enter_resync(emit);
                    return n;
                }
                *matched += n;
                if *matched == wire::PREFACE.len() {
                    // Accounted for by the first frame after it.
                    self.requests = Some(true);
                    self.read = Read::Head {
                        buf: [0; HEADER_LEN],
                        have: 0,
                        acc: Acc::new(at.off + n as u64, at.ts),
                    };
                }
                n
            }
            Read::Head { buf, have, acc } => {
                if *have == 0 {
                    *acc = Acc::new(at.off, at.ts);
                }
                let n = (HEADER_LEN - *have).min(at.bytes.len());
                buf[*have..*have + n].copy_from_slice(&at.bytes[..n]);
                *have += n;
                acc.note(at.off + n as u64, at.ts, &[at.seq]);
                if *have == HEADER_LEN {
                    let head = FrameHead::parse(buf);
                    let acc = std::mem::take(acc);
                    self.read = Read::Payload(Box::new(Payload {
                        head,
                        at: 0,
                        acc,
                        pad: None,
                        kept: Vec::new(),
                        damaged: false,
                    }));
                    if head.len == 0 {
                        self.frame_done(sock, emit);
                    }
                }
                n
            }
            Read::Payload(p) => {
                let n = ((p.head.len - p.at) as usize).min(at.bytes.len());
                let bytes = &at.bytes[..n];
                p.acc.note(at.off + n as u64, at.ts, &[at.seq]);
                if p.head.kind == wire::DATA {
                    self.data_payload(&at, n, sock, emit);
                } else {
                    let cap = if matches!(
                        p.head.kind,
                        wire::HEADERS | wire::CONTINUATION | wire::PUSH_PROMISE
                    ) {
                        MAX_BLOCK
                    } else {
                        MAX_CONTROL
                    };
                    let room = cap.saturating_sub(p.kept.len()).min(n);
                    p.kept.extend_from_slice(&bytes[..room]);
                    p.damaged |= room < n && cap == MAX_BLOCK;
                    p.at += n as u32;
                }
                if let Read::Payload(p) = &self.read {
                    if p.at == p.head.len {
                        self.frame_done(sock, emit);
                    }
                }
                n
            }
            Read::Resync(scan) => {
                scan.held.push(Held {
                    off: at.off,
                    bytes: at.bytes.to_vec(),
                    ts: at.ts,
                    seq: at.seq,
                });
                scan.all.extend_from_slice(at.bytes);
                self.try_resync(false, sock, emit);
                at.bytes.len()
            }
        }
    }

    /// `n` bytes of a DATA payload at `at`: the pad length, body, padding.
    fn data_payload<F: FnMut(Frame)>(
        &mut self,
        at: &At<'_>,
        n: usize,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let Read::Payload(p) = &mut self.read else {
            return;
        };
        let (head, start) = (p.head, p.at);
        let mut skip = 0usize;
        if head.has(wire::PADDED) && p.pad.is_none() {
            p.pad = Some(at.bytes[0]);
            skip = 1;
            if u32::from(at.bytes[0]) >= head.len {
                p.damaged = true;
            }
        }
        p.at += n as u32;
        if p.damaged {
            return;
        }
        // The body is the payload less the pad length byte and the padding.
        let body_end = head.len - u32::from(p.pad.unwrap_or(0));
        let from = start + skip as u32;
        let to = (start + n as u32).min(body_end);
        if to <= from {
            return;
        }
        let slice = &at.bytes[skip..skip + (to - from) as usize];
        let off = at.off + skip as u64;
        let (max_line, ts, seq) = (self.max_line, at.ts, at.seq);
        let open = self.open_for(head.stream, sock, emit);
        let Some(o) = open else { return };
        o.msg.body.get_or_insert_with(|| Acc::new(off, ts)).note(
            off + slice.len() as u64,
            ts,
            &[seq],
        );
        with_emit(emit, o.hide_meta, |e| {
            o.msg.data(off, slice, ts, seq, max_line, e)
        });
    }

    /// The open message of `stream`, or a message without headers for
    /// body bytes whose HEADERS were never decoded.
    fn open_for<F: FnMut(Frame)>(
        &mut self,
        stream: u32,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) -> Option<&mut Open> {
        if !self.open.contains_key(&stream) {
            let acc = match &self.read {
                Read::Payload(p) => p.acc.clone(),
                _ => return None,
            };
            self.open_headerless(stream, acc, sock, emit);
        }
        self.open.get_mut(&stream)
    }

    fn open_headerless<F: FnMut(Frame)>(
        &mut self,
        stream: u32,
        acc: Acc,
        sock: &mut SocketH2,
        emit: &mut Emit<'_, F>,
    ) {
        let meta = match self.requests {
            Some(true) => HttpMeta {
                is_request: true,
                ..HttpMeta::default()
            },
            Some(false) => response_meta(sock.requests.remove(&stream), None),
            None => HttpMeta::default(),
        };
        let meta = HttpMeta {
            stream: Some(stream),
            ..meta
        };
        let msg = open_message(
            meta,
            Framing::UntilClose,
            headers::none(),
            b"",
            acc,
            self.max_line,
            emit,
        );
        self.insert(stream, msg, self.requests.is_none(), emit);
    }

    fn insert<F: FnMut(Frame)>(
        &mut self,
        stream: u32,
        msg: Box<Message>,
        hide_meta: bool,
        emit: &mut Emit<'_, F>,
    ) {
        if let Some(mut old) = self.open.remove(&stream) {
            self.finish_msg(&mut old, Some(Cut::Loss(Loss::Missing)), emit);
        }
        if self.open.len() >= MAX_OPEN {
            if let Some((_, mut oldest)) = self.open.pop_first() {
                self.finish_msg(&mut oldest, Some(Cut::Loss(Loss::Limit)), emit);
            }
        }
        self.open.insert(stream, Open { msg, hide_meta });
    }

    fn finish_msg<F: FnMut(Frame)>(&self, o: &mut Open, cut: Option<Cut>, emit: &mut Emit<'_, F>) {
        let max_line = self.max_line;
        with_emit(emit, o.hide_meta, |e| o.msg.finish(cut, max_line, e));
    }

    fn end_stream<F: FnMut(Frame)>(
        &mut self,
        stream: u32,
        cut: Option<Cut>,
        emit: &mut Emit<'_, F>,
    ) {
        if let Some(mut o) = self.open.remove(&stream) {
            self.finish_msg(&mut o, cut, emit);
        }
    }

    /// The stream is over: messages still open were cut by the capture's end.
    pub fn finish(&mut self, sock: &mut SocketH2, out: &mut impl FnMut(Frame)) {
        let mut emit = Emit {
            accounted: self.accounted,
            out,
        };
        self.try_resync(true, sock, &mut emit);
        if let Some(b) = self.block.take() {
            let why = "a header block that the capture ended inside".to_string();
            emit.notice_at(FlagReason::Truncated, why, Vec::new(), b.acc, None);
        }
        if let Read::Resync(scan) = &self.read {
            if let (Some(first), Some(last)) = (scan.held.first(), scan.held.last()) {
                let mut acc = Acc::new(first.off, first.ts);
                acc.note(last.off + last.bytes.len() as u64, last.ts, &[last.seq]);
                let why = "HTTP/2 bytes in which no frame could be found".to_string();
                emit.notice_at(FlagReason::HeadersUnknown, why, Vec::new(), acc, None);
            }
        }
        let open = std::mem::take(&mut self.open);
        for (_, mut o) in open {
            self.finish_msg(&mut o, Some(Cut::CaptureEnd), &mut emit);
        }
        self.accounted = emit.accounted;
    }
}

/// A slice of a data piece.
struct At<'a> {
    off: u64,
    bytes: &'a [u8],
    ts: u64,
    seq: u64,
}

/// Runs `run` with an emitter that drops the HTTP meta of the frames it
/// gives out when `hide_meta` (a message whose direction is not known).
fn with_emit<F: FnMut(Frame)>(
    emit: &mut Emit<'_, F>,
    hide_meta: bool,
    run: impl FnOnce(&mut Emit<'_, &mut dyn FnMut(Frame)>),
) {
    let out = &mut *emit.out;
    let mut pass = |mut f: Frame| {
        if hide_meta {
            f.http = None;
        }
        out(f)
    };
    let mut dyn_out: &mut dyn FnMut(Frame) = &mut pass;
    let mut e = Emit {
        accounted: emit.accounted,
        out: &mut dyn_out,
    };
    run(&mut e);
    emit.accounted = e.accounted;
}

#[cfg(test)]
mod tests;
