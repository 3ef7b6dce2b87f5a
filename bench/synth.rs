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
/// `synth OUT [N]` (cargo bench passes `--bench` too; it is ignored).
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
