//! HTTP/2 on the wire (RFC 9113 §4, §6): the 9-byte frame header, the
//! fields in front of a payload, and whether bytes look like frames at all
//! (to pick a connection up mid-way).

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// Frames longer than this are not taken for frames when picking a
/// connection up mid-way (the largest SETTINGS_MAX_FRAME_SIZE real peers
/// use is 1 MiB; the protocol allows 16 MiB).
const PLAUSIBLE_LEN: u32 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    /// The reserved bit in front of the stream id (must be 0).
    reserved: bool,
}

impl FrameHead {
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHead {
        FrameHead {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]),
            reserved: b[5] & 0x80 != 0,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Bytes in front of a payload's content: a pad length, a priority, a
    /// promised stream id (RFC 9113 §6.1, §6.2, §6.6).
    pub fn prefix_len(&self) -> u32 {
        let pad = u32::from(self.has(PADDED) && matches!(self.kind, DATA | HEADERS | PUSH_PROMISE));
        let more = match self.kind {
            HEADERS if self.has(PRIORITY_FLAG) => 5,
            PUSH_PROMISE => 4,
            _ => 0,
        };
        pad + more
    }

    /// The frame is one a peer would send: a known type, its flags, its
    /// stream rule and its length (for picking a connection up mid-way).
    pub fn plausible(&self) -> bool {
        let (on_stream, flags, len_ok) = match self.kind {
            DATA => (true, END_STREAM | PADDED, true),
            HEADERS => (
                true,
                END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
                true,
            ),
            PRIORITY => (true, 0, self.len == 5),
            RST_STREAM => (true, 0, self.len == 4),
            SETTINGS => (
                false,
                ACK,
                self.len.is_multiple_of(6) && (!self.has(ACK) || self.len == 0),
            ),
            PUSH_PROMISE => (true, END_HEADERS | PADDED, self.len >= 4),
            PING => (false, ACK, self.len == 8),
            GOAWAY => (false, 0, self.len >= 8),
            WINDOW_UPDATE => (self.stream != 0, 0, self.len == 4),
            CONTINUATION => (true, END_HEADERS, true),
            _ => return false,
        };
        !self.reserved
            && (self.stream != 0) == on_stream
            && self.flags & !flags == 0
            && len_ok
            && self.len <= PLAUSIBLE_LEN
    }
}

/// Does a run of frames start at the beginning of `bytes`? Yes if a
/// plausible header starts there and the next one (right after its
/// payload) is plausible too, or its payload ends exactly where the bytes
/// do. None: more bytes are needed to tell.
pub fn frames_start(bytes: &[u8]) -> Option<bool> {
    let first = head_at(bytes, 0)?;
    if !first.plausible() {
        return Some(false);
    }
    let next = HEADER_LEN + first.len as usize;
    if next == bytes.len() {
        return Some(true);
    }
    head_at(bytes, next).map(|h| h.plausible())
}

fn head_at(bytes: &[u8], at: usize) -> Option<FrameHead> {
    let b: &[u8; HEADER_LEN] = bytes.get(at..at + HEADER_LEN)?.try_into().ok()?;
    Some(FrameHead::parse(b))
}

/// Does a stream start like the server's side of an HTTP/2 connection (its
/// preface is a SETTINGS frame, RFC 9113 §3.4)? None: too few bytes yet.
pub fn server_preface(bytes: &[u8]) -> Option<bool> {
    let h = head_at(bytes, 0);
    match h {
        Some(h) => Some(h.kind == SETTINGS && !h.has(ACK) && h.stream == 0 && h.plausible()),
        None => {
            // A SETTINGS header is 3 length bytes, 0x04, flags 0, stream 0.
            let want: [Option<u8>; HEADER_LEN] = [
                None,
                None,
                None,
                Some(SETTINGS),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
            ];
            let fits = bytes
                .iter()
                .zip(want)
                .all(|(b, w)| w.is_none_or(|w| *b == w));
            (!fits).then_some(false)
        }
    }
}

/// An error code's name (RFC 9113 §7).
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("error code {code:#x}"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_judge() {
        let h = FrameHead::parse(&[0, 0, 0x54, 1, 4, 0, 0, 0, 1]);
        assert_eq!((h.len, h.kind, h.flags, h.stream), (84, HEADERS, 4, 1));
        assert!(h.plausible());
        // SETTINGS on a stream, DATA on stream 0, unknown types: not frames.
        assert!(!FrameHead::parse(&[0, 0, 6, 4, 0, 0, 0, 0, 1]).plausible());
        assert!(!FrameHead::parse(&[0, 0, 6, 0, 0, 0, 0, 0, 0]).plausible());
        assert!(!FrameHead::parse(&[0, 0, 6, 0x20, 0, 0, 0, 0, 1]).plausible());
        let padded = FrameHead::parse(&[0, 0, 9, 1, 0x28, 0, 0, 0, 3]);
        assert_eq!(padded.prefix_len(), 6);
    }

    #[test]
    fn runs_of_frames_are_found() {
        let mut two = vec![0, 0, 2, 0, 0, 0, 0, 0, 1, b'{', b'}'];
        assert_eq!(frames_start(&two), Some(true), "one frame, exactly");
        two.extend_from_slice(&[0, 0, 4, 8, 0, 0, 0, 0, 0]);
        assert_eq!(frames_start(&two), Some(true), "two frames");
        assert_eq!(frames_start(b"{\"jsonrpc\":\"2.0\"}"), Some(false));
        assert_eq!(frames_start(&[0, 0, 200, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(frames_start(&[0, 0]), None);
        assert_eq!(server_preface(&[0, 0, 0x12, 4, 0, 0, 0, 0, 0]), Some(true));
        assert_eq!(server_preface(&[0, 0, 0x12]), None);
        assert_eq!(server_preface(&[0, 0, 0x12, 1]), Some(false));
        assert_eq!(server_preface(b"{\"a\""), Some(false));
    }
}
