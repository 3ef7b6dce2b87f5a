//! Closing an HTTP/1.1 connection (feature `stream_ends`): MCP 2026-07-28
//! cancels a request over HTTP by closing its response stream, and over
//! HTTP/1.1 that is closing the connection. Synthetic captures with the
//! kernel's END records: the client's close and the server's end of file.

use super::support::*;
use serde_json::Value;

/// The slow call (id `id`) posted on its own connection, answered by an
/// event stream that has begun and not ended.
fn slow_call(s: &mut Synth, port: u16, id: u64) -> Conn {
    let c = Conn::new(s, CLIENT, SERVER, port);
    c.post(
        s,
        &request(id, "tools/call", r#"{"name":"slow","arguments":{}}"#),
    );
    let mut head = http_response("200 OK", &[EVENT_STREAM, CHUNKED], b"", false);
    let ev = sse(&notification("notifications/progress", r#"{"progress":1}"#));
    head.extend_from_slice(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
    c.respond(s, &head);
    c
}

/// The client's close cancels the call still waiting on the connection,
/// once (the server's end of file after it finds nothing left); a call
/// answered before, one whose server closed first (also before it wrote
/// anything), one refused with an HTTP error, and one posted to the legacy
/// transport's endpoint (answered on another stream) are not cancelled by
/// a close.
#[test]
fn closing_an_http1_connection_cancels_the_request_waiting_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("closed.db"));
    let init = Conn::new(&mut s, CLIENT, SERVER, 41000);
    init.post(
        &mut s,
        &request(0, "initialize", r#"{"protocolVersion":"2025-11-25"}"#),
    );
    init.ok(&mut s, &response(0, r#"{"protocolVersion":"2025-11-25"}"#));
    // Cancelled: the client closes; the server reads its end.
    let cancelled = slow_call(&mut s, 41001, 1);
    s.end(CLIENT, cancelled.c2s, true);
    s.end(SERVER, cancelled.c2s, false);
    // The server closes first: the call stays unanswered.
    let dropped = slow_call(&mut s, 41002, 2);
    s.end(SERVER, dropped.s2c, true);
    s.end(CLIENT, dropped.s2c, false);
    s.end(CLIENT, dropped.c2s, true);
    // The server closes before it answers anything: its end of the
    // connection carried nothing, and the client's close that follows
    // cancels nothing.
    let silent = Conn::new(&mut s, CLIENT, SERVER, 41006);
    silent.post(
        &mut s,
        &request(5, "tools/call", r#"{"name":"slow","arguments":{}}"#),
    );
    s.end(SERVER, silent.s2c, true);
    s.end(CLIENT, silent.s2c, false);
    s.end(CLIENT, silent.c2s, true);
    // An HTTP error answers the exchange: a close after it cancels nothing.
    let refused = Conn::new(&mut s, CLIENT, SERVER, 41007);
    refused.post(&mut s, &request(6, "tools/list", "{}"));
    refused.respond(&mut s, &http_response("401 Unauthorized", &[], b"", true));
    s.end(CLIENT, refused.c2s, true);
    // Answered, then the connection closes.
    let answered = Conn::new(&mut s, CLIENT, SERVER, 41003);
    answered.post(&mut s, &request(3, "tools/list", "{}"));
    answered.ok(&mut s, &response(3, r#"{"tools":[]}"#));
    s.end(CLIENT, answered.c2s, true);
    // The legacy transport: the POST is accepted, its answer comes on the
    // event stream, and its connection closes meanwhile.
    let ep = "event: endpoint\r\ndata: /messages/?session_id=ab12\r\n\r\n";
    legacy_stream(&mut s, CLIENT, 41004, ep);
    let post = Conn::new(&mut s, CLIENT, SERVER, 41005);
    let legacy = request(4, "tools/call", r#"{"name":"slow","arguments":{}}"#);
    post.post_at(&mut s, "/messages/?session_id=ab12", &legacy);
    post.respond(
        &mut s,
        &http_response("202 Accepted", &[], b"Accepted", true),
    );
    s.end(CLIENT, post.c2s, true);
    s.advance(1_000_000);
    let path = s.finish();

    let items = exported_items(&path);
    let n_of = |id: u64| n_of_request(&items, id);
    let closed: Vec<&Value> = items
        .iter()
        .filter(|i| i["flag"]["reason"] == "closed")
        .collect();
    assert_eq!(closed.len(), 1, "{items:#?}");
    assert_eq!(closed[0]["request"]["n"], n_of(1), "{:#}", closed[0]);
    assert_eq!(closed[0]["direction"], "client->server", "{:#}", closed[0]);
    let detail = closed[0]["flag"]["detail"].as_str().unwrap();
    assert!(detail.contains("cancels request #"), "{detail}");
    // A slice of its session keeps the close with the stream it ends.
    let session = closed[0]["session"]["id"].to_string();
    let sliced = dir.path().join("sliced.db");
    let sliced_arg = sliced.to_str().unwrap();
    mcpspy_stdout(&["slice", "--session", &session, "-o", sliced_arg], &path);
    let kept = mcpspy_stdout(&["export"], &sliced);
    assert_eq!(kept.matches("\"reason\":\"closed\"").count(), 1, "{kept}");
    assert!(kept.contains("cancels request #"), "{kept}");
    // `check`: the cancelled call is not pending; the dropped one and the
    // legacy one (never answered here) are.
    let findings = mcpspy_stdout(&["check", "--format", "json", "--fail-on", "never"], &path);
    let mut pending: Vec<Value> = findings
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|f| f["rule"] == "protocol.pending")
        .map(|f| f["item"].clone())
        .collect();
    pending.sort_by_key(|n| n.as_u64());
    let mut expected = vec![n_of(2), n_of(4), n_of(5), n_of(6)];
    expected.sort_by_key(|n| n.as_u64());
    assert_eq!(pending, expected, "{findings}");
}

/// Stream ends lost to a full ring are a loss `verify` reports: the
/// cancellations they would show may be missing.
#[test]
fn stream_ends_lost_to_a_full_ring_are_a_reported_loss() {
    let dir = tempfile::tempdir().unwrap();
    let verified = |ring_full: u64| {
        let name = format!("ends{ring_full}.db");
        let mut s = Synth::new(&dir.path().join(name));
        let c = slow_call(&mut s, 41001, 1);
        s.end(CLIENT, c.c2s, true);
        s.set_meta(
            "stream_ends",
            &format!(
                r#"{{"attached":true,"submitted":{},"ring_full":{ring_full}}}"#,
                1 + ring_full
            ),
        );
        let path = s.finish();
        super::tamper::verify(&path, &[]).1
    };
    let whole = verified(0);
    assert!(!whole.contains("stream-end records lost"), "{whole}");
    let lossy = verified(2);
    assert!(
        lossy.contains("2 stream-end records lost to a full ring"),
        "{lossy}"
    );
    assert_ne!(
        whole.lines().next(),
        lossy.lines().next(),
        "the verdict says so: {lossy}"
    );
}
