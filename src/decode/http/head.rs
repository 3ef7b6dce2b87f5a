//! HTTP/1.x heads: reading one up to its blank line, and parsing the start
//! line and the headers the decoder uses (RFC 9112 §2-§6), plus the chunk
//! size lines of chunked bodies.

use super::coding::Coding;
use super::{Input, MAX_HEAD, MAX_RESYNC_LINE};
use crate::decode::sse::Acc;

/// A head being read: the start line and headers, up to the blank line.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub(super) buf: Vec<u8>,
    pub(super) start: u64,
    pub(super) first_ts: u64,
    pub(super) last_ts: u64,
    pub(super) seqs: Vec<u64>,
    /// Bytes of the current line so far, and its first byte.
    line_len: usize,
    line_first: u8,
}

pub(super) enum HeadDone {
    No,
    Yes,
    TooLong,
}

impl Head {
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    pub(super) fn acc(&self) -> Acc {
        Acc {
            start: self.start,
            end: self.end(),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            seqs: self.seqs.clone(),
        }
    }

    pub(super) fn note(&mut self, at: &Input<'_>) {
        if self.buf.is_empty() {
            self.first_ts = at.ts;
        }
        self.last_ts = self.last_ts.max(at.ts);
        if self.seqs.last() != Some(&at.seq) {
            self.seqs.push(at.seq);
        }
    }

    /// A head whose start line (without its LF) was already found.
    pub(super) fn from_line(line: &[u8], acc: Acc) -> Head {
        let mut buf = Vec::with_capacity(line.len() + 256);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        Head {
            buf,
            start: acc.start,
            first_ts: acc.first_ts,
            last_ts: acc.last_ts,
            seqs: acc.seqs,
            line_len: 0,
            line_first: 0,
        }
    }

    /// Takes bytes up to the end of the head; returns how many it took.
    pub(super) fn feed(&mut self, at: &Input<'_>) -> (usize, HeadDone) {
        let bytes = at.bytes;
        let mut i = 0;
        if self.buf.is_empty() {
            // Empty lines before a message are allowed (RFC 9112 §2.2).
            while i < bytes.len() && matches!(bytes[i], b'\r' | b'\n') {
                i += 1;
            }
            if i == bytes.len() {
                return (i, HeadDone::No);
            }
            self.start = at.off + i as u64;
            self.line_len = 0;
        }
        self.note(at);
        let from = i;
        let mut pos = i;
        while let Some(k) = memchr::memchr(b'\n', &bytes[pos..]) {
            let nl = pos + k;
            let len = self.line_len + (nl - pos);
            let first = if self.line_len > 0 {
                self.line_first
            } else {
                bytes.get(pos).copied().unwrap_or(b'\n')
            };
            if len == 0 || (len == 1 && first == b'\r') {
                self.buf.extend_from_slice(&bytes[from..=nl]);
                return (nl + 1, HeadDone::Yes);
            }
            self.line_len = 0;
            pos = nl + 1;
        }
        if pos < bytes.len() {
            if self.line_len == 0 {
                self.line_first = bytes[pos];
            }
            self.line_len += bytes.len() - pos;
        }
        let rest = &bytes[from..];
        if self.buf.len() + rest.len() > MAX_HEAD {
            let room = MAX_HEAD.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&rest[..room.min(rest.len())]);
            return (bytes.len(), HeadDone::TooLong);
        }
        self.buf.extend_from_slice(rest);
        (bytes.len(), HeadDone::No)
    }
}

#[derive(Debug)]
pub(super) enum Start {
    Request { method: String, target: String },
    Response { status: u16 },
}

/// The headers the decoder uses.
#[derive(Debug)]
pub(super) struct Headers {
    pub(super) content_length: Option<u64>,
    pub(super) chunked: bool,
    /// Transfer codings other than a final `chunked`: the body runs to the end.
    pub(super) other_transfer_coding: bool,
    /// The content coding to undo, or the name of one this version cannot.
    pub(super) coding: Result<Option<Coding>, String>,
    pub(super) content_type: Option<String>,
    pub(super) host: Option<Box<str>>,
    pub(super) session_id: Option<Box<str>>,
    pub(super) protocol_version: Option<Box<str>>,
    pub(super) upgrade: Option<String>,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            content_length: None,
            chunked: false,
            other_transfer_coding: false,
            coding: Ok(None),
            content_type: None,
            host: None,
            session_id: None,
            protocol_version: None,
            upgrade: None,
        }
    }
}

pub(super) struct Parsed {
    pub(super) start: Start,
    pub(super) headers: Headers,
}

/// Parses a complete head (RFC 9112 §2-§6); Err says what is wrong (and
/// gives the start line, when that much parses).
pub(super) fn parse_head(buf: &[u8]) -> Result<Parsed, (Option<Start>, String)> {
    let head_text = String::from_utf8_lossy(buf);
    let mut lines = head_text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default();
    let start = parse_start_line(start_line).ok_or_else(|| {
        (
            None,
            format!("not an HTTP/1.x start line: {start_line:.120}"),
        )
    })?;
    match parse_headers(lines) {
        Ok(headers) if std::str::from_utf8(buf).is_ok() => Ok(Parsed { start, headers }),
        Ok(_) => Err((Some(start), "HTTP head that is not UTF-8 text".into())),
        Err(why) => Err((Some(start), why)),
    }
}

pub(super) fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, String> {
    let mut h = Headers::default();
    let mut lengths: Vec<&str> = Vec::new();
    // As listed: applied first to last.
    let mut transfer: Vec<String> = Vec::new();
    let mut content: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("HTTP header line without a colon: {line:.120}"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!("bad HTTP header name: {name:.120}"));
        }
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "content-length" => lengths.extend(value.split(',').map(str::trim)),
            "transfer-encoding" => transfer.extend(codings(value)),
            "content-encoding" => content.extend(codings(value)),
            "content-type" => h.content_type = Some(value.to_ascii_lowercase()),
            "host" => h.host = Some(value.into()),
            "mcp-session-id" => h.session_id = Some(value.into()),
            "mcp-protocol-version" => h.protocol_version = Some(value.into()),
            "upgrade" => h.upgrade = Some(value.to_string()),
            _ => {}
        }
    }
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(format!(
                "conflicting Content-Length values: {}",
                lengths.join(", ")
            ));
        }
        let n: u64 = first
            .parse()
            .ok()
            .filter(|_| first.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("bad Content-Length: {first:.40}"))?;
        h.content_length = Some(n);
    }
    // Chunked must come last; any other transfer coding last means the
    // body runs to the end of the stream (RFC 9112 §6.3).
    if let Some(last) = transfer.last() {
        h.chunked = last == "chunked";
        h.other_transfer_coding = !h.chunked;
    }
    // What is left to undo, last applied first.
    let mut undo: Vec<String> = transfer.into_iter().filter(|c| c != "chunked").collect();
    undo.reverse();
    undo.extend(content.into_iter().rev());
    h.coding = match undo.as_slice() {
        [] => Ok(None),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Some(Coding::gzip())),
            "deflate" => Ok(Some(Coding::Deflate(None))),
            other => Err(other.to_string()),
        },
        several => Err(several.join(", ")),
    };
    Ok(h)
}

/// A coding list (`gzip, chunked`), lower case, without `identity`.
pub(super) fn codings(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
}

fn parse_start_line(line: &str) -> Option<Start> {
    if let Some(rest) = line.strip_prefix("HTTP/1.") {
        let (minor, rest) = rest.split_at_checked(1)?;
        if !matches!(minor, "0" | "1") {
            return None;
        }
        let rest = rest.strip_prefix(' ')?;
        let code = rest.get(..3)?;
        if !code.bytes().all(|b| b.is_ascii_digit())
            || !matches!(rest.as_bytes().get(3), None | Some(b' '))
        {
            return None;
        }
        return Some(Start::Response {
            status: code.parse().ok()?,
        });
    }
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if parts.next().is_some()
        || !token(method)
        || target.is_empty()
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    Some(Start::Request {
        method: method.to_string(),
        target: target.to_string(),
    })
}

pub(super) fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.len() <= MAX_RESYNC_LINE
        && std::str::from_utf8(line)
            .ok()
            .and_then(parse_start_line)
            .is_some()
}

/// A chunk-size line (`1a3`, `1a3;ext=x`): the size.
pub(super) fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // After the size: nothing, or whitespace and then an extension.
    let after = line[end..].iter().find(|b| !matches!(b, b' ' | b'\t'));
    if after.is_some_and(|&b| b != b';') {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

pub(super) fn first_line(buf: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', buf).unwrap_or(buf.len()).min(256);
    let line = &buf[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> Result<Headers, String> {
        parse_headers(text.split("\r\n"))
    }

    #[test]
    fn start_lines() {
        assert!(matches!(
            parse_start_line("POST /mcp HTTP/1.1"),
            Some(Start::Request { method, target }) if method == "POST" && target == "/mcp"
        ));
        assert!(matches!(
            parse_start_line("HTTP/1.1 202 Accepted"),
            Some(Start::Response { status: 202 })
        ));
        assert!(matches!(
            parse_start_line("HTTP/1.0 200"),
            Some(Start::Response { status: 200 })
        ));
        for bad in [
            "HTTP/2 200 OK",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "GET /",
            "GET / HTTP/2.0",
            "GE T / HTTP/1.1",
            "GET  HTTP/1.1",
            "GET / HTTP/1.1 extra",
            "",
        ] {
            assert!(parse_start_line(bad).is_none(), "{bad:?}");
        }
        assert!(is_start_line(b"DELETE /mcp HTTP/1.1\r"));
        assert!(!is_start_line(b"{\"jsonrpc\":\"2.0\"}"));
    }

    #[test]
    fn headers_the_decoder_uses() {
        let h = headers(
            "Content-Length: 12\r\ncontent-type: Application/JSON\r\nMcp-Session-Id: s1\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nHost: h:1\r\n",
        )
        .unwrap();
        assert_eq!(h.content_length, Some(12));
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
        assert_eq!(h.session_id.as_deref(), Some("s1"));
        assert_eq!(h.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(h.host.as_deref(), Some("h:1"));
        assert!(!h.chunked && !h.other_transfer_coding);
        // Repeated equal lengths are one length; different ones are an error.
        assert_eq!(
            headers("Content-Length: 5, 5\r\n").unwrap().content_length,
            Some(5)
        );
        assert!(headers("Content-Length: 5\r\nContent-Length: 6\r\n").is_err());
        assert!(headers("Content-Length: +5\r\n").is_err());
        assert!(headers("no colon here\r\n").is_err());
        assert!(headers("bad name: x\r\n").is_err());
    }

    #[test]
    fn transfer_and_content_codings() {
        let h = headers("Transfer-Encoding: gzip, chunked\r\n").unwrap();
        assert!(h.chunked);
        assert!(matches!(h.coding, Ok(Some(Coding::Gzip(_)))));
        let h = headers("Transfer-Encoding: chunked, gzip\r\n").unwrap();
        assert!(
            !h.chunked && h.other_transfer_coding,
            "chunked must come last"
        );
        let h = headers("Content-Encoding: deflate\r\n").unwrap();
        assert!(matches!(h.coding, Ok(Some(Coding::Deflate(None)))));
        let h = headers("Content-Encoding: identity\r\n").unwrap();
        assert!(matches!(h.coding, Ok(None)));
        let h = headers("Content-Encoding: br\r\n").unwrap();
        assert_eq!(h.coding.err().as_deref(), Some("br"));
        let h = headers("Content-Encoding: gzip, gzip\r\n").unwrap();
        assert_eq!(h.coding.err().as_deref(), Some("gzip, gzip"));
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a3\r"), Some(0x1a3));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"10;name=value\r"), Some(16));
        assert_eq!(chunk_size(b"10 ; x\r"), Some(16));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"g1\r"), None);
        assert_eq!(chunk_size(b"10 x\r"), None);
        assert_eq!(chunk_size(b"1234567890abcdef0"), None, "too many digits");
    }

    #[test]
    fn heads_are_read_across_pieces_up_to_the_blank_line() {
        let mut head = Head::default();
        let part = |off: u64, bytes: &'static [u8]| Input {
            off,
            bytes,
            ts: off,
            seq: off,
        };
        let (n, done) = head.feed(&part(0, b"\r\nPOST /mcp HTTP/1.1\r\nHost: h\r"));
        assert_eq!((n, matches!(done, HeadDone::No)), (30, true));
        assert_eq!(head.start, 2, "empty lines before a message are skipped");
        let (n, done) = head.feed(&part(30, b"\n\r\n{\"body\""));
        assert!(matches!(done, HeadDone::Yes));
        assert_eq!(n, 3, "the body is not taken");
        assert_eq!(first_line(&head.buf), b"POST /mcp HTTP/1.1");
        let parsed = parse_head(&head.buf).ok().unwrap();
        assert_eq!(parsed.headers.host.as_deref(), Some("h"));
    }
}
