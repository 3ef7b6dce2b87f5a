//! The raw event: Rust mirror of `struct mcpspy_event` in bpf/mcpspy.h.
//!
//! The kernel writes these records into the ring buffer; the capture file stores
//! them byte for byte; every reader parses them with [`RawEvent::parse`].
//! tests/event_layout.rs checks this mirror against the C header.

use serde::{Deserialize, Serialize};
use std::fmt;

mod clock;
mod files;
pub mod keylog;
mod store;
pub use clock::{clock_ns, monotonic_ns};
pub use files::open_regular;
pub use store::{Batch, DropRow, ProcessRow, Recorded, Store, StoreStats};

/// Must equal MCPSPY_EVENT_VERSION in bpf/mcpspy.h.
pub const EVENT_VERSION: u32 = 1;
pub const COMM_LEN: usize = 16;
/// Largest payload of one record (MCPSPY_CHUNK_MAX).
pub const CHUNK_MAX: usize = 16384;

/// `struct mcpspy_event`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u8,
    pub call: u8,
    pub direction: u8,
    pub fd_kind: u8,
    pub flags: u32,
    pub len: u32,
    pub fd: u32,
    pub ts_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub ino: u64,
    pub peer_ino: u64,
    pub stream_off: u64,
    pub call_len: u64,
    pub call_off: u64,
    pub ssl: u64,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub lport: u16,
    pub rport: u16,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

pub const HEADER_LEN: usize = std::mem::size_of::<EventHeader>();

/// enum mcpspy_record_kind
pub mod kind {
    pub const DATA: u8 = 1;
    pub const EXEC: u8 = 2;
    /// A watched TCP stream ended (stored under an optional record tag).
    pub const END: u8 = 3;
}

/// enum mcpspy_call
pub mod call {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const READV: u8 = 3;
    pub const WRITEV: u8 = 4;
    pub const RECVFROM: u8 = 5;
    pub const SENDTO: u8 = 6;
    pub const RECVMSG: u8 = 7;
    pub const SENDMSG: u8 = 8;
    pub const SSL_READ: u8 = 9;
    pub const SSL_WRITE: u8 = 10;
    pub const CLOSE: u8 = 11;
}

/// enum mcpspy_fd_kind
pub mod fd_kind {
    pub const PIPE: u8 = 1;
    pub const UNIX: u8 = 2;
    pub const TCP4: u8 = 3;
    pub const TCP6: u8 = 4;
    pub const OTHER: u8 = 5;
}

/// enum mcpspy_flags
pub mod flags {
    pub const READ_FAILED: u32 = 1 << 0;
    pub const TRUNCATED: u32 = 1 << 1;
    pub const STREAM_START: u32 = 1 << 2;
    pub const TLS: u32 = 1 << 3;
}

/// enum mcpspy_counter: per-CPU counters kept by the kernel programs.
pub mod counter {
    pub const EVENTS: usize = 0;
    pub const BYTES: usize = 1;
    pub const RING_FULL: usize = 2;
    pub const RING_FULL_BYTES: usize = 3;
    pub const READ_FAILED: usize = 4;
    pub const MAP_FULL: usize = 5;
    pub const TRUNCATED: usize = 6;
    pub const TRUNCATED_BYTES: usize = 7;
    pub const COUNT: usize = 8;
    /// Records lost, of every kind, in a set of counter values (the event and
    /// byte tallies are not losses).
    pub fn losses(counts: &[u64; COUNT]) -> u64 {
        counts[RING_FULL] + counts[READ_FAILED] + counts[MAP_FULL] + counts[TRUNCATED]
    }
    /// Column names, in index order, as the capture file's drop ledger uses them.
    pub const NAMES: [&str; COUNT] = [
        "events",
        "bytes",
        "ring_full",
        "ring_full_bytes",
        "read_failed",
        "map_full",
        "truncated",
        "truncated_bytes",
    ];
}

/// enum mcpspy_end_counter: the END records' own per-CPU counters.
pub mod end_counter {
    pub const SUBMITTED: usize = 0;
    pub const RING_FULL: usize = 1;
    pub const COUNT: usize = 2;
}

/// Which way the bytes moved, seen from the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// Into the process (read, recv, SSL_read).
    Read,
    /// Out of the process (write, send, SSL_write).
    Write,
}

/// One stream: one process's side of one pipe, socket or TLS connection, in
/// one direction. The kernel numbers each stream's bytes (`stream_off`); the
/// file's `streams` table, the decoder and `info` all key streams by this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    pub tgid: u32,
    /// Plaintext seen through the TLS library.
    pub tls: bool,
    /// The pipe or socket inode; for TLS, the SSL*, which is known before
    /// the socket is.
    pub id: u64,
    pub direction: Direction,
}

impl StreamId {
    /// The same file (or TLS connection) of the same process, the other way.
    pub fn reversed(self) -> StreamId {
        StreamId {
            direction: match self.direction {
                Direction::Read => Direction::Write,
                Direction::Write => Direction::Read,
            },
            ..self
        }
    }
}

/// A record that does not parse as an mcpspy event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    TooShort { len: usize },
    PayloadTooShort { declared: u32, present: usize },
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::TooShort { len } => {
                write!(
                    f,
                    "record of {len} bytes is shorter than the {HEADER_LEN}-byte header"
                )
            }
            EventError::PayloadTooShort { declared, present } => write!(
                f,
                "record declares {declared} payload bytes but holds {present}"
            ),
        }
    }
}

impl std::error::Error for EventError {}

/// One parsed record: the header and its payload, borrowed from the record bytes.
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    pub hdr: EventHeader,
    pub payload: &'a [u8],
}

impl<'a> RawEvent<'a> {
    /// Parses a record as the kernel wrote it. The ring slot may hold more
    /// bytes than `len` (size classes); they are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EventError> {
        if bytes.len() < HEADER_LEN {
            return Err(EventError::TooShort { len: bytes.len() });
        }
        // SAFETY: EventHeader is repr(C), made of integers and byte arrays (any
        // bit pattern is valid), and the slice holds at least HEADER_LEN bytes;
        // read_unaligned copes with any alignment.
        let hdr: EventHeader =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<EventHeader>()) };
        let end = HEADER_LEN + hdr.len as usize;
        if bytes.len() < end {
            return Err(EventError::PayloadTooShort {
                declared: hdr.len,
                present: bytes.len() - HEADER_LEN,
            });
        }
        Ok(RawEvent {
            hdr,
            payload: &bytes[HEADER_LEN..end],
        })
    }

    /// The record's bytes exactly as stored: header then `len` payload bytes.
    pub fn stored_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    pub fn direction(&self) -> Direction {
        self.hdr.direction()
    }

    /// The process name as the kernel reported it.
    pub fn comm(&self) -> String {
        comm_to_string(&self.hdr.comm)
    }

    pub fn is_tls(&self) -> bool {
        self.hdr.flags & flags::TLS != 0
    }

    /// The stream this record belongs to.
    pub fn stream_id(&self) -> StreamId {
        self.hdr.stream_id()
    }
}

impl EventHeader {
    pub fn direction(&self) -> Direction {
        if self.direction == 1 {
            Direction::Write
        } else {
            Direction::Read
        }
    }

    /// The stream a record with this header belongs to.
    pub fn stream_id(&self) -> StreamId {
        let tls = self.flags & flags::TLS != 0;
        StreamId {
            tgid: self.tgid,
            tls,
            id: if tls { self.ssl } else { self.ino },
            direction: self.direction(),
        }
    }

    /// The header's bytes, as the kernel lays them out.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // SAFETY: EventHeader is repr(C) with explicit padding fields, so every
        // byte is initialised; the array has exactly its size.
        unsafe { std::mem::transmute_copy(self) }
    }
}

/// TCP endpoints as text: (local address, local port, remote address, remote port).
pub fn tcp_endpoints(h: &EventHeader) -> Option<(String, u16, String, u16)> {
    let addr = |a: &[u8; 16]| -> String {
        if h.fd_kind == fd_kind::TCP4 {
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        } else {
            let v6 = std::net::Ipv6Addr::from(*a);
            // Dual-stack sockets carry IPv4 peers as ::ffff:a.b.c.d.
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
    };
    match h.fd_kind {
        fd_kind::TCP4 | fd_kind::TCP6 => Some((addr(&h.laddr), h.lport, addr(&h.raddr), h.rport)),
        _ => None,
    }
}

/// A NUL-padded kernel task name as text (lossy for non-UTF-8 bytes).
pub fn comm_to_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// Builds a record as the kernel would, for tests and fixtures made by hand.
pub fn encode(hdr: &EventHeader, payload: &[u8]) -> Vec<u8> {
    let mut h = *hdr;
    h.len = payload.len() as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_records() {
        let hdr = EventHeader {
            kind: kind::DATA,
            tgid: 42,
            comm: *b"python\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        let bytes = encode(&hdr, b"{\"id\":1}\n");
        let ev = RawEvent::parse(&bytes).unwrap();
        assert_eq!(ev.hdr.tgid, 42);
        assert_eq!(ev.payload, b"{\"id\":1}\n");
        assert_eq!(ev.comm(), "python");
        assert_eq!(ev.stored_len(), bytes.len());
        assert!(matches!(
            RawEvent::parse(&bytes[..10]),
            Err(EventError::TooShort { len: 10 })
        ));
        assert!(matches!(
            RawEvent::parse(&bytes[..bytes.len() - 1]),
            Err(EventError::PayloadTooShort { .. })
        ));
    }
}
