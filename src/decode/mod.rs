//! The MCP correlator: raw records in, MCP messages out.
//!
//! One pipeline, one module per stage:
//! [`reassembly`] (each stream's bytes in offset order, losses explicit) →
//! [`framer`] (lines of JSON, or [`http`] bodies and [`sse`] events, after
//! [`sniff`]ing network streams, into [`frame`]s) →
//! [`channel`] (the writer's and the reader's copy of each message, shown once) →
//! [`jsonrpc`] (parsed in place, once per message) →
//! [`session`] (sessions, roles, request/response pairing) → [`Item`]s.
//! The [`Decoder`] drives them: its tables of streams, sockets and
//! channels, the order in which items come out, and who sent each message
//! to whom, live in [`decoder`].
//!
//! This stage owns the meaning of captured bytes. Its contract with later
//! stages is [`Item`] and [`SessionSummary`] (re-exported below); everything
//! else here is private.
mod channel;
mod decoder;
mod frame;
mod framer;
mod http;
mod item;
mod jsonrpc;
mod mcp;
mod ndjson;
mod reassembly;
mod session;
mod sniff;
mod sse;
mod tls;

pub use decoder::Decoder;
pub use item::{
    BatchPos, CopyInfo, Direction, Flag, FlagReason, HttpMeta, HttpSession, HttpView,
    Implementation, Item, Kind, Peer, RequestRef, Round, SessionSummary, Transport, WriterPiece,
};
pub use mcp::{about as method_about, error_name};
pub use reassembly::Loss;
pub use sniff::{classify, Protocol};

// What later stages read of a capture passes through here, so that none
// reaches past this stage (DEVELOPERS.md, "Stages").
pub use crate::capture::{
    read_small, remove_side_files, same_file, KEYLOG_FEATURE, MAX_SMALL_FILE,
};
pub use crate::capture::{
    Block, BlockError, BlockFacts, BlockFilter, CaptureError, CaptureReader, CaptureWriter,
    CreateOptions, DropRow, Numbered, Parent, ProcessRow, Record, Report, SigningIdentity, Step,
    Streams, Tap, Totals, Verdict, VerifyOptions, ViewKey,
};

#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// How long a copy waits for its counterpart, and data for a hole to fill.
    pub hold_ns: u64,
    /// How long the first copies on a channel wait while its other side has
    /// never been seen (a server still starting up).
    pub first_contact_ns: u64,
    /// How far records may arrive behind the clock and still be ordered.
    pub reorder_ns: u64,
    /// Longest message kept whole; longer ones are cut (and flagged).
    pub max_line: usize,
    /// Bytes one stream or channel may hold back before it is forced on.
    pub max_held: usize,
    /// Bytes all of them together may hold: past it, the largest holders
    /// are forced on (and their open messages cut, flagged).
    pub max_total_held: usize,
    /// Streams decoded at most; the records of further streams are
    /// counted and flagged, not decoded.
    pub max_streams: usize,
    /// Open TLS with the capture's key log lines (false: the capture has
    /// none, or decode as if it had none, as `redact` leaves them out).
    pub keylog: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            hold_ns: 500_000_000,
            first_contact_ns: 5_000_000_000,
            reorder_ns: 50_000_000,
            max_line: 64 << 20,
            max_held: 64 << 20,
            max_total_held: 256 << 20,
            max_streams: 1 << 18,
            keylog: true,
        }
    }
}

/// A multiset of timestamps with a cheap minimum: what is held, by time.
#[derive(Debug, Default)]
struct MinSet(std::collections::BTreeMap<u64, u32>);

impl MinSet {
    fn insert(&mut self, v: u64) {
        *self.0.entry(v).or_default() += 1;
    }

    fn remove(&mut self, v: u64) {
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.0.entry(v) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    fn min(&self) -> Option<u64> {
        self.0.keys().next().copied()
    }
}
