//! A TLS 1.3 connection made here (hellos, sealed handshake and content
//! records), cut into pieces at odd places and opened by the framer: the
//! content comes out whole, and nothing comes out without the right keys.
//! That the key schedule matches real TLS stacks is shown by the record
//! tests and the fixture recorded from Deno (rustls) and Go.

use super::protect::{Protection, Suite};
use super::*;
use crate::decode::framer::{Framer, SocketState};

const RANDOM: [u8; 32] = [0x5a; 32];
const JSON_REQUEST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const REQUEST: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 46\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";

fn secret(label: Label) -> Vec<u8> {
    vec![label as u8 + 1; 32]
}

fn line(name: &str, label: Label) -> String {
    format!(
        "{name} {} {}",
        hex::encode(RANDOM),
        hex::encode(secret(label))
    )
}

fn keys(labels: &[(&str, Label)]) -> KeyLog {
    let mut k = KeyLog::new(true);
    for (name, label) in labels {
        k.add(line(name, *label).as_bytes());
    }
    k
}

const ALL: [(&str, Label); 4] = [
    ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", Label::ClientHandshake),
    ("SERVER_HANDSHAKE_TRAFFIC_SECRET", Label::ServerHandshake),
    ("CLIENT_TRAFFIC_SECRET_0", Label::ClientTraffic),
    ("SERVER_TRAFFIC_SECRET_0", Label::ServerTraffic),
];

fn clear_record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![kind, 0, 0, body.len() as u8];
    msg.extend_from_slice(body);
    let mut r = vec![22, 3, 1, 0, msg.len() as u8];
    r.extend_from_slice(&msg);
    r
}

fn client_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&RANDOM);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    clear_record(hello::CLIENT_HELLO, &body)
}

const SERVER_RANDOM: [u8; 32] = [0x77; 32];

fn server_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&SERVER_RANDOM);
    body.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2]);
    body.extend_from_slice(&version);
    clear_record(hello::SERVER_HELLO, &body)
}

/// A TLS 1.2 ServerHello (no supported_versions) choosing `suite`.
fn server_hello12(suite: u16) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&SERVER_RANDOM);
    body.push(0);
    body.extend_from_slice(&suite.to_be_bytes());
    body.push(0);
    clear_record(hello::SERVER_HELLO, &body)
}

fn prot(label: Label) -> Protection {
    Protection::new(Suite::Aes128Gcm, &secret(label)).unwrap()
}

/// The client's side: hello, its Finished (handshake key), then `content`
/// in records of at most 40 bytes; a KeyUpdate after the first with `update`.
fn client_stream(content: &[u8], update: bool) -> Vec<u8> {
    let mut s = client_hello();
    s.extend_from_slice(&[20, 3, 3, 0, 1, 1]); // change_cipher_spec
    s.extend(prot(Label::ClientHandshake).seal(0, 22, &[20, 0, 0, 32]));
    let mut app = prot(Label::ClientTraffic);
    let mut seq = 0;
    for (i, chunk) in content.chunks(40).enumerate() {
        s.extend(app.seal(seq, 23, chunk));
        seq += 1;
        if update && i == 0 {
            // A ticket and the KeyUpdate, cut across two records.
            s.extend(app.seal(seq, 22, &[4, 0, 0, 2, 0]));
            s.extend(app.seal(seq + 1, 22, &[0, 24, 0, 0, 1, 0]));
            app.update().unwrap();
            seq = 0;
        }
    }
    s
}

fn server_stream(content: &[u8], version: [u8; 2]) -> Vec<u8> {
    let mut s = server_hello(version);
    let hs = prot(Label::ServerHandshake);
    s.extend(hs.seal(0, 22, &[8, 0, 0, 2, 0, 0])); // EncryptedExtensions
    s.extend(hs.seal(1, 22, &[20, 0, 0, 32])); // Finished
    let app = prot(Label::ServerTraffic);
    s.extend(app.seal(0, 22, &[4, 0, 0, 1, 0])); // NewSessionTicket
    s.extend(app.seal(1, 23, content));
    s
}

/// Feeds `bytes` in pieces of `step` bytes; returns the frames.
fn run(
    framer: &mut Framer,
    sock: &mut SocketState,
    keys: &KeyLog,
    bytes: &[u8],
    step: usize,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, piece) in bytes.chunks(step).enumerate() {
        let p = Piece::Data {
            off: (i * step) as u64,
            bytes: piece,
            ts: i as u64,
            seq: i as u64,
        };
        framer.feed(p, sock, keys, &mut |f| frames.push(f));
    }
    framer.finish(sock, keys, &mut |f| frames.push(f));
    frames
}

fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            FrameBody::Text { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
            _ => None,
        })
        .collect()
}

fn not_decrypted(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            FrameBody::Notice {
                reason: FlagReason::NotDecrypted,
                detail,
                ..
            } => Some(detail.as_str()),
            _ => None,
        })
        .collect()
}

/// Both directions of one connection, the client's fed first.
fn connection(keys: &KeyLog, step: usize, update: bool) -> (Vec<Frame>, Vec<Frame>) {
    let mut sock = SocketState::default();
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
    let mut client = Framer::sniffing(1 << 20);
    let mut server = Framer::sniffing(1 << 20);
    // The hellos first, as on the wire: the server's ServerHello names the suite.
    let c = client_stream(REQUEST, update);
    let s = server_stream(response, [3, 4]);
    let hello_len = client_hello().len();
    let mut frames_c = Vec::new();
    client.feed(
        Piece::Data {
            off: 0,
            bytes: &c[..hello_len],
            ts: 0,
            seq: 0,
        },
        &mut sock,
        keys,
        &mut |f| frames_c.push(f),
    );
    let frames_s = run(&mut server, &mut sock, keys, &s, step);
    for (i, piece) in c[hello_len..].chunks(step).enumerate() {
        let p = Piece::Data {
            off: (hello_len + i * step) as u64,
            bytes: piece,
            ts: 1 + i as u64,
            seq: 1 + i as u64,
        };
        client.feed(p, &mut sock, keys, &mut |f| frames_c.push(f));
    }
    client.finish(&mut sock, keys, &mut |f| frames_c.push(f));
    (frames_c, frames_s)
}

#[test]
fn records_cut_anywhere_open_into_the_messages() {
    let k = keys(&ALL);
    for step in [1, 7, 64, 10_000] {
        let (c, s) = connection(&k, step, false);
        assert_eq!(
            texts(&c),
            vec![r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#],
            "step {step}: {c:?}"
        );
        assert_eq!(
            texts(&s),
            vec![r#"{"jsonrpc":"2.0","id":1,"result":{}}"#],
            "step {step}"
        );
        assert!(not_decrypted(&c).is_empty() && not_decrypted(&s).is_empty());
    }
}

#[test]
fn a_key_update_and_missing_handshake_secrets_are_followed() {
    let (c, _) = connection(&keys(&ALL), 13, true);
    assert_eq!(texts(&c), vec![JSON_REQUEST], "{c:?}");
    assert!(not_decrypted(&c).is_empty(), "{c:?}");
    // Without the handshake secrets, the handshake records are passed over.
    let (c, s) = connection(&keys(&ALL[2..]), 13, false);
    assert_eq!(texts(&c), vec![JSON_REQUEST], "{c:?}");
    assert_eq!(
        texts(&s),
        vec![r#"{"jsonrpc":"2.0","id":1,"result":{}}"#],
        "{s:?}"
    );
}

#[test]
fn without_the_right_keys_nothing_is_shown_but_why() {
    // No lines for this connection.
    let (c, s) = connection(&KeyLog::new(true), 9, false);
    assert!(texts(&c).is_empty() && texts(&s).is_empty());
    assert!(not_decrypted(&c)[0].starts_with("TLS, no keys"), "{c:?}");
    assert!(not_decrypted(&s)[0].starts_with("TLS, no keys"), "{s:?}");
    // A capture that holds no key log at all: said at once, nothing held.
    let (c, _) = connection(&KeyLog::new(false), 9, false);
    assert!(not_decrypted(&c)[0].contains("holds no key log"), "{c:?}");
    // Lines for it whose secrets are wrong.
    let mut wrong = KeyLog::new(true);
    for (name, _) in ALL {
        let l = format!("{name} {} {}", hex::encode(RANDOM), "ee".repeat(32));
        wrong.add(l.as_bytes());
    }
    let (c, s) = connection(&wrong, 9, false);
    assert!(texts(&c).is_empty() && texts(&s).is_empty());
    assert_eq!(not_decrypted(&c).len(), 1, "{c:?}");
    assert_eq!(not_decrypted(&s).len(), 1, "{s:?}");
}

#[test]
fn other_versions_and_lost_bytes_are_said_not_guessed() {
    let k = keys(&ALL);
    let mut sock = SocketState::default();
    let mut f = Framer::sniffing(1 << 20);
    let mut s = server_hello([3, 2]);
    s.extend(prot(Label::ServerTraffic).seal(0, 23, b"{}"));
    let frames = run(&mut f, &mut sock, &k, &s, 5);
    assert!(
        not_decrypted(&frames)[0].contains("only TLS 1.2 and 1.3"),
        "{frames:?}"
    );
    // A loss: reported, then the rest is said once not to open.
    let c = client_stream(REQUEST, false);
    let mut sock = SocketState::default();
    sock.tls = Some(Box::new(SocketTls {
        random: Some(RANDOM),
        server: Some((hello::TLS13, 0x1301, [0x77; 32])),
        inner: SocketState::default(),
    }));
    let mut f = Framer::sniffing(1 << 20);
    let mut frames = Vec::new();
    let cut = c.len() - 30;
    f.feed(
        Piece::Data {
            off: 0,
            bytes: &c[..100],
            ts: 0,
            seq: 0,
        },
        &mut sock,
        &k,
        &mut |x| frames.push(x),
    );
    let lost = Piece::Lost {
        off: 100,
        len: 50,
        why: crate::decode::reassembly::Loss::Missing,
        ts: 1,
        seq: None,
    };
    f.feed(lost, &mut sock, &k, &mut |x| frames.push(x));
    f.feed(
        Piece::Data {
            off: 150,
            bytes: &c[150..cut],
            ts: 2,
            seq: 2,
        },
        &mut sock,
        &k,
        &mut |x| frames.push(x),
    );
    f.feed(
        Piece::Data {
            off: cut as u64,
            bytes: &c[cut..],
            ts: 3,
            seq: 3,
        },
        &mut sock,
        &k,
        &mut |x| frames.push(x),
    );
    assert!(
        frames
            .iter()
            .any(|x| matches!(x.body, FrameBody::Lost { .. })),
        "{frames:?}"
    );
    assert_eq!(
        not_decrypted(&frames),
        vec!["TLS past lost bytes: its records cannot be opened"]
    );
    assert!(texts(&frames).is_empty());
}

/// TLS 1.2's AEAD suites (GCM with its explicit nonce, ChaCha20-Poly1305
/// with its implicit one) open with the master secret of CLIENT_RANDOM:
/// each direction's first sealed record is its Finished, then the content.
#[test]
fn tls12_opens_with_the_master_secret() {
    let master = [0x42u8; 48];
    let line = format!(
        "CLIENT_RANDOM {} {}",
        hex::encode(RANDOM),
        hex::encode(master)
    );
    for (suite, id) in [
        (Suite::Aes128Gcm, 0xc02f),
        (Suite::Aes256Gcm, 0xc030),
        (Suite::ChaCha20Poly1305, 0xcca8),
    ] {
        for good in [true, false] {
            let mut keys = KeyLog::new(true);
            if good {
                keys.add(line.as_bytes());
            } else {
                keys.add(line.replace("4242", "4343").as_bytes());
            }
            let seal = |client: bool| {
                Protection::tls12(suite, &master, &RANDOM, &SERVER_RANDOM, client).unwrap()
            };
            let mut c = client_hello();
            c.extend_from_slice(&clear_record(16, &[0; 33])); // ClientKeyExchange
            c.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
            let cp = seal(true);
            c.extend(cp.seal(0, 22, &[20, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
            for (i, chunk) in REQUEST.chunks(50).enumerate() {
                c.extend(cp.seal(1 + i as u64, 23, chunk));
            }
            let mut s = server_hello12(id);
            s.extend_from_slice(&clear_record(14, &[])); // ServerHelloDone
            s.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
            let sp = seal(false);
            s.extend(sp.seal(0, 22, &[20, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
            // The client's hello, then the server's side, then the rest.
            let mut sock = SocketState::default();
            let mut client = Framer::sniffing(1 << 20);
            let mut frames_c = Vec::new();
            let hello = client_hello().len();
            let first = Piece::Data {
                off: 0,
                bytes: &c[..hello],
                ts: 0,
                seq: 0,
            };
            client.feed(first, &mut sock, &keys, &mut |f| frames_c.push(f));
            let frames_s = run(&mut Framer::sniffing(1 << 20), &mut sock, &keys, &s, 11);
            let rest = Piece::Data {
                off: hello as u64,
                bytes: &c[hello..],
                ts: 1,
                seq: 1,
            };
            client.feed(rest, &mut sock, &keys, &mut |f| frames_c.push(f));
            client.finish(&mut sock, &keys, &mut |f| frames_c.push(f));
            if good {
                assert_eq!(
                    texts(&frames_c),
                    vec![r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#],
                    "{suite:?}: {frames_c:?}"
                );
                assert!(not_decrypted(&frames_s).is_empty(), "{frames_s:?}");
            } else {
                assert!(texts(&frames_c).is_empty());
                assert!(not_decrypted(&frames_c)[0].starts_with("TLS, no keys"));
            }
        }
    }
}

/// Hostile streams: a flood of empty sealed records stops at once; TLS
/// inside TLS is not opened again (it could nest without end); a
/// HelloRetryRequest with its compatibility change_cipher_spec is followed
/// to the real ServerHello.
#[test]
fn hostile_records_stop_and_nesting_is_not_followed() {
    let k = keys(&ALL);
    let mut c = client_hello();
    c.extend(std::iter::repeat_n([23u8, 3, 3, 0, 0], 100_000).flatten());
    let mut sock = SocketState::default();
    let mut f = Framer::sniffing(1 << 20);
    let frames = run(&mut f, &mut sock, &k, &c, 4096);
    assert!(
        not_decrypted(&frames)[0].contains("a sealed record of 0 bytes"),
        "{frames:?}"
    );
    assert!(f.held() < 4096 + 64, "{}", f.held());
    // The content of an opened record is itself a ClientHello.
    let inner = client_hello();
    let (c, _) = {
        let mut sock = SocketState::default();
        let mut client = Framer::sniffing(1 << 20);
        let mut out = Vec::new();
        let mut bytes = client_hello();
        bytes.extend(prot(Label::ClientHandshake).seal(0, 22, &[20, 0, 0, 32]));
        bytes.extend(prot(Label::ClientTraffic).seal(0, 23, &inner));
        let first = client_hello().len();
        let p = Piece::Data {
            off: 0,
            bytes: &bytes[..first],
            ts: 0,
            seq: 0,
        };
        client.feed(p, &mut sock, &k, &mut |x| out.push(x));
        let s = server_stream(b"", [3, 4]);
        let _ = run(&mut Framer::sniffing(1 << 20), &mut sock, &k, &s, 64);
        let p = Piece::Data {
            off: first as u64,
            bytes: &bytes[first..],
            ts: 1,
            seq: 1,
        };
        client.feed(p, &mut sock, &k, &mut |x| out.push(x));
        client.finish(&mut sock, &k, &mut |x| out.push(x));
        (out, ())
    };
    assert!(
        c.iter().any(|f| matches!(&f.body, FrameBody::Unsupported { protocol, .. } if protocol.contains("TLS inside TLS"))),
        "{c:?}"
    );
    // HelloRetryRequest, change_cipher_spec, then the ServerHello.
    let mut retry = vec![3, 3];
    retry.extend_from_slice(&[
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8,
        0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8,
        0x33, 0x9c,
    ]);
    retry.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
    let mut s = clear_record(hello::SERVER_HELLO, &retry);
    s.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
    s.extend(server_stream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        [3, 4],
    ));
    let mut sock = SocketState::default();
    let mut client = Framer::sniffing(1 << 20);
    let hello = client_hello();
    let p = Piece::Data {
        off: 0,
        bytes: &hello,
        ts: 0,
        seq: 0,
    };
    client.feed(p, &mut sock, &k, &mut |_| {});
    let frames = run(&mut Framer::sniffing(1 << 20), &mut sock, &k, &s, 50);
    assert!(not_decrypted(&frames).is_empty(), "{frames:?}");
    assert_eq!(texts(&frames), vec!["{}"], "{frames:?}");
}
