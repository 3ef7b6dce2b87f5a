//! An HTTP/2 header block: decoded with the direction's HPACK state
//! (RFC 7541), checked (RFC 9113 §8.2-§8.3), and turned into what an
//! HTTP/1.x head gives the framing: the start, the headers the decoder uses,
//! and a head as text (a start line, then every field as it was sent).

use super::super::head::{parse_headers, Headers};

use super::super::MAX_HEAD;
use loona_hpack::Decoder;

/// A header block, decoded.
pub(super) struct Decoded {
    pub(super) kind: BlockKind,
    pub(super) headers: Headers,
    /// `POST /mcp HTTP/2.0` or `HTTP/2.0 200`, then each field on its line.
    pub(super) head: Vec<u8>,
}

pub(super) enum BlockKind {
    Request {
        method: String,
        path: String,
        authority: Option<String>,
    },
    Response {
        status: u16,
    },
    /// Neither pseudo-header: trailers (or a malformed block).
    Trailers,
}

/// The headers of a message whose header block was not decoded.
pub(super) fn none() -> Headers {
    Headers::default()
}

/// A new decoder for one direction of one connection. Its dynamic table
/// may not grow past `max_table` bytes, whatever the peer announces.
pub(super) fn decoder(max_table: usize) -> Decoder<'static> {
    let mut d = Decoder::new();
    d.set_max_allowed_table_size(max_table);
    d
}

/// Decodes `block` (HEADERS and its CONTINUATIONs, joined). An error means
/// the decoder's state can no longer be trusted.
pub(super) fn decode(hpack: &mut Decoder<'static>, block: &[u8]) -> Result<Decoded, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut size = 0usize;
    let mut bad: Option<String> = None;
    let res = hpack.decode_with_cb(block, |name, value| {
        // Keep decoding past the limit: the table must stay in step.
        size += name.len() + value.len() + 4;
        if size > MAX_HEAD || bad.is_some() {
            return;
        }
        if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            bad = Some(format!(
                "header field `{:.60}` with CR, LF or NUL in its value",
                String::from_utf8_lossy(&name)
            ));
            return;
        }
        fields.push((
            String::from_utf8_lossy(&name).into_owned(),
            String::from_utf8_lossy(&value).into_owned(),
        ));
    });
    if let Err(e) = res {
        return Err(format!("HPACK header block does not decode ({e})"));
    }
    if size > MAX_HEAD {
        return Err(format!("HTTP/2 header list longer than {MAX_HEAD} bytes"));
    }
    if let Some(why) = bad {
        return Err(why);
    }
    let pseudo = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let kind = match (pseudo(":method"), pseudo(":status")) {
        (Some(method), None) => BlockKind::Request {
            path: pseudo(":path").unwrap_or_else(|| "*".into()),
            authority: pseudo(":authority"),
            method,
        },
        (None, Some(status)) => match status.parse::<u16>() {
            Ok(s) if (100..1000).contains(&s) && status.len() == 3 => {
                BlockKind::Response { status: s }
            }
            _ => return Err(format!("bad :status `{status:.20}`")),
        },
        (None, None) => BlockKind::Trailers,
        (Some(_), Some(_)) => return Err("header block with both :method and :status".into()),
    };
    let regular: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let mut headers = parse_headers(regular.iter().map(String::as_str))?;
    let mut head = match &kind {
        BlockKind::Request {
            method,
            path,
            authority,
        } => {
            if headers.host.is_none() {
                headers.host = authority.as_deref().map(Into::into);
            }
            format!("{method} {path} HTTP/2.0\r\n")
        }
        BlockKind::Response { status } => format!("HTTP/2.0 {status}\r\n"),
        BlockKind::Trailers => String::new(),
    };
    for (k, v) in &fields {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    Ok(Decoded {
        kind,
        headers,
        head: head.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_decode_with_their_table() {
        let mut d = decoder(4096);
        // RFC 7541 C.4.1 (Huffman): GET http://www.example.com/
        let b = decode(
            &mut d,
            &[
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
                0x90, 0xf4, 0xff,
            ],
        )
        .unwrap();
        assert!(
            matches!(&b.kind, BlockKind::Request { method, path, .. } if method == "GET" && path == "/")
        );
        assert_eq!(b.headers.host.as_deref(), Some("www.example.com"));
        // C.4.2 refers to the entry C.4.1 added to the dynamic table.
        let b = decode(
            &mut d,
            &[
                0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
            ],
        )
        .unwrap();
        assert_eq!(b.headers.host.as_deref(), Some("www.example.com"));
        let text = String::from_utf8(b.head).unwrap();
        assert!(text.starts_with("GET / HTTP/2.0\r\n"), "{text}");
        assert!(text.contains("cache-control: no-cache\r\n"), "{text}");
        // Without that entry (a fresh table) the same block is an error.
        assert!(decode(&mut decoder(4096), &[0x82, 0xbe]).is_err());
        // :status 200, content-type application/json (literal).
        let mut block = vec![0x88, 0x0f, 0x10, 16];
        block.extend_from_slice(b"application/json");
        let b = decode(&mut decoder(4096), &block).unwrap();
        assert!(matches!(b.kind, BlockKind::Response { status: 200 }));
        assert_eq!(b.headers.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn hostile_blocks_are_errors() {
        // A table size update past the limit.
        assert!(decode(&mut decoder(4096), &[0x3f, 0xe1, 0xff, 0x03]).is_err());
        // A string longer than the block.
        assert!(decode(&mut decoder(4096), &[0x40, 0x7f, 0x10, b'a']).is_err());
        // A value with a newline.
        let mut block = vec![0x40, 1, b'x', 3];
        block.extend_from_slice(b"a\nb");
        assert!(decode(&mut decoder(4096), &block).is_err());
    }
}
