//! HTTP/2 framing on connections built frame by frame, with a real HPACK
//! encoder (so the dynamic table is in play).

use super::*;
use crate::decode::frame::FrameBody;

/// One direction of a connection, frame by frame.
struct Wire {
    bytes: Vec<u8>,
    hpack: loona_hpack::Encoder<'static>,
}

impl Wire {
    fn client() -> Wire {
        let mut w = Wire::server();
        w.bytes.extend_from_slice(wire::PREFACE);
        w.frame(wire::SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]);
        w
    }

    fn server() -> Wire {
        Wire {
            bytes: Vec::new(),
            hpack: loona_hpack::Encoder::new(),
        }
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> &mut Wire {
        let len = (payload.len() as u32).to_be_bytes();
        self.bytes.extend_from_slice(&len[1..]);
        self.bytes.extend_from_slice(&[kind, flags]);
        self.bytes.extend_from_slice(&stream.to_be_bytes());
        self.bytes.extend_from_slice(payload);
        self
    }

    fn headers(&mut self, stream: u32, end_stream: bool, fields: &[(&str, &str)]) -> &mut Wire {
        let block = self
            .hpack
            .encode(fields.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        let flags = wire::END_HEADERS | if end_stream { wire::END_STREAM } else { 0 };
        self.frame(wire::HEADERS, flags, stream, &block)
    }

    fn post(&mut self, stream: u32) -> &mut Wire {
        self.headers(
            stream,
            false,
            &[
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", "127.0.0.1:8443"),
                (":path", "/mcp"),
                ("content-type", "application/json"),
                ("mcp-protocol-version", "2025-11-25"),
            ],
        )
    }

    fn data(&mut self, stream: u32, end_stream: bool, body: &[u8]) -> &mut Wire {
        self.frame(wire::DATA, u8::from(end_stream), stream, body)
    }
}

/// Frames one direction fed in pieces of `step` bytes (0: whole).
fn frame(h: &mut H2, sock: &mut SocketH2, bytes: &[u8], step: usize) -> Vec<Frame> {
    let mut v = Vec::new();
    let step = if step == 0 { bytes.len() } else { step };
    for (i, chunk) in bytes.chunks(step).enumerate() {
        let piece = Piece::Data {
            off: (i * step) as u64,
            bytes: chunk,
            ts: i as u64,
            seq: i as u64,
        };
        h.feed(piece, sock, &mut |f| v.push(f));
    }
    h.finish(sock, &mut |f| v.push(f));
    v
}

fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            FrameBody::Text { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
            _ => None,
        })
        .collect()
}

fn notices(frames: &[Frame]) -> Vec<(FlagReason, String)> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            FrameBody::Notice { reason, detail, .. } => Some((*reason, detail.clone())),
            _ => None,
        })
        .collect()
}

const REQ: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

#[test]
fn requests_and_responses_reassemble_whatever_the_reads() {
    let mut c = Wire::client();
    // Flow control splits the body; a padded frame; END_STREAM alone.
    c.post(1).data(1, false, &REQ[..10]);
    let mut padded = vec![3u8];
    padded.extend_from_slice(&REQ[10..]);
    padded.extend_from_slice(&[0, 0, 0]);
    c.frame(wire::DATA, wire::PADDED, 1, &padded);
    c.frame(wire::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]);
    c.data(1, true, b"");
    let mut s = Wire::server();
    s.frame(wire::SETTINGS, 0, 0, &[]).headers(
        1,
        false,
        &[(":status", "200"), ("content-type", "text/event-stream")],
    );
    s.data(
        1,
        false,
        b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\r\n\r\nevent: mess",
    );
    s.data(
        1,
        false,
        b"age\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n",
    );
    s.data(1, true, b"");
    for step in [0, 1, 7, 100] {
        let mut sock = SocketH2::default();
        let mut hc = H2::new(1 << 20, false);
        let req = frame(&mut hc, &mut sock, &c.bytes, step);
        assert_eq!(
            texts(&req),
            vec![String::from_utf8_lossy(REQ)],
            "step {step}"
        );
        let meta = req[0].http.as_deref().unwrap();
        assert!(meta.is_request);
        assert_eq!(meta.method.as_deref(), Some("POST"));
        assert_eq!(meta.path.as_deref(), Some("/mcp"));
        assert_eq!(meta.host.as_deref(), Some("127.0.0.1:8443"));
        assert!(meta
            .head
            .as_deref()
            .unwrap()
            .starts_with("POST /mcp HTTP/2.0\r\n"));
        // The text's stream offsets: its first and last body bytes.
        let first = c.bytes.windows(10).position(|w| w == &REQ[..10]).unwrap();
        assert_eq!(req[0].start, first as u64);
        assert_eq!(hc.carries_requests(), Some(true));
        let mut hs = H2::new(1 << 20, false);
        let resp = frame(&mut hs, &mut sock, &s.bytes, step);
        assert_eq!(
            texts(&resp),
            vec![
                r#"{"jsonrpc":"2.0","method":"n"}"#,
                r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
            ],
            "step {step}"
        );
        let meta = resp[1].http.as_deref().unwrap();
        assert_eq!((meta.status, meta.sse), (Some(200), true));
        assert_eq!(
            meta.method.as_deref(),
            Some("POST"),
            "learnt from stream 1's request"
        );
        assert!(notices(&resp).is_empty() && notices(&req).is_empty());
    }
}

#[test]
fn interleaved_streams_pair_by_stream_id() {
    let mut c = Wire::client();
    c.post(1).post(3);
    c.data(3, false, b"{\"id\":3}").data(1, true, b"{\"id\":1}");
    c.data(3, true, b"");
    // A GET with no body, ended by its HEADERS.
    c.headers(5, true, &[(":method", "DELETE"), (":path", "/mcp/x")]);
    let mut s = Wire::server();
    s.frame(wire::SETTINGS, 0, 0, &[]);
    for id in [3u32, 1, 5] {
        s.headers(
            id,
            false,
            &[(":status", "200"), ("content-type", "application/json")],
        );
    }
    s.data(1, true, b"{\"r\":1}").data(3, true, b"{\"r\":3}");
    s.data(5, true, b"");
    let mut sock = SocketH2::default();
    let req = frame(&mut H2::new(1 << 20, false), &mut sock, &c.bytes, 0);
    assert_eq!(texts(&req), vec!["{\"id\":1}", "{\"id\":3}"]);
    assert!(req.iter().any(|f| matches!(
        f.body,
        FrameBody::Event(crate::decode::frame::HttpEvent::Delete)
    )));
    let resp = frame(&mut H2::new(1 << 20, false), &mut sock, &s.bytes, 0);
    let paths: Vec<_> = resp
        .iter()
        .filter_map(|f| f.http.as_ref()?.path.clone())
        .collect();
    assert_eq!(texts(&resp), vec!["{\"r\":1}", "{\"r\":3}"]);
    assert_eq!(paths, vec!["/mcp".into(), "/mcp".into()] as Vec<Box<str>>);
}

#[test]
fn a_reset_stream_cuts_its_message_and_says_so() {
    let mut c = Wire::client();
    c.post(1).data(1, false, b"{\"id\":1,");
    c.frame(wire::RST_STREAM, 0, 1, &[0, 0, 0, 8]);
    c.frame(
        wire::GOAWAY,
        0,
        0,
        &[0, 0, 0, 1, 0, 0, 0, 2, b'b', b'y', b'e'],
    );
    let v = frame(
        &mut H2::new(1 << 20, false),
        &mut SocketH2::default(),
        &c.bytes,
        0,
    );
    let cut = v.iter().find_map(|f| match &f.body {
        FrameBody::Text { cut_end, .. } => Some(*cut_end),
        _ => None,
    });
    assert_eq!(cut, Some(Some(Cut::Reset)));
    let n = notices(&v);
    assert!(
        n[0].0 == FlagReason::Reset
            && n[0]
                .1
                .contains("stream 1 of POST /mcp reset by the client (CANCEL)"),
        "{n:?}"
    );
    assert!(
        n[1].1
            .contains("GOAWAY (INTERNAL_ERROR) after stream 1: bye"),
        "{n:?}"
    );
}

#[test]
fn a_loss_inside_data_is_stepped_over_and_elsewhere_loses_only_headers() {
    let mut c = Wire::client();
    c.post(1).data(1, true, REQ);
    let body_at = c.bytes.len() - REQ.len();
    let second = c.bytes.len();
    c.post(3).data(3, true, REQ);
    let mut pieces = vec![(0, body_at + 5)];
    // 10 bytes lost inside stream 1's DATA, then the rest.
    pieces.push((body_at + 15, second + 4));
    // A loss across stream 3's HEADERS: headers lost; its DATA still decodes.
    pieces.push((second + 20, c.bytes.len()));
    let mut h = H2::new(1 << 20, false);
    let mut sock = SocketH2::default();
    let mut v = Vec::new();
    let mut at = 0;
    for (i, (a, b)) in pieces.into_iter().enumerate() {
        if a > at {
            let lost = Piece::Lost {
                off: at as u64,
                len: (a - at) as u64,
                why: Loss::Missing,
                ts: 0,
                seq: None,
            };
            h.feed(lost, &mut sock, &mut |f| v.push(f));
        }
        let piece = Piece::Data {
            off: a as u64,
            bytes: &c.bytes[a..b],
            ts: i as u64,
            seq: i as u64,
        };
        h.feed(piece, &mut sock, &mut |f| v.push(f));
        at = b;
    }
    h.finish(&mut SocketH2::default(), &mut |f| v.push(f));
    let t = texts(&v);
    assert_eq!(t[0], String::from_utf8_lossy(&REQ[..5]));
    assert_eq!(t[1], String::from_utf8_lossy(&REQ[15..]));
    assert_eq!(t[2], String::from_utf8_lossy(REQ), "{v:?}");
    assert!(v[v.len() - 1].http.as_ref().unwrap().is_request);
    assert!(notices(&v)
        .iter()
        .any(|(r, d)| *r == FlagReason::HeadersUnknown && d.contains("skipped")));
}

#[test]
fn a_connection_picked_up_midway_decodes_its_bodies() {
    let mut s = Wire::server();
    s.frame(wire::SETTINGS, 0, 0, &[]);
    s.headers(
        1,
        false,
        &[(":status", "200"), ("content-type", "text/event-stream")],
    );
    s.data(1, false, b"data: {\"a\":1}\n\n");
    s.data(1, true, b"data: {\"b\":2}\n\n");
    s.headers(
        3,
        false,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    s.data(3, true, REQ);
    // Captured from the middle of the first HEADERS frame on.
    let from = 12;
    let mut h = H2::new(1 << 20, true);
    let mut v = Vec::new();
    let piece = Piece::Data {
        off: from as u64,
        bytes: &s.bytes[from..],
        ts: 1,
        seq: 1,
    };
    h.feed(piece, &mut SocketH2::default(), &mut |f| v.push(f));
    h.finish(&mut SocketH2::default(), &mut |f| v.push(f));
    assert_eq!(
        texts(&v),
        vec!["{\"a\":1}", "{\"b\":2}", &*String::from_utf8_lossy(REQ)]
    );
    // Direction unknown: no HTTP meta is made up.
    assert!(v.iter().all(|f| f.http.is_none()));
    assert!(notices(&v)
        .iter()
        .any(|(r, _)| *r == FlagReason::HeadersUnknown));
}

#[test]
fn hostile_bytes_are_bounded_and_never_panic() {
    // A deterministic byte soup after a preface, and frames announcing
    // huge lengths, blocks and paddings.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut soup = wire::PREFACE.to_vec();
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        soup.push((x >> 24) as u8 & if x.is_multiple_of(3) { 0x0f } else { 0xff });
    }
    let mut w = Wire::client();
    w.frame(wire::HEADERS, wire::PADDED, 1, &[200, 1, 2]);
    w.frame(wire::CONTINUATION, wire::END_HEADERS, 9, &[1]);
    w.frame(wire::DATA, wire::PADDED, 1, &[255, 1]);
    w.frame(wire::RST_STREAM, 0, 1, &[1]);
    w.bytes
        .extend_from_slice(&[0xff, 0xff, 0xff, wire::HEADERS, 0, 0, 0, 0, 1]);
    w.bytes.extend(std::iter::repeat_n(0x3f, 300_000));
    for bytes in [&soup, &w.bytes] {
        for after_loss in [false, true] {
            let mut h = H2::new(1 << 16, after_loss);
            let mut sock = SocketH2::default();
            let mut most = 0;
            for (i, chunk) in bytes.chunks(4093).enumerate() {
                let piece = Piece::Data {
                    off: (i * 4093) as u64,
                    bytes: chunk,
                    ts: 0,
                    seq: i as u64,
                };
                h.feed(piece, &mut sock, &mut |_| {});
                most = most.max(h.held());
            }
            h.finish(&mut sock, &mut |_| {});
            assert!(most <= MAX_BLOCK + MAX_RESYNC + (1 << 17), "held {most}");
        }
    }
}
