//! The captures the decode benchmark (bench/decode.py) reads: requests and
//! results of 1 KiB each, every one recorded at the writer and at the
//! reader; tools/call, and one exchange in a hundred a resources/read (what
//! a selective `query --method` finds).
//!
//! ```text
//! cargo bench --bench synth -- /tmp/1k.db 200000
//! /usr/bin/time -v mcpspy export /tmp/1k.db --format jsonl > /dev/null
//! ```

#[path = "../tests/decode/support.rs"]
mod support;

use support::*;

/// The exchanges that read a resource rather than call a tool.
fn reads_resource(id: u64) -> bool {
    id % 100 == 99
}

/// A JSON-RPC line of exactly 1024 bytes.
fn sized(id: u64, request: bool) -> String {
    let line = |pad: &str| match (request, reads_resource(id)) {
        (true, false) => support::request(
            id,
            "tools/call",
            &format!(r#"{{"name":"get_weather","arguments":{{"city":"{pad}"}}}}"#),
        ),
        (false, false) => response(
            id,
            &format!(r#"{{"content":[{{"type":"text","text":"{pad}"}}],"isError":false}}"#),
        ),
        (true, true) => support::request(
            id,
            "resources/read",
            &format!(r#"{{"uri":"file:///forecast/{id}","_note":"{pad}"}}"#),
        ),
        (false, true) => response(
            id,
            &format!(r#"{{"contents":[{{"uri":"file:///forecast/{id}","text":"{pad}"}}]}}"#),
        ),
    };
    let bare = line("").len();
    line(&text(id, 1024usize.saturating_sub(bare)))
}

/// Varied JSON string content of exactly `len` bytes: words, numbers,
/// escapes and non-ASCII text, as tool results have.
fn text(seed: u64, len: usize) -> String {
    const WORDS: &[&str] = &[
        "weather",
        "Zürich",
        "\\n",
        "temperature",
        "14°C",
        "\\\"cloudy\\\"",
        "wind",
        "東京",
        "humidity",
        "72%",
        "forecast",
        "\\t",
        "rain",
        "température",
        "ветер",
    ];
    let mut out = String::new();
    let mut k = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    while out.len() < len {
        k ^= k >> 29;
        k = k.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let w = WORDS[(k % WORDS.len() as u64) as usize];
        let piece = if k.is_multiple_of(3) {
            format!("{w} {} ", k % 1000)
        } else {
            format!("{w} ")
        };
        if out.len() + piece.len() > len {
            break;
        }
        out.push_str(&piece);
    }
    while out.len() < len {
        out.push('.');
    }
    out
}

/// Writes a capture of N messages (default 200 000) to OUT:
/// `synth OUT [N] [pipe|http1|http2]` (cargo bench passes `--bench` too;
/// it is ignored). `http1` and `http2` carry the same messages as POST
/// bodies and JSON responses on one loopback connection: HTTP/1.1
/// keep-alive, or HTTP/2 (h2c, one stream per exchange, HPACK with a
/// dynamic table), for the decode benchmark of bench/decode.py's sibling,
/// `bench/h2.sh`.
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(out) = args.first() else {
        eprintln!("usage: cargo bench --bench synth -- OUT [MESSAGES]");
        std::process::exit(2);
    };
    let n: u64 = match args.get(1).map(|v| v.parse()) {
        None => 200_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("synth: MESSAGES must be a number");
            std::process::exit(2);
        }
    };
    assert_lines_are_one_kib();
    let mut s = Synth::new(std::path::Path::new(out));
    match args.get(2).map(String::as_str) {
        None | Some("pipe") => {}
        Some("http1") => {
            http(&mut s, n, false);
            s.finish();
            return;
        }
        Some("http2") => {
            http(&mut s, n, true);
            s.finish();
            return;
        }
        Some(other) => {
            eprintln!("synth: transport {other}: pipe, http1 or http2");
            std::process::exit(2);
        }
    }
    let c2s = s.pipe();
    let s2c = s.pipe();
    for i in 0..n / 2 {
        s.send(CLIENT, SERVER, c2s, &sized(i, true));
        s.send(SERVER, CLIENT, s2c, &sized(i, false));
        if i.is_multiple_of(1000) {
            s.tick();
        }
    }
    s.finish();
}

/// An HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// N messages as HTTP/1.1 or HTTP/2 exchanges on one connection.
fn http(s: &mut Synth, n: u64, h2: bool) {
    let c = Conn::new(s, CLIENT, SERVER, 40000);
    let (mut client, mut server) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    if h2 {
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend(h2_frame(4, 0, 0, &[]));
        c.request(s, &preface);
        c.respond(s, &h2_frame(4, 0, 0, &[]));
    }
    for i in 0..n / 2 {
        let (req, resp) = (sized(i, true), sized(i, false));
        if h2 {
            let stream = 2 * i as u32 + 1;
            let fields: [(&[u8], &[u8]); 5] = [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":authority", b"127.0.0.1:8000"),
                (b":path", b"/mcp"),
                (b"content-type", b"application/json"),
            ];
            let mut out = h2_frame(1, 4, stream, &client.encode(fields));
            out.extend(h2_frame(0, 1, stream, req.as_bytes()));
            c.request(s, &out);
            let fields: [(&[u8], &[u8]); 2] =
                [(b":status", b"200"), (b"content-type", b"application/json")];
            let mut out = h2_frame(1, 4, stream, &server.encode(fields));
            out.extend(h2_frame(0, 1, stream, resp.as_bytes()));
            c.respond(s, &out);
        } else {
            c.request(s, &http_request("POST", "/mcp", &[JSON], req.as_bytes()));
            c.respond(s, &http_response("200 OK", &[JSON], resp.as_bytes(), true));
        }
        if i.is_multiple_of(1000) {
            s.tick();
        }
    }
}

/// The generator's own check, run before it writes.
fn assert_lines_are_one_kib() {
    for (id, req) in [
        (12345, true),
        (7, false),
        (0, true),
        (99, false),
        (199, true),
    ] {
        let line = sized(id, req);
        assert_eq!(line.len(), 1024);
        serde_json::from_str::<serde_json::Value>(&line).expect("valid JSON");
    }
}
