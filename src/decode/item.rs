//! What the decoder yields: one [`Item`] per message (or per piece of
//! damage), borrowing from the decoder for the duration of the callback.

use super::reassembly::Loss;
use crate::event::StreamId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::net::SocketAddr;

/// A process as the kernel named it at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: u32,
    pub comm: [u8; crate::event::COMM_LEN],
}

impl Peer {
    /// The name, borrowed unless it is not UTF-8 (it is written per item).
    pub fn comm(&self) -> Cow<'_, str> {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        let name = &self.comm[..end];
        std::str::from_utf8(name).map_or_else(|_| String::from_utf8_lossy(name), Cow::Borrowed)
    }
}

/// How the bytes travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    Pipe {
        ino: u64,
    },
    Unix {
        ino: u64,
        peer_ino: u64,
    },
    Tcp {
        tls: bool,
        from: SocketAddr,
        to: SocketAddr,
    },
    /// HTTP/1.1 over TCP, or over TLS (`tls`: plaintext seen through the
    /// TLS library). The ends are the HTTP client's and server's addresses,
    /// when known (a TLS stream may never learn its socket).
    Http {
        tls: bool,
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
    },
    /// Any other file (captured with --all).
    Other {
        ino: u64,
    },
}

impl Transport {
    /// The transport family, as `query --transport` names it.
    pub fn family(&self) -> &'static str {
        match self {
            Transport::Pipe { .. } | Transport::Unix { .. } => "stdio",
            Transport::Tcp { .. } => "tcp",
            Transport::Http { .. } => "http",
            Transport::Other { .. } => "other",
        }
    }
}

/// What HTTP said about a message: the request it travelled in or answers,
/// and for messages in a response, the response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpMeta {
    /// The message travelled in a request body (client → server).
    pub is_request: bool,
    /// The request's method, target and Host header; for a message in a
    /// response, those of the request it answers (None when that request
    /// was not seen).
    pub method: Option<Box<str>>,
    pub path: Option<Box<str>>,
    pub host: Option<Box<str>>,
    /// The response's status code (messages in responses only).
    pub status: Option<u16>,
    /// `Mcp-Session-Id` of the message's own headers, else of its request's.
    pub session_id: Option<Box<str>>,
    /// `MCP-Protocol-Version` of the request.
    pub protocol_version: Option<Box<str>>,
    /// The message is one event of a `text/event-stream` body.
    pub sse: bool,
    /// The legacy HTTP+SSE transport: the message endpoint this event
    /// stream announced (`event: endpoint`), as a path.
    pub endpoint: Option<Box<str>>,
    /// The head of the HTTP message the message travelled in (its request
    /// or status line and every header), as captured.
    pub head: Option<Box<str>>,
    /// HTTP/2: the stream the message travelled on.
    pub stream: Option<u32>,
}

impl HttpMeta {
    /// Fills what this copy does not know from the other copy's view.
    pub fn fill_from(&mut self, other: &HttpMeta) {
        fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        fill(&mut self.method, &other.method);
        fill(&mut self.path, &other.path);
        fill(&mut self.host, &other.host);
        fill(&mut self.status, &other.status);
        fill(&mut self.session_id, &other.session_id);
        fill(&mut self.protocol_version, &other.protocol_version);
        fill(&mut self.endpoint, &other.endpoint);
        fill(&mut self.head, &other.head);
        fill(&mut self.stream, &other.stream);
    }
}

/// An item's place in HTTP: its connection (numbered 1, 2, … in order of
/// first appearance) and, for messages, what HTTP said about them.
#[derive(Clone, Copy, Debug)]
pub struct HttpView<'a> {
    pub connection: u64,
    pub meta: Option<&'a HttpMeta>,
}

/// Which way a message went, once roles are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// One side's copy of the message: the stream and the records it came from.
#[derive(Clone, Copy, Debug)]
pub struct CopyInfo<'a> {
    /// The stream its bytes travelled in (its process is `stream.tgid`).
    pub stream: StreamId,
    pub fd: u32,
    /// Stream offsets [start, end) of the text (without the newline).
    pub start: u64,
    pub end: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    pub seqs: &'a [u64],
}

/// The request a response answers, or a notification refers to.
#[derive(Clone, Debug)]
pub struct RequestRef {
    /// Its item number.
    pub n: u64,
    pub id: Box<str>,
    pub method: Box<str>,
    /// The tool, prompt or resource it named.
    pub subject: Option<Box<str>>,
    pub ts_ns: u64,
    /// Its place in a multi-round call, when it is known to be one.
    pub round: Option<Round>,
}

/// MCP 2026-07-28: one round of a multi-round call. The server answers a
/// tools/call, prompts/get or resources/read with `resultType:
/// "input_required"` and a `requestState`; the client asks again under a
/// new id, echoing the state. Rounds are counted from 1, the first request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The item number of the call's first request.
    pub call: u64,
    pub round: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPos {
    /// 0-based position in the batch.
    pub index: usize,
    pub len: usize,
}

#[derive(Debug)]
pub enum Kind<'a> {
    Request {
        id: &'a RawValue,
        method: &'a str,
        params: Option<&'a RawValue>,
        subject: Option<Cow<'a, str>>,
        /// A retry of a multi-round call (round 2 on).
        round: Option<Round>,
    },
    Notification {
        method: &'a str,
        params: Option<&'a RawValue>,
        subject: Option<Cow<'a, str>>,
        /// notifications/progress and notifications/cancelled: their request.
        refers_to: Option<&'a RequestRef>,
    },
    Response {
        id: &'a RawValue,
        result: &'a RawValue,
        answers: Option<&'a RequestRef>,
        latency_ns: Option<u64>,
        /// A tools/call result with `isError: true`: the tool failed (a
        /// successful JSON-RPC response all the same).
        tool_error: bool,
    },
    Error {
        id: Option<&'a RawValue>,
        error: &'a RawValue,
        code: Option<i64>,
        message: Option<Cow<'a, str>>,
        answers: Option<&'a RequestRef>,
        latency_ns: Option<u64>,
    },
    Flagged(Flag),
}

impl Kind<'_> {
    /// The method, for requests and notifications; for responses, the
    /// method of the request they answer.
    pub fn method(&self) -> Option<&str> {
        match self {
            Kind::Request { method, .. } | Kind::Notification { method, .. } => Some(method),
            Kind::Response { answers, .. } | Kind::Error { answers, .. } => {
                answers.map(|a| &*a.method)
            }
            Kind::Flagged(_) => None,
        }
    }

    /// The tool (prompt, resource) the message or its request names; for
    /// notifications, their gist (progress, log level, resource).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Kind::Request { subject, .. } | Kind::Notification { subject, .. } => {
                subject.as_deref()
            }
            Kind::Response { answers, .. } | Kind::Error { answers, .. } => {
                answers.and_then(|a| a.subject.as_deref())
            }
            _ => None,
        }
    }

    pub fn latency_ns(&self) -> Option<u64> {
        match self {
            Kind::Response { latency_ns, .. } | Kind::Error { latency_ns, .. } => *latency_ns,
            _ => None,
        }
    }

    /// A JSON-RPC error, or a tool's failure reported in its result.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Kind::Error { .. }
                | Kind::Response {
                    tool_error: true,
                    ..
                }
        )
    }

    /// The round of a multi-round call the message belongs to: a retry,
    /// or a response to any round of a call known to have more than one.
    pub fn round(&self) -> Option<Round> {
        match self {
            Kind::Request { round, .. } => *round,
            _ => self.answers().and_then(|a| a.round),
        }
    }

    /// The request a notification refers to (progress, cancellation), or
    /// that a flagged HTTP/2 reset cancels.
    pub fn linked(&self) -> Option<&RequestRef> {
        match self {
            Kind::Notification { refers_to, .. } => *refers_to,
            Kind::Flagged(f) => f.cancels.as_ref(),
            _ => None,
        }
    }

    pub fn answers(&self) -> Option<&RequestRef> {
        match self {
            Kind::Response { answers, .. } | Kind::Error { answers, .. } => *answers,
            _ => None,
        }
    }

    /// Damage to the file (not a loss while recording, nor a peer's fault).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Kind::Flagged(Flag {
                reason: FlagReason::DamagedRecord | FlagReason::UnreadableBlock,
                ..
            })
        )
    }
}

/// Why an item is flagged instead of decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagReason {
    InvalidUtf8,
    InvalidJson,
    TooDeep,
    NotJsonRpc,
    /// Bytes never captured.
    Lost(Loss),
    /// Only part of a message was captured.
    Truncated,
    /// Longer than the decoder keeps.
    TooLong,
    /// Bytes that arrived after their place in the stream had been passed.
    Late,
    /// A record the file holds but that does not parse.
    DamagedRecord,
    /// A block of records that cannot be read.
    UnreadableBlock,
    /// A protocol recognised but not decoded.
    Unsupported,
    /// HTTP that does not parse: a start line, headers, a chunk size.
    BadHttp,
    /// A body whose content coding cannot be decoded.
    BadEncoding,
    /// An HTTP error status (4xx, 5xx) whose body holds no JSON-RPC message.
    HttpError,
    /// An HTTP/2 stream reset (RST_STREAM), or a connection closed with an
    /// error (GOAWAY).
    Reset,
    /// HTTP/2 header blocks that cannot be decoded (the header compression
    /// state was lost, or the connection was picked up mid-way).
    HeadersUnknown,
    /// MCP 2026-07-28: a request's Mcp-Method or Mcp-Name header differs
    /// from its body.
    HeaderMismatch,
    /// TLS ciphertext the capture's key log does not open ("TLS, no keys"),
    /// or no longer opens (past a loss, a record that does not open).
    NotDecrypted,
    /// An HTTP/1.1 client closed the connection while a request it carried
    /// had no response: MCP 2026-07-28's cancellation (`cancels` names it).
    Closed,
    /// A line the reader of a pipe read made of pieces of several writers'
    /// lines, or a piece of one whose other pieces came mixed with another
    /// writer's (`writers` names them).
    Interleaved,
}

impl FlagReason {
    /// Stable machine name (JSONL `reason`).
    pub fn code(self) -> &'static str {
        match self {
            FlagReason::InvalidUtf8 => "invalid_utf8",
            FlagReason::InvalidJson => "invalid_json",
            FlagReason::TooDeep => "too_deep",
            FlagReason::NotJsonRpc => "not_jsonrpc",
            FlagReason::Lost(_) => "lost",
            FlagReason::Truncated => "truncated",
            FlagReason::TooLong => "too_long",
            FlagReason::Late => "late",
            FlagReason::DamagedRecord => "damaged_record",
            FlagReason::UnreadableBlock => "unreadable_block",
            FlagReason::Unsupported => "unsupported",
            FlagReason::BadHttp => "bad_http",
            FlagReason::BadEncoding => "bad_encoding",
            FlagReason::HttpError => "http_error",
            FlagReason::Reset => "reset",
            FlagReason::HeadersUnknown => "headers_unknown",
            FlagReason::HeaderMismatch => "header_mismatch",
            FlagReason::NotDecrypted => "not_decrypted",
            FlagReason::Closed => "closed",
            FlagReason::Interleaved => "interleaved",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Flag {
    pub reason: FlagReason,
    pub detail: String,
    /// Bytes of the stream the flag covers (lost bytes count too).
    pub len: u64,
    /// An HTTP/2 stream the client reset, or an HTTP/1.1 connection it
    /// closed, before its request had a response: the request this cancels
    /// (MCP 2026-07-28 cancels a request over HTTP by closing its stream).
    pub cancels: Option<RequestRef>,
    /// An interleaved line: the pieces of writers' lines it is made of, in
    /// the order of their first byte.
    pub writers: Vec<WriterPiece>,
}

/// A piece of a writer's line within a line its reader read mixed: the
/// writer, and the piece's text in the writer's stream offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterPiece {
    pub peer: Peer,
    pub fd: u32,
    pub start: u64,
    pub end: u64,
}

impl Flag {
    /// A flag that cancels nothing (all but an HTTP/2 reset's).
    pub fn new(reason: FlagReason, detail: String, len: u64) -> Flag {
        Flag {
            reason,
            detail,
            len,
            cancels: None,
            writers: Vec::new(),
        }
    }
}

/// One decoded message, or one flagged piece of damage.
#[derive(Debug)]
pub struct Item<'a> {
    /// 1, 2, 3… in output order, over the whole capture.
    pub n: u64,
    /// CLOCK_MONOTONIC ns: when the sender's write completed, or when the
    /// reader's read did if the writer's copy was not seen.
    pub ts_ns: u64,
    pub transport: Option<Transport>,
    /// HTTP transports: the connection and the message's HTTP context.
    pub http: Option<HttpView<'a>>,
    pub from: Option<Peer>,
    pub to: Option<Peer>,
    pub session: Option<&'a SessionSummary>,
    pub direction: Option<Direction>,
    pub kind: Kind<'a>,
    /// The JSON text as captured (one element's text for a batch member;
    /// what was captured for damage).
    pub text: &'a [u8],
    pub batch: Option<BatchPos>,
    pub writer: Option<CopyInfo<'a>>,
    pub reader: Option<CopyInfo<'a>>,
    /// Both copies were seen and their bytes differ (the writer's is shown).
    pub copies_differ: bool,
    /// A writer's line that its reader received in pieces, mixed with
    /// another writer's (the reader's lines are `interleaved` flags).
    pub interleaved: bool,
    /// The text is not the whole message.
    pub truncated: bool,
}

impl Item<'_> {
    /// The text is one whole JSON value, as parsed: not flagged, not cut.
    pub fn is_whole_json(&self) -> bool {
        !matches!(self.kind, Kind::Flagged(_)) && !self.truncated
    }
}

/// A client or server implementation, as it introduced itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Implementation {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// What is known about a session so far.
#[derive(Clone, Debug)]
pub struct SessionSummary {
    /// 1, 2, 3… by first message.
    pub id: u64,
    pub transport: Option<Transport>,
    pub client: Option<Peer>,
    pub server: Option<Peer>,
    /// The two processes, before roles are known (or when they never are).
    pub ends: [Option<Peer>; 2],
    pub protocol_version: Option<String>,
    /// The handshake that opened it: initialize, server/discover, or none seen.
    pub handshake: Option<&'static str>,
    pub client_info: Option<Implementation>,
    pub server_info: Option<Implementation>,
    /// Raw JSON, as exchanged.
    pub client_capabilities: Option<String>,
    pub server_capabilities: Option<String>,
    pub messages: u64,
    pub flagged: u64,
    pub requests: u64,
    /// Requests still waiting for a response.
    pub unanswered: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// HTTP sessions: how they were joined.
    pub http: Option<HttpSession>,
}

/// An MCP session over HTTP, which may span many connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSession {
    /// `Mcp-Session-Id`, or the legacy transport's message endpoint.
    pub session_id: Option<String>,
    /// The server, as the first request named it (Host header).
    pub host: Option<String>,
    /// Connections that carried its messages.
    pub connections: u64,
    /// A DELETE ended it.
    pub deleted: bool,
}
