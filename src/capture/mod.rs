//! The capture file: one SQLite file holding the raw ring-buffer records
//! (zstd-compressed blocks), provenance, processes and the drop ledger.
//! schema/v1.sql documents every table.

pub mod block;
pub mod reader;
pub mod schema;
pub mod writer;

pub use block::{Numbered, Record};
pub use reader::{Block, BlockError, BlockFilter, CaptureError, CaptureReader, Totals};
pub use writer::{CaptureWriter, WriterStats};

use crate::event::counter;

/// A row of the `processes` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRow {
    pub pid: u32,
    pub seen_ts_ns: u64,
    pub comm: String,
    pub exe: Option<String>,
    /// JSON array of the arguments.
    pub cmdline: Option<String>,
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    pub start_time_ns: Option<u64>,
}

/// A row of the drop ledger: counter increases over a time slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropRow {
    pub start_ktime_ns: u64,
    pub end_ktime_ns: u64,
    /// Indexed by crate::event::counter.
    pub counts: [u64; counter::COUNT],
    pub user_lost: u64,
}

impl DropRow {
    /// Records or bytes lost in this slice (the event and byte tallies are not losses).
    pub fn losses(&self) -> u64 {
        counter::losses(&self.counts) + self.user_lost
    }
}

/// A row of the `streams` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream_id: i64,
    pub pid: u32,
    pub fd: u32,
    pub fd_kind: u8,
    pub tls: bool,
    pub ssl: u64,
    pub ino: u64,
    pub peer_ino: u64,
    pub direction: String,
    pub laddr: Option<String>,
    pub lport: Option<u16>,
    pub raddr: Option<String>,
    pub rport: Option<u16>,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub events: u64,
    pub bytes: u64,
}
