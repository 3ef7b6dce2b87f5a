//! Golden outputs: for every capture in fixtures/ (recorded sessions) and
//! fixtures/synthetic/ (made by tests/decode_support), `replay`, `export`
//! and `query --summary` must print exactly the files beside it:
//!
//! ```text
//! fixtures/NAME.db             the capture
//! fixtures/NAME.replay.txt     mcpspy replay NAME.db
//! fixtures/NAME.replay-b.txt   mcpspy replay -b NAME.db
//! fixtures/NAME.export.jsonl   mcpspy export NAME.db
//! fixtures/NAME.summary.txt    mcpspy query NAME.db --summary
//! ```
//!
//! All run with TZ=UTC. To add a fixture, copy the capture in and write its
//! goldens: `UPDATE_GOLDEN=1 cargo test --test decode_golden`, then review
//! the new files (git diff) before committing them. The synthetic captures
//! themselves are rewritten with
//! `cargo test --test decode_golden -- --ignored write_synthetic_fixtures`.

use super::support::{fixtures, mcpspy_command};
use std::path::{Path, PathBuf};

const OUTPUTS: &[(&str, &[&str])] = &[
    ("replay.txt", &["replay"]),
    ("replay-b.txt", &["replay", "-b"]),
    ("export.jsonl", &["export", "--format", "jsonl"]),
    ("summary.txt", &["query", "--summary"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_path(capture: &Path, suffix: &str) -> PathBuf {
    capture.with_extension(suffix)
}

fn run(args: &[&str], capture: &Path) -> Vec<u8> {
    let out = mcpspy_command()
        .args(&args[..1])
        .arg(capture)
        .args(&args[1..])
        .output()
        .expect("run mcpspy");
    assert!(
        out.status.success(),
        "mcpspy {args:?} {} failed: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The first line where two outputs differ, for a readable failure.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let (w, g) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
    for (i, (a, b)) in w.lines().zip(g.lines()).enumerate() {
        if a != b {
            return format!("line {}:\n  want: {a}\n  got:  {b}", i + 1);
        }
    }
    format!(
        "one output is a prefix of the other ({} vs {} lines)",
        w.lines().count(),
        g.lines().count()
    )
}

#[test]
fn outputs_match_the_goldens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0");
    let captures = fixtures();
    assert!(
        captures
            .iter()
            .any(|p| p.starts_with(root().join("fixtures/synthetic"))),
        "the synthetic fixtures are missing: run the ignored write_synthetic_fixtures test"
    );
    let mut failures = Vec::new();
    for capture in &captures {
        for (suffix, args) in OUTPUTS {
            let got = run(args, capture);
            let golden = golden_path(capture, suffix);
            if update {
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            match std::fs::read(&golden) {
                Ok(want) if want == got => {}
                Ok(want) => failures.push(format!(
                    "{} differs from `mcpspy {}`; {}",
                    golden.display(),
                    args.join(" "),
                    first_difference(&want, &got)
                )),
                Err(_) => failures.push(format!(
                    "{} is missing (UPDATE_GOLDEN=1 writes it)",
                    golden.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The outputs hold what the synthetic sessions were built from: the
/// goldens are not just whatever the decoder printed once.
#[test]
fn synthetic_goldens_say_what_happened() {
    let dir = root().join("fixtures/synthetic");
    let replay = std::fs::read_to_string(dir.join("damaged.replay.txt")).unwrap();
    for needle in [
        "python3[1000] → mcp-server[2000] REQ initialize",
        "!! INVALID_JSON",
        "!! INVALID_UTF8",
        "!! LOST",
        "!! TRUNCATED",
        "ERR Internal error (code -32603) to unseen request 2",
        "node[3000] → python3[1000] REQ sampling/createMessage",
        "ERR Method not found (code -32601) sampling/createMessage",
        "the capture ended inside it",
    ] {
        assert!(replay.contains(needle), "damaged replay lacks {needle:?}");
    }
    let summary = std::fs::read_to_string(dir.join("damaged.summary.txt")).unwrap();
    assert!(summary.contains("2026-07-28") && summary.contains("everything 2026.8.31"));
    let session = std::fs::read_to_string(dir.join("session.replay.txt")).unwrap();
    assert_eq!(session.lines().count(), 18);
    assert!(session.contains("RESP OK tools/call (get_weather) 100.4ms"));
}

/// The recorded HTTP sessions decode into what their peers did: every
/// message of both ends once, sessions joined across connections.
#[test]
fn http_goldens_say_what_happened() {
    let dir = root().join("fixtures");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    for (name, messages) in [
        ("py_http", 27),
        ("py_legacy_sse", 27),
        ("node_https", 31),
        ("py_h2", 27),
        ("go_h2", 10),
    ] {
        let export = read(&format!("{name}.export.jsonl"));
        let mut n = 0;
        for line in export.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["transport_type"], "http", "{name}: {line:.200}");
            assert_ne!(v["type"], "flagged", "{name}: {line:.300}");
            let r = &v["records"];
            assert!(
                !r["writer"].is_null() && !r["reader"].is_null(),
                "{name}: both ends' copies, shown once: {line:.200}"
            );
            assert_eq!(v["session"]["id"], 1, "{name}");
            n += 1;
        }
        assert_eq!(n, messages, "{name}");
    }
    let py = read("py_http.replay.txt");
    assert!(py.contains("http 127.0.0.1:") && py.contains("POST /mcp REQ server/discover"));
    assert!(py.contains("200 sse NOTIFY notifications/progress 5/5"));
    assert!(py.contains("404 ERR Method not found (code -32601)"));
    // The same session over HTTP/2 (h2 over TLS): the same messages, with
    // their HTTP heads rebuilt from HPACK.
    let h2 = read("py_h2.replay.txt");
    assert!(h2.contains("https 127.0.0.1:") && h2.contains("POST /mcp REQ server/discover"));
    assert!(h2.contains("200 sse NOTIFY notifications/progress 5/5"));
    assert!(h2.contains("404 ERR Method not found (code -32601)"));
    assert!(h2.contains("200 RESP OK tools/call (blob)"));
    // Go's crypto/tls (stripped PIEs) over HTTP/2: both ends named.
    let go = read("go_h2.replay.txt");
    assert!(go.contains("go-client[") && go.contains("→ go-server["));
    assert!(go.contains("200 sse RESP OK tools/call (big)"));
    let legacy = read("py_legacy_sse.replay.txt");
    assert!(legacy.contains("GET /sse 200 sse RESP OK server/discover"));
    assert!(legacy.contains("POST /messages/?session_id="));
    let node = read("node_https.replay.txt");
    assert!(node.contains("https 127.0.0.1:") && node.contains("GET /mcp 200 sse REQ roots/list"));
    assert!(node.contains("POST /mcp RESP OK sampling/createMessage"));
    let summary = read("node_https.summary.txt");
    assert!(summary.contains("3 connections, deleted"), "{summary}");
    assert!(summary.contains("mcp-servers/everything 2.0.0"));
}

#[test]
#[ignore]
fn write_synthetic_fixtures() {
    let dir = root().join("fixtures/synthetic");
    std::fs::create_dir_all(&dir).unwrap();
    super::support::typical_session(&dir.join("session.db"));
    super::support::damaged_session(&dir.join("damaged.db"));
}

/// docs/jsonl.md shows a real line, and documents every field that occurs.
#[test]
fn the_jsonl_schema_document_matches_the_export() {
    let doc = std::fs::read_to_string(root().join("docs/jsonl.md")).unwrap();
    let start = doc.find("```json\n").expect("an example") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let example: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
    let golden =
        std::fs::read_to_string(root().join("fixtures/synthetic/session.export.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(golden.lines().nth(5).unwrap()).unwrap();
    assert_eq!(
        example, line,
        "the example in docs/jsonl.md is not line 6 of session.export.jsonl"
    );
    let mut keys = std::collections::BTreeSet::new();
    for capture in fixtures() {
        let export = std::fs::read_to_string(golden_path(&capture, "export.jsonl")).unwrap();
        for l in export.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            keys.extend(v.as_object().unwrap().keys().cloned());
        }
    }
    for k in &keys {
        assert!(
            doc.contains(&format!("| `{k}` |")),
            "field `{k}` is not documented in docs/jsonl.md"
        );
    }
    assert!(keys.len() >= 20, "{keys:?}");
}
