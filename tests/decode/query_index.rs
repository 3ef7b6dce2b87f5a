//! The query index: items read back from it are the decoder's items, so
//! `query` prints exactly what decoding the capture prints, for every filter;
//! a stale, damaged or foreign index is rebuilt, never trusted; and nothing
//! beside the capture changes.

use super::support::*;
use mcpspy::capture::CaptureReader;
use mcpspy::decode::{DecodeOptions, Decoder};
use mcpspy::query::index::{self, Builder, Index, Key, Select};
use mcpspy::query::{Flow, Selection, Sink};
use mcpspy::render::jsonl::Jsonl;
use mcpspy::render::WallClock;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mcpspy(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpspy"))
        .args(args)
        .env("TZ", "UTC")
        .env("XDG_CACHE_HOME", cache)
        .env_remove("NO_COLOR")
        .output()
        .expect("run mcpspy")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The recorded fixtures, and synthetic captures with damage, TCP and batches.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = ["fixtures", "fixtures/synthetic"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root().join(d)).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    all.sort();
    all.push(typical_session(&dir.join("typical.db")));
    all.push(damaged_session(&dir.join("damaged.db")));
    all.push(mixed_session(&dir.join("mixed.db")));
    all.push(http_session(&dir.join("http.db")));
    all.push(unreadable_session(&dir.join("unreadable.db")));
    all.push(two_writers(&dir.join("interleaved.db")).0);
    all
}

/// Every block unreadable: the items are damage alone, with empty texts
/// (the index then holds no text at all).
fn unreadable_session(path: &Path) -> PathBuf {
    typical_session(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    assert!(conn
        .execute("UPDATE blocks SET data = x'0badf00d'", [])
        .is_ok_and(|n| n > 0));
    path.to_path_buf()
}

/// Streamable HTTP: JSON and event-stream responses, a session id, an HTTP
/// error without a message, and the session's end.
fn http_session(path: &Path) -> PathBuf {
    let mut s = Synth::new(path);
    let c = Conn::new(&mut s, CLIENT, SERVER, 40100);
    let id = ("Mcp-Session-Id", "abc");
    let post = |body: &str, headers: &[(&str, &str)]| {
        let mut all = vec![JSON];
        all.extend_from_slice(headers);
        http_request("POST", "/mcp", &all, body.as_bytes())
    };
    let init = request(
        0,
        "initialize",
        r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#,
    );
    c.request(&mut s, &post(&init, &[]));
    let result = response(
        0,
        r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"2"}}"#,
    );
    c.respond(
        &mut s,
        &http_response("200 OK", &[JSON, id], result.as_bytes(), true),
    );
    let call = request(
        1,
        "tools/call",
        r#"{"name":"t","arguments":{"_meta":{"progressToken":1}}}"#,
    );
    c.request(&mut s, &post(&call, &[id]));
    let events = format!(
        "{}{}",
        sse(&notification(
            "notifications/progress",
            r#"{"progressToken":1,"progress":1}"#
        )),
        sse(&response(1, r#"{"content":[],"isError":true}"#))
    );
    let body = chunked(&[events.as_bytes()]);
    c.respond(
        &mut s,
        &http_response("200 OK", &[EVENT_STREAM, CHUNKED], &body, false),
    );
    c.request(&mut s, &http_request("GET", "/missing", &[], b""));
    c.respond(
        &mut s,
        &http_response(
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"no",
            true,
        ),
    );
    c.request(&mut s, &http_request("DELETE", "/mcp", &[id], b""));
    c.respond(&mut s, &http_response("200 OK", &[], b"", true));
    s.finish()
}

/// TCP, a batch, an error, a server request, and a message seen at one end.
fn mixed_session(path: &Path) -> PathBuf {
    let mut s = Synth::new(path);
    let (c2s, s2c) = s.tcp(ipv4([127, 0, 0, 1], 40000), ipv4([127, 0, 0, 1], 8080));
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#));
    s.send(SERVER, CLIENT, s2c, &response(0, r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"2"}}"#));
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &format!(
            "[{},{}]",
            request(1, "tools/call", r#"{"name":"t","arguments":{"x":"é"}}"#),
            request(2, "ping", "{}")
        ),
    );
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &error(1, -32602, "bad \u{1b}[31m arguments"),
    );
    s.send(SERVER, CLIENT, s2c, &request(7, "roots/list", "{}"));
    s.send(CLIENT, SERVER, c2s, &response(7, r#"{"roots":[]}"#));
    s.advance(300_000_000);
    s.send(SERVER, CLIENT, s2c, &response(2, "{}"));
    s.write(CLIENT, c2s, b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9}}\n");
    s.finish()
}

const QUERIES: &[&[&str]] = &[
    &[],
    &["-b"],
    &["--summary"],
    &["--summary", "--errors"],
    &["--method", "tools/call"],
    &["--method", "tools/call", "--method", "ping", "-b"],
    &["--tool", "get_weather"],
    &["--tool", "t", "--errors"],
    &["--errors"],
    &["--errors", "-b"],
    &["--min-latency", "1ms"],
    &["--min-latency", "100ms", "--summary"],
    &["--pid", "2000"],
    &["--comm", "python3", "--method", "initialize"],
    &["--session", "1"],
    &["--session", "2", "--summary"],
    &["--since", "12:00:00.002", "--until", "12:00:00.2"],
    &["--since", "12:00:01"],
    &["--transport", "stdio"],
    &["--transport", "http", "-b"],
    &["--method", "notifications/progress", "-b"],
];

#[test]
fn query_prints_the_same_with_and_without_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for cap in captures(dir.path()) {
        let cap = cap.to_str().unwrap();
        for q in QUERIES {
            let mut decoded = vec!["query", cap, "--no-index"];
            decoded.extend_from_slice(q);
            let mut indexed = vec!["query", cap];
            indexed.extend_from_slice(q);
            let want = mcpspy(&cache, &decoded);
            // The first indexed run may build the index; the second reads it.
            for round in 0..2 {
                let got = mcpspy(&cache, &indexed);
                assert_eq!(got.status.code(), want.status.code(), "{indexed:?}");
                assert!(
                    got.stdout == want.stdout,
                    "{indexed:?} (round {round}):\n--- decoded\n{}\n--- indexed\n{}",
                    String::from_utf8_lossy(&want.stdout),
                    String::from_utf8_lossy(&got.stdout)
                );
                assert_eq!(got.stderr, want.stderr, "{indexed:?}");
            }
        }
    }
    let built = std::fs::read_dir(cache.join("mcpspy")).unwrap().count();
    assert!(built >= 8, "one index per capture, {built} found");
}

/// Every field of every item survives the index: the items read back print
/// (Debug, and JSONL) exactly as the decoded ones.
#[test]
fn items_read_back_are_the_decoded_items() {
    let dir = tempfile::tempdir().unwrap();
    let mut http_items = 0;
    for cap in captures(dir.path()) {
        let reader = CaptureReader::open(&cap).unwrap();
        let clock = WallClock::from_meta(&reader.meta().unwrap());
        let key = Key::of(&reader).unwrap();
        let path = index::path_in(dir.path(), &key.capture);
        let mut builder = Builder::create(&path, key.clone()).unwrap();
        let mut decoder = Decoder::new(DecodeOptions::default());
        let mut decoded = Vec::new();
        let mut jsonl = Jsonl::new(clock, &mut decoded);
        let mut fields = Vec::new();
        let mut sink = |item: &mcpspy::decode::Item<'_>| {
            let size = item.text.len() as u64;
            builder.item(item, size).unwrap();
            jsonl.item(item, size).unwrap();
            fields.push(format!("{item:?}"));
        };
        for block in reader.blocks(&Default::default()).unwrap() {
            match block {
                Ok(b) => b.records().for_each(|r| decoder.push(&r, &mut sink)),
                Err(e) => decoder.push_block_error(&e, &mut sink),
            }
        }
        decoder.finish(&mut sink);
        drop(jsonl);
        let sessions: Vec<_> = decoder.sessions().cloned().collect();
        builder.finish(&sessions).unwrap();
        builder.install().unwrap();

        let index = Index::open(&path, &key).unwrap();
        assert_eq!(
            format!("{:?}", index.sessions()),
            format!("{sessions:?}"),
            "{}",
            cap.display()
        );
        let mut read_back = Vec::new();
        let mut jsonl = Jsonl::new(clock, &mut read_back);
        let mut read_fields = Vec::new();
        let all = Selection::default();
        let flow = index
            .each(Select::Matches(&all), true, |item, size| {
                assert_eq!(size, item.text.len() as u64);
                read_fields.push(format!("{item:?}"));
                jsonl.item(item, size).map_err(index::IndexError::from)
            })
            .unwrap();
        assert_eq!(flow, Flow::Continue);
        drop(jsonl);
        assert_eq!(read_fields.len(), fields.len(), "{}", cap.display());
        for (got, want) in read_fields.iter().zip(&fields) {
            assert_eq!(got, want, "{}", cap.display());
        }
        http_items += fields
            .iter()
            .filter(|f| f.contains("meta: Some(HttpMeta"))
            .count();
        assert!(!decoded.is_empty());
        assert!(
            read_back == decoded,
            "{}:\n--- decoded\n{}\n--- read back\n{}",
            cap.display(),
            String::from_utf8_lossy(&decoded),
            String::from_utf8_lossy(&read_back)
        );
    }
    assert!(http_items >= 4, "HTTP views are covered: {http_items}");
}

fn index_file(cache: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(cache.join("mcpspy"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_damaged_stale_or_foreign_index_is_rebuilt_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cap = typical_session(&dir.path().join("s.db"));
    let c = cap.to_str().unwrap();
    let want = mcpspy(&cache, &["query", c, "--no-index", "-b"]);
    assert!(want.status.success());
    assert!(!cache.exists(), "--no-index builds nothing");
    let check = |why: &str| {
        let got = mcpspy(&cache, &["query", c, "-b"]);
        assert!(
            got.status.success(),
            "{why}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(got.stdout, want.stdout, "{why}");
        assert!(got.stderr.is_empty(), "{why}");
    };
    check("first use");
    let idx = index_file(&cache);
    let len = std::fs::metadata(&idx).unwrap().len();

    // Garbage, a truncated file, an empty file.
    std::fs::write(&idx, b"not an index at all").unwrap();
    check("garbage");
    assert_eq!(std::fs::metadata(&idx).unwrap().len(), len, "rebuilt");
    let bytes = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &bytes[..bytes.len() / 3]).unwrap();
    check("truncated");
    std::fs::write(&idx, b"").unwrap();
    check("empty");

    // The index of another capture, put in this one's place.
    let other = damaged_session(&dir.path().join("other.db"));
    let o = other.to_str().unwrap();
    assert!(mcpspy(&cache, &["query", o]).status.success());
    let other_idx = std::fs::read_dir(cache.join("mcpspy"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| *p != idx)
        .unwrap();
    std::fs::copy(&other_idx, &idx).unwrap();
    check("foreign");
    std::fs::remove_file(&other_idx).unwrap();

    // The capture changed after the index was built (same size even).
    let modified = std::fs::metadata(&idx).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&cap).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    check("stale");
    assert_ne!(
        std::fs::metadata(&idx).unwrap().modified().unwrap(),
        modified,
        "rebuilt for the capture as it is now"
    );
    assert_eq!(
        std::fs::read_dir(cache.join("mcpspy")).unwrap().count(),
        1,
        "no temporary files left"
    );
}

#[test]
fn a_record_that_does_not_read_back_stops_the_query_and_drops_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cap = typical_session(&dir.path().join("s.db"));
    let c = cap.to_str().unwrap();
    assert!(mcpspy(&cache, &["query", c]).status.success());
    let idx = index_file(&cache);
    // Damage inside the file that SQLite still reads: a record cut short.
    let conn = rusqlite::Connection::open(&idx).unwrap();
    conn.execute("UPDATE items SET rec = substr(rec, 1, 3) WHERE n = 5", [])
        .unwrap();
    drop(conn);
    let o = mcpspy(&cache, &["query", c]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an error, not \"nothing matched\""
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not read back"), "{err}");
    assert!(!err.contains("panicked"));
    assert!(!idx.exists(), "a damaged index is removed");
    let want = mcpspy(&cache, &["query", c, "--no-index"]);
    let again = mcpspy(&cache, &["query", c]);
    assert_eq!(again.stdout, want.stdout, "rebuilt on the next query");
}

#[test]
fn without_a_writable_cache_query_decodes_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cap = typical_session(&dir.path().join("s.db"));
    let c = cap.to_str().unwrap();
    // A file where the cache folder would be: no index can be kept there.
    let cache = dir.path().join("not-a-folder");
    std::fs::write(&cache, b"").unwrap();
    let want = mcpspy(&cache, &["query", c, "--no-index", "--summary"]);
    let got = mcpspy(&cache, &["query", c, "--summary"]);
    assert!(got.status.success());
    assert_eq!(got.stdout, want.stdout);
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(err.contains("without an index"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(names.len(), 2, "nothing new beside the capture");

    // A cache folder others can write to: an index there is not trusted.
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(shared.join("mcpspy")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(shared.join("mcpspy"), mode).unwrap();
    let got = mcpspy(&shared, &["query", c, "--summary"]);
    assert!(got.status.success());
    assert_eq!(got.stdout, want.stdout);
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(err.contains("alone can write"), "{err}");
    assert_eq!(std::fs::read_dir(shared.join("mcpspy")).unwrap().count(), 0);
}

#[test]
fn concurrent_queries_share_one_index() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cap = typical_session(&dir.path().join("s.db"));
    let c = cap.to_str().unwrap().to_string();
    let want = mcpspy(&cache, &["query", &c, "--no-index"]).stdout;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (cache, c) = (cache.clone(), c.clone());
            std::thread::spawn(move || mcpspy(&cache, &["query", &c]))
        })
        .collect();
    for r in runs {
        let o = r.join().unwrap();
        assert!(o.status.success());
        assert_eq!(o.stdout, want);
    }
    index_file(&cache);
}
