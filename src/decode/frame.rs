//! Frames: what framing makes of a stream's bytes. Each is the text of one
//! message, an explicit loss, or something worth flagging, with the stream
//! offsets and the records it came from.

use super::item::{FlagReason, HttpMeta};
use super::reassembly::Loss;
use std::sync::Arc;

/// Where a frame's text stops being the whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Bytes next to it were lost.
    Loss(Loss),
    /// The capture ended before the message did.
    CaptureEnd,
    /// Its sender reset the HTTP/2 stream that carried it.
    Reset,
    /// Longer than the decoder keeps: `dropped` bytes were not kept.
    TooLong { dropped: u64 },
}

/// Something HTTP said that is not a message but tells how messages belong
/// together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// The legacy HTTP+SSE transport's `endpoint` event: where the client
    /// is to POST its messages (a path).
    Endpoint(Box<str>),
    /// A DELETE request: the client ends its session.
    Delete,
}

#[derive(Debug)]
pub enum FrameBody {
    /// One message's text, without its newline (and without a CR before it).
    /// `cut_start`: the text follows lost bytes, so it may be the tail of a
    /// message. `cut_end`: the message goes on past the text.
    Text {
        text: Vec<u8>,
        cut_start: Option<Cut>,
        cut_end: Option<Cut>,
    },
    /// Bytes that were never captured.
    Lost { why: Loss },
    /// Bytes that arrived after their place in the stream had been passed.
    Late,
    /// A protocol this decoder recognises but does not decode; `text` is
    /// its first line.
    Unsupported { protocol: String, text: Vec<u8> },
    /// Captured bytes that say something is wrong (bad HTTP, a body that
    /// does not decompress, an HTTP error without a message).
    Notice {
        reason: FlagReason,
        detail: String,
        text: Vec<u8>,
    },
    /// HTTP bookkeeping, not shown.
    Event(HttpEvent),
}

/// A framed piece of one stream.
#[derive(Debug)]
pub struct Frame {
    /// Stream offsets [start, end) (for text: without the newline).
    pub start: u64,
    pub end: u64,
    /// The captured bytes this frame accounts for start here (at or before
    /// `start`): for HTTP, the head and framing before a body's text.
    pub covers: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// The records it came from.
    pub seqs: Vec<u64>,
    pub body: FrameBody,
    /// HTTP streams: the message's HTTP context.
    pub http: Option<Arc<HttpMeta>>,
}

impl Frame {
    /// A frame with no HTTP context that accounts for its own bytes only.
    pub fn plain(
        start: u64,
        end: u64,
        first_ts: u64,
        last_ts: u64,
        seqs: Vec<u64>,
        body: FrameBody,
    ) -> Self {
        Frame {
            start,
            end,
            covers: start,
            first_ts,
            last_ts,
            seqs,
            body,
            http: None,
        }
    }

    /// A whole thing to pair with the other copy: text that ends where its
    /// message ends, or a report about captured bytes.
    pub fn ends_cleanly(&self) -> bool {
        matches!(
            self.body,
            FrameBody::Text { cut_end: None, .. }
                | FrameBody::Unsupported { .. }
                | FrameBody::Notice { .. }
                | FrameBody::Event(_)
        )
    }

    /// The bytes that identify it, for pairing by content.
    pub fn text(&self) -> Option<&[u8]> {
        match &self.body {
            FrameBody::Text { text, .. }
            | FrameBody::Unsupported { text, .. }
            | FrameBody::Notice { text, .. } => Some(text),
            FrameBody::Event(HttpEvent::Endpoint(path)) => Some(path.as_bytes()),
            FrameBody::Event(HttpEvent::Delete) => Some(b"DELETE"),
            _ => None,
        }
    }
}

/// A frame for bytes that were never captured.
pub fn lost_frame(off: u64, len: u64, why: Loss, ts: u64, seq: Option<u64>) -> Frame {
    Frame::plain(
        off,
        off + len,
        ts,
        ts,
        seq.into_iter().collect(),
        FrameBody::Lost { why },
    )
}
