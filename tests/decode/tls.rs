//! TLS plaintext through the decoder: the copies of an SSL* join the
//! connection of their socket once it is known, follow a reused SSL* or a
//! descriptor named stale, and are never held forever.

use super::support::*;
use mcpspy::decode::SessionSummary;
/// TLS plaintext: the client's first write does not name its socket; its
/// later reads do. Its copies still pair with the server's, and an SSL*
/// that moves to a new connection moves with it.
/// Every item is a whole message shown once, from both copies, on the
/// HTTP connection numbered in `connections`; one session holds them all.
fn shown_once_from_both_copies(items: &[Seen], sessions: &[SessionSummary], connections: &[u64]) {
    assert!(items.iter().all(|i| i.flag.is_none()), "{items:#?}");
    for i in items {
        assert!(
            !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty(),
            "both copies, shown once: {i:#?}"
        );
    }
    let got: Vec<u64> = items.iter().map(|i| i.connection.unwrap()).collect();
    assert_eq!(got, connections);
    assert_eq!(sessions.len(), 1);
}

#[test]
fn tls_streams_join_their_connection_when_the_socket_is_learned() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("tls.db"));
    let (client_ssl, server_ssl) = (0x5555_0001, 0x7777_0001);
    let (c2s, s2c) = s.tls(
        ipv4([127, 0, 0, 1], 50000),
        ipv4([127, 0, 0, 1], 8443),
        client_ssl,
        server_ssl,
    );
    let c = Conn::of((c2s, s2c));
    s.know_socket(server_ssl);
    let r0 = request(0, "initialize", INIT_PARAMS);
    c.post(&mut s, &r0);
    // The client learns its socket only with its first read.
    s.know_socket(client_ssl);
    let a0 = response(0, INIT_RESULT);
    c.ok(&mut s, &a0);
    let r1 = request(1, "tools/list", "{}");
    c.post(&mut s, &r1);
    c.ok(&mut s, &response(1, "{}"));
    // The same SSL* address serves a new connection (freed and reused): its
    // offsets go on, its socket changes.
    let (c2s, s2c) = s.tls(
        ipv4([127, 0, 0, 1], 50001),
        ipv4([127, 0, 0, 1], 8443),
        client_ssl,
        0x7777_0002,
    );
    s.know_socket(0x7777_0002);
    let c2 = Conn { c2s, s2c, ..c };
    let r2 = request(2, "ping", "{}");
    c2.post(&mut s, &r2);
    c2.ok(&mut s, &response(2, "{}"));
    let (items, sessions) = decode_file(&s.finish());
    shown_once_from_both_copies(&items, &sessions, &[1, 1, 1, 1, 2, 2]);
    assert!(items.chunks(2).all(|p| p[1].answers == Some(p[0].n)));
    assert!(matches!(
        sessions[0].transport,
        Some(mcpspy::decode::Transport::Http { tls: true, .. })
    ));
}

/// An asyncio (memory BIO) TLS server reuses an SSL* and its descriptor
/// for a new connection, and the recorder goes on naming the old socket:
/// the server's copies are recognised by their content in the connection
/// that waits for them, and each message still shows once.
#[test]
fn a_tls_stream_whose_socket_is_named_stale_moves_to_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("stale.db"));
    let server_end = ipv4([127, 0, 0, 1], 8443);
    let (first, second) = (ipv4([127, 0, 0, 1], 50000), ipv4([127, 0, 0, 1], 50001));
    let server_ssl = 0x7777;
    let exchange = |s: &mut Synth, client_end, client_ssl, n: u64| {
        let (c2s, s2c) = s.tls(client_end, server_end, client_ssl, server_ssl);
        s.know_socket(client_ssl);
        let c = Conn::of((c2s, s2c));
        let req = request(n, "tools/call", &format!(r#"{{"name":"t{n}"}}"#));
        c.post(s, &req);
        let resp = response(n, "{}");
        c.ok(s, &resp);
        [req, resp]
    };
    s.know_socket(server_ssl);
    let mut sent = exchange(&mut s, first, 1, 0).to_vec();
    // The server's SSL* serves the second connection; its records still
    // name the first.
    s.name_socket(server_ssl, server_end, first);
    sent.extend(exchange(&mut s, second, 2, 1));
    sent.extend(exchange(&mut s, second, 2, 2));
    let (items, sessions) = decode_file(&s.finish());
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(texts, sent.iter().map(String::as_str).collect::<Vec<_>>());
    shown_once_from_both_copies(&items, &sessions, &[1, 1, 2, 2, 2, 2]);
}

/// A freed SSL* serving a new connection, as the recorder reports it: its
/// streams start over, without a socket until the new one is learned (and
/// with STREAM_START on one direction only, as it happens).
#[test]
fn a_reused_ssl_starts_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("reuse.db"));
    let server_end = ipv4([127, 0, 0, 1], 8443);
    let mut sent = Vec::new();
    for (n, port) in [(0u64, 50000u16), (1, 50001), (2, 50002)] {
        if n > 0 {
            s.reuse_ssl(CLIENT.pid, 1, [true, true]);
            s.reuse_ssl(SERVER.pid, 9, [true, n == 1]);
        }
        let (c2s, s2c) = s.tls(ipv4([127, 0, 0, 1], port), server_end, 1, 9);
        let c = Conn::of((c2s, s2c));
        // The server learns its socket at once, the client with its reply.
        s.know_socket(9);
        let req = request(n, "ping", "{}");
        c.post(&mut s, &req);
        s.know_socket(1);
        let resp = response(n, "{}");
        c.ok(&mut s, &resp);
        sent.extend([req, resp]);
    }
    let (items, sessions) = decode_file(&s.finish());
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(texts, sent.iter().map(String::as_str).collect::<Vec<_>>());
    shown_once_from_both_copies(&items, &sessions, &[1, 1, 2, 2, 3, 3]);
    assert!(items.chunks(2).all(|p| p[1].answers == Some(p[0].n)));
}

/// A TLS stream whose socket never becomes known is shown alone after a
/// while, once, and never held forever.
#[test]
fn a_tls_stream_that_never_learns_its_socket_is_shown_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("nosock.db"));
    let (c2s, s2c) = s.tls(
        ipv4([127, 0, 0, 1], 50000),
        ipv4([127, 0, 0, 1], 8443),
        1,
        2,
    );
    let c = Conn::of((c2s, s2c));
    let r0 = request(0, "tools/list", "{}");
    c.post(&mut s, &r0);
    s.advance(10_000_000_000);
    s.tick();
    let r1 = request(1, "ping", "{}");
    c.post(&mut s, &r1);
    let (items, _) = decode_file(&s.finish());
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    // Each end's copy alone: nothing pairs them, nothing is lost.
    assert_eq!(
        texts,
        vec![r0.as_str(), r0.as_str(), r1.as_str(), r1.as_str()]
    );
    assert!(items[0].ts_ns < items[2].ts_ns);
}

/// A recorded session (fixtures/deno_h2_keylog.db): Deno's fetch (rustls,
/// HTTP/2) and the Go MCP server over HTTPS, both ends recorded, Deno's
/// side only as ciphertext and its key log, the server's through its
/// crypto/tls probes (and its first connection's ciphertext too, which the
/// key log also opens). Every message is shown once, from both copies, in
/// one session between the two processes; the golden files hold the rest.
#[test]
fn ciphertext_opened_with_the_key_log_pairs_with_the_servers_plaintext() {
    let cap = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/deno_h2_keylog.db");
    let (items, sessions) = decode_file(&cap);
    assert_eq!(items.len(), 10);
    shown_once_from_both_copies(&items, &sessions, &[1; 10]);
    let methods: Vec<_> = items.iter().filter_map(|i| i.method.as_deref()).collect();
    for m in ["initialize", "tools/list", "tools/call"] {
        assert!(methods.contains(&m), "{methods:?}");
    }
    let show = mcpspy_command()
        .arg("show")
        .arg(&cap)
        .arg("1")
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("POST /mcp HTTP/2.0") && show.contains("user-agent: Deno/"),
        "{show}"
    );
}
