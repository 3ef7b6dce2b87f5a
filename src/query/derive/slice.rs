//! `mcpspy slice`: the messages a selection keeps, with what they need to
//! decode exactly as in the parent. Each message's streams are kept from
//! their start to just past the message's end; the other direction of the
//! same socket up to the same moment (an HTTP response needs its request);
//! every tick; the other records of the processes kept; and the whole of
//! any mix of writers' lines on one pipe a message belongs to (mixes.rs).
//! The child's view lists the messages selected: readers show those only.

use super::{mixes, Incarnation, Incarnations, Plan};
use crate::event::{kind, RawEvent, StreamId};
use crate::query::{
    run, view_key, BlockFilter, CopyInfo, Flow, IndexUse, Item, Progress, QueryError, Record,
    Selection, Sink, ViewKey,
};
use crate::query::{CaptureError, CaptureReader};
use std::collections::{HashMap, HashSet};
use std::io;

/// Bytes kept past a message's text: its terminator (a newline, the end of
/// an SSE event, the last chunk of a chunked body).
const SLACK: u64 = 16;

pub struct Slice {
    selection: Selection,
    view: HashSet<ViewKey>,
    /// Per stream incarnation: records starting below this offset are
    /// kept, and the latest time its messages need.
    streams: HashMap<Incarnation, Reach>,
    /// The other directions, kept up to a moment.
    siblings: HashMap<StreamId, u64>,
    pids: HashSet<u32>,
    incarnations: Incarnations,
}

#[derive(Clone, Copy, Default)]
struct Reach {
    below: u64,
    until_ts: u64,
    /// Records numbered up to this one are kept too: the offsets of TLS
    /// opened with the key log are the plaintext's, not the records'.
    last_seq: u64,
}

/// A selected message's copy, before its stream is known: its first
/// record, how far its text reaches, and its last record.
#[derive(Clone, Copy)]
pub(super) struct CopyEnd {
    pub end: u64,
    pub last_ts: u64,
    pub last_seq: u64,
}

impl CopyEnd {
    /// A copy's first record and its reach, if it names records.
    pub fn of(copy: &CopyInfo<'_>) -> Option<(u64, CopyEnd)> {
        let (&first, &last) = (copy.seqs.first()?, copy.seqs.iter().max()?);
        Some((
            first,
            CopyEnd {
                end: copy.end,
                last_ts: copy.last_ts,
                last_seq: last,
            },
        ))
    }

    /// Notes a copy's reach by its first record, as far as any reaches.
    pub fn note(copies: &mut HashMap<u64, CopyEnd>, (first, c): (u64, CopyEnd)) {
        let e = copies.entry(first).or_insert(c);
        e.end = e.end.max(c.end);
        e.last_ts = e.last_ts.max(c.last_ts);
        e.last_seq = e.last_seq.max(c.last_seq);
    }
}

/// Collects, from the selected messages, their view keys and their copies,
/// and the interleaved ones among them.
struct Collect<'a> {
    view: &'a mut HashSet<ViewKey>,
    copies: &'a mut HashMap<u64, CopyEnd>,
    mixed: &'a mut HashSet<mixes::MixKey>,
}

impl Sink for Collect<'_> {
    fn needs_text(&self) -> bool {
        false
    }

    fn item(&mut self, item: &Item<'_>, _: u64) -> io::Result<Flow> {
        self.view.extend(view_key(item));
        self.mixed.extend(mixes::key(item));
        for copy in [&item.writer, &item.reader].into_iter().flatten() {
            if let Some(c) = CopyEnd::of(copy) {
                CopyEnd::note(self.copies, c);
            }
        }
        Ok(Flow::Continue)
    }
}

impl Slice {
    /// Finds what `sel` keeps in `parent`: one read of the messages, then
    /// one pass over the records to learn each copy's stream.
    pub fn plan(
        parent: &CaptureReader,
        sel: &Selection,
        progress: &mut dyn Progress,
    ) -> Result<Slice, QueryError> {
        let mut view = HashSet::new();
        let mut copies = HashMap::new();
        let mut mixed = HashSet::new();
        let mut collect = Collect {
            view: &mut view,
            copies: &mut copies,
            mixed: &mut mixed,
        };
        let read = run(parent, sel, &mut collect, IndexUse::WhenItHelps, progress)?;
        // Interleaved lines decode only with the rest of their mix: a
        // second read finds it.
        if !mixed.is_empty() {
            let mut all = mixes::Mixes::new(mixed);
            let every = Selection::default();
            run(parent, &every, &mut all, IndexUse::WhenItHelps, progress)?;
            all.add_to(&mut copies);
        }
        // Said now, not as the records are copied: the selection may be
        // empty because of the damage.
        if read.damage > 0 {
            return Err(QueryError::Capture(CaptureError::Damaged {
                path: parent.name().to_path_buf(),
                why: format!(
                    "the read met {} damaged places (unreadable blocks or records); a slice \
                     would silently lack what they held",
                    read.damage
                ),
            }));
        }
        let mut streams: HashMap<Incarnation, Reach> = HashMap::new();
        let mut incarnations = Incarnations::default();
        for block in parent.blocks(&BlockFilter::default())? {
            // An unreadable block is refused when the records are copied.
            let Ok(block) = block else { continue };
            for rec in block.records() {
                let Record::Event(ev) = rec.record else {
                    continue;
                };
                if ev.hdr.kind != kind::DATA {
                    continue;
                }
                let at = incarnations.of(rec.seq, &ev);
                let Some(c) = copies.get(&rec.seq) else {
                    continue;
                };
                let r = streams.entry(at).or_default();
                r.below = r.below.max(c.end.saturating_add(SLACK));
                r.until_ts = r.until_ts.max(c.last_ts);
                r.last_seq = r.last_seq.max(c.last_seq);
            }
        }
        let mut siblings: HashMap<StreamId, u64> = HashMap::new();
        for ((id, _), r) in &streams {
            let t = siblings.entry(id.reversed()).or_insert(0);
            *t = (*t).max(r.until_ts);
        }
        let pids = streams.keys().map(|s| s.0.tgid).collect();
        Ok(Slice {
            selection: sel.clone(),
            view,
            streams,
            siblings,
            pids,
            incarnations: Incarnations::default(),
        })
    }

    /// The messages selected.
    pub fn messages(&self) -> usize {
        self.view.len()
    }
}

impl Plan for Slice {
    fn op(&self) -> &'static str {
        "slice"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "selection": self.selection,
            "messages": self.view.len(),
        })
    }

    fn keeps(&mut self, seq: u64, ev: &RawEvent<'_>) -> bool {
        let h = &ev.hdr;
        if h.kind != kind::DATA {
            return self.pids.contains(&h.tgid);
        }
        let at = self.incarnations.of(seq, ev);
        self.streams
            .get(&at)
            .is_some_and(|r| h.stream_off < r.below || seq <= r.last_seq)
            || self.siblings.get(&at.0).is_some_and(|&t| h.ts_ns <= t)
    }

    fn view(&self) -> Option<&HashSet<ViewKey>> {
        Some(&self.view)
    }
}
