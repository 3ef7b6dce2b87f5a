//! What the recorder hands on: ring-buffer records in batches, the processes
//! it looked up, its drop ledger and provenance. This is the contract between
//! the recorder and the file, beside the raw event: the recorder knows nothing
//! of files, the capture nothing of the recorder, and the capture writer
//! implements [`Store`].

use super::{counter, EventHeader, RawEvent};
use anyhow::Result;

/// Keeps what the recorder collects. Called from the recorder's writer
/// thread only, so that compression and storage never stall the ring.
pub trait Store: Send {
    /// A fact about the recording (the capture's `meta` table).
    fn meta(&mut self, key: &str, value: &str) -> Result<()>;
    /// Records in the order the ring delivered them.
    fn records(&mut self, batch: &Batch) -> Result<()>;
    fn process(&mut self, row: &ProcessRow) -> Result<()>;
    fn drops(&mut self, row: &DropRow) -> Result<()>;
    /// Makes everything so far durable: a killed recorder keeps it.
    fn commit(&mut self) -> Result<()>;
    fn stats(&self) -> StoreStats;
    /// Commits and closes; the store is complete.
    fn finish(self: Box<Self>) -> Result<StoreStats>;
    /// Nothing was recorded (the programs never attached): leave nothing behind.
    fn discard(self: Box<Self>);
}

/// Running totals of a store, for the status line and the final summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Records stored (events and clock ticks).
    pub records: u64,
    pub events: u64,
    pub payload_bytes: u64,
    pub streams: u64,
    pub blocks: u64,
    /// Bytes the store takes on disk now.
    pub file_bytes: u64,
}

/// One entry of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Recorded<'a> {
    /// A ring-buffer record, trimmed to its header and `len` payload bytes.
    Event(RawEvent<'a>),
    /// Every record submitted before `ts_ns` is in this batch or an earlier one.
    Tick { ts_ns: u64 },
    /// A line of a TLS key log the recorder follows, read at `ts_ns`.
    KeyLog { ts_ns: u64, line: &'a [u8] },
}

/// Records collected between two polls of the ring.
#[derive(Default)]
pub struct Batch {
    /// The events' payloads, one after another.
    payloads: Vec<u8>,
    entries: Vec<Entry>,
}

enum Entry {
    Event {
        hdr: EventHeader,
        end: usize,
    },
    Tick(u64),
    /// A key log line: its bytes end at `end` in `payloads`.
    KeyLog {
        ts_ns: u64,
        end: usize,
    },
}

impl Batch {
    /// Keeps a record; the ring slot may be larger than the record (size
    /// classes), and only the header and its `len` payload bytes are kept.
    pub fn push_event(&mut self, ev: &RawEvent<'_>) {
        self.payloads.extend_from_slice(ev.payload);
        self.entries.push(Entry::Event {
            hdr: ev.hdr,
            end: self.payloads.len(),
        });
    }

    pub fn push_tick(&mut self, ts_ns: u64) {
        self.entries.push(Entry::Tick(ts_ns));
    }

    pub fn push_keylog(&mut self, ts_ns: u64, line: &[u8]) {
        self.payloads.extend_from_slice(line);
        self.entries.push(Entry::KeyLog {
            ts_ns,
            end: self.payloads.len(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = Recorded<'_>> {
        let mut start = 0;
        self.entries.iter().map(move |e| match e {
            Entry::Event { hdr, end } => {
                let payload = &self.payloads[start..*end];
                start = *end;
                Recorded::Event(RawEvent { hdr: *hdr, payload })
            }
            Entry::Tick(ts_ns) => Recorded::Tick { ts_ns: *ts_ns },
            Entry::KeyLog { ts_ns, end } => {
                let line = &self.payloads[start..*end];
                start = *end;
                Recorded::KeyLog {
                    ts_ns: *ts_ns,
                    line,
                }
            }
        })
    }
}

/// A process seen in the records, as /proc described it (a row of the
/// capture's `processes` table).
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
    /// Its cgroup v2 (id, path below the root), and the container that
    /// cgroup belongs to where its name says so (table `process_cgroups`).
    pub cgroup: Option<(u64, String)>,
    pub container_id: Option<String>,
}

/// The kernel's loss counters' increase over a time slice (a row of the
/// capture's drop ledger).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropRow {
    pub start_ktime_ns: u64,
    pub end_ktime_ns: u64,
    /// Indexed by [`counter`].
    pub counts: [u64; counter::COUNT],
    pub user_lost: u64,
}

impl DropRow {
    /// Records or bytes lost in this slice (the event and byte tallies are not losses).
    pub fn losses(&self) -> u64 {
        counter::losses(&self.counts) + self.user_lost
    }
}
