//! Where `redact`'s secrets are, as stream offsets of the raw records,
//! found in one read of the capture.
//!
//! The decoder's messages: the rules run on each message's text, and a
//! secret's place in the text is its place in the stream the copy names
//! (the text of an NDJSON line, an HTTP body or an SSE event is the
//! stream's bytes), or, where framing lies inside the text (chunked
//! bodies), is found by lining the text up with the stream's bytes, which
//! a second read gathers. Beside the decoder, the same read's records
//! give the streams' incarnations, HTTP header lines and exec names.
//! Nothing is guessed: a secret whose bytes cannot be located is counted,
//! and `redact` refuses.

use super::redact::{token, Place};
use super::rules::{self, merge, Rules};
use super::whole::{Seen, Sightings, Whole};
use super::{Incarnation, Incarnations};
use crate::event::{fd_kind, flags, kind, Direction, RawEvent, StreamId};
use crate::query::driver::{decode_tapped, ReadTap};
use crate::query::{
    Block, BlockFilter, CaptureError, CaptureReader, FlagReason, Flow, Item, Kind, Numbered,
    Progress, QueryError, Record, Streams,
};
// A fast seeded hash: these maps are looked up for every record.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::rc::Rc;

/// Bytes [start, end) of a stream (or of a record's payload) and what
/// replaces them (shared by a message's two copies).
#[derive(Clone, Debug)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub with: Rc<[u8]>,
}

/// Everything `redact` replaces and leaves out.
#[derive(Default)]
pub struct Found {
    /// By stream incarnation: the widest span's length, and the spans by
    /// start (they may overlap: a header line's and a message's).
    spans: HashMap<Incarnation, (u64, Vec<Span>)>,
    records: HashMap<u64, Vec<Span>>,
    incarnations: Incarnations,
    keep_non_mcp: bool,
    mcp_streams: HashSet<StreamId>,
    pids: HashSet<u32>,
    /// Streams that carry no MCP message (left out unless kept).
    non_mcp_streams: usize,
    /// The child's streams table, known before the copy: streams are kept
    /// or left out whole, both directions together.
    streams: Option<Streams>,
    whole: Whole,
    /// Non-MCP lines in MCP stdio streams, blanked (both copies).
    pub blanked: u64,
    /// Secrets whose bytes could not be located in the records.
    pub unlocated: u64,
    tally: Tally,
}

/// How many secrets each rule found where: (rule, place) → count.
pub type Tally = HashMap<(usize, Place), u64>;

/// What the user asked of the finding.
#[derive(Clone, Copy)]
pub struct Asked {
    /// Records of streams that carry no MCP are kept.
    pub keep_non_mcp: bool,
    /// Secrets in messages are counted by message (an entry each, for a
    /// listing), else by rule.
    pub itemised: bool,
}

impl Found {
    /// What was found where, handed over once.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Whether a data record of stream `id` is kept.
    pub fn keeps_stream(&self, id: &StreamId) -> bool {
        self.keep_non_mcp || self.mcp_streams.contains(id)
    }

    /// Whether an exec record (or process row) of `pid` is kept.
    pub fn keeps_pid(&self, pid: u32) -> bool {
        self.keep_non_mcp || self.pids.contains(&pid)
    }

    /// The child's streams table, handed over once.
    pub fn take_streams(&mut self) -> Option<Streams> {
        self.streams.take()
    }

    /// The parent's blocks that are kept as they are.
    pub fn whole(&self) -> &Whole {
        &self.whole
    }

    /// Whether the block `seen` is kept as it is: every record kept, and
    /// none rewritten.
    fn unchanged(&self, seen: &Seen) -> bool {
        let f = &seen.facts;
        f.damaged == 0
            && f.skipped == 0
            && f.keylog_lines == 0
            && !seen.exec_secret
            && seen.exec_pids.iter().all(|&p| self.keeps_pid(p))
            && seen
                .ends
                .iter()
                .all(|(s, had)| *had && self.keeps_stream(s))
            && seen.ranges.iter().all(|(at, lo, hi)| {
                self.keeps_stream(&at.0) && self.spans_over(at, *lo, hi - lo).next().is_none()
            })
    }

    pub fn streams_left_out(&self) -> usize {
        self.non_mcp_streams
    }

    /// The incarnation of the stream that data record `seq` belongs to.
    pub fn incarnation(&self, seq: u64, ev: &RawEvent<'_>) -> Incarnation {
        self.incarnations.at(ev.stream_id(), seq)
    }

    /// The spans of stream incarnation `at` that overlap [off, off + len).
    pub fn spans_over(&self, at: &Incarnation, off: u64, len: u64) -> impl Iterator<Item = &Span> {
        let (widest, spans) = self
            .spans
            .get(at)
            .map_or((0, &[][..]), |(w, l)| (*w, &l[..]));
        // Those before `from` end before `off`, being no wider.
        let from = spans.partition_point(|s| s.start.saturating_add(widest) <= off);
        spans[from..]
            .iter()
            .take_while(move |s| s.start < off.saturating_add(len))
            .filter(move |s| s.end > off)
    }

    pub fn record_spans(&self, seq: u64) -> &[Span] {
        self.records.get(&seq).map_or(&[], Vec::as_slice)
    }
}

/// A non-MCP line's copy, blanked once it is known whether its stream
/// carries MCP.
struct Blank {
    at: Incarnation,
    span: Span,
    item: u64,
}

/// A copy whose text has framing inside it: lined up with the stream's
/// bytes once they are gathered.
struct Align {
    stream: StreamId,
    first: u64,
    start: u64,
    end: u64,
    text: Vec<u8>,
    finds: Vec<rules::Found>,
    raw: Vec<u8>,
    /// Bytes of the region gathered so far (a gap leaves zeros).
    filled: u64,
}

/// What the records say as the decoder reads them: stream incarnations,
/// HTTP header lines, exec records.
struct Scan<'a> {
    rules: &'a Rules,
    key: &'a [u8],
    incarnations: Incarnations,
    carries: HashMap<Incarnation, Carry>,
    /// Streams whose HTTP names an MCP session (Mcp-Session-Id): they are
    /// the session's too (its DELETE, its GET stream) though no message
    /// travels in them.
    session_streams: HashSet<StreamId>,
    spans: HashMap<Incarnation, Vec<Span>>,
    records: HashMap<u64, Vec<Span>>,
    tally: Tally,
    /// Every stream's row, as a writer of every record would make it.
    streams: Streams,
    sightings: Sightings,
    /// The last record's number, and the first that did not follow it:
    /// incarnations and exec records are keyed by record number.
    last_seq: Option<u64>,
    disordered: Option<(u64, u64)>,
}

/// What the decoder's messages say.
struct Collect<'a> {
    rules: &'a Rules,
    key: &'a [u8],
    asked: Asked,
    spans: HashMap<Incarnation, Vec<Span>>,
    blanks: Vec<Blank>,
    align: Vec<Align>,
    /// The streams that carry MCP messages.
    of_messages: HashSet<StreamId>,
    /// Lines several writers mixed (item numbers): blanked in any stream.
    mixed: HashSet<u64>,
    tally: Tally,
}

/// The scan, shown the records beside the decoder.
struct Tapped<'s, 'a>(&'s RefCell<Scan<'a>>);

impl ReadTap for Tapped<'_, '_> {
    fn block(&mut self, block: &Block) {
        self.0.borrow_mut().sightings.block(block);
    }

    fn record(&mut self, rec: &Numbered<'_>) {
        self.0.borrow_mut().record(rec);
    }
}

impl Scan<'_> {
    fn record(&mut self, rec: &Numbered<'_>) {
        if let Some(last) = self.last_seq.filter(|&l| rec.seq <= l) {
            self.disordered.get_or_insert((last, rec.seq));
        }
        self.last_seq = Some(rec.seq);
        let mut seen = self.sightings.current();
        if let Some(s) = seen.as_deref_mut() {
            s.facts.add(&rec.record);
        }
        let ev = match &rec.record {
            Record::Event(ev) => ev,
            Record::End(ev) => {
                if let Some(s) = seen {
                    let id = ev.stream_id();
                    s.ends.push((id, self.streams.id(&id).is_some()));
                }
                return;
            }
            _ => return,
        };
        let h = &ev.hdr;
        if h.kind != kind::DATA {
            let mut finds = Vec::new();
            self.rules.in_text(ev.payload, &mut finds);
            for f in merge(finds) {
                *self.tally.entry((f.rule, Place::Exec(h.tgid))).or_default() += 1;
                self.records.entry(rec.seq).or_default().push(Span {
                    start: f.start as u64,
                    end: f.end as u64,
                    with: token(self.key, &ev.payload[f.start..f.end]).into(),
                });
            }
            if let Some(s) = seen {
                if !s.exec_pids.contains(&h.tgid) {
                    s.exec_pids.push(h.tgid);
                }
                s.exec_secret |= self.records.contains_key(&rec.seq);
            }
            return;
        }
        let at = self.incarnations.of(rec.seq, ev);
        self.streams.note(ev);
        if let Some(s) = seen {
            let end = h.stream_off.saturating_add(ev.payload.len() as u64);
            s.data(at, h.stream_off, end);
        }
        let network =
            h.flags & flags::TLS != 0 || matches!(h.fd_kind, fd_kind::TCP4 | fd_kind::TCP6);
        if !network {
            return;
        }
        let carry = self.carries.entry(at).or_default();
        let (found, names_session) =
            scan_headers(carry, h.stream_off, ev.payload, self.rules, self.key);
        if names_session {
            self.session_streams.insert(at.0);
        }
        let place = Place::Headers {
            written: ev.direction() == Direction::Write,
            pid: h.tgid,
        };
        for (f, span) in found {
            *self.tally.entry((f.rule, place.clone())).or_default() += 1;
            self.spans.entry(at).or_default().push(span);
        }
    }
}

impl Collect<'_> {
    /// Takes one item; `scan` has seen every record it is made of.
    fn item(&mut self, item: &Item<'_>, scan: &Scan<'_>) {
        let copies: Vec<_> = [&item.writer, &item.reader]
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c.stream, *c.seqs.iter().min()?, c.start, c.end)))
            .collect();
        let framed_as_lines = item
            .transport
            .is_some_and(|t| matches!(t.family(), "stdio" | "tcp"));
        if let Kind::Flagged(f) = &item.kind {
            // A whole line, not one element of a batch whose others are MCP.
            let whole_line = item.batch.is_none();
            // A line mixed of several writers' pieces is blanked even when
            // non-MCP lines are kept: a secret another writer's bytes cut
            // matches no rule there (the writers' own lines are redacted).
            let mixed = f.reason == FlagReason::Interleaved;
            if mixed {
                self.mixed.insert(item.n);
            }
            if (!self.asked.keep_non_mcp || mixed) && framed_as_lines && whole_line {
                for &(stream, first, start, end) in &copies {
                    if end - start != item.text.len() as u64 {
                        continue;
                    }
                    self.blanks.push(Blank {
                        at: scan.incarnations.at(stream, first),
                        span: Span {
                            start,
                            end,
                            with: vec![b' '; (end - start) as usize].into(),
                        },
                        item: item.n,
                    });
                }
                return;
            }
        } else {
            self.of_messages
                .extend(copies.iter().map(|&(stream, ..)| stream));
        }
        let mut finds = Vec::new();
        self.rules
            .in_message(item.text, item.is_whole_json(), &mut finds);
        let finds = merge(finds);
        if finds.is_empty() {
            return;
        }
        let place = if self.asked.itemised {
            Place::Message(item.n)
        } else {
            Place::Messages
        };
        for f in &finds {
            *self.tally.entry((f.rule, place.clone())).or_default() += 1;
        }
        // Made once for both copies.
        let tokens: Vec<Rc<[u8]>> = finds
            .iter()
            .map(|f| token(self.key, &item.text[f.start..f.end]).into())
            .collect();
        for &(stream, first, start, end) in &copies {
            if end - start == item.text.len() as u64 {
                let spans = self
                    .spans
                    .entry(scan.incarnations.at(stream, first))
                    .or_default();
                spans.extend(finds.iter().zip(&tokens).map(|(f, with)| Span {
                    start: start + f.start as u64,
                    end: start + f.end as u64,
                    with: Rc::clone(with),
                }));
            } else {
                self.align.push(Align {
                    stream,
                    first,
                    start,
                    end,
                    text: item.text.to_vec(),
                    finds: finds.clone(),
                    raw: vec![0; (end - start) as usize],
                    filled: 0,
                });
            }
        }
    }
}

/// Header lines longer than this are not read as headers.
const MAX_HEADER_LINE: usize = 16 << 10;

/// What a TCP or TLS stream's header scan carries between records.
#[derive(Default)]
struct Carry {
    next: u64,
    /// Bytes since the last line end, and the offset of the first.
    tail: Vec<u8>,
    tail_off: u64,
}

/// Finds what `rules` redact in `parent`, in one read (and a second,
/// from the first record of a framed text, when a secret lies in one).
pub fn find(
    parent: &CaptureReader,
    rules: &Rules,
    key: &[u8],
    asked: Asked,
    progress: &mut dyn Progress,
) -> Result<Found, QueryError> {
    let scan = RefCell::new(Scan {
        rules,
        key,
        incarnations: Incarnations::default(),
        carries: HashMap::new(),
        session_streams: HashSet::new(),
        spans: HashMap::new(),
        records: HashMap::new(),
        tally: Tally::default(),
        streams: Streams::default(),
        sightings: Sightings::default(),
        last_seq: None,
        disordered: None,
    });
    let mut c = Collect {
        rules,
        key,
        asked,
        spans: HashMap::new(),
        blanks: Vec::new(),
        align: Vec::new(),
        of_messages: HashSet::new(),
        mixed: HashSet::new(),
        tally: Tally::default(),
    };
    // As the child will show it: without the key log, which redact leaves
    // out, TLS ciphertext is not MCP (and its records are not rewritten).
    decode_tapped(parent, progress, "", false, &mut Tapped(&scan), |item| {
        c.item(item, &scan.borrow());
        Ok(Flow::Continue)
    })?;
    let mut scan = scan.into_inner();
    if let Some((last, seq)) = scan.disordered {
        return Err(QueryError::Capture(CaptureError::Damaged {
            path: parent.name().to_path_buf(),
            why: format!(
                "record {seq} comes after record {last}: the records are not numbered in order"
            ),
        }));
    }
    let mut found = Found {
        records: scan.records,
        incarnations: scan.incarnations,
        keep_non_mcp: asked.keep_non_mcp,
        ..Found::default()
    };
    let mut spans = scan.spans;
    for (at, list) in std::mem::take(&mut c.spans) {
        match spans.entry(at) {
            Entry::Vacant(v) => {
                v.insert(list);
            }
            Entry::Occupied(mut o) => o.get_mut().extend(list),
        }
    }
    align(parent, &mut c.align, &found.incarnations)?;
    for a in std::mem::take(&mut c.align) {
        let at = found.incarnations.at(a.stream, a.first);
        let maps = line_up(&a.text, &a.raw);
        if maps.is_empty() || a.filled < a.end - a.start {
            found.unlocated += a.finds.len() as u64;
            continue;
        }
        for map in maps {
            for f in &a.finds {
                let tok = token(key, &a.text[f.start..f.end]);
                for (i, j) in (f.start..f.end).enumerate() {
                    let off = a.start + map[j] as u64;
                    spans.entry(at).or_default().push(Span {
                        start: off,
                        end: off + 1,
                        with: Rc::from([tok[i]]),
                    });
                }
            }
        }
    }
    found.tally = scan.tally;
    for (k, n) in std::mem::take(&mut c.tally) {
        *found.tally.entry(k).or_default() += n;
    }
    for id in c.of_messages.iter().chain(&scan.session_streams) {
        // The other direction too: an HTTP response needs its request.
        found.mcp_streams.insert(*id);
        found.mcp_streams.insert(id.reversed());
        found.pids.insert(id.tgid);
    }
    blank(&mut found, spans, c);
    found.whole = scan.sightings.choose(|seen| found.unchanged(seen));
    found.non_mcp_streams = (scan.streams.ids())
        .filter(|id| !found.mcp_streams.contains(id))
        .count();
    scan.streams.retain(|id| found.keeps_stream(id));
    found.streams = Some(scan.streams);
    Ok(found)
}

/// Gathers the stream bytes of each framed text, from its first record
/// until it is whole: a read of the records from the earliest.
fn align(
    parent: &CaptureReader,
    aligns: &mut [Align],
    incarnations: &Incarnations,
) -> Result<(), QueryError> {
    let mut align_at: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, a) in aligns.iter().enumerate() {
        align_at.entry(a.first).or_default().push(i);
    }
    // Regions to line up, by stream, from their first record until whole.
    let mut open: HashMap<Incarnation, Vec<usize>> = HashMap::new();
    for block in parent.blocks(&BlockFilter::default())? {
        if align_at.is_empty() && open.values().all(Vec::is_empty) {
            break;
        }
        let Ok(block) = block else { continue };
        for rec in block.records() {
            let Record::Event(ev) = rec.record else {
                continue;
            };
            if ev.hdr.kind != kind::DATA {
                continue;
            }
            let at = incarnations.at(ev.stream_id(), rec.seq);
            if let Some(list) = align_at.remove(&rec.seq) {
                open.entry(at).or_default().extend(list);
            }
            if let Some(list) = open.get_mut(&at) {
                list.retain(|&i| gather(&mut aligns[i], ev.hdr.stream_off, ev.payload));
            }
        }
    }
    Ok(())
}

/// Copies the part of a record inside an alignment's region; false once
/// the region is whole.
fn gather(a: &mut Align, off: u64, payload: &[u8]) -> bool {
    let end = off.saturating_add(payload.len() as u64);
    let (from, to) = (off.max(a.start), end.min(a.end));
    if from < to {
        a.raw[(from - a.start) as usize..(to - a.start) as usize]
            .copy_from_slice(&payload[(from - off) as usize..(to - off) as usize]);
        a.filled += to - from;
    }
    a.filled < a.end - a.start
}

/// Header lines in a stream's next record: whole lines are read, the rest
/// waits for the next record. A gap in the offsets starts afresh. Also
/// says whether the lines name an MCP session.
fn scan_headers(
    carry: &mut Carry,
    off: u64,
    payload: &[u8],
    rules: &Rules,
    key: &[u8],
) -> (Vec<(rules::Found, Span)>, bool) {
    if off != carry.next || carry.tail.is_empty() {
        carry.tail.clear();
        carry.tail_off = off;
    }
    carry.next = off.saturating_add(payload.len() as u64);
    carry.tail.extend_from_slice(payload);
    let Some(last_nl) = memchr::memrchr(b'\n', &carry.tail) else {
        if carry.tail.len() > MAX_HEADER_LINE {
            carry.tail.clear();
            carry.tail_off = carry.next;
        }
        return (Vec::new(), false);
    };
    let lines = &carry.tail[..=last_nl];
    let mut finds = Vec::new();
    let mut names_session = false;
    if memchr::memchr(b':', lines).is_some() {
        rules.in_headers(lines, &mut finds);
        // Line by line: a header may start the record, and no lowercase
        // copy of the record is made.
        const SESSION: &[u8] = b"mcp-session-id:";
        names_session = lines.split(|&b| b == b'\n').any(|l| {
            l.get(..SESSION.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(SESSION))
        });
    }
    let out = merge(finds)
        .into_iter()
        .map(|f| {
            let span = Span {
                start: carry.tail_off + f.start as u64,
                end: carry.tail_off + f.end as u64,
                with: token(key, &lines[f.start..f.end]).into(),
            };
            (f, span)
        })
        .collect();
    carry.tail.drain(..=last_nl);
    carry.tail_off += last_nl as u64 + 1;
    (out, names_session)
}

/// Blanks the non-MCP lines of MCP streams (and the mixed lines of any,
/// when non-MCP lines are kept): a blank wins over the secrets it
/// overlaps. Then sorts every stream's spans.
fn blank(found: &mut Found, mut spans: HashMap<Incarnation, Vec<Span>>, c: Collect<'_>) {
    let mut lines: HashSet<u64> = HashSet::new();
    let mut blanks: HashMap<Incarnation, Vec<Span>> = HashMap::new();
    for b in c.blanks {
        let wanted = if found.mcp_streams.contains(&b.at.0) {
            true
        } else {
            c.asked.keep_non_mcp && c.mixed.contains(&b.item)
        };
        if wanted {
            lines.insert(b.item);
            blanks.entry(b.at).or_default().push(b.span);
        }
    }
    found.blanked = lines.len() as u64;
    for (at, blank) in blanks {
        let list = spans.entry(at).or_default();
        list.retain(|s| !blank.iter().any(|b| b.start < s.end && s.start < b.end));
        list.extend(blank);
    }
    found.spans = spans
        .into_iter()
        .map(|(at, mut list)| {
            list.sort_by_key(|s| s.start);
            list.shrink_to_fit();
            let widest = list.iter().map(|s| s.end - s.start).max().unwrap_or(0);
            (at, (widest, list))
        })
        .collect();
}

/// Where each byte of `text` lies in `raw` (the stream bytes it was
/// framed in): every place it appears whole (one element of a batch), or
/// else its bytes in order with the framing skipped (a chunked body).
/// Empty when the text is not there.
fn line_up(text: &[u8], raw: &[u8]) -> Vec<Vec<usize>> {
    let whole: Vec<Vec<usize>> = memchr::memmem::find_iter(raw, text)
        .map(|at| (at..at + text.len()).collect())
        .collect();
    if !whole.is_empty() || text.is_empty() {
        return whole;
    }
    let mut map = Vec::with_capacity(text.len());
    let mut i = 0;
    for &b in text {
        while i < raw.len() && raw[i] != b {
            i += 1;
        }
        if i == raw.len() {
            return Vec::new();
        }
        map.push(i);
        i += 1;
    }
    vec![map]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header line's span inside a message's: a record past the inner
    /// span's end is still covered by the outer one.
    #[test]
    fn spans_that_overlap_are_all_found() {
        let at = (
            StreamId {
                tgid: 1,
                tls: false,
                id: 2,
                direction: Direction::Write,
            },
            1,
        );
        let span = |start, end| Span {
            start,
            end,
            with: vec![b'x'; (end - start) as usize].into(),
        };
        let mut found = Found::default();
        found
            .spans
            .insert(at, (100, vec![span(0, 100), span(10, 20), span(30, 40)]));
        let over =
            |off, len| -> Vec<u64> { found.spans_over(&at, off, len).map(|s| s.start).collect() };
        assert_eq!(over(50, 10), [0]);
        assert_eq!(over(15, 20), [0, 10, 30]);
        assert_eq!(over(100, 5), Vec::<u64>::new());
    }
}
