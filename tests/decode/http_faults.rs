//! HTTP that goes wrong, through the decoder: bad requests and error
//! statuses, a capture that ends inside a body, reads of any size, long
//! streams under a memory limit, and random damage.

use super::http::{gzip, json_session, meta};
use super::support::*;
use mcpspy::decode::DecodeOptions;
#[test]
fn bad_http_and_http_errors_are_flagged_and_decoding_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("bad.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 49000);
    let r0 = request(0, "ping", "{}");
    c.post(&mut s, &r0);
    // A response whose Content-Length is not a number, then a good one.
    c.respond(
        &mut s,
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n{\"jsonrpc\":\"2.0\"}\r\n",
    );
    let r1 = request(1, "ping", "{}");
    c.post(&mut s, &r1);
    let a1 = response(1, "{}");
    c.ok(&mut s, &a1);
    // An error status with a page, not a message.
    c.request(
        &mut s,
        &http_request("GET", "/mcp", &[("Mcp-Session-Id", "gone")], b""),
    );
    c.respond(
        &mut s,
        &http_response(
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"Session not found",
            true,
        ),
    );
    let r2 = request(2, "ping", "{}");
    c.post(&mut s, &r2);
    let (items, _) = decode_file(&s.finish());
    let summary: Vec<(String, String)> = items
        .iter()
        .map(|i| match &i.flag {
            Some((reason, _)) => (reason.clone(), i.text.clone()),
            None => ("message".into(), i.text.clone()),
        })
        .collect();
    let m = |t: &str| ("message".to_string(), t.to_string());
    assert_eq!(
        summary,
        vec![
            m(&r0),
            ("bad_http".into(), "HTTP/1.1 200 OK".into()),
            ("truncated".into(), "{\"jsonrpc\":\"2.0\"}\r\n".into()),
            m(&r1),
            m(&a1),
            ("http_error".into(), "Session not found".into()),
            m(&r2),
        ],
        "{items:#?}"
    );
    let err = items
        .iter()
        .find(|i| i.text == "Session not found")
        .unwrap();
    let detail = &err.flag.as_ref().unwrap().1;
    assert!(
        detail.contains("404 Not Found") && detail.contains("GET /mcp"),
        "{detail}"
    );
    assert_eq!(meta(err).status, Some(404));
    assert!(
        !err.writer_seqs.is_empty() && !err.reader_seqs.is_empty(),
        "shown once"
    );
}

#[test]
fn a_capture_that_ends_inside_a_body_is_truncated_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("end.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 49500);
    let r0 = request(0, "ping", "{}");
    c.post(&mut s, &r0);
    let full = http_response("200 OK", &[JSON], response(0, "{}").as_bytes(), true);
    c.respond(&mut s, &full[..full.len() - 5]);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(items.len(), 2, "{items:#?}");
    assert_eq!(items[1].flag.as_ref().unwrap().0, "truncated");
    assert!(items[1].truncated);
}

/// The items depend on the bytes, not on how reads split them, and the
/// same records always decode the same.
#[test]
fn reads_of_any_size_give_the_same_items() {
    let build = |read: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Synth::new(&dir.path().join("split.db"));
        let mut c = Conn::new(&mut s, CLIENT, SERVER, 40000);
        c.read = read;
        json_session(&mut s, &c);
        let ev: String = (0..4)
            .map(|k| {
                sse(&notification(
                    "notifications/message",
                    &format!(r#"{{"k":{k}}}"#),
                ))
            })
            .collect();
        let req = request(9, "tools/call", "{}");
        c.post(&mut s, &req);
        let stream = chunked(&[ev.as_bytes(), sse(&response(9, "{}")).as_bytes()]);
        c.respond(
            &mut s,
            &http_response(
                "200 OK",
                &[EVENT_STREAM, CHUNKED, ("Content-Encoding", "identity")],
                &stream,
                false,
            ),
        );
        let path = s.finish();
        let (a, _) = decode_file(&path);
        let (b, _) = decode_file(&path);
        assert_eq!(a, b, "deterministic");
        let _keep = dir;
        a.into_iter()
            .map(|i| {
                (
                    i.kind,
                    i.text,
                    i.from,
                    i.to,
                    i.session,
                    i.http,
                    i.answers,
                    i.writer_off,
                    i.reader_off,
                )
            })
            .collect::<Vec<_>>()
    };
    let whole = build(1 << 20);
    assert_eq!(whole.len(), 11);
    assert!(whole.iter().all(|i| i.0 != "flagged"));
    for read in [1, 2, 3, 7, 64] {
        assert_eq!(build(read), whole, "reads of {read} bytes");
    }
}

/// Long event streams and big bodies: held memory stays with the data
/// held, however the stream is read.
#[test]
fn long_streams_and_big_bodies_decode_under_a_small_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("long.db"));
    let c = Conn::new(&mut s, CLIENT, SERVER, 40000);
    let req = request(1, "tools/call", "{}");
    c.post(&mut s, &req);
    s.write(
        SERVER,
        c.s2c,
        &http_response("200 OK", &[EVENT_STREAM, CHUNKED], b"", false),
    );
    let n = 20_000;
    for k in 0..n {
        let ev = sse(&notification(
            "notifications/progress",
            &format!(r#"{{"progressToken":1,"progress":{k}}}"#),
        ));
        s.write(
            SERVER,
            c.s2c,
            format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes(),
        );
        if k % 100 == 0 {
            s.drain(CLIENT, c.s2c, 65536);
            s.tick();
        }
    }
    let big = response(
        1,
        &format!(
            r#"{{"content":[{{"type":"text","text":"{}"}}]}}"#,
            "y".repeat(3 << 20)
        ),
    );
    let ev = sse(&big);
    s.write(
        SERVER,
        c.s2c,
        format!("{:x}\r\n{ev}\r\n0\r\n\r\n", ev.len()).as_bytes(),
    );
    s.drain(CLIENT, c.s2c, 65536);
    let opts = DecodeOptions {
        max_held: 1 << 20,
        ..DecodeOptions::default()
    };
    let (items, _) = decode_file_with(&s.finish(), opts);
    assert_eq!(items.len(), n + 2);
    assert!(items.iter().all(|i| i.flag.is_none()));
    assert_eq!(items.last().unwrap().text.len(), big.len());
    assert_eq!(items.last().unwrap().answers, Some(items[0].n));
}

/// Real-looking HTTP traffic, damaged at random (bytes changed, records of
/// either end lost, reads of any size): the decoder never panics and the
/// same records always decode the same.
#[test]
fn randomly_damaged_http_never_panics_and_decodes_the_same_twice() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let gz = gzip(sse(&response(3, "{}")).as_bytes());
    let bodies: Vec<Vec<u8>> = vec![
        http_request("POST", "/mcp", &[JSON], request(1, "tools/list", "{}").as_bytes()),
        http_response("200 OK", &[JSON, ("mcp-session-id", "z")], response(1, "{}").as_bytes(), true),
        http_response(
            "200 OK",
            &[EVENT_STREAM, CHUNKED],
            &chunked(&[sse(&notification("n", "{}")).as_bytes(), b"data: {}\r\n\r\n"]),
            false,
        ),
        http_response("200 OK", &[EVENT_STREAM, ("Content-Encoding", "gzip")], &gz, true),
        http_request("GET", "/sse", &[], b""),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: endpoint\r\ndata: /m?s=1\r\n\r\n".to_vec(),
        http_response("404 Not Found", &[], b"gone", true),
    ];
    for seed in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Synth::new(&dir.path().join("fuzz.db"));
        let mut c = Conn::new(&mut s, CLIENT, SERVER, 40000 + seed as u16);
        for _ in 0..12 {
            let mut bytes = bodies[next(bodies.len() as u64) as usize].clone();
            for _ in 0..next(3) {
                let at = next(bytes.len() as u64) as usize;
                bytes[at] = next(256) as u8;
            }
            let (chan, from, to) = if next(2) == 0 {
                (c.c2s, CLIENT, SERVER)
            } else {
                (c.s2c, SERVER, CLIENT)
            };
            c.read = 1 + next(300) as usize;
            match next(6) {
                0 => s.write_lost(from, chan, &bytes),
                _ => s.write(from, chan, &bytes),
            }
            while s.read(to, chan, 0) == 0 && next(5) == 0 {
                s.read_lost(to, chan, c.read);
            }
            s.drain(to, chan, c.read);
            s.advance(next(2_000_000_000));
            if next(4) == 0 {
                s.tick();
            }
        }
        let path = s.finish();
        let (a, _) = decode_file(&path);
        let (b, _) = decode_file(&path);
        assert_eq!(a, b, "seed {seed}");
        assert!(a.iter().enumerate().all(|(i, x)| x.n == i as u64 + 1));
    }
}

/// Captures for measuring the decoder on HTTP (not run by default):
/// `MCPSPY_SYNTH_OUT=/tmp/http.db MCPSPY_SYNTH_MESSAGES=200000 cargo test
/// --release --test decode_http -- --ignored write_http_capture`, then
/// `/usr/bin/time -v mcpspy export /tmp/http.db -o /dev/null --force`.
/// Requests of 1 KiB POSTed on one keep-alive connection, their results
/// (1 KiB) as SSE events of one long chunked event stream, both ends
/// recorded, read 4 KiB at a time.
#[test]
#[ignore]
fn write_http_capture() {
    let Some(out) = std::env::var_os("MCPSPY_SYNTH_OUT") else {
        return;
    };
    let n: u64 = std::env::var("MCPSPY_SYNTH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let _ = std::fs::remove_file(&out);
    let mut s = Synth::new(std::path::Path::new(&out));
    let posts = Conn::new(&mut s, CLIENT, SERVER, 40000);
    let stream = Conn::new(&mut s, CLIENT, SERVER, 40001);
    stream.request(&mut s, &http_request("GET", "/mcp", &[], b""));
    stream.respond(
        &mut s,
        &http_response("200 OK", &[EVENT_STREAM, CHUNKED], b"", false),
    );
    let pad = "x".repeat(940);
    for i in 0..n / 2 {
        let req = request(
            i,
            "tools/call",
            &format!(r#"{{"name":"echo","arguments":{{"t":"{pad}"}}}}"#),
        );
        posts.post(&mut s, &req);
        posts.respond(&mut s, &http_response("202 Accepted", &[], b"", true));
        let ev = sse(&response(
            i,
            &format!(r#"{{"content":[{{"type":"text","text":"{pad}"}}]}}"#),
        ));
        stream.respond(&mut s, format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
        if i % 1000 == 0 {
            s.tick();
        }
    }
    s.finish();
}
