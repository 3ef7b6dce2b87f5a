//! Derived captures (schema/derived.sql): a new capture made from a
//! parent's records, some left out and some rewritten in place, sealed,
//! and naming its parents. A [`Plan`] decides ([`slice`], [`redact`]);
//! [`derive`] copies, the same way for both.

mod find;
mod gate;
mod mixes;
pub mod redact;
pub mod rules;
pub mod slice;
mod whole;

use super::{
    BlockFilter, CaptureError, CaptureReader, CaptureWriter, CreateOptions, ProcessRow, Record,
    Step, Streams, ViewKey,
};
use crate::event::{flags, RawEvent, StreamId, HEADER_LEN};
use foldhash::{HashMap, HashMapExt, HashSetExt};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use whole::Seen;

/// What one derivation decides about its parent.
pub trait Plan {
    /// The step's name in the derivation (`slice`, `redact`).
    fn op(&self) -> &'static str;
    /// What the step was asked, as the derivation records it.
    fn params(&self) -> serde_json::Value;
    /// Whether the parent's ring-buffer record `seq` is kept (ticks always are).
    fn keeps(&mut self, seq: u64, ev: &RawEvent<'_>) -> bool;
    /// Rewrites a kept record's payload in place; its length stays.
    fn rewrite(&mut self, seq: u64, ev: &RawEvent<'_>, payload: &mut [u8]) {
        let _ = (seq, ev, payload);
    }
    /// Rewrites a process row, or a `meta` value, before it is copied.
    fn process(&mut self, row: &mut ProcessRow) {
        let _ = row;
    }
    fn meta(&mut self, key: &str, value: &mut String) {
        let _ = (key, value);
    }
    /// The messages the child's view lists, named in the parent; None: no view.
    fn view(&self) -> Option<&HashSet<ViewKey>>;
    /// Whether the parent's TLS key log lines are kept (they unlock the
    /// ciphertext they belong to).
    fn keeps_keylog(&mut self) -> bool {
        true
    }
    /// The child's whole streams table, when the plan knows it before the
    /// copy (it keeps or leaves out each stream whole, both directions
    /// together): the writer takes it instead of counting the records.
    fn streams(&mut self) -> Option<Streams> {
        None
    }
    /// Parent block `id`, stored as `stored`, when it is kept as it is
    /// (every record kept, none rewritten): what its records are, learned
    /// when the plan read them. An error when the block is not what the
    /// plan read.
    fn whole_block(&self, id: i64, stored: &[u8]) -> Result<Option<&Seen>, String> {
        let _ = (id, stored);
        Ok(None)
    }
}

/// A stream's incarnation: an SSL* or a socket reused by a new connection
/// starts its stream over (STREAM_START, offsets from 0 again), under the
/// same [`StreamId`]. Every pass that keys anything by stream offset keys
/// it by incarnation too, as counted here in file order.
#[derive(Default)]
pub struct Incarnations(HashMap<StreamId, Lives>);

/// One stream's incarnations so far.
struct Lives {
    /// The offset after its bytes so far.
    next: u64,
    /// The records where each incarnation began (their count is the
    /// current one's number).
    starts: Vec<u64>,
}

/// A stream and its incarnation.
pub type Incarnation = (StreamId, u32);

impl Incarnations {
    /// The incarnation data record `seq` belongs to (records of each
    /// stream must be shown to it in file order).
    pub fn of(&mut self, seq: u64, ev: &RawEvent<'_>) -> Incarnation {
        let id = ev.stream_id();
        let h = &ev.hdr;
        let end = h.stream_off.saturating_add(ev.payload.len() as u64);
        let l = self.0.entry(id).or_insert_with(|| Lives {
            next: end,
            starts: Vec::new(),
        });
        if h.flags & flags::STREAM_START != 0 && h.stream_off < l.next {
            l.starts.push(seq);
            l.next = end;
        } else {
            l.next = l.next.max(end);
        }
        (id, l.starts.len() as u32)
    }

    /// The incarnation of stream `id` that record `seq` belongs to, once
    /// [`Self::of`] has been shown the records up to it.
    pub fn at(&self, id: StreamId, seq: u64) -> Incarnation {
        let n = self
            .0
            .get(&id)
            .map_or(0, |l| l.starts.partition_point(|&s| s <= seq));
        (id, n as u32)
    }
}

/// How to write the child.
#[derive(Default)]
pub struct Target {
    pub path: PathBuf,
    pub force: bool,
    pub owner: Option<(u32, u32)>,
    pub signer: Option<super::SigningIdentity>,
}

/// What a derivation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    pub records_kept: u64,
    pub records_left_out: u64,
    pub file_bytes: u64,
}

#[derive(Debug)]
pub enum DeriveError {
    Capture(CaptureError),
    /// The parent cannot be derived from without losing something silently.
    Refused(String),
    Write(anyhow::Error),
}

impl fmt::Display for DeriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeriveError::Capture(e) => e.fmt(f),
            DeriveError::Refused(why) => f.write_str(why),
            DeriveError::Write(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for DeriveError {}

impl From<CaptureError> for DeriveError {
    fn from(e: CaptureError) -> Self {
        DeriveError::Capture(e)
    }
}

impl From<anyhow::Error> for DeriveError {
    fn from(e: anyhow::Error) -> Self {
        DeriveError::Write(e)
    }
}

/// `meta` keys the child does not copy: its own seal and derivation make
/// them anew (the parent's recording provenance is copied as it is).
const NOT_COPIED: [&str; 6] = [
    "capture_id",
    "features",
    "compression",
    "signer_public_key",
    "signer_fingerprint",
    "derivation",
];

/// Writes the child of `parent` that `plan` describes. The child is built
/// under a temporary name beside `target` and appears whole, or not at all.
pub fn derive(
    parent: &CaptureReader,
    target: Target,
    plan: &mut dyn Plan,
) -> Result<Derived, DeriveError> {
    refuse_unreadable(parent, &target.path)?;
    if !target.force && std::fs::symlink_metadata(&target.path).is_ok() {
        return Err(DeriveError::Refused(format!(
            "{} already exists; choose another name or pass --force to overwrite it",
            target.path.display()
        )));
    }
    // Named as the writer names a recorder's half-made file, so that the
    // next writer in this folder removes it if this process dies.
    let part = target.path.with_file_name(format!(
        ".mcpspy-{}-{}.db.part",
        std::process::id(),
        target
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
    ));
    let w = CaptureWriter::create(
        &part,
        &CreateOptions {
            force: false,
            owner: target.owner,
        },
    )?;
    let written = write_child(parent, w, target.signer, plan)
        .and_then(|d| place(&part, &target.path, target.force).map(|()| d));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// Puts the finished child at `path`; without `force`, never over a file
/// that appeared meanwhile.
fn place(part: &Path, path: &Path, force: bool) -> Result<(), DeriveError> {
    let failed = |e: std::io::Error| {
        DeriveError::Write(anyhow::Error::new(e).context(format!("creating {}", path.display())))
    };
    if force {
        crate::decode::remove_side_files(path)?;
        return std::fs::rename(part, path).map_err(failed);
    }
    std::fs::hard_link(part, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            DeriveError::Refused(format!(
                "{} already exists; choose another name or pass --force to overwrite it",
                path.display()
            ))
        } else {
            failed(e)
        }
    })?;
    std::fs::remove_file(part).map_err(failed)
}

fn write_child(
    parent: &CaptureReader,
    mut w: CaptureWriter,
    signer: Option<super::SigningIdentity>,
    plan: &mut dyn Plan,
) -> Result<Derived, DeriveError> {
    let meta = parent.meta()?;
    let mut steps = parent.derivation()?;
    if let Some(s) = signer {
        w = w.with_signer(s)?;
    }
    // Facts kept as features (what a live tap did) stay features; the
    // others (seal, derived, cgroups) are the child's own writer's to name.
    for (k, v) in &meta {
        if !NOT_COPIED.contains(&k.as_str()) {
            let mut v = v.clone();
            plan.meta(k, &mut v);
            if parent.lists_feature(k) {
                w.set_fact(k, &v)?;
            } else {
                w.set_meta(k, &v)?;
            }
        }
    }
    let copied = copy_records(parent, &mut w, plan)?;
    for mut p in parent.processes()? {
        if copied.pids.contains(&p.pid) {
            plan.process(&mut p);
            w.add_process(&p)?;
        }
    }
    for d in parent.drops()? {
        w.add_drops(&d)?;
    }
    steps.push(Step {
        op: plan.op().into(),
        parent: parent.as_parent(copied.events)?,
        records_kept: copied.kept,
        records_left_out: copied.events - copied.kept,
        params: plan.params(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    });
    w.derived(&steps, plan.view().is_some())?;
    if plan.view().is_some() {
        for key in &copied.view {
            w.add_view(*key)?;
        }
    }
    let stats = w.finish()?;
    Ok(Derived {
        records_kept: copied.kept,
        records_left_out: copied.events - copied.kept,
        file_bytes: stats.file_bytes,
    })
}

/// What the record pass copied.
struct Copied {
    events: u64,
    kept: u64,
    pids: foldhash::HashSet<u32>,
    /// The streams any kept record belongs to.
    streams: foldhash::HashSet<StreamId>,
    /// The view, renumbered for the child.
    view: Vec<ViewKey>,
}

fn copy_records(
    parent: &CaptureReader,
    w: &mut CaptureWriter,
    plan: &mut dyn Plan,
) -> Result<Copied, DeriveError> {
    // The view's records, by parent number: the child numbers them anew.
    let mut wanted: HashMap<u64, Vec<u64>> = HashMap::new();
    for &(seq, off) in plan.view().into_iter().flatten() {
        wanted.entry(seq).or_default().push(off);
    }
    let mut c = Copied {
        events: 0,
        kept: 0,
        pids: foldhash::HashSet::new(),
        streams: foldhash::HashSet::new(),
        view: Vec::new(),
    };
    if let Some(streams) = plan.streams() {
        w.give_streams(streams)?;
    }
    let mut bytes = Vec::new();
    let mut blocks = parent.blocks(&BlockFilter::default())?;
    let unreadable = |e: super::BlockError| DeriveError::Refused(format!("{e}"));
    while let Some(next) = blocks.next_stored() {
        let stored = next.map_err(unreadable)?;
        // A block left as it is goes over compressed, its records unread
        // (a view names records, which the child numbers anew one by one).
        let seen = (plan.whole_block(stored.block_id, &stored.stored))
            .map_err(|why| DeriveError::Refused(format!("{}: {why}", parent.name().display())))?;
        if wanted.is_empty() {
            if let Some(seen) = seen {
                if w.take_block(&stored.stored, &seen.facts)? {
                    c.events += seen.facts.events;
                    c.kept += seen.facts.events;
                    for (id, _) in &seen.facts.streams {
                        c.streams.insert(*id);
                        c.pids.insert(id.tgid);
                    }
                    c.pids.extend(seen.exec_pids.iter().copied());
                    continue;
                }
            }
        }
        let block = stored.open().map_err(unreadable)?;
        for rec in block.records() {
            match rec.record {
                Record::Tick { ts_ns } => w.push_tick(ts_ns)?,
                // A stream's end goes with the stream: kept when any of its
                // records was (it carries no content to redact).
                Record::End(ev) => {
                    if c.streams.contains(&ev.stream_id()) {
                        if let Some(offs) = wanted.get(&rec.seq) {
                            let seq = w.records();
                            c.view.extend(offs.iter().map(|&o| (seq, o)));
                        }
                        w.push_event(&ev.hdr.to_bytes())?;
                    }
                }
                Record::KeyLog { ts_ns, line } => {
                    if plan.keeps_keylog() {
                        w.push_keylog(ts_ns, line)?;
                    }
                }
                Record::Damaged { reason, .. } => {
                    return Err(DeriveError::Refused(format!(
                        "record {} of the parent is damaged ({reason}): a derived capture would \
                         silently lack it",
                        rec.seq
                    )))
                }
                Record::Event(ev) => {
                    c.events += 1;
                    if !plan.keeps(rec.seq, &ev) {
                        continue;
                    }
                    c.kept += 1;
                    c.pids.insert(ev.hdr.tgid);
                    c.streams.insert(ev.stream_id());
                    bytes.clear();
                    bytes.extend_from_slice(&ev.hdr.to_bytes());
                    bytes.extend_from_slice(ev.payload);
                    plan.rewrite(rec.seq, &ev, &mut bytes[HEADER_LEN..]);
                    if let Some(offs) = wanted.get(&rec.seq) {
                        let seq = w.records();
                        c.view.extend(offs.iter().map(|&o| (seq, o)));
                    }
                    w.push_event(&bytes)?;
                }
            }
        }
        // The child's blocks end where the parent's do, so that a block
        // the derivation left as it was keeps its compressed bytes.
        w.end_block(&block.data, &block.stored)?;
    }
    // A block that did not match its seal is found only as it is read.
    if let Some(alarm) = parent.seal_alarm() {
        return Err(DeriveError::Refused(format!(
            "{}: {alarm}: it was altered after it was written, and a derived capture would seal it anew (mcpspy verify says more)",
            parent.name().display()
        )));
    }
    Ok(c)
}

/// A parent the child would silently differ from is refused: unreadable
/// or damaged (found as the records are copied), holding records of
/// features this mcpspy does not know, or with a broken seal; and the child
/// may not be the parent.
fn refuse_unreadable(parent: &CaptureReader, out: &Path) -> Result<(), DeriveError> {
    if crate::decode::same_file(parent.path(), out) {
        return Err(DeriveError::Refused(format!(
            "{} is the capture being read: a derived capture is a new file, and the original is \
             never modified",
            out.display()
        )));
    }
    if let Some(note) = parent
        .notes
        .iter()
        .find(|n| n.contains("features this mcpspy"))
    {
        return Err(DeriveError::Refused(format!(
            "{note}; derive with that mcpspy, or the child would lack what they hold"
        )));
    }
    // A child is sealed anew: from a parent whose seal is broken, it would
    // vouch for what may not be what was recorded.
    if let Some(why) = parent.seal_broken() {
        return Err(DeriveError::Refused(format!(
            "{}: the seal is broken ({why}); a derived capture would seal what may not be what was recorded (mcpspy verify says more)",
            parent.name().display()
        )));
    }
    Ok(())
}
