//! The capture file (schema/v1.sql, schema/README.md): one SQLite file that
//! holds the raw ring-buffer records in zstd-compressed blocks, with the
//! provenance of the recording, the processes seen and the drop ledger.
//!
//! This stage owns the file and its format: the block framing of records,
//! the schema, and the rule by which the format grows (optional record tags
//! and `meta.features`). It writes what the recorder hands it (the writer
//! is the recorder's `Store`) and reads it back for every later stage.

mod beside;
mod block;
mod cgroups;
mod derived;
mod guard;
mod keys;
mod open;
mod reader;
mod schema;
mod seal;
mod sealer;
mod small_file;
mod streams;
mod verify;
mod verify_deep;
mod writer;

pub use crate::event::open_regular;
pub use crate::event::{DropRow, ProcessRow};
pub use beside::remove_side_files;
pub use block::{append_event, BlockFacts, Numbered, Record, Records, KEYLOG_FEATURE};
pub use derived::{Parent, Step, ViewKey};
pub use keys::{fingerprint, generate as generate_key, load_public_key, SigningIdentity};
pub use reader::{
    Block, BlockError, BlockFilter, BlockIter, CaptureError, CaptureReader, StoredBlock, Totals,
    SQLITE_HEADER,
};
pub use schema::OTLP_EXPORT;
pub use small_file::{read_small, read_small_text, same_file, MAX_SMALL_FILE};
pub use streams::Streams;
pub use verify::{Report, Verdict, VerifyOptions};
pub use writer::{CaptureWriter, CreateOptions, Tap, BLOCK_TARGET};

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
