//! What a network stream carries, judged from its first bytes: JSON-RPC
//! lines, HTTP/1.x, HTTP/2 (the client's preface, or the server's: a
//! SETTINGS frame; h2 over TLS and h2c with prior knowledge alike), or
//! something this decoder reports and does not decode.
//!
//! The same judgement serves the decoder and `info` (query's count of the
//! streams that are not decoded).

/// What a stream carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Newline-delimited JSON (JSON-RPC over a raw socket).
    Json,
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
    /// TLS, from its handshake on: opened with the capture's key log.
    Tls,
    /// Anything else, with a description of what it is.
    Other(String),
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// Request methods that open an HTTP/1.x request line.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// The protocol of a stream that starts with `prefix`, or None while the
/// bytes so far could still start more than one (`more` says whether more
/// can come; without it the bytes so far decide).
pub fn classify(prefix: &[u8], more: bool) -> Option<Protocol> {
    // Empty lines may precede an HTTP message.
    let start = prefix
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(prefix.len());
    let bytes = &prefix[start..];
    let Some(&first) = bytes.first() else {
        return (!more || prefix.len() > 64).then_some(Protocol::Json);
    };
    if matches!(first, b'{' | b'[' | b' ' | b'\t') {
        return Some(Protocol::Json);
    }
    let could_be = |whole: &[u8]| whole.starts_with(bytes) && bytes.len() < whole.len();
    if bytes.starts_with(HTTP2_PREFACE) {
        return Some(Protocol::Http2);
    }
    // A handshake record (the ClientHello, or the ServerHello) of TLS 1.0-1.3.
    if let [0x16, 0x03, ..] = bytes {
        return Some(Protocol::Tls);
    }
    // The server's side starts with a SETTINGS frame, whose length starts with 0.
    let server_h2 = if first == 0 {
        super::http::server_preface(bytes)
    } else {
        Some(false)
    };
    if server_h2 == Some(true) {
        return Some(Protocol::Http2);
    }
    if bytes.starts_with(b"HTTP/1.") || METHODS.iter().any(|m| bytes.starts_with(m)) {
        return Some(Protocol::Http1);
    }
    // A lone 0x16 may start a TLS handshake record.
    let undecided = (bytes == [0x16])
        || could_be(HTTP2_PREFACE)
        || could_be(b"HTTP/1.")
        || METHODS.iter().any(|m| could_be(m))
        || server_h2.is_none();
    if undecided && more {
        return None;
    }
    Some(Protocol::Other(describe(bytes)))
}

/// A name for bytes that are neither JSON nor HTTP/1.x.
fn describe(bytes: &[u8]) -> String {
    match bytes {
        [0x14..=0x17, 0x03, ..] => "TLS records (encrypted; no plaintext was captured)".into(),
        [b'S', b'S', b'H', b'-', ..] => "SSH".into(),
        _ => {
            let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("an unrecognised protocol (first bytes {})", shown.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_decide() {
        assert_eq!(classify(b"{\"jsonrpc\"", true), Some(Protocol::Json));
        assert_eq!(
            classify(b"POST /mcp HTTP/1.1\r\n", true),
            Some(Protocol::Http1)
        );
        assert_eq!(classify(b"HTTP/1.1 200 OK", true), Some(Protocol::Http1));
        assert_eq!(classify(b"\r\nGET / HTTP/1.1", true), Some(Protocol::Http1));
        assert_eq!(classify(b"PO", true), None);
        assert_eq!(classify(b"PRI * HTTP/2", true), None);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true),
            Some(Protocol::Http2)
        );
        // A server's first SETTINGS frame.
        assert_eq!(
            classify(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03", true),
            Some(Protocol::Http2)
        );
        assert_eq!(classify(b"\x00\x00\x12\x04", true), None);
        assert!(matches!(classify(b"PO", false), Some(Protocol::Other(_))));
        assert_eq!(classify(b"\x16\x03\x01\x02", true), Some(Protocol::Tls));
        assert_eq!(classify(b"\x16", true), None);
        assert!(
            matches!(classify(b"\x17\x03\x03\x02", true), Some(Protocol::Other(s)) if s.starts_with("TLS"))
        );
        assert!(
            matches!(classify(b"\x00\x00\x12\x05\x00", true), Some(Protocol::Other(s)) if s.contains("00 00 12 05"))
        );
    }
}
