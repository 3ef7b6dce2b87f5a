//! Framing: a stream's reassembled bytes become frames.
//!
//! stdio and Unix sockets carry newline-delimited JSON ([`Ndjson`]). TCP and
//! TLS streams are sniffed first ([`sniff`](super::sniff)): HTTP/1.x is
//! framed by [`http`](super::http) (bodies, SSE events), HTTP/2 by its
//! [`H2`] framer into the same messages, JSON lines as on stdio, and
//! anything else (ciphertext, unknown protocols) is reported once, never
//! dropped silently. A new transport is one more arm
//! here, its own part of [`SocketState`], and one sniff rule.

use super::frame::{lost_frame, Cut, Frame, FrameBody};
use super::http::{frames_start, Http, SocketH2, SocketHttp, H2};
use super::ndjson::Ndjson;
use super::reassembly::{Loss, Piece};
use super::sniff::{self, Protocol};
use super::tls::{KeyLog, SocketTls, Tls};

/// What one process knows of one socket (or TLS connection), shared by the
/// framers of its two directions. Each protocol keeps its own part.
#[derive(Debug, Default)]
pub struct SocketState {
    /// What the first direction to be sniffed carries.
    protocol: Option<Protocol>,
    pub http: SocketHttp,
    pub h2: SocketH2,
    /// A TLS connection opened with the key log: its hellos, and its
    /// plaintext's own state.
    pub tls: Option<Box<SocketTls>>,
}

impl SocketState {
    fn note_protocol(&mut self, p: &Protocol) {
        if self.protocol.is_none() {
            self.protocol = Some(p.clone());
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
        /// Inside TLS opened with the key log: TLS is not opened again (a
        /// capture could nest it without end).
        in_tls: bool,
    },
    Ndjson(Ndjson),
    Http(Box<Http>),
    Http2(Box<H2>),
    /// TLS records, opened with the key log; their content framed inside.
    Tls(Box<Tls>),
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
/// Offsets tried for a run of HTTP/2 frames in a stream that starts with a loss.
const AFTER_LOSS_SCAN: usize = 16 << 10;

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
            in_tls: false,
        }
    }

    /// The content of TLS opened with the key log, which may carry HTTP.
    pub fn sniffing_in_tls(max_line: usize) -> Self {
        Framer::Sniff {
            max_line,
            held: Vec::new(),
            after_loss: false,
            in_tls: true,
        }
    }

    /// Which way HTTP messages go on this stream, once it is known to be HTTP:
    /// true for requests.
    pub fn http_requests(&self) -> Option<bool> {
        match self {
            Framer::Http(h) => h.carries_requests(),
            Framer::Http2(h) => h.carries_requests(),
            Framer::Tls(t) => t.inner().http_requests(),
            _ => None,
        }
    }

    /// An HTTP/1.x stream: of requests (true) or of responses (false).
    pub fn http1_carries(&self) -> Option<bool> {
        match self {
            Framer::Http(h) => h.carries_requests(),
            Framer::Tls(t) => t.inner().http1_carries(),
            _ => None,
        }
    }

    pub fn is_http(&self) -> bool {
        match self {
            Framer::Tls(t) => t.inner().is_http(),
            f => matches!(f, Framer::Http(_) | Framer::Http2(_)),
        }
    }

    /// Whether the stream is TLS opened with the key log.
    pub fn is_tls(&self) -> bool {
        matches!(self, Framer::Tls(_))
    }

    /// Bytes held for a message not yet ended (the decoder bounds their total).
    pub fn held(&self) -> usize {
        match self {
            Framer::Sniff { held, .. } => held.iter().map(|h| h.bytes.len()).sum(),
            Framer::Ndjson(n) => n.held(),
            Framer::Http(h) => h.held(),
            Framer::Http2(h) => h.held(),
            Framer::Tls(t) => t.held(),
            Framer::Unsupported { .. } => 0,
        }
    }

    /// `sock`: what this process knows of the socket the stream belongs to
    /// (shared with the other direction); `keys`: the capture's TLS key log.
    pub fn feed(
        &mut self,
        piece: Piece<'_>,
        sock: &mut SocketState,
        keys: &KeyLog,
        out: &mut impl FnMut(Frame),
    ) {
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
            Framer::Http(h) => h.feed(piece, &mut sock.http, out),
            Framer::Http2(h) => h.feed(piece, &mut sock.h2, out),
            Framer::Tls(t) => t.feed(piece, sock, keys, out),
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
                        self.become_(p, sock, keys, out);
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
                        self.decide_now(sock, keys, out);
                        self.feed(piece, sock, keys, out);
                    }
                }
                Piece::Late { .. } => {}
            },
        }
    }

    /// What a stream whose first bytes were lost carries: what its other
    /// direction carries, or HTTP if a start line (or a run of HTTP/2
    /// frames) shows up, else JSON lines.
    fn after_loss_protocol(&self, sock: &SocketState) -> Protocol {
        if let Some(p) = &sock.protocol {
            return p.clone();
        }
        let Framer::Sniff { held, .. } = self else {
            return Protocol::Json;
        };
        let has_start_line = held.iter().any(|h| {
            memchr::memmem::find(&h.bytes, b" HTTP/1.").is_some() || h.bytes.starts_with(b"HTTP/1.")
        });
        let bytes: Vec<u8> = held.iter().flat_map(|h| h.bytes.iter().copied()).collect();
        let has_frames =
            (0..bytes.len().min(AFTER_LOSS_SCAN)).any(|p| frames_start(&bytes[p..]) == Some(true));
        if has_start_line {
            Protocol::Http1
        } else if has_frames {
            Protocol::Http2
        } else {
            Protocol::Json
        }
    }

    /// Sniffing must end (a loss, the end of the stream): decide on what there is.
    fn decide_now(&mut self, sock: &mut SocketState, keys: &KeyLog, out: &mut impl FnMut(Frame)) {
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
        self.become_(p, sock, keys, out);
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
    fn become_(
        &mut self,
        p: Protocol,
        sock: &mut SocketState,
        keys: &KeyLog,
        out: &mut impl FnMut(Frame),
    ) {
        let Framer::Sniff {
            max_line,
            held,
            after_loss,
            in_tls,
        } = self
        else {
            return;
        };
        let (max_line, held, after_loss) = (*max_line, std::mem::take(held), *after_loss);
        let p = match p {
            Protocol::Tls if *in_tls => Protocol::Other("TLS inside TLS: not opened".into()),
            p => p,
        };
        // The other direction of an HTTP/2 connection starts with binary frames.
        let p = match (p, &sock.protocol) {
            (Protocol::Other(_), Some(Protocol::Http2)) => Protocol::Http2,
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
            Protocol::Http2 => Framer::Http2(Box::new(H2::new(max_line, after_loss))),
            Protocol::Tls => Framer::Tls(Box::new(Tls::new(max_line, after_loss))),
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
            self.feed(piece, sock, keys, out);
        }
    }

    /// The stream is over: a message still open was cut by the capture's end.
    pub fn finish(&mut self, sock: &mut SocketState, keys: &KeyLog, out: &mut impl FnMut(Frame)) {
        self.decide_now(sock, keys, out);
        match self {
            Framer::Ndjson(n) => n.finish(out),
            Framer::Http(h) => h.finish(out),
            Framer::Http2(h) => h.finish(&mut sock.h2, out),
            Framer::Tls(t) => t.finish(sock, keys, out),
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

fn first_line(bytes: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len()).min(256);
    let line = &bytes[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
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

    #[test]
    fn network_streams_are_sniffed_across_pieces() {
        // HTTP/2: decoded, from the client's preface on, across pieces.
        let mut f = Framer::sniffing(1 << 20);
        let mut sock = SocketState::default();
        let keys = KeyLog::new(false);
        let mut v = Vec::new();
        f.feed(data(0, b"PRI * HT", 1), &mut sock, &keys, &mut |fr| {
            v.push(fr)
        });
        assert!(matches!(f, Framer::Sniff { .. }), "undecided after 8 bytes");
        f.feed(
            data(8, b"TP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 2),
            &mut sock,
            &keys,
            &mut |fr| v.push(fr),
        );
        assert!(f.is_http() && f.http_requests() == Some(true));
        // The server's side of that connection starts with a SETTINGS frame.
        let mut g = Framer::sniffing(1 << 20);
        g.feed(
            data(0, b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03", 1),
            &mut sock,
            &keys,
            &mut |fr| v.push(fr),
        );
        assert!(g.is_http() && g.http_requests() == Some(false));
        assert!(v.is_empty(), "{v:?}");
        // JSON lines over TCP stay JSON lines.
        let mut h = Framer::sniffing(1 << 20);
        let mut x = Vec::new();
        let mut other = SocketState::default();
        h.feed(
            data(0, b"{\"jsonrpc\":\"2.0\"}\n", 1),
            &mut other,
            &keys,
            &mut |fr| x.push(fr),
        );
        assert!(x[0].ends_cleanly());
        assert!(h.http_requests().is_none());
    }
}
