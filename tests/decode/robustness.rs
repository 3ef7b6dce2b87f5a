//! No input makes the decoder panic, and the same records always give the
//! same items. Records here are random: offsets that overlap, jump and wrap,
//! flags in any combination, payloads that are JSON fragments or noise.

use super::support::Seen;
use mcpspy::capture::{Numbered, Record};
use mcpspy::decode::{DecodeOptions, Decoder};
use mcpspy::event::{self, fd_kind, flags, kind, EventHeader, RawEvent};

/// xorshift64*: a fixed, seedable sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"x"}}"#,
    r#"{"jsonrpc":"2.0","id":1,"result":{"serverInfo":{"name":"s"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":"x"}}"#,
    r#"{"jsonrpc":"2.0","id":"a","error":{"code":"not a number","message":5}}"#,
    r#"[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":7}},[],{}]"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"x":1}}}"#,
    "[[[[[[[[[[[[[[[[",
    "\n",
    "\r\n",
    "}}}}",
    "\u{1b}[31m",
    "{\"a\":\"\\u0000\"}",
    "POST / HTTP/1.1\r\n",
    // HTTP, SSE and chunk framing in pieces.
    "POST /mcp HTTP/1.1\r\nContent-Length: 12\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HEAD / HTTP/1.1\r\n\r\n",
    "HTTP/1.0 404 Not Found\r\n\r\nnope",
    "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: gzip, chunked\r\n",
    "1a\r\n",
    "0\r\n\r\n",
    "fffffffffffffff\r\n",
    "event: endpoint\r\ndata: /messages?x=1\r\n\r\n",
    "data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1,\"result\":{}}\n\n",
    ": comment\rid: 1\rretry: x\r\r",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    // HTTP/2 frames: SETTINGS, HEADERS (a literal HPACK field, and a table
    // size update that does not end), DATA (padded), CONTINUATION, RST_STREAM.
    "\0\0\0\x04\0\0\0\0\0",
    "\0\0\x06\x01\x04\0\0\0\x01\x44\x04/mcp",
    "\0\0\x02\x01\x05\0\0\0\x03\x3f\x7f",
    "\0\0\x08\0\x09\0\0\0\x01\x02{\"a\":1}",
    "\0\0\x01\x09\x04\0\0\0\x01\x40",
    "\0\0\x04\x03\0\0\0\0\x01\0\0\0\x08",
];

fn random_records(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::with_capacity(n);
    let mut ts = 1_000u64;
    let mut offsets = [0u64; 8];
    for _ in 0..n {
        ts = match r.below(50) {
            0 => r.below(1 << 40),
            1 => ts.saturating_sub(r.below(1_000_000_000)),
            _ => ts.saturating_add(r.below(200_000_000)),
        };
        if r.below(12) == 0 {
            out.push(ts.to_le_bytes().to_vec());
            continue;
        }
        let mut payload = Vec::new();
        for _ in 0..r.below(4) {
            match r.below(5) {
                0 => payload.extend((0..r.below(64)).map(|_| r.next() as u8)),
                _ => payload.extend_from_slice(r.pick(PIECES).as_bytes()),
            }
        }
        let stream = r.below(8) as usize;
        let off = match r.below(20) {
            0 if r.below(10) == 0 => r.next(),
            0 => r.below(1 << 32),
            1 => offsets[stream].saturating_sub(r.below(100)),
            2 => offsets[stream] + r.below(100),
            _ => offsets[stream],
        };
        offsets[stream] = off.saturating_add(payload.len() as u64);
        let mut f = 0;
        for bit in [
            flags::READ_FAILED,
            flags::TRUNCATED,
            flags::STREAM_START,
            flags::TLS,
        ] {
            if r.below(15) == 0 {
                f |= bit;
            }
        }
        let (any_len, any_off) = (r.below(100_000), r.below(100));
        let mut hdr = EventHeader {
            kind: *r.pick(&[kind::DATA, kind::DATA, kind::DATA, kind::EXEC, 9]),
            direction: (stream % 2) as u8,
            fd_kind: *r.pick(&[
                fd_kind::PIPE,
                fd_kind::UNIX,
                fd_kind::TCP4,
                fd_kind::TCP6,
                fd_kind::OTHER,
                0,
                200,
            ]),
            flags: f,
            ts_ns: ts,
            tgid: 100 + (stream / 2) as u32 % 3,
            ino: 7 + (stream / 4) as u64,
            peer_ino: *r.pick(&[0, 7, 8, u64::MAX]),
            stream_off: off,
            // Numbers no recording reaches (flagged, never wrapped) are rare,
            // so that what follows them is still exercised.
            call_len: *r.pick(&[payload.len() as u64, payload.len() as u64, 0, any_len]),
            call_off: *r.pick(&[0, any_off]),
            ssl: r.below(3),
            lport: r.below(3) as u16,
            rport: r.below(3) as u16,
            comm: [0xff; 16],
            ..Default::default()
        };
        match r.below(200) {
            0 => hdr.call_len = u64::MAX - r.below(3),
            1 => hdr.call_off = u64::MAX,
            2 => hdr.ts_ns = u64::MAX - r.below(3),
            _ => {}
        }
        out.push(event::encode(&hdr, &payload));
    }
    out
}

fn decode(records: &[Vec<u8>], opts: DecodeOptions) -> Vec<Seen> {
    let mut dec = Decoder::new(opts);
    let mut seen = Vec::new();
    for (seq, bytes) in records.iter().enumerate() {
        let record = if bytes.len() == 8 {
            Record::Tick {
                ts_ns: u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            }
        } else {
            match RawEvent::parse(bytes) {
                Ok(ev) => Record::Event(ev),
                Err(e) => Record::Damaged {
                    reason: e.to_string(),
                    len: bytes.len(),
                },
            }
        };
        let rec = Numbered {
            seq: seq as u64,
            record,
        };
        dec.push(&rec, &mut |it| seen.push(Seen::of(it)));
    }
    dec.finish(&mut |it| seen.push(Seen::of(it)));
    seen
}

#[test]
fn random_records_never_panic_and_decode_the_same_twice() {
    let small = DecodeOptions {
        max_line: 300,
        max_held: 2000,
        hold_ns: 1_000_000,
        ..DecodeOptions::default()
    };
    let (mut total, mut http) = (0, 0);
    for seed in 1..=20 {
        let records = random_records(seed, 1000);
        for opts in [DecodeOptions::default(), small.clone()] {
            let a = decode(&records, opts.clone());
            let b = decode(&records, opts);
            assert_eq!(a, b, "seed {seed}");
            // Items are numbered densely.
            assert!(a.iter().enumerate().all(|(i, s)| s.n == i as u64 + 1));
            total += a.len();
            http += a.iter().filter(|s| s.transport == Some("http")).count();
        }
    }
    assert!(
        total > 10_000,
        "the records should decode into many items, got {total}"
    );
    assert!(
        http > 100,
        "HTTP framing should be reached, got {http} items"
    );
}
