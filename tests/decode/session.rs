//! A whole stdio session through the decoder: every message once, writer →
//! reader, roles, pairing, latency, progress and cancellation links, batches.

use super::support::*;

#[test]
fn every_message_once_with_roles_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let path = typical_session(&dir.path().join("s.db"));
    let (items, sessions) = decode_file(&path);
    type Line = (String, Option<String>, Option<u32>, Option<u32>);
    let summary: Vec<Line> = items
        .iter()
        .map(|i| (i.kind.clone(), i.method.clone(), i.from, i.to))
        .collect();
    let c = Some(CLIENT.pid);
    let sv = Some(SERVER.pid);
    let m = |s: &str| Some(s.to_string());
    assert_eq!(
        summary,
        vec![
            ("request".into(), m("initialize"), c, sv),
            ("response".into(), m("initialize"), sv, c),
            ("notification".into(), m("notifications/initialized"), c, sv),
            ("request".into(), m("tools/list"), c, sv),
            ("response".into(), m("tools/list"), sv, c),
            ("request".into(), m("tools/call"), c, sv),
            ("request".into(), m("roots/list"), sv, c),
            ("response".into(), m("roots/list"), c, sv),
            ("notification".into(), m("notifications/progress"), sv, c),
            ("response".into(), m("tools/call"), sv, c),
            ("request".into(), m("tools/call"), c, sv),
            ("error".into(), m("tools/call"), sv, c),
            ("request".into(), m("tools/call"), c, sv),
            ("notification".into(), m("notifications/cancelled"), c, sv),
            ("request".into(), m("ping"), c, sv),
            ("notification".into(), m("x/custom"), c, sv),
            ("flagged".into(), None, c, sv),
            ("response".into(), m("ping"), sv, c),
        ]
    );
    // Both copies of every message were paired (records from both sides).
    for i in &items {
        assert!(
            !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty(),
            "{i:?}"
        );
    }
    // One session, numbered 1, roles from the handshake.
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.client.map(|p| p.pid), c);
    assert_eq!(s.server.map(|p| p.pid), sv);
    assert_eq!(s.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(
        s.client_info.as_ref().and_then(|i| i.name.as_deref()),
        Some("test-client")
    );
    assert_eq!(
        s.server_info.as_ref().and_then(|i| i.version.as_deref()),
        Some("9.8.7")
    );
    assert!(s
        .server_capabilities
        .as_deref()
        .unwrap()
        .contains("listChanged"));
    assert!(items.iter().all(|i| i.session == Some(1)));
    assert_eq!(items[0].direction.as_deref(), Some("ClientToServer"));
    assert_eq!(items[6].direction.as_deref(), Some("ServerToClient"));
    // Responses answer the right request per direction, despite id 2 twice.
    let call = &items[5];
    let roots = &items[6];
    assert_eq!(items[7].answers, Some(roots.n));
    assert_eq!(items[9].answers, Some(call.n));
    assert_eq!(items[9].subject.as_deref(), Some("get_weather"));
    assert!(items[9].latency_ns.unwrap() > 100_000_000);
    assert_eq!(
        items[9].latency_ns,
        Some(items[9].ts_ns - call.ts_ns),
        "latency is between the two sender timestamps"
    );
    // The big result arrived whole, from the writer's copy.
    assert_eq!(items[9].text, response(2, &big_result()));
    assert!(items[9].writer_seqs.len() >= 13 && items[9].reader_seqs.len() >= 49);
    // Unicode arguments kept exactly.
    assert!(call.text.contains("Zürich 東京 🌦"));
    // Progress and cancellation find their requests.
    assert_eq!(items[8].refers_to, Some(call.n));
    assert_eq!(items[8].subject.as_deref(), Some("1/2"));
    assert_eq!(items[13].refers_to, Some(items[12].n));
    // The cancelled request stays pending: no timer expires it.
    assert_eq!(s.unanswered, 1);
    // Batch elements, each with its index; the bad one flagged.
    assert_eq!(items[14].batch, Some((0, 3)));
    assert_eq!(items[16].batch, Some((2, 3)));
    assert_eq!(items[16].flag.as_ref().unwrap().0, "not_jsonrpc");
    assert_eq!(items[16].text, "17");
    assert_eq!(items[17].answers, Some(items[14].n));
    // Errors keep the code and message.
    assert!(items[11].text.contains("-32602"));
    // Numbering is dense and in order; time never goes backwards.
    for (k, i) in items.iter().enumerate() {
        assert_eq!(i.n, k as u64 + 1);
    }
    assert!(items.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
}

#[test]
fn decoding_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let path = typical_session(&dir.path().join("s.db"));
    let a = decode_file(&path).0;
    let b = decode_file(&path).0;
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn sessions_from_discover_and_from_client_only_methods() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("d.db"));
    // Session 1: MCP 2026-07-28 over a Unix socket pair, no initialize.
    let (a2b, b2a) = s.socketpair();
    let meta = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c2","version":"2.3.0"},"io.modelcontextprotocol/clientCapabilities":{}}}"#;
    s.send(CLIENT, SERVER, a2b, &request(0, "server/discover", meta));
    s.send(
        SERVER,
        CLIENT,
        b2a,
        &response(
            0,
            r#"{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s2","version":"0.1"}}}"#,
        ),
    );
    s.send(CLIENT, SERVER, a2b, &request(1, "tools/list", meta));
    // Session 2: captured mid-way; the server speaks first, then the client
    // sends a client-only request.
    let other = Proc {
        pid: 3000,
        comm: "node",
    };
    let p1 = s.pipe();
    let p2 = s.pipe();
    s.send(
        other,
        CLIENT,
        p2,
        &notification("notifications/message", r#"{"level":"info","data":"hi"}"#),
    );
    s.send(
        CLIENT,
        other,
        p1,
        &request(7, "resources/read", r#"{"uri":"file:///a"}"#),
    );
    s.send(other, CLIENT, p2, &response(7, r#"{"contents":[]}"#));
    s.tick();
    let (items, sessions) = decode_file(&s.finish());
    assert_eq!(sessions.len(), 2);
    let one = &sessions[0];
    assert_eq!(one.handshake, Some("server/discover"));
    assert_eq!(one.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(one.client.map(|p| p.pid), Some(CLIENT.pid));
    assert_eq!(
        one.client_info.as_ref().unwrap().name.as_deref(),
        Some("c2")
    );
    assert_eq!(
        one.server_info.as_ref().unwrap().name.as_deref(),
        Some("s2")
    );
    let two = &sessions[1];
    assert_eq!(two.client.map(|p| p.pid), Some(CLIENT.pid));
    assert_eq!(two.server.map(|p| p.pid), Some(other.pid));
    // The log notification told the roles before any request did.
    assert_eq!(items[3].direction.as_deref(), Some("ServerToClient"));
    assert_eq!(items[4].subject.as_deref(), Some("file:///a"));
    assert_eq!(items[5].answers, Some(items[4].n));
    // Unix socket copies pair through the peer inode.
    assert!(items[..3]
        .iter()
        .all(|i| !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty()));
}

#[test]
fn a_second_initialize_opens_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("r.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    for _ in 0..2 {
        s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
        s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    }
    let (items, sessions) = decode_file(&s.finish());
    assert_eq!(sessions.len(), 2);
    let ids: Vec<_> = items.iter().map(|i| i.session).collect();
    assert_eq!(ids, vec![Some(1), Some(1), Some(2), Some(2)]);
    assert_eq!(items[3].answers, Some(items[2].n));
}

/// Writes the capture to $MCPSPY_SYNTH_OUT, to look at by hand.
#[test]
#[ignore]
fn write_typical_session() {
    if let Some(p) = std::env::var_os("MCPSPY_SYNTH_OUT") {
        typical_session(std::path::Path::new(&p));
    }
}

#[test]
fn stdio_over_two_socket_pairs_is_one_session() {
    // Node's child_process gives the child a socket pair for stdin and
    // another for stdout.
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("n.db"));
    let (to_child, _) = s.socketpair();
    let (_, from_child) = s.socketpair();
    s.send(
        CLIENT,
        SERVER,
        to_child,
        &request(0, "initialize", INIT_PARAMS),
    );
    s.send(SERVER, CLIENT, from_child, &response(0, INIT_RESULT));
    s.send(SERVER, CLIENT, from_child, &request(0, "roots/list", "{}"));
    s.send(CLIENT, SERVER, to_child, &response(0, r#"{"roots":[]}"#));
    let (items, sessions) = decode_file(&s.finish());
    assert_eq!(sessions.len(), 1);
    assert_eq!(items[1].answers, Some(items[0].n));
    assert_eq!(items[3].answers, Some(items[2].n));
    assert_eq!(items[2].direction.as_deref(), Some("ServerToClient"));
}

#[test]
fn a_server_slow_to_start_reading_is_still_named_and_paired() {
    let dir = tempfile::tempdir().unwrap();
    for (startup_ns, named) in [(2_000_000_000, true), (8_000_000_000, false)] {
        let mut s = Synth::new(&dir.path().join(format!("{startup_ns}.db")));
        let c2s = s.pipe();
        let s2c = s.pipe();
        s.write(
            CLIENT,
            c2s,
            format!("{}\n", request(1, "initialize", INIT_PARAMS)).as_bytes(),
        );
        // The recorder ticks while the server imports its modules.
        for _ in 0..startup_ns / 100_000_000 {
            s.advance(100_000_000);
            s.tick();
        }
        s.drain(SERVER, c2s, 4096);
        s.send(SERVER, CLIENT, s2c, &response(1, INIT_RESULT));
        let (items, sessions) = decode_file(&s.finish());
        assert_eq!(items.len(), 2);
        // Named when it read within the first-contact wait (5 s); either way
        // the response pairs with the request, in one session.
        assert_eq!(items[0].to, named.then_some(SERVER.pid));
        assert_eq!(items[1].answers, Some(items[0].n));
        assert!(items[1].latency_ns.unwrap() >= startup_ns);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].server.map(|p| p.pid), Some(SERVER.pid));
    }
}

#[test]
fn a_tool_that_failed_is_not_an_ok_response() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("t.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(1, "tools/call", r#"{"name":"x"}"#),
    );
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &response(
            1,
            r#"{"content":[{"type":"text","text":"Unknown tool: x"}],"isError":true}"#,
        ),
    );
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(2, "tools/call", r#"{"name":"y"}"#),
    );
    // isError inside the content is not the result's.
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &response(2, r#"{"structuredContent":{"isError":true},"content":[]}"#),
    );
    let path = s.finish();
    let reader = mcpspy::capture::CaptureReader::open(&path).unwrap();
    let mut dec = mcpspy::decode::Decoder::new(Default::default());
    let mut failed = Vec::new();
    let mut sink = |it: &mcpspy::decode::Item<'_>| {
        if let mcpspy::decode::Kind::Response { tool_error, .. } = it.kind {
            failed.push(tool_error);
        }
    };
    for b in reader.blocks(&Default::default()).unwrap() {
        for rec in b.unwrap().records() {
            dec.push(&rec, &mut sink);
        }
    }
    dec.finish(&mut sink);
    assert_eq!(failed, vec![true, false]);
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn tcp_copies_pair_by_their_mirrored_ends_and_http2_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("tcp.db"));
    // JSON-RPC lines over loopback TCP: the two copies pair by 4-tuple.
    let (c2s, s2c) = s.tcp(ipv4([127, 0, 0, 1], 40000), ipv4([127, 0, 0, 1], 9000));
    s.send(CLIENT, SERVER, c2s, &request(1, "tools/list", "{}"));
    s.send(SERVER, CLIENT, s2c, &response(1, "{}"));
    // h2c with prior knowledge: the preface, then frames split across reads.
    // HPACK from the static table: :method POST, :scheme http, :path /mcp,
    // content-type application/json; the response :status 200.
    let (h2s, s2h) = s.tcp(ipv4([127, 0, 0, 1], 40001), ipv4([127, 0, 0, 1], 8080));
    let mut block = vec![0x83, 0x86, 0x44, 4];
    block.extend_from_slice(b"/mcp");
    block.extend_from_slice(&[0x5f, 16]);
    block.extend_from_slice(b"application/json");
    let req = request(2, "ping", "{}");
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    c.extend(h2_frame(4, 0, 0, &[]));
    c.extend(h2_frame(1, 4, 1, &block));
    c.extend(h2_frame(0, 1, 1, req.as_bytes()));
    s.write(CLIENT, h2s, &c[..30]);
    s.drain(SERVER, h2s, 10);
    s.write(CLIENT, h2s, &c[30..]);
    s.drain(SERVER, h2s, 4096);
    let resp = response(2, "{}");
    let mut v = h2_frame(4, 0, 0, &[]);
    v.extend(h2_frame(1, 4, 1, &[0x88, 0x5f, 16]));
    v.extend_from_slice(b"application/json");
    // The header block's length counts the content type too.
    let at = v.len() - 16 - 3 - 9;
    v[at + 2] = 19;
    v.extend(h2_frame(0, 1, 1, resp.as_bytes()));
    s.write(SERVER, s2h, &v);
    s.drain(CLIENT, s2h, 7);
    s.drain(CLIENT, s2h, 4096);
    let (items, sessions) = decode_file(&s.finish());
    assert_eq!(items[0].method.as_deref(), Some("tools/list"));
    assert!(!items[0].writer_seqs.is_empty() && !items[0].reader_seqs.is_empty());
    assert_eq!(items[1].answers, Some(items[0].n));
    assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
    assert_eq!(items.len(), 4);
    assert_eq!(items[2].method.as_deref(), Some("ping"));
    assert_eq!(items[3].answers, Some(items[2].n));
    for i in &items[2..] {
        assert!(!i.writer_seqs.is_empty() && !i.reader_seqs.is_empty());
    }
    assert_eq!(sessions.len(), 2);
}

/// MCP 2026-07-28's multi-round calls: a tools/call answered with
/// `input_required` is asked again under a new id, echoing `requestState`
/// (escaped differently here, as another JSON writer may); each retry and
/// each round's response name the call's first request and their round,
/// in export, replay and query (with its index and without), and a retry
/// whose state no response gave links nothing.
#[test]
fn multi_round_calls_are_linked_by_request_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mrtr.db");
    let mut s = Synth::new(&path);
    let (c2s, s2c) = (s.pipe(), s.pipe());
    let ask = |state: &str| {
        format!(
            r#"{{"resultType":"input_required","inputRequests":{{"q":{{"method":"elicitation/create","params":{{"message":"sure?"}}}}}},"requestState":"{state}"}}"#
        )
    };
    let retry = |state: &str| {
        format!(
            r#"{{"name":"delete","arguments":{{"path":"/tmp/x"}},"inputResponses":{{"q":{{"action":"accept"}}}},"requestState":"{state}"}}"#
        )
    };
    s.send(CLIENT, SERVER, c2s, &request(0, "server/discover", "{}"));
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &response(0, r#"{"supportedVersions":["2026-07-28"]}"#),
    );
    let first = r#"{"name":"delete","arguments":{"path":"/tmp/x"}}"#;
    // Each call: its request's params, then its result. The client writes
    // the first state's `/` as `\/`: the same string. Then a state no
    // response gave, and an ordinary call.
    let calls = [
        (first.to_string(), ask("s/1")),
        (retry("s\\/1"), ask("s-2")),
        (retry("s-2"), r#"{"content":[]}"#.to_string()),
        (retry("forged"), r#"{"content":[]}"#.to_string()),
        (first.to_string(), r#"{"content":[]}"#.to_string()),
    ];
    for (id, (params, result)) in (1..).zip(&calls) {
        s.send(CLIENT, SERVER, c2s, &request(id, "tools/call", params));
        s.send(SERVER, CLIENT, s2c, &response(id, result));
    }
    let path = s.finish();
    let out = mcpspy_command().arg("export").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: Vec<(u64, Option<serde_json::Value>)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["n"].as_u64().unwrap(), v.get("round").cloned()))
        .collect();
    let r = |call: u64, round: u32| Some(serde_json::json!({"call": call, "round": round}));
    assert_eq!(
        rounds,
        vec![
            (1, None),
            (2, None),
            (3, None),
            (4, r(3, 1)),
            (5, r(3, 2)),
            (6, r(3, 2)),
            (7, r(3, 3)),
            (8, r(3, 3)),
            (9, None),
            (10, None),
            (11, None),
            (12, None),
        ]
    );
    // replay, and query from the index (built by the first query, read by
    // the second) and without it, show the rounds.
    for args in [
        &["replay"][..],
        &["query", "--no-index"],
        &["query"],
        &["query"],
    ] {
        let out = mcpspy_command().args(args).arg(&path).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for (round, times) in [(1, 1), (2, 2), (3, 2)] {
            let mark = format!("[round {round} of call #3]");
            assert_eq!(
                text.matches(&mark).count(),
                times,
                "{args:?} {mark}: {text}"
            );
        }
    }
}

/// MCP 2026-07-28 cancels a request over HTTP by closing its stream: an
/// HTTP/2 client's RST_STREAM on a stream whose request has no response
/// yet names that request (JSONL `request`), and `check` does not report
/// it as unanswered. A reset after the response, and a request left
/// without one, are not cancellations.
#[test]
fn a_reset_stream_cancels_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("cancel.db"));
    let (c2s, s2c) = s.tcp(ipv4([127, 0, 0, 1], 40002), ipv4([127, 0, 0, 1], 8080));
    // HPACK from the static table: :method POST, :scheme http, :path /mcp,
    // content-type as a literal; the response :status 200.
    let request_block = || {
        let mut b = vec![0x83, 0x86, 0x04, 4];
        b.extend_from_slice(b"/mcp");
        b.extend_from_slice(&[0x0f, 0x10, 16]);
        b.extend_from_slice(b"application/json");
        b
    };
    let mut events = vec![0x88, 0x0f, 0x10, 17];
    events.extend_from_slice(b"text/event-stream");
    let call = |id: u64| request(id, "tools/call", r#"{"name":"slow","arguments":{}}"#);
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    c.extend(h2_frame(4, 0, 0, &[]));
    for stream in [1, 3, 5] {
        c.extend(h2_frame(1, 4, stream, &request_block()));
        c.extend(h2_frame(0, 1, stream, call(u64::from(stream)).as_bytes()));
    }
    s.write(CLIENT, c2s, &c);
    s.drain(SERVER, c2s, 1 << 16);
    // The server opens an event stream for each; only stream 3 answers.
    let mut v = h2_frame(4, 0, 0, &[]);
    for stream in [1, 3, 5] {
        v.extend(h2_frame(1, 4, stream, &events));
    }
    v.extend(h2_frame(
        0,
        0,
        3,
        sse(&response(3, r#"{"content":[]}"#)).as_bytes(),
    ));
    s.write(SERVER, s2c, &v);
    s.drain(CLIENT, s2c, 1 << 16);
    // The client closes streams 1 and 3 (CANCEL); stream 5 stays open.
    let mut r = h2_frame(3, 0, 1, &8u32.to_be_bytes());
    r.extend(h2_frame(3, 0, 3, &8u32.to_be_bytes()));
    s.write(CLIENT, c2s, &r);
    s.drain(SERVER, c2s, 1 << 16);
    let path = s.finish();

    let items = exported_items(&path);
    let n_of = |id: u64| n_of_request(&items, id);
    let resets: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["flag"]["reason"] == "reset")
        .collect();
    assert_eq!(resets.len(), 2, "{items:#?}");
    assert_eq!(resets[0]["request"]["n"], n_of(1), "{:#}", resets[0]);
    let detail = resets[0]["flag"]["detail"].as_str().unwrap();
    assert!(detail.contains("cancels request #"), "{detail}");
    assert!(
        resets[1].get("request").is_none(),
        "answered before: {:#}",
        resets[1]
    );
    // Parquet's request_n says the same.
    use arrow_array::Array;
    let pq = dir.path().join("cancel.parquet");
    mcpspy_stdout(
        &["export", "--format", "parquet", "-o", pq.to_str().unwrap()],
        &path,
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&pq).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut cancels = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let reason = column("flag_reason");
        let reason = arrow_array::cast::as_string_array(&reason);
        let request_n = column("request_n");
        let request_n = request_n
            .as_any()
            .downcast_ref::<arrow_array::UInt64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            if reason.is_valid(row) && reason.value(row) == "reset" {
                cancels.push(request_n.is_valid(row).then(|| request_n.value(row)));
            }
        }
    }
    assert_eq!(cancels, vec![n_of(1).as_u64(), None]);
    // OTLP: the reset is an event on the cancelled request's spans.
    let out = mcpspy_command()
        .args(["export", "--format", "otlp-json"])
        .arg(&path)
        .output()
        .unwrap();
    let mut reset_spans = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let events = span["events"].as_array().into_iter().flatten();
                    if events.into_iter().any(|e| e["name"] == "reset") {
                        let attributes = span["attributes"].as_array().unwrap();
                        let id = attributes.iter().find(|a| a["key"] == "jsonrpc.request.id");
                        reset_spans.push(id.map(|a| a["value"].clone()));
                    }
                }
            }
        }
    }
    assert!(!reset_spans.is_empty());
    let first = Some(serde_json::json!({"stringValue": "1"}));
    assert!(reset_spans.iter().all(|id| *id == first), "{reset_spans:?}");
    // check: request 5 has no response; request 1 was cancelled.
    let out = mcpspy_command()
        .args(["check", "--format", "json", "--fail-on", "never"])
        .arg(&path)
        .output()
        .unwrap();
    let pending: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["rule"] == "protocol.pending")
        .collect();
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(pending[0]["item"], n_of(5), "{:#}", pending[0]);
}
