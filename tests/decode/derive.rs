//! Derived captures without the kernel: `slice` against `export --filter`
//! on every fixture and filter, and `redact` on synthetic captures whose
//! secrets sit where framing makes them hard to reach (a chunked body, a
//! header split across reads, a reused SSL*, non-MCP lines).

use super::support::*;
use mcpspy::capture::ProcessRow;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn mcpspy(args: &[&str]) -> Output {
    mcpspy_command().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// An export's lines with what numbers them in one file taken out: item
/// and session numbers, record numbers and HTTP connection numbers count
/// from the start of each file, and a slice starts later.
fn normalized(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("n");
            if let Some(s) = o.get_mut("session").and_then(Value::as_object_mut) {
                s.remove("id");
            }
            if let Some(r) = o.get_mut("request").and_then(Value::as_object_mut) {
                r.remove("n");
            }
            if let Some(h) = o.get_mut("http_transport").and_then(Value::as_object_mut) {
                h.remove("connection");
            }
            if let Some(r) = o.get_mut("records").and_then(Value::as_object_mut) {
                for copy in r.values_mut().filter_map(Value::as_object_mut) {
                    copy.remove("seqs");
                }
            }
            v
        })
        .collect()
}

#[test]
fn a_slice_exports_what_the_filter_selects_on_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let filters: &[&[&str]] = &[
        &["--session", "1"],
        &["--method", "tools/call"],
        &["--tool", "echo"],
        &["--comm", "python3"],
        &["--comm", "node"],
        &["--transport", "stdio"],
        &["--transport", "http"],
        &["--errors"],
        &["--min-latency", "1ms"],
        &["--since", "+0.2s", "--until", "-0.2s"],
    ];
    let mut compared = 0;
    for name in [
        "py_http.db",
        "py_stdio_sealed.db",
        "py_stdio_legacy.db",
        "py_stdio_discover.db",
        "py_legacy_sse.db",
        "node_everything_stdio.db",
        "node_https.db",
        "deno_h2_keylog.db",
    ] {
        let original = fixture(name);
        for (i, f) in filters.iter().enumerate() {
            let want = mcpspy(&[&["export", s(&original)], *f].concat());
            let out = dir.path().join(format!("{name}-{i}.db"));
            let o = mcpspy(&[&["slice", s(&original), "-o", s(&out)], *f].concat());
            if want.stdout.is_empty() {
                // Nothing selected (1), or a filter this capture refuses
                // (a window past its short span): the slice says the same.
                let code = if want.status.success() {
                    Some(1)
                } else {
                    want.status.code()
                };
                assert_eq!(o.status.code(), code, "{name} {f:?}: nothing to slice");
                assert!(!out.exists(), "{name} {f:?}: no slice of nothing");
                continue;
            }
            assert!(
                o.status.success(),
                "{name} {f:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let got = mcpspy(&["export", s(&out)]);
            assert_eq!(normalized(&got), normalized(&want), "{name} {f:?}");
            assert!(
                mcpspy(&["verify", s(&out)]).status.success(),
                "{name} {f:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 30, "only {compared} slices had messages");
}

/// Two writers whose lines the reader read mixed: a slice of one writer
/// keeps the whole mix, so its lines decode as they do in the parent
/// (marked interleaved), and the reader's slice holds every piece.
#[test]
fn a_slice_of_one_of_two_writers_on_a_pipe_decodes_as_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (original, ..) = two_writers(&dir.path().join("c.db"));
    for pid in ["301", "302", "2000"] {
        let want = mcpspy(&["export", s(&original), "--pid", pid]);
        let out = dir.path().join(format!("{pid}.db"));
        let o = mcpspy(&["slice", s(&original), "-o", s(&out), "--pid", pid]);
        assert!(
            o.status.success(),
            "{pid}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = normalized(&mcpspy(&["export", s(&out)]));
        assert_eq!(got, normalized(&want), "--pid {pid}");
        assert!(
            got.iter().any(|i| i["interleaved"] == true),
            "--pid {pid}: {got:#?}"
        );
        assert!(mcpspy(&["verify", s(&out)]).status.success(), "--pid {pid}");
    }
}

/// Two writers on one pipe, a token in A's line cut in the reader's by B's
/// whole line: no rule matches either half there, so even with
/// --keep-non-mcp the mixed lines are blanked; A's own line is redacted.
#[test]
fn redact_blanks_lines_two_writers_mixed_even_when_keeping_non_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let mut syn = Synth::new(&dir.path().join("c.db"));
    let pipe = syn.pipe();
    let (a, b) = (
        CLIENT,
        Proc {
            pid: 1001,
            comm: "python3",
        },
    );
    let secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let line_a = request(
        1,
        "tools/call",
        &format!(r#"{{"name":"a","arguments":{{"t":"{secret}"}}}}"#),
    ) + "\n";
    let line_b = request(2, "tools/list", "{}") + "\n";
    let cut = line_a.find(secret).unwrap() + 20;
    syn.write(a, pipe, &line_a.as_bytes()[..cut]);
    syn.write(b, pipe, line_b.as_bytes());
    syn.write(a, pipe, &line_a.as_bytes()[cut..]);
    syn.drain(SERVER, pipe, 4096);
    let cap = syn.finish();
    let mixed = decode_file(&cap).0;
    assert_eq!(
        mixed
            .iter()
            .filter(|i| i.flag.as_ref().is_some_and(|f| f.0 == "interleaved"))
            .count(),
        2,
        "{mixed:#?}"
    );
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&cap), "-o", s(&red), "--keep-non-mcp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reader = mcpspy::capture::CaptureReader::open(&red).unwrap();
    let mut all = Vec::new();
    for b in reader.blocks(&Default::default()).unwrap() {
        all.extend_from_slice(&b.unwrap().data);
    }
    for gone in [secret, &secret[..20], &secret[20..]] {
        assert!(
            memchr::memmem::find(&all, gone.as_bytes()).is_none(),
            "{gone} is left"
        );
    }
    // The writers' lines are still there, A's redacted, B's as it was.
    let after = decode_file(&red).0;
    let mut ids: Vec<_> = after.iter().filter_map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["1", "2"], "{after:#?}");
    assert!(after.iter().any(|i| i.text == line_b.trim_end()));
}

/// A secret in a chunked HTTP body split across chunks, in a header line
/// split across two reads, and in a second connection on a reused SSL*
/// (its streams restarted at offset 0): all replaced, the framing intact,
/// the other bytes untouched.
#[test]
fn redact_reaches_secrets_that_framing_splits() {
    let dir = tempfile::tempdir().unwrap();
    let mut syn = Synth::new(&dir.path().join("h.db"));
    let client = ipv4([127, 0, 0, 1], 40000);
    let server = ipv4([127, 0, 0, 1], 8000);
    let (up, down) = syn.tcp(client, server);
    let secret = "AKIAQWERTYUIOPASDFGH";
    let body = request(
        1,
        "tools/call",
        &format!(r#"{{"name":"a","arguments":{{"k":"{secret}"}}}}"#),
    );
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        "9".repeat(30),
        body.len()
    );
    // The header line is cut in the middle of the token.
    let cut = head.find("tok-").unwrap() + 10;
    syn.write(CLIENT, up, &head.as_bytes()[..cut]);
    syn.write(CLIENT, up, &head.as_bytes()[cut..]);
    syn.write(CLIENT, up, body.as_bytes());
    syn.drain(SERVER, up, head.len() + body.len());
    // The answer is chunked, the secret cut by the chunk boundary.
    let result = response(
        1,
        &format!(r#"{{"content":[{{"type":"text","text":"got {secret}"}}]}}"#),
    );
    let split = result.find(secret).unwrap() + 7;
    let chunks = chunked(&[&result.as_bytes()[..split], &result.as_bytes()[split..]]);
    syn.write(
        SERVER,
        down,
        &http_response(
            "200 OK",
            &[
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            &chunks,
            false,
        ),
    );
    syn.drain(CLIENT, down, usize::MAX);
    // A reused SSL*: the second connection starts its streams over from
    // offset 0 (STREAM_START), its secret where the first one had padding.
    let pad = "p".repeat(secret.len());
    for (n, port, args) in [
        (
            2u64,
            50010u16,
            format!(r#"{{"k":"{secret}","pad":"{pad}"}}"#),
        ),
        (3, 50011, format!(r#"{{"pad":"{pad}","k":"{secret}"}}"#)),
    ] {
        if n == 3 {
            syn.reuse_ssl(CLIENT.pid, 1, [true, true]);
            syn.reuse_ssl(SERVER.pid, 9, [true, true]);
        }
        let (c2s, s2c) = syn.tls(ipv4([127, 0, 0, 1], port), ipv4([127, 0, 0, 1], 8443), 1, 9);
        let c = Conn::of((c2s, s2c));
        syn.know_socket(9);
        let req = request(
            n,
            "tools/call",
            &format!(r#"{{"name":"a","arguments":{args}}}"#),
        );
        c.request(
            &mut syn,
            &http_request("POST", "/mcp", &[JSON], req.as_bytes()),
        );
        syn.know_socket(1);
        let resp = response(n, "{}");
        c.respond(
            &mut syn,
            &http_response("200 OK", &[JSON], resp.as_bytes(), true),
        );
    }
    let cap = syn.finish();
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&cap), "-o", s(&red)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reader = mcpspy::capture::CaptureReader::open(&red).unwrap();
    let mut all = Vec::new();
    for b in reader.blocks(&Default::default()).unwrap() {
        all.extend_from_slice(&b.unwrap().data);
    }
    for gone in [
        secret.as_bytes(),
        &secret.as_bytes()[..7],
        &secret.as_bytes()[7..],
        b"tok-9999999999",
    ] {
        assert!(
            memchr::memmem::find(&all, gone).is_none(),
            "{:?} is left",
            String::from_utf8_lossy(gone)
        );
    }
    let (before, after) = (decode_file(&cap).0, decode_file(&red).0);
    // Both connections of the reused SSL* are decoded, each with its secret.
    assert_eq!(before.len(), 6, "{before:#?}");
    let with_secret = before.iter().filter(|i| i.text.contains(secret)).count();
    assert_eq!(with_secret, 4, "{before:#?}");
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.kind.as_str(), b.text.len(), b.flag.is_some()),
            (a.kind.as_str(), a.text.len(), a.flag.is_some())
        );
        // Only the secret's bytes change: a span found in one incarnation
        // and applied to the other would blank the padding instead.
        let mut secret_at = vec![false; b.text.len()];
        for (at, _) in b.text.match_indices(secret) {
            secret_at[at..at + secret.len()].fill(true);
        }
        let (bb, ab) = (b.text.as_bytes(), a.text.as_bytes());
        for (i, _) in secret_at.iter().enumerate().filter(|(_, s)| !**s) {
            assert_eq!(
                bb[i], ab[i],
                "byte {i} changed: {:?} -> {:?}",
                b.text, a.text
            );
        }
    }
    assert!(
        after.iter().all(|i| i.flag.is_none()),
        "framing intact: {after:?}"
    );
}

/// Non-MCP lines on an MCP pipe are blanked (they vanish, the messages
/// stay), a stream with no MCP message is left out, and --keep-non-mcp
/// keeps both.
#[test]
fn non_mcp_lines_and_streams_are_left_out_unless_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut syn = Synth::new(&dir.path().join("n.db"));
    let mcp = syn.pipe();
    let noise = syn.pipe();
    syn.send(CLIENT, SERVER, mcp, &request(1, "ping", "{}"));
    syn.send(CLIENT, SERVER, mcp, "debug: starting worker 7");
    syn.send(CLIENT, SERVER, mcp, &request(2, "ping", "{}"));
    syn.send(CLIENT, SERVER, noise, r#"{"log":"not jsonrpc"}"#);
    let cap = syn.finish();
    let kinds =
        |c: &Path| -> Vec<String> { decode_file(c).0.iter().map(|i| i.kind.clone()).collect() };
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&cap), "-o", s(&red)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        // The noise pipe is two streams (its write and its read); one line.
        err.contains("left out 2 non-MCP streams, blanked 1 non-MCP line"),
        "{err}"
    );
    assert_eq!(kinds(&red), ["request", "request"]);
    let kept = dir.path().join("k.db");
    assert!(
        mcpspy(&["redact", s(&cap), "-o", s(&kept), "--keep-non-mcp"])
            .status
            .success()
    );
    assert_eq!(kinds(&kept), kinds(&cap));
    assert!(kinds(&cap).len() > 2);
}

/// A capture whose TLS is opened by its key log (Deno, rustls, HTTP/2, to
/// the Go server whose plaintext its probes saw): `redact` leaves the key
/// log out, and with it Deno's ciphertext, which without it is not MCP;
/// the server's own copies of every message stay. A slice keeps the key
/// log and still opens the ciphertext.
#[test]
fn redact_leaves_the_key_log_out_and_a_slice_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let cap = fixture("deno_h2_keylog.db");
    let (items, _) = decode_file(&cap);
    assert_eq!(items.len(), 10, "{items:#?}");
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&cap), "-o", s(&red)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (redacted, _) = decode_file(&red);
    let kinds = |v: &[Seen]| -> Vec<String> { v.iter().map(|i| i.kind.clone()).collect() };
    assert_eq!(kinds(&redacted), kinds(&items));
    for i in &redacted {
        // Only the server's copy is left, and nothing of Deno's.
        assert!(i.flag.is_none(), "{i:#?}");
        let (deno, server) = (items[0].from, items[0].to);
        assert!(i.from != deno && i.to != deno, "{i:#?}");
        assert!(i.from == server || i.to == server, "{i:#?}");
    }
    let derivation = meta(&red, "derivation");
    assert!(
        derivation.contains(r#""tls_keylog_lines_left_out":5"#),
        "{derivation}"
    );
    assert!(!meta(&red, "features").contains("tls_keylog"));
    assert!(mcpspy(&["verify", s(&red)]).status.success());
    // A slice keeps the key log: its messages open, from both ends.
    let sl = dir.path().join("s.db");
    assert!(mcpspy(&["slice", s(&cap), "-o", s(&sl), "--tool", "echo"])
        .status
        .success());
    let sliced = normalized(&mcpspy(&["export", s(&sl)]));
    assert_eq!(sliced.len(), 2, "{sliced:#?}");
    for i in &sliced {
        let r = &i["records"];
        assert!(r["writer"].is_object() && r["reader"].is_object(), "{i}");
    }
}

fn meta(cap: &Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(cap).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .unwrap_or_default()
}

/// A connection that carries no message but names the session (its
/// DELETE) is the session's, and redact keeps it, also when the header
/// starts a write of its own (the head split at a line's end).
#[test]
fn a_stream_that_names_the_session_is_kept_wherever_its_header_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut syn = Synth::new(&dir.path().join("d.db"));
    let c = Conn::new(&mut syn, CLIENT, SERVER, 40200);
    c.post(&mut syn, &request(1, "ping", "{}"));
    c.ok(&mut syn, &response(1, "{}"));
    let d = Conn::new(&mut syn, CLIENT, SERVER, 40201);
    let head = http_request("DELETE", "/mcp", &[("Mcp-Session-Id", "abc")], b"");
    let split = head.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let split = split + head[split..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    assert!(
        head[split..].starts_with(b"Mcp-Session-Id"),
        "split before the header"
    );
    syn.write(CLIENT, d.c2s, &head[..split]);
    syn.write(CLIENT, d.c2s, &head[split..]);
    syn.drain(SERVER, d.c2s, 4096);
    d.respond(&mut syn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let cap = syn.finish();
    let red = dir.path().join("r.db");
    let o = mcpspy(&["redact", s(&cap), "-o", s(&red)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let streams = |c: &Path| {
        mcpspy::capture::CaptureReader::open(c)
            .unwrap()
            .streams()
            .unwrap()
            .len()
    };
    assert_eq!(streams(&red), streams(&cap), "{err}");
}

#[test]
fn derived_captures_refuse_what_they_cannot_do_faithfully() {
    let dir = tempfile::tempdir().unwrap();
    let cap = typical_session(&dir.path().join("t.db"));
    // The child may not be the parent.
    let o = mcpspy(&["redact", s(&cap), "-o", s(&cap), "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the capture being read"));
    // A damaged parent would make a child that silently lacks records.
    let damaged = typical_session(&dir.path().join("d.db"));
    rusqlite::Connection::open(&damaged)
        .unwrap()
        .execute("UPDATE blocks SET data = x'00' WHERE block_id = 1", [])
        .unwrap();
    let o = mcpspy(&["slice", s(&damaged), "-o", s(&dir.path().join("x.db"))]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.path().join("x.db").exists());
    // Bad keys and rules are said plainly.
    let short = dir.path().join("short.key");
    std::fs::write(&short, "abc").unwrap();
    let o = mcpspy(&[
        "redact",
        s(&cap),
        "-o",
        s(&dir.path().join("y.db")),
        "--key-file",
        s(&short),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 16"));
    let rules = dir.path().join("r.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nkind = \"value\"\npattern = '('\n",
    )
    .unwrap();
    let o = mcpspy(&["redact", s(&cap), "--dry-run", "--rules", s(&rules)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rules"));
    // t.db, d.db, short.key, r.toml: no derived file, no temporary one.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        4,
        "nothing was written"
    );
}

/// A derived capture is sealed anew, so a parent whose seal is broken is
/// not derived: a child would vouch for what may not be what was recorded.
/// The seal's tables are checked as the parent opens; a block's data only
/// as it is read, so that case is refused after the copy, and nothing is
/// written either way.
#[test]
fn a_parent_whose_seal_is_broken_is_not_derived() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("child.db");
    let recompressed = |conn: &rusqlite::Connection| {
        let (data, raw): (Vec<u8>, i64) = conn
            .query_row(
                "SELECT data, raw_bytes FROM blocks WHERE block_id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let plain = zstd::bulk::decompress(&data, raw as usize).unwrap();
        let again = zstd::bulk::compress(&plain, 19).unwrap();
        assert_ne!(again, data, "another level, other bytes");
        conn.execute("UPDATE blocks SET data = ?1 WHERE block_id = 1", [again])
    };
    type Edit = Box<dyn Fn(&rusqlite::Connection) -> rusqlite::Result<usize>>;
    let edits: [(&str, Edit); 4] = [
        (
            "a stream's row",
            Box::new(|c| c.execute("UPDATE streams SET pid = pid + 1", [])),
        ),
        ("a block's bytes", Box::new(recompressed)),
        (
            "the seal's commits",
            Box::new(|c| c.execute("DELETE FROM seal_commits", [])),
        ),
        (
            "the seal's table, gone",
            Box::new(|c| c.execute("DROP TABLE seal_commits", [])),
        ),
    ];
    for (what, edit) in &edits {
        let cap = typical_session(&dir.path().join("parent.db"));
        // Untouched, the parent derives.
        for op in [&["slice", "--method", "initialize"][..], &["redact"]] {
            let mut args = vec![op[0], s(&cap), "-o", s(&out)];
            args.extend_from_slice(&op[1..]);
            let o = mcpspy(&args);
            assert_eq!(o.status.code(), Some(0), "{args:?}");
            std::fs::remove_file(&out).unwrap();
        }
        edit(&rusqlite::Connection::open(&cap).unwrap()).unwrap();
        // A reader warns, and reads on.
        let o = mcpspy(&["query", s(&cap), "--no-index"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{what}: {err}");
        assert!(
            err.contains("seal is broken") || err.contains("altered after it was written"),
            "{what}: {err}"
        );
        for op in [&["slice", "--method", "initialize"][..], &["redact"]] {
            let mut args = vec![op[0], s(&cap), "-o", s(&out)];
            args.extend_from_slice(&op[1..]);
            let o = mcpspy(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{what}: {args:?}: {err}");
            assert!(
                err.contains("seal is broken") || err.contains("altered after it was written"),
                "{what}: {args:?}: {err}"
            );
            assert!(!out.exists(), "{what}: {args:?} wrote a child: {err}");
        }
        std::fs::remove_file(&cap).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A child names among its features what it carries of its parent's: the
/// processes' cgroups (table process_cgroups) as well as its own seal and
/// derivation.
#[test]
fn a_child_names_the_features_it_carries() {
    let dir = tempfile::tempdir().unwrap();
    let mut syn = Synth::new(&dir.path().join("p.db"));
    syn.add_process_row(&ProcessRow {
        pid: CLIENT.pid,
        comm: CLIENT.comm.into(),
        cgroup: Some((77, "/system.slice/docker-3f2a.scope".into())),
        container_id: Some("3f2a".into()),
        ..Default::default()
    });
    let pipe = syn.pipe();
    let init = r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}"#;
    syn.send(CLIENT, SERVER, pipe, &request(1, "initialize", init));
    syn.send(
        SERVER,
        CLIENT,
        pipe,
        &response(1, r#"{"serverInfo":{"name":"s","version":"1"}}"#),
    );
    let cap = syn.finish();
    let tells = |c: &Path| {
        let export = mcpspy(&["export", s(c)]);
        String::from_utf8_lossy(&export.stdout).contains(r#""container_id":"3f2a""#)
    };
    assert!(tells(&cap), "the parent tells the container");
    for op in ["slice", "redact"] {
        let child = dir.path().join(format!("{op}.db"));
        let o = mcpspy(&[op, s(&cap), "-o", s(&child)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let conn = rusqlite::Connection::open(&child).unwrap();
        let listed: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'features'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let features: Vec<String> = serde_json::from_str(&listed).unwrap();
        for f in ["seal", "derived", "cgroups"] {
            assert!(features.iter().any(|n| n == f), "{op}: {f} in {listed}");
        }
        assert!(tells(&child), "{op}: the child still tells the container");
        let verify = mcpspy(&["verify", s(&child)]);
        assert!(
            verify.status.success(),
            "{op}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
}
