//! The captures the decode benchmark (bench/decode.py) reads: requests and
//! results of 1 KiB each, every one recorded at the writer and at the
//! reader; tools/call, and one exchange in a hundred a resources/read (what
//! a selective `query --method` finds).
//!
//! ```text
//! MCPSPY_SYNTH_OUT=/tmp/1k.db MCPSPY_SYNTH_MESSAGES=200000 \
//!     cargo test --release --test decode_throughput -- --ignored
//! /usr/bin/time -v mcpspy export /tmp/1k.db --format jsonl > /dev/null
//! ```

mod decode_support;

use decode_support::*;

/// The exchanges that read a resource rather than call a tool.
fn reads_resource(id: u64) -> bool {
    id % 100 == 99
}

/// A JSON-RPC line of exactly 1024 bytes.
fn sized(id: u64, request: bool) -> String {
    let line = |pad: &str| match (request, reads_resource(id)) {
        (true, false) => decode_support::request(
            id,
            "tools/call",
            &format!(r#"{{"name":"get_weather","arguments":{{"city":"{pad}"}}}}"#),
        ),
        (false, false) => response(
            id,
            &format!(r#"{{"content":[{{"type":"text","text":"{pad}"}}],"isError":false}}"#),
        ),
        (true, true) => decode_support::request(
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

/// Writes the capture to $MCPSPY_SYNTH_OUT ($MCPSPY_SYNTH_MESSAGES messages).
#[test]
#[ignore]
fn write_capture_of_1kib_messages() {
    let Some(out) = std::env::var_os("MCPSPY_SYNTH_OUT") else {
        return;
    };
    let n: u64 = std::env::var("MCPSPY_SYNTH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut s = Synth::new(std::path::Path::new(&out));
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

#[test]
fn lines_are_one_kib() {
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
