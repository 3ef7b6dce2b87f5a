//! The clear part of a TLS handshake: the ClientHello names the connection
//! (its random is what key logs are keyed by) and the ServerHello says the
//! version and the cipher suite (RFC 8446 §4.1.2-4.1.3).

/// What a hello says.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    Client {
        random: [u8; 32],
    },
    Server {
        /// The version chosen: `supported_versions` for TLS 1.3, else the
        /// legacy field.
        version: u16,
        suite: u16,
        random: [u8; 32],
    },
    /// A HelloRetryRequest: the real ServerHello follows a second ClientHello.
    Retry,
}

pub const TLS13: u16 = 0x0304;
pub const TLS12: u16 = 0x0303;
/// Handshake message types that matter here.
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const KEY_UPDATE: u8 = 24;

/// The random a HelloRetryRequest carries (SHA-256 of "HelloRetryRequest").
const RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Bytes of clear handshake kept while a message is incomplete: hellos are
/// a few KiB (a post-quantum key share included); more is not a hello.
pub const MAX_CLEAR_HANDSHAKE: usize = 64 << 10;

/// The whole handshake messages at the start of `buf`: (type, body) each,
/// and the bytes they take.
pub fn messages(buf: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some(h) = buf.get(at..at + 4) {
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let Some(body) = buf.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((h[0], body));
        at += 4 + len;
    }
    (out, at)
}

/// A ClientHello's or ServerHello's body; None: not a hello, or malformed.
pub fn parse(kind: u8, body: &[u8]) -> Option<Hello> {
    let random: [u8; 32] = body.get(2..34)?.try_into().ok()?;
    match kind {
        CLIENT_HELLO => Some(Hello::Client { random }),
        SERVER_HELLO if random == RETRY_RANDOM => Some(Hello::Retry),
        SERVER_HELLO => {
            let legacy = u16::from_be_bytes([body[0], body[1]]);
            let sid = *body.get(34)? as usize;
            let at = 35 + sid;
            let suite = u16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?);
            // Then the compression method, and the extensions (optional).
            let mut version = legacy;
            if let Some(ext) = body.get(at + 5..) {
                let mut p = 0;
                while let Some(h) = ext.get(p..p + 4) {
                    let (typ, len) = (
                        u16::from_be_bytes([h[0], h[1]]),
                        u16::from_be_bytes([h[2], h[3]]) as usize,
                    );
                    let data = ext.get(p + 4..p + 4 + len)?;
                    if typ == 43 && len == 2 {
                        version = u16::from_be_bytes([data[0], data[1]]);
                    }
                    p += 4 + len;
                }
            }
            Some(Hello::Server {
                version,
                suite,
                random,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_parse() {
        let mut client = vec![3, 3];
        client.extend_from_slice(&[7; 32]);
        client.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        assert_eq!(
            parse(CLIENT_HELLO, &client),
            Some(Hello::Client { random: [7; 32] })
        );
        let mut server = vec![3, 3];
        server.extend_from_slice(&[9; 32]);
        server.push(0); // no session id
        server.extend_from_slice(&[0x13, 0x02, 0]);
        server.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
        assert_eq!(
            parse(SERVER_HELLO, &server),
            Some(Hello::Server {
                version: TLS13,
                suite: 0x1302,
                random: [9; 32]
            })
        );
        let mut retry = server.clone();
        retry[2..34].copy_from_slice(&RETRY_RANDOM);
        assert_eq!(parse(SERVER_HELLO, &retry), Some(Hello::Retry));
        // Cut anywhere, it is not a hello (and nothing panics).
        for n in 0..server.len() - 4 {
            assert_ne!(
                parse(SERVER_HELLO, &server[..n]),
                Some(Hello::Server {
                    version: TLS13,
                    suite: 0x1302,
                    random: [9; 32]
                }),
                "{n}"
            );
        }
        let mut msgs = vec![SERVER_HELLO, 0, 0, server.len() as u8];
        msgs.extend_from_slice(&server);
        msgs.extend_from_slice(&[11, 0, 0, 9, 1]);
        let (whole, used) = messages(&msgs);
        assert_eq!(whole.len(), 1);
        assert_eq!(used, 4 + server.len());
    }
}
