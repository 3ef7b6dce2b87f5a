//! HTTP/1.1, SSE and TLS sessions through the decoder, from synthetic
//! captures that behave like the kernel's (both ends of each loopback
//! connection recorded, reads take what the socket holds).

use super::support::*;
use mcpspy::decode::HttpMeta;
use std::io::Write;

const C: Option<u32> = Some(CLIENT.pid);
const S: Option<u32> = Some(SERVER.pid);

fn sid(id: &str) -> (&'static str, String) {
    ("Mcp-Session-Id", id.to_string())
}

fn messages(items: &[Seen]) -> Vec<&Seen> {
    items.iter().filter(|i| i.flag.is_none()).collect()
}

pub(super) fn meta(i: &Seen) -> &HttpMeta {
    i.http.as_ref().expect("an HTTP item")
}

/// A Streamable HTTP session with JSON responses on one keep-alive
/// connection: initialize, the session id, a notification answered 202.
pub(super) fn json_session(s: &mut Synth, c: &Conn) -> Vec<String> {
    let init = request(0, "initialize", INIT_PARAMS);
    let init_result = response(0, INIT_RESULT);
    let initialized = notification("notifications/initialized", "{}");
    let call = request(
        1,
        "tools/call",
        r#"{"name":"echo","arguments":{"text":"hé ✓"}}"#,
    );
    let result = response(1, r#"{"content":[{"type":"text","text":"hé ✓"}]}"#);
    let accept = ("Accept", "application/json, text/event-stream");
    c.request(
        s,
        &http_request("POST", "/mcp", &[JSON, accept], init.as_bytes()),
    );
    c.respond(
        s,
        &http_response(
            "200 OK",
            &[JSON, ("mcp-session-id", "abc")],
            init_result.as_bytes(),
            true,
        ),
    );
    let with_id = [
        JSON,
        ("Mcp-Session-Id", "abc"),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    c.request(
        s,
        &http_request("POST", "/mcp", &with_id, initialized.as_bytes()),
    );
    c.respond(s, &http_response("202 Accepted", &[], b"", true));
    c.request(s, &http_request("POST", "/mcp", &with_id, call.as_bytes()));
    c.ok(s, &result);
    vec![init, init_result, initialized, call, result]
}

#[test]
fn streamable_http_json_responses_on_a_keep_alive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("json.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 40000);
    let sent = json_session(&mut s, &c);
    let (items, sessions) = decode_file(&s.finish());
    assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
    assert_eq!(items.len(), 5);
    // Every message once, exactly its JSON text, both copies behind it.
    for (i, text) in items.iter().zip(&sent) {
        assert_eq!(&i.text, text);
        assert!(
            !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty(),
            "{i:#?}"
        );
        assert_eq!(i.transport, Some("http"));
        assert_eq!(i.connection, Some(1));
        assert_eq!(i.session, Some(1));
    }
    let dirs: Vec<_> = items
        .iter()
        .map(|i| (i.from, i.to, i.direction.clone().unwrap()))
        .collect();
    let up = (C, S, "ClientToServer".to_string());
    let down = (S, C, "ServerToClient".to_string());
    assert_eq!(dirs, vec![up.clone(), down.clone(), up.clone(), up, down]);
    assert_eq!(items[1].answers, Some(items[0].n));
    assert_eq!(items[4].answers, Some(items[3].n));
    assert!(items[4].latency_ns.is_some());
    // What HTTP said about each.
    let m0 = meta(&items[0]);
    assert!(m0.is_request && m0.status.is_none() && !m0.sse);
    assert_eq!(
        (m0.method.as_deref(), m0.path.as_deref(), m0.host.as_deref()),
        (Some("POST"), Some("/mcp"), Some("127.0.0.1:8000"))
    );
    let m1 = meta(&items[1]);
    assert!(!m1.is_request);
    assert_eq!(m1.status, Some(200));
    assert_eq!(m1.method.as_deref(), Some("POST"));
    assert_eq!(m1.session_id.as_deref(), Some("abc"));
    assert_eq!(
        meta(&items[3]).protocol_version.as_deref(),
        Some("2025-06-18")
    );
    // One session, joined by its id, roles from HTTP.
    assert_eq!(sessions.len(), 1);
    let http = sessions[0].http.as_ref().unwrap();
    assert_eq!(http.session_id.as_deref(), Some("abc"));
    assert_eq!(http.connections, 1);
    assert_eq!(sessions[0].client.map(|p| p.pid), C);
    assert_eq!(sessions[0].server.map(|p| p.pid), S);
    assert_eq!(sessions[0].protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(sessions[0].handshake, Some("initialize"));
}

/// Streamable HTTP with SSE responses, a new connection per request (as
/// older clients do), a GET stream carrying a server request, and DELETE.
#[test]
fn sse_responses_get_streams_and_delete_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("sse.db"));
    let c1 = Conn::new(&mut s, CLIENT, SERVER, 41000);
    let init = request(0, "initialize", INIT_PARAMS);
    c1.post(&mut s, &init);
    let init_result = response(0, INIT_RESULT);
    let stream_head = [EVENT_STREAM, CHUNKED, ("mcp-session-id", "s-1")];
    // A priming event with empty data, then the result.
    let body = chunked(&[b"id: p0\r\ndata: \r\n\r\n", sse(&init_result).as_bytes()]);
    c1.respond(&mut s, &http_response("200 OK", &stream_head, &body, false));
    // The next request on its own connection.
    let c2 = Conn::new(&mut s, CLIENT, SERVER, 41001);
    let id = sid("s-1");
    let with_id = [JSON, (id.0, id.1.as_str())];
    let call = request(
        1,
        "tools/call",
        r#"{"name":"slow","arguments":{},"_meta":{"progressToken":7}}"#,
    );
    c2.request(
        &mut s,
        &http_request("POST", "/mcp", &with_id, call.as_bytes()),
    );
    let progress = notification(
        "notifications/progress",
        r#"{"progressToken":7,"progress":1,"total":2}"#,
    );
    // The result spread over two data lines, with an id, a retry and a
    // comment: its text is the lines joined by LF.
    let multi = "id: 41\r\nretry: 3000\r\n: keep-alive\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{\"content\":[]}}\r\n\r\n";
    let result_text = "{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{\"content\":[]}}";
    let events = format!("{}{multi}", sse(&progress));
    // Chunks that split events anywhere.
    let (a, b) = events.as_bytes().split_at(70);
    c2.respond(
        &mut s,
        &http_response("200 OK", &stream_head, &chunked(&[a, b]), false),
    );
    // A GET stream: the server asks the client, which answers by POST (202).
    let c3 = Conn::new(&mut s, CLIENT, SERVER, 41002);
    c3.request(
        &mut s,
        &http_request(
            "GET",
            "/mcp",
            &[("Accept", "text/event-stream"), (id.0, id.1.as_str())],
            b"",
        ),
    );
    let roots = request(0, "roots/list", "{}");
    let get_head = http_response("200 OK", &stream_head, b"", false);
    c3.respond(&mut s, &get_head);
    let roots_event = sse(&roots);
    c3.respond(
        &mut s,
        format!("{:x}\r\n{roots_event}\r\n", roots_event.len()).as_bytes(),
    );
    let c4 = Conn::new(&mut s, CLIENT, SERVER, 41003);
    let answer = response(0, r#"{"roots":[]}"#);
    c4.request(
        &mut s,
        &http_request("POST", "/mcp", &with_id, answer.as_bytes()),
    );
    c4.respond(&mut s, &http_response("202 Accepted", &[], b"", true));
    c4.request(
        &mut s,
        &http_request("DELETE", "/mcp", &[(id.0, id.1.as_str())], b""),
    );
    c4.respond(&mut s, &http_response("200 OK", &[], b"", true));
    let (items, sessions) = decode_file(&s.finish());
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            init.as_str(),
            init_result.as_str(),
            call.as_str(),
            progress.as_str(),
            result_text,
            roots.as_str(),
            answer.as_str()
        ],
        "{items:#?}"
    );
    assert!(items.iter().all(|i| i.session == Some(1)));
    assert_eq!(items[3].refers_to, Some(items[2].n));
    assert_eq!(items[4].answers, Some(items[2].n));
    assert_eq!(
        items[6].answers,
        Some(items[5].n),
        "the server's request, answered by POST"
    );
    assert_eq!(items[5].from, S);
    assert_eq!(items[5].direction.as_deref(), Some("ServerToClient"));
    let get = meta(&items[5]);
    assert_eq!(
        (get.method.as_deref(), get.status, get.sse),
        (Some("GET"), Some(200), true)
    );
    assert!(meta(&items[4]).sse);
    assert_eq!(
        items
            .iter()
            .map(|i| i.connection.unwrap())
            .collect::<Vec<_>>(),
        vec![1, 1, 2, 2, 2, 3, 4]
    );
    assert_eq!(sessions.len(), 1);
    let http = sessions[0].http.as_ref().unwrap();
    assert_eq!(http.session_id.as_deref(), Some("s-1"));
    assert_eq!(http.connections, 4);
    assert!(http.deleted, "DELETE ended it");
}

#[test]
fn legacy_sse_transport_endpoint_then_posts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("legacy.db"));
    let endpoint = "event: endpoint\r\ndata: /messages/?session_id=ab12\r\n\r\n";
    let stream = legacy_stream(&mut s, CLIENT, 42000, endpoint);
    let post = Conn::new(&mut s, CLIENT, SERVER, 42001);
    let mut sent = Vec::new();
    for (i, method) in ["initialize", "tools/list"].iter().enumerate() {
        let req = request(i as u64, method, "{}");
        post.post_at(&mut s, "/messages/?session_id=ab12", &req);
        post.respond(
            &mut s,
            &http_response("202 Accepted", &[], b"Accepted", true),
        );
        let resp = response(i as u64, r#"{"ok":true}"#);
        let ev = sse(&resp);
        stream.respond(&mut s, format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
        sent.push(req);
        sent.push(resp);
    }
    // Another client's legacy session on the same server stays apart.
    let other = Proc {
        pid: 1001,
        comm: "python3",
    };
    let ep2 = "event: endpoint\ndata: http://127.0.0.1:8000/messages/?session_id=cd34\n\n";
    legacy_stream(&mut s, other, 42002, ep2);
    let post2 = Conn::new(&mut s, other, SERVER, 42003);
    let req2 = request(0, "tools/list", "{}");
    post2.request(
        &mut s,
        &http_request(
            "POST",
            "/messages/?session_id=cd34",
            &[JSON],
            req2.as_bytes(),
        ),
    );
    let (items, sessions) = decode_file(&s.finish());
    assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let mut want: Vec<&str> = sent.iter().map(String::as_str).collect();
    want.push(&req2);
    assert_eq!(texts, want);
    let session_of: Vec<_> = items.iter().map(|i| i.session.unwrap()).collect();
    assert_eq!(session_of, vec![1, 1, 1, 1, 2]);
    assert_eq!(items[1].answers, Some(items[0].n));
    assert_eq!(items[3].answers, Some(items[2].n));
    assert_eq!(
        meta(&items[1]).endpoint.as_deref(),
        Some("/messages/?session_id=ab12")
    );
    assert_eq!(meta(&items[1]).method.as_deref(), Some("GET"));
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions[0].http.as_ref().unwrap().session_id.as_deref(),
        Some("/messages/?session_id=ab12")
    );
    assert_eq!(sessions[0].http.as_ref().unwrap().connections, 2);
}

/// MCP 2026-07-28 has no session id: connections between the same two
/// processes are one session, other client processes have their own.
#[test]
fn sessions_without_ids_join_by_connection_and_process_pair() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("modern.db"));
    let other = Proc {
        pid: 1001,
        comm: "node",
    };
    let ends = [
        (CLIENT, 43000),
        (CLIENT, 43001),
        (other, 43002),
        (CLIENT, 43003),
    ];
    for (n, (client, port)) in (0u64..).zip(ends) {
        let c = Conn::new(&mut s, client, SERVER, port);
        let method = if n == 0 {
            "server/discover"
        } else {
            "tools/list"
        };
        let req = request(n, method, "{}");
        c.post(&mut s, &req);
        let resp = response(n, "{}");
        c.ok(&mut s, &resp);
    }
    let (items, sessions) = decode_file(&s.finish());
    let session_of: Vec<_> = items.iter().map(|i| i.session.unwrap()).collect();
    assert_eq!(session_of, vec![1, 1, 1, 1, 2, 2, 1, 1]);
    assert!(items.chunks(2).all(|p| p[1].answers == Some(p[0].n)));
    assert_eq!(sessions[0].http.as_ref().unwrap().connections, 3);
    assert_eq!(sessions[1].client.map(|p| p.pid), Some(1001));
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_and_deflate_bodies_and_a_compressed_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("gzip.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 44000);
    let mut want = Vec::new();
    let big = response(1, &big_result());
    let zlib = |d: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let raw = |d: &[u8]| {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let bodies: [(&str, Vec<u8>); 3] = [
        ("gzip", gzip(big.as_bytes())),
        ("deflate", zlib(response(2, "{}").as_bytes())),
        ("deflate", raw(response(3, "{}").as_bytes())),
    ];
    for (i, (coding, body)) in bodies.iter().enumerate() {
        let req = request(i as u64 + 1, "tools/list", "{}");
        c.post(&mut s, &req);
        c.respond(
            &mut s,
            &http_response("200 OK", &[JSON, ("Content-Encoding", coding)], body, true),
        );
        want.push(req);
    }
    want.insert(1, big);
    want.insert(3, response(2, "{}"));
    want.insert(5, response(3, "{}"));
    // An event stream, gzip-compressed and flushed after every event, each
    // flush its own chunk.
    let req = request(4, "tools/call", r#"{"name":"slow"}"#);
    c.post(&mut s, &req);
    want.push(req);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for k in 1..=3 {
        let note = notification(
            "notifications/message",
            &format!(r#"{{"level":"info","data":"{k}"}}"#),
        );
        enc.write_all(sse(&note).as_bytes()).unwrap();
        enc.flush().unwrap();
        chunks.push(std::mem::take(enc.get_mut()));
        want.push(note);
    }
    let last = response(4, "{}");
    enc.write_all(sse(&last).as_bytes()).unwrap();
    chunks.push(enc.finish().unwrap());
    want.push(last);
    let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    c.respond(
        &mut s,
        &http_response(
            "200 OK",
            &[EVENT_STREAM, CHUNKED, ("Content-Encoding", "gzip")],
            &chunked(&refs),
            false,
        ),
    );
    // A gzip body that is not gzip: flagged, and the connection goes on.
    let req = request(5, "ping", "{}");
    c.post(&mut s, &req);
    want.push(req);
    c.respond(
        &mut s,
        &http_response(
            "200 OK",
            &[JSON, ("Content-Encoding", "gzip")],
            b"not gzip at all",
            true,
        ),
    );
    let req = request(6, "ping", "{}");
    c.post(&mut s, &req);
    want.push(req);
    let (items, _) = decode_file(&s.finish());
    let texts: Vec<&str> = messages(&items).iter().map(|i| i.text.as_str()).collect();
    assert_eq!(texts, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(messages(&items)
        .iter()
        .all(|i| !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty()));
    let flags: Vec<_> = items.iter().filter_map(|i| i.flag.clone()).collect();
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(flags[0].0, "bad_encoding");
    assert!(flags[0].1.contains("gzip"), "{}", flags[0].1);
}

#[test]
fn bodies_that_head_204_304_and_1xx_do_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("nobody.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 45000);
    // HEAD: the response names a length but has no body.
    c.request(&mut s, &http_request("HEAD", "/mcp", &[], b""));
    c.respond(
        &mut s,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n",
    );
    let one = request(1, "ping", "{}");
    c.request(
        &mut s,
        &http_request(
            "POST",
            "/mcp",
            &[JSON, ("Expect", "100-continue")],
            one.as_bytes(),
        ),
    );
    // An interim 100 Continue, then the final response.
    let mut resp = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    resp.extend(http_response(
        "200 OK",
        &[JSON],
        response(1, "{}").as_bytes(),
        true,
    ));
    c.respond(&mut s, &resp);
    for status in ["204 No Content", "304 Not Modified"] {
        c.request(&mut s, &http_request("GET", "/x", &[], b""));
        c.respond(
            &mut s,
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    let two = request(2, "ping", "{}");
    c.post(&mut s, &two);
    // An HTTP/1.0-style response: its body runs to the end of the stream.
    c.respond(
        &mut s,
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
            response(2, "{}")
        )
        .as_bytes(),
    );
    let (items, _) = decode_file(&s.finish());
    assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let want = [one, response(1, "{}"), two, response(2, "{}")];
    assert_eq!(texts, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(items[3].answers, Some(items[2].n));
}

#[test]
fn a_batch_is_one_item_per_element() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("batch.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 46000);
    let a = request(1, "tools/list", "{}");
    let b = notification("notifications/initialized", "{}");
    let batch = format!("[{a}, {b}]");
    c.post(&mut s, &batch);
    let answer = format!("[{}]", response(1, "{}"));
    c.ok(&mut s, &answer);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0].text.as_str(), items[0].batch),
        (a.as_str(), Some((0, 2)))
    );
    assert_eq!(
        (items[1].text.as_str(), items[1].batch),
        (b.as_str(), Some((1, 2)))
    );
    assert_eq!(items[2].answers, Some(items[0].n));
    assert!(items.iter().all(|i| i.http.is_some()));
}

/// Only one end of each connection recorded (the other process not
/// selected): every message still shows once.
#[test]
fn one_end_seen_shows_every_message_once() {
    for client_side in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Synth::new(&dir.path().join("one.db"));
        let c = Conn::new(&mut s, CLIENT, SERVER, 47000);
        let mut sent = Vec::new();
        for n in 0..3u64 {
            let req = request(n, "tools/list", "{}");
            let bytes = http_request(
                "POST",
                "/mcp",
                &[JSON, ("mcp-session-id", "x")],
                req.as_bytes(),
            );
            let resp = response(n, "{}");
            let rbytes = http_response("200 OK", &[JSON], resp.as_bytes(), true);
            if client_side {
                s.write(CLIENT, c.c2s, &bytes);
                s.read_lost(SERVER, c.c2s, 4096);
                s.write_lost(SERVER, c.s2c, &rbytes);
                s.drain(CLIENT, c.s2c, 7);
            } else {
                s.write_lost(CLIENT, c.c2s, &bytes);
                s.drain(SERVER, c.c2s, 7);
                s.write(SERVER, c.s2c, &rbytes);
                s.read_lost(CLIENT, c.s2c, 4096);
            }
            sent.push(req);
            sent.push(resp);
        }
        let (items, sessions) = decode_file(&s.finish());
        assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts, sent.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(sessions.len(), 1);
        assert!(items.chunks(2).all(|p| p[1].answers == Some(p[0].n)));
        let dir_ok = items.iter().enumerate().all(|(k, i)| {
            i.direction.as_deref()
                == Some(if k % 2 == 0 {
                    "ClientToServer"
                } else {
                    "ServerToClient"
                })
        });
        assert!(dir_ok, "{items:#?}");
    }
}

/// A copy one end lost is shown from the other end, whole, without a flag;
/// a loss both ends had is flagged where it happened and decoding goes on.
#[test]
fn gaps_are_filled_from_the_other_end_and_shared_ones_stay_local() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("gaps.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 48000);
    let r0 = request(0, "tools/list", "{}");
    c.post(&mut s, &r0);
    // The client's read of the response is lost: shown from the server's write.
    let a0 = response(0, r#"{"tools":[]}"#);
    s.write(
        SERVER,
        c.s2c,
        &http_response("200 OK", &[JSON], a0.as_bytes(), true),
    );
    s.read_lost(CLIENT, c.s2c, 4096);
    // Lost at both ends, inside a body of known length: that message is
    // cut, the connection decodes on.
    let r1 = request(1, "tools/call", r#"{"name":"a"}"#);
    let bytes = http_request("POST", "/mcp", &[JSON], r1.as_bytes());
    let head_len = bytes.len() - r1.len();
    s.write(CLIENT, c.c2s, &bytes[..head_len + 10]);
    s.write_lost(CLIENT, c.c2s, &bytes[head_len + 10..head_len + 20]);
    s.write(CLIENT, c.c2s, &bytes[head_len + 20..]);
    s.read(SERVER, c.c2s, head_len + 10);
    s.read_lost(SERVER, c.c2s, 10);
    s.drain(SERVER, c.c2s, 4096);
    let r2 = request(2, "ping", "{}");
    c.post(&mut s, &r2);
    // An event stream whose loss, at both ends, crosses chunk boundaries:
    // the events after it are decoded again.
    let e: Vec<String> = (0..6)
        .map(|k| {
            sse(&notification(
                "notifications/message",
                &format!(r#"{{"k":{k}}}"#),
            ))
        })
        .collect();
    let refs: Vec<&[u8]> = e.iter().map(|x| x.as_bytes()).collect();
    let stream = http_response("200 OK", &[EVENT_STREAM, CHUNKED], &chunked(&refs), false);
    let cut = stream.len() - chunked(&refs[2..]).len() - 20;
    let rejoin = stream.len() - chunked(&refs[4..]).len() - 3;
    s.write(SERVER, c.s2c, &stream[..cut]);
    s.write_lost(SERVER, c.s2c, &stream[cut..rejoin]);
    s.write(SERVER, c.s2c, &stream[rejoin..]);
    s.read(CLIENT, c.s2c, cut);
    s.read_lost(CLIENT, c.s2c, rejoin - cut);
    s.drain(CLIENT, c.s2c, 4096);
    let r3 = request(3, "ping", "{}");
    c.post(&mut s, &r3);
    let (items, _) = decode_file(&s.finish());
    let msgs: Vec<&str> = messages(&items).iter().map(|i| i.text.as_str()).collect();
    let note = |k: u64| notification("notifications/message", &format!(r#"{{"k":{k}}}"#));
    // The event the loss cut into (1) is flagged; those it swallowed (2, 3)
    // are in the loss.
    let want = [
        r0.clone(),
        a0.clone(),
        r2.clone(),
        note(0),
        note(4),
        note(5),
        r3.clone(),
    ];
    assert_eq!(
        msgs,
        want.iter().map(String::as_str).collect::<Vec<_>>(),
        "{items:#?}"
    );
    // The filled one: the writer's copy only, no flag.
    let filled = items.iter().find(|i| i.text == a0).unwrap();
    assert!(!filled.writer_seqs.is_empty() && filled.reader_seqs.is_empty());
    let flags: Vec<(&str, bool)> = items
        .iter()
        .filter_map(|i| {
            let both = i.writer_off.is_some() && i.reader_off.is_some();
            i.flag.as_ref().map(|f| (f.0.as_str(), both))
        })
        .collect();
    // Each loss shows once, with both ends' copies, where it happened:
    // the cut request (its head, the loss, its tail), and the loss in the
    // stream after the event it cut into.
    assert!(flags.iter().all(|(_, both)| *both), "{items:#?}");
    assert_eq!(
        flags.iter().filter(|f| f.0 == "lost").count(),
        2,
        "{flags:?}"
    );
    assert!(
        flags.iter().all(|f| f.0 == "lost" || f.0 == "truncated"),
        "{flags:?}"
    );
}

fn mcpspy(args: &[&str]) -> String {
    let out = mcpspy_command().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stdio and HTTP in one capture: `query --transport` tells them apart,
/// the console and JSONL say how each message travelled, and `info`
/// counts the streams that are not decoded.
#[test]
fn transports_in_the_command_line_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("mixed.db"));
    let pipe = s.pipe();
    s.send(CLIENT, SERVER, pipe, &request(7, "ping", "{}"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 40100);
    json_session(&mut s, &c);
    let (h2c, h2s) = s.tcp(ipv4([127, 0, 0, 1], 40200), ipv4([127, 0, 0, 1], 8080));
    s.write(CLIENT, h2c, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    s.drain(SERVER, h2c, 4096);
    s.write(SERVER, h2s, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    s.drain(CLIENT, h2s, 4096);
    let cap = s.finish();
    let cap = cap.to_str().unwrap();
    let lines = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["query", cap];
        all.extend_from_slice(args);
        mcpspy(&all).lines().map(str::to_string).collect()
    };
    let http = lines(&["--transport", "http"]);
    assert_eq!(http.len(), 5, "{http:#?}");
    assert!(http[0]
        .contains("python3[1000] → mcp-server[2000] http 127.0.0.1:8000 POST /mcp REQ initialize"));
    assert!(http[1]
        .contains("mcp-server[2000] → python3[1000] http 127.0.0.1:8000 200 RESP OK initialize"));
    let stdio = lines(&["--transport", "stdio"]);
    assert_eq!(stdio.len(), 1);
    assert!(!stdio[0].contains("http"));
    let export = mcpspy(&["export", cap, "--transport", "http"]);
    let first: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["transport_type"], "http");
    assert!(first["stdio_transport"].is_null());
    let h = &first["http_transport"];
    assert_eq!(h["pid"], 1000);
    assert_eq!(h["peer_comm"], "mcp-server");
    assert_eq!(h["method"], "POST");
    assert_eq!(h["path"], "/mcp");
    assert_eq!(h["is_request"], true);
    assert_eq!(h["connection"], 1);
    assert_eq!(h["client"], "127.0.0.1:40100");
    assert_eq!(h["server"], "127.0.0.1:8000");
    assert_eq!(first["tcp_transport"]["from"], "127.0.0.1:40100");
    assert_eq!(
        first["size_bytes"].as_u64().unwrap() as usize,
        request(0, "initialize", INIT_PARAMS).len()
    );
    let second: serde_json::Value = serde_json::from_str(export.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["http_transport"]["status"], 200);
    assert_eq!(second["http_transport"]["session_id"], "abc");
    assert_eq!(second["tcp_transport"]["to"], "127.0.0.1:40100");
    let summary = mcpspy(&["query", cap, "--summary"]);
    assert!(summary.contains("http 127.0.0.1:8000"), "{summary}");
    assert!(summary.contains("session abc"), "{summary}");
    let info = mcpspy(&["info", cap]);
    // The HTTP/2 connection (a preface and SETTINGS, no stream) is decoded.
    assert!(
        !info.contains("HTTP/2") && !info.contains("not decoded"),
        "{info}"
    );
}

/// MCP 2026-07-28: Mcp-Method and Mcp-Name mirror the body; a request whose
/// headers say otherwise is flagged right after it, with both values; the
/// new error codes are named.
#[test]
fn mcp_headers_that_differ_from_the_body_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("headers.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 40300);
    let call = request(1, "tools/call", r#"{"name":"delete_all","arguments":{}}"#);
    let honest = request(2, "tools/call", r#"{"name":"echo","arguments":{}}"#);
    let headers = [JSON, ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")];
    c.request(
        &mut s,
        &http_request("POST", "/mcp", &headers, call.as_bytes()),
    );
    let err = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Header mismatch"}}"#;
    c.respond(
        &mut s,
        &http_response("400 Bad Request", &[JSON], err.as_bytes(), true),
    );
    c.request(
        &mut s,
        &http_request("POST", "/mcp", &headers, honest.as_bytes()),
    );
    let cap = s.finish();
    let (items, _) = decode_file(&cap);
    let flags: Vec<_> = items.iter().filter_map(|i| i.flag.as_ref()).collect();
    assert_eq!(flags.len(), 1, "{items:#?}");
    assert_eq!(flags[0].0, "header_mismatch");
    assert!(flags[0]
        .1
        .contains("Mcp-Name `echo` but the body names `delete_all`"));
    assert_eq!(
        items[1].flag.as_ref(),
        Some(flags[0]),
        "right after the request"
    );
    let replay = mcpspy(&["replay", cap.to_str().unwrap()]);
    assert!(replay.contains("(code -32020 HEADER_MISMATCH"), "{replay}");
}
