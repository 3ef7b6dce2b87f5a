//! Framing: a stream's reassembled bytes become frames, each the text of one
//! message, an explicit loss, or something worth flagging.
//!
//! stdio and Unix sockets carry newline-delimited JSON. TCP and TLS streams
//! are sniffed first ([`sniff`](super::sniff)): HTTP/1.x is framed by
//! [`http`](super::http) (bodies, SSE events), JSON lines as on stdio, and
//! anything else (HTTP/2, ciphertext, unknown protocols) is reported once,
//! never dropped silently.

use super::http::{Http, SocketHttp};
use super::item::{FlagReason, HttpMeta};
use super::reassembly::{Loss, Piece};
use super::sniff::{self, Protocol};
use std::sync::Arc;

/// Where a frame's text stops being the whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Bytes next to it were lost.
    Loss(Loss),
    /// The capture ended before the message did.
    CaptureEnd,
    /// Longer than the decoder keeps: `dropped` bytes were not kept.
    TooLong { dropped: u64 },
}

/// Something HTTP said that is not a message but tells how messages belong
/// together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// The legacy HTTP+SSE transport's `endpoint` event: where the client
    /// is to POST its messages (a path).
    Endpoint(Box<str>),
    /// A DELETE request: the client ends its session.
    Delete,
}

#[derive(Debug)]
pub enum FrameBody {
    /// One message's text, without its newline (and without a CR before it).
    /// `cut_start`: the text follows lost bytes, so it may be the tail of a
    /// message. `cut_end`: the message goes on past the text.
    Text {
        text: Vec<u8>,
        cut_start: Option<Cut>,
        cut_end: Option<Cut>,
    },
    /// Bytes that were never captured.
    Lost { why: Loss },
    /// Bytes that arrived after their place in the stream had been passed.
    Late,
    /// A protocol this decoder recognises but does not decode; `text` is
    /// its first line.
    Unsupported { protocol: String, text: Vec<u8> },
    /// Captured bytes that say something is wrong (bad HTTP, a body that
    /// does not decompress, an HTTP error without a message).
    Notice {
        reason: FlagReason,
        detail: String,
        text: Vec<u8>,
    },
    /// HTTP bookkeeping, not shown.
    Event(HttpEvent),
}

/// A framed piece of one stream.
#[derive(Debug)]
pub struct Frame {
    /// Stream offsets [start, end) (for text: without the newline).
    pub start: u64,
    pub end: u64,
    /// The captured bytes this frame accounts for start here (at or before
    /// `start`): for HTTP, the head and framing before a body's text.
    pub covers: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// The records it came from.
    pub seqs: Vec<u64>,
    pub body: FrameBody,
    /// HTTP streams: the message's HTTP context.
    pub http: Option<Arc<HttpMeta>>,
}

impl Frame {
    /// A frame with no HTTP context that accounts for its own bytes only.
    pub fn plain(
        start: u64,
        end: u64,
        first_ts: u64,
        last_ts: u64,
        seqs: Vec<u64>,
        body: FrameBody,
    ) -> Self {
        Frame {
            start,
            end,
            covers: start,
            first_ts,
            last_ts,
            seqs,
            body,
            http: None,
        }
    }

    /// A whole thing to pair with the other copy: text that ends where its
    /// message ends, or a report about captured bytes.
    pub fn ends_cleanly(&self) -> bool {
        matches!(
            self.body,
            FrameBody::Text { cut_end: None, .. }
                | FrameBody::Unsupported { .. }
                | FrameBody::Notice { .. }
                | FrameBody::Event(_)
        )
    }

    /// The bytes that identify it, for pairing by content.
    pub fn text(&self) -> Option<&[u8]> {
        match &self.body {
            FrameBody::Text { text, .. }
            | FrameBody::Unsupported { text, .. }
            | FrameBody::Notice { text, .. } => Some(text),
            FrameBody::Event(HttpEvent::Endpoint(path)) => Some(path.as_bytes()),
            FrameBody::Event(HttpEvent::Delete) => Some(b"DELETE"),
            _ => None,
        }
    }
}

/// Frames one stream.
#[derive(Debug)]
pub enum Framer {
    /// TCP and TLS: the first bytes decide; until then they wait here.
    Sniff {
        max_line: usize,
        held: Vec<Held>,
        after_loss: bool,
    },
    Ndjson(Ndjson),
    Http(Box<Http>),
    /// Recognised, not decoded: reported once, then skipped.
    Unsupported {
        protocol: String,
        reported: bool,
    },
}

/// A data piece kept while sniffing.
#[derive(Debug)]
pub struct Held {
    off: u64,
    bytes: Vec<u8>,
    ts: u64,
    seq: u64,
}

/// Bytes enough to tell every protocol [`sniff::classify`] knows apart.
const SNIFF_BYTES: usize = 16;

impl Framer {
    /// Newline-delimited JSON (pipes, Unix sockets, other files).
    pub fn ndjson(max_line: usize) -> Self {
        Framer::Ndjson(Ndjson::new(max_line))
    }

    /// Network streams, which may carry HTTP.
    pub fn sniffing(max_line: usize) -> Self {
        Framer::Sniff {
            max_line,
            held: Vec::new(),
            after_loss: false,
        }
    }

    /// Which way HTTP messages go on this stream, once it is known to be HTTP:
    /// true for requests.
    pub fn http_requests(&self) -> Option<bool> {
        match self {
            Framer::Http(h) => h.carries_requests(),
            _ => None,
        }
    }

    pub fn is_http(&self) -> bool {
        matches!(self, Framer::Http(_))
    }

    /// `sock`: what this process knows of the socket the stream belongs to
    /// (shared with the other direction).
    pub fn feed(&mut self, piece: Piece<'_>, sock: &mut SocketHttp, out: &mut impl FnMut(Frame)) {
        if let Piece::Late { off, len, ts, seq } = piece {
            return out(Frame::plain(
                off,
                off + len,
                ts,
                ts,
                vec![seq],
                FrameBody::Late,
            ));
        }
        match self {
            Framer::Ndjson(n) => n.feed(piece, out),
            Framer::Http(h) => h.feed(piece, sock, out),
            Framer::Unsupported { protocol, reported } => {
                if let Piece::Data {
                    off,
                    bytes,
                    ts,
                    seq,
                } = piece
                {
                    if !*reported {
                        *reported = true;
                        out(unsupported(protocol, off, bytes, ts, seq));
                    }
                }
            }
            Framer::Sniff {
                held, after_loss, ..
            } => match piece {
                Piece::Data {
                    off,
                    bytes,
                    ts,
                    seq,
                } => {
                    held.push(Held {
                        off,
                        bytes: bytes.to_vec(),
                        ts,
                        seq,
                    });
                    let decided = if *after_loss {
                        Some(self.after_loss_protocol(sock))
                    } else {
                        self.sniffed(true)
                    };
                    if let Some(p) = decided {
                        self.become_(p, sock, out);
                    }
                }
                Piece::Lost {
                    off,
                    len,
                    why,
                    ts,
                    seq,
                } => {
                    // Decide on what came before the loss; a stream that
                    // starts with a loss decides on what follows it.
                    if held.is_empty() {
                        *after_loss = true;
                        out(lost_frame(off, len, why, ts, seq));
                    } else {
                        self.decide_now(sock, out);
                        self.feed(piece, sock, out);
                    }
                }
                Piece::Late { .. } => {}
            },
        }
    }

    /// What a stream whose first bytes were lost carries: what its other
    /// direction carries, or HTTP if a start line shows up, else JSON lines.
    fn after_loss_protocol(&self, sock: &SocketHttp) -> Protocol {
        if let Some(p) = sock.protocol() {
            return p.clone();
        }
        let Framer::Sniff { held, .. } = self else {
            return Protocol::Json;
        };
        let has_start_line = held.iter().any(|h| {
            memchr::memmem::find(&h.bytes, b" HTTP/1.").is_some() || h.bytes.starts_with(b"HTTP/1.")
        });
        if has_start_line {
            Protocol::Http1
        } else {
            Protocol::Json
        }
    }

    /// Sniffing must end (a loss, the end of the stream): decide on what there is.
    fn decide_now(&mut self, sock: &mut SocketHttp, out: &mut impl FnMut(Frame)) {
        let Framer::Sniff {
            held, after_loss, ..
        } = self
        else {
            return;
        };
        if held.is_empty() {
            return;
        }
        let p = if *after_loss {
            self.after_loss_protocol(sock)
        } else {
            self.sniffed(false).unwrap_or(Protocol::Json)
        };
        self.become_(p, sock, out);
    }

    /// The protocol the bytes held while sniffing show (`more`: more may come).
    fn sniffed(&self, more: bool) -> Option<Protocol> {
        let Framer::Sniff { held, .. } = self else {
            return None;
        };
        let prefix: Vec<u8> = held
            .iter()
            .flat_map(|h| h.bytes.iter().copied())
            .take(SNIFF_BYTES)
            .collect();
        sniff::classify(&prefix, more && prefix.len() < SNIFF_BYTES)
    }

    /// Switches to the framer for `p` and gives it the bytes held so far.
    fn become_(&mut self, p: Protocol, sock: &mut SocketHttp, out: &mut impl FnMut(Frame)) {
        let Framer::Sniff {
            max_line,
            held,
            after_loss,
        } = self
        else {
            return;
        };
        let (max_line, held, after_loss) = (*max_line, std::mem::take(held), *after_loss);
        // The other direction of an HTTP/2 connection starts with binary frames.
        let p = match (p, sock.protocol()) {
            (Protocol::Other(_), Some(Protocol::Other(s))) if s == sniff::HTTP2 => {
                Protocol::Other(sniff::HTTP2.into())
            }
            (p, _) => p,
        };
        sock.note_protocol(&p);
        if let Protocol::Other(protocol) = &p {
            // Reported once, from everything sniffed.
            if let (Some(first), Some(last)) = (held.first(), held.last()) {
                let bytes: Vec<u8> = held.iter().flat_map(|h| h.bytes.iter().copied()).collect();
                let mut f = unsupported(protocol, first.off, &bytes, first.ts, first.seq);
                f.last_ts = last.ts;
                f.seqs = held.iter().map(|h| h.seq).collect();
                f.seqs.dedup();
                out(f);
            }
            *self = Framer::Unsupported {
                protocol: protocol.clone(),
                reported: true,
            };
            return;
        }
        *self = match p {
            Protocol::Json => {
                let mut n = Ndjson::new(max_line);
                if after_loss {
                    n.after_loss = Some(Cut::Loss(Loss::Missing));
                }
                Framer::Ndjson(n)
            }
            Protocol::Http1 => Framer::Http(Box::new(Http::new(max_line, after_loss))),
            Protocol::Other(protocol) => Framer::Unsupported {
                protocol,
                reported: false,
            },
        };
        for h in held {
            let piece = Piece::Data {
                off: h.off,
                bytes: &h.bytes,
                ts: h.ts,
                seq: h.seq,
            };
            self.feed(piece, sock, out);
        }
    }

    /// The stream is over: a message still open was cut by the capture's end.
    pub fn finish(&mut self, sock: &mut SocketHttp, out: &mut impl FnMut(Frame)) {
        self.decide_now(sock, out);
        match self {
            Framer::Ndjson(n) => n.finish(out),
            Framer::Http(h) => h.finish(out),
            _ => {}
        }
    }
}

/// The one report of a stream this decoder does not decode.
fn unsupported(protocol: &str, off: u64, bytes: &[u8], ts: u64, seq: u64) -> Frame {
    let text = if protocol.starts_with("HTTP") {
        first_line(bytes).to_vec()
    } else {
        Vec::new()
    };
    Frame::plain(
        off,
        off + bytes.len() as u64,
        ts,
        ts,
        vec![seq],
        FrameBody::Unsupported {
            protocol: protocol.to_string(),
            text,
        },
    )
}

/// A frame for bytes that were never captured.
pub fn lost_frame(off: u64, len: u64, why: Loss, ts: u64, seq: Option<u64>) -> Frame {
    Frame::plain(
        off,
        off + len,
        ts,
        ts,
        seq.into_iter().collect(),
        FrameBody::Lost { why },
    )
}

fn first_line(bytes: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len()).min(256);
    let line = &bytes[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Newline-delimited JSON: each line is one message.
#[derive(Debug)]
pub struct Ndjson {
    open: Option<Open>,
    /// The next line starts right after lost bytes.
    after_loss: Option<Cut>,
    max_line: usize,
}

/// A line begun but not yet ended.
#[derive(Debug)]
struct Open {
    start: u64,
    text: Vec<u8>,
    dropped: u64,
    first_ts: u64,
    last_ts: u64,
    seqs: Vec<u64>,
    cut_start: Option<Cut>,
}

impl Ndjson {
    pub fn new(max_line: usize) -> Self {
        Ndjson {
            open: None,
            after_loss: None,
            max_line,
        }
    }

    fn feed(&mut self, piece: Piece<'_>, out: &mut impl FnMut(Frame)) {
        match piece {
            Piece::Data {
                off,
                bytes,
                ts,
                seq,
            } => self.data(off, bytes, ts, seq, out),
            Piece::Lost {
                off,
                len,
                why,
                ts,
                seq,
            } => {
                if let Some(frame) = self
                    .open
                    .take()
                    .and_then(|o| o.close(off, Some(Cut::Loss(why))))
                {
                    out(frame);
                }
                out(lost_frame(off, len, why, ts, seq));
                self.after_loss = Some(Cut::Loss(why));
            }
            Piece::Late { .. } => {}
        }
    }

    fn data(&mut self, off: u64, bytes: &[u8], ts: u64, seq: u64, out: &mut impl FnMut(Frame)) {
        let mut pos = 0;
        for nl in memchr::memchr_iter(b'\n', bytes) {
            let line = &bytes[pos..nl];
            let end = off + nl as u64;
            let mut open = match self.open.take() {
                Some(open) => open,
                None => Open::new(off + pos as u64, ts, self.after_loss.take()),
            };
            open.append(line, ts, seq, self.max_line);
            if let Some(frame) = open.close(end, None) {
                out(frame);
            }
            self.after_loss = None;
            pos = nl + 1;
        }
        if pos < bytes.len() {
            let rest = &bytes[pos..];
            let open = match &mut self.open {
                Some(open) => open,
                None => {
                    let cut_start = self.after_loss.take();
                    self.open.insert(Open::new(off + pos as u64, ts, cut_start))
                }
            };
            open.append(rest, ts, seq, self.max_line);
        }
    }

    fn finish(&mut self, out: &mut impl FnMut(Frame)) {
        if let Some(open) = self.open.take() {
            let end = open.start + open.text.len() as u64 + open.dropped;
            if let Some(frame) = open.close(end, Some(Cut::CaptureEnd)) {
                out(frame);
            }
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

impl Open {
    fn new(start: u64, ts: u64, cut_start: Option<Cut>) -> Self {
        Open {
            start,
            text: Vec::new(),
            dropped: 0,
            first_ts: ts,
            last_ts: ts,
            seqs: Vec::with_capacity(2),
            cut_start,
        }
    }

    fn append(&mut self, bytes: &[u8], ts: u64, seq: u64, max_line: usize) {
        let room = max_line.saturating_sub(self.text.len()).min(bytes.len());
        self.text.extend_from_slice(&bytes[..room]);
        self.dropped += (bytes.len() - room) as u64;
        self.last_ts = self.last_ts.max(ts);
        if self.seqs.last() != Some(&seq) {
            self.seqs.push(seq);
        }
    }

    /// The frame, or None for a line of only blanks (it says nothing).
    fn close(mut self, end: u64, cut: Option<Cut>) -> Option<Frame> {
        if self.dropped == 0 && is_blank(&self.text) {
            return None;
        }
        if self.text.last() == Some(&b'\r') && self.dropped == 0 {
            self.text.pop();
        }
        let cut_end = match (cut, self.dropped) {
            (Some(c), _) => Some(c),
            (None, 0) => None,
            (None, dropped) => Some(Cut::TooLong { dropped }),
        };
        Some(Frame::plain(
            self.start,
            end,
            self.first_ts,
            self.last_ts,
            self.seqs,
            FrameBody::Text {
                text: self.text,
                cut_start: self.cut_start,
                cut_end,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(off: u64, bytes: &[u8], seq: u64) -> Piece<'_> {
        Piece::Data {
            off,
            bytes,
            ts: seq * 10,
            seq,
        }
    }

    fn frames(pieces: Vec<Piece<'_>>, finish: bool) -> Vec<Frame> {
        let mut f = Framer::ndjson(1 << 20);
        let mut sock = SocketHttp::default();
        let mut v = Vec::new();
        for p in pieces {
            f.feed(p, &mut sock, &mut |fr| v.push(fr));
        }
        if finish {
            f.finish(&mut sock, &mut |fr| v.push(fr));
        }
        v
    }

    fn text(f: &Frame) -> &str {
        std::str::from_utf8(f.text().unwrap()).unwrap()
    }

    #[test]
    fn lines_across_reads_and_several_per_read() {
        let v = frames(
            vec![
                data(0, b"{\"a\":1}\n{\"b\"", 1),
                data(12, b":2}\r\n\n  \n{\"c\":3}\n{\"d", 2),
            ],
            true,
        );
        assert_eq!(v.len(), 4);
        assert_eq!((text(&v[0]), v[0].start, v[0].end), ("{\"a\":1}", 0, 7));
        assert_eq!((text(&v[1]), v[1].start, v[1].end), ("{\"b\":2}", 8, 16));
        assert_eq!(v[1].seqs, vec![1, 2]);
        assert_eq!((v[1].first_ts, v[1].last_ts), (10, 20));
        assert!(v[1].ends_cleanly());
        assert_eq!(text(&v[2]), "{\"c\":3}");
        assert_eq!(text(&v[3]), "{\"d");
        assert!(matches!(
            v[3].body,
            FrameBody::Text {
                cut_end: Some(Cut::CaptureEnd),
                ..
            }
        ));
    }

    #[test]
    fn a_loss_cuts_the_open_line_and_marks_the_next() {
        let v = frames(
            vec![
                data(0, b"{\"a\":1}\n{\"b\":", 1),
                Piece::Lost {
                    off: 13,
                    len: 5,
                    why: Loss::Missing,
                    ts: 20,
                    seq: None,
                },
                data(18, b"9}\n{\"c\":3}\n", 3),
            ],
            false,
        );
        assert_eq!(v.len(), 5);
        assert!(v[0].ends_cleanly());
        assert!(matches!(
            v[1].body,
            FrameBody::Text {
                cut_end: Some(Cut::Loss(Loss::Missing)),
                cut_start: None,
                ..
            }
        ));
        assert!(matches!(v[2].body, FrameBody::Lost { .. }));
        assert_eq!((v[2].start, v[2].end), (13, 18));
        assert!(matches!(
            v[3].body,
            FrameBody::Text {
                cut_start: Some(Cut::Loss(Loss::Missing)),
                cut_end: None,
                ..
            }
        ));
        assert_eq!(text(&v[3]), "9}");
        // The next newline resynchronises.
        assert!(matches!(
            v[4].body,
            FrameBody::Text {
                cut_start: None,
                cut_end: None,
                ..
            }
        ));
    }

    #[test]
    fn overlong_lines_are_cut_not_kept() {
        let mut f = Framer::ndjson(4);
        let mut v = Vec::new();
        let mut sock = SocketHttp::default();
        f.feed(data(0, b"0123456789\nok\n", 1), &mut sock, &mut |fr| {
            v.push(fr)
        });
        assert_eq!(v.len(), 2);
        assert_eq!(text(&v[0]), "0123");
        assert_eq!(v[0].end, 10);
        assert!(matches!(
            v[0].body,
            FrameBody::Text {
                cut_end: Some(Cut::TooLong { dropped: 6 }),
                ..
            }
        ));
        assert_eq!(text(&v[1]), "ok");
    }

    #[test]
    fn network_streams_are_sniffed_across_pieces() {
        // HTTP/2: reported once, with its preface line, whatever follows.
        let mut f = Framer::sniffing(1 << 20);
        let mut sock = SocketHttp::default();
        let mut v = Vec::new();
        f.feed(data(0, b"PRI * HT", 1), &mut sock, &mut |fr| v.push(fr));
        assert!(v.is_empty(), "undecided after 8 bytes");
        f.feed(
            data(8, b"TP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 2),
            &mut sock,
            &mut |fr| v.push(fr),
        );
        f.feed(data(30, b"more", 3), &mut sock, &mut |fr| v.push(fr));
        assert_eq!(v.len(), 1);
        assert!(matches!(
            &v[0].body,
            FrameBody::Unsupported { protocol, .. } if protocol == "HTTP/2"
        ));
        assert_eq!(text(&v[0]), "PRI * HTTP/2.0");
        assert_eq!(v[0].seqs, vec![1, 2]);
        // The server's side of that connection starts with binary frames:
        // HTTP/2 too, from what the other direction showed.
        let mut g = Framer::sniffing(1 << 20);
        let mut w = Vec::new();
        g.feed(
            data(0, b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03", 1),
            &mut sock,
            &mut |fr| w.push(fr),
        );
        g.finish(&mut sock, &mut |fr| w.push(fr));
        assert!(matches!(
            &w[0].body,
            FrameBody::Unsupported { protocol, .. } if protocol == "HTTP/2"
        ));
        // JSON lines over TCP stay JSON lines.
        let mut h = Framer::sniffing(1 << 20);
        let mut x = Vec::new();
        let mut other = SocketHttp::default();
        h.feed(
            data(0, b"{\"jsonrpc\":\"2.0\"}\n", 1),
            &mut other,
            &mut |fr| x.push(fr),
        );
        assert!(x[0].ends_cleanly());
        assert!(h.http_requests().is_none());
    }
}
