//! Where `redact`'s secrets are, as stream offsets of the raw records.
//!
//! First the decoder's messages: the rules run on each message's text, and
//! a secret's place in the text is its place in the stream (the text of an
//! NDJSON line, an HTTP body or an SSE event is the stream's bytes), or,
//! where framing lies inside the text (chunked bodies), is found by lining
//! the text up with the stream's bytes. Then one pass over the records
//! learns each message's streams, reads HTTP header lines and exec names,
//! and gathers the bytes that need lining up. Nothing is guessed: a secret
//! whose bytes cannot be located is counted, and `redact` refuses.

use super::redact::token;
use super::rules::{self, merge, Rules};
use super::{Incarnation, Incarnations};
use crate::event::{fd_kind, flags, kind, Direction, StreamId};
use crate::query::{
    run, BlockFilter, CaptureReader, FlagReason, Flow, IndexUse, Item, Kind, Progress, QueryError,
    Record, Selection, Sink,
};
use roaring::RoaringTreemap;
// A fast seeded hash: these maps are looked up for every record.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::io;
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
    spans: HashMap<Incarnation, Vec<Span>>,
    records: HashMap<u64, Vec<Span>>,
    mcp_streams: HashSet<StreamId>,
    /// Streams whose HTTP names an MCP session (Mcp-Session-Id): they are
    /// the session's too (its DELETE, its GET stream) though no message
    /// travels in them.
    session_streams: HashSet<StreamId>,
    pids: HashSet<u32>,
    all_streams: HashSet<StreamId>,
    /// Non-MCP lines in MCP stdio streams, blanked (both copies).
    pub blanked: u64,
    /// Secrets whose bytes could not be located in the records.
    pub unlocated: u64,
    tally: HashMap<(String, String), u64>,
}

impl Found {
    /// What was found where (rule, location, count), handed over once.
    pub fn take_tally(&mut self) -> HashMap<(String, String), u64> {
        std::mem::take(&mut self.tally)
    }

    pub fn keeps_stream(&self, id: &StreamId) -> bool {
        self.mcp_streams.contains(id)
    }

    pub fn keeps_pid(&self, pid: u32) -> bool {
        self.pids.contains(&pid)
    }

    pub fn streams_left_out(&self) -> usize {
        self.all_streams.difference(&self.mcp_streams).count()
    }

    /// The spans of stream incarnation `at` that overlap [off, off + len).
    pub fn spans_over(&self, at: &Incarnation, off: u64, len: u64) -> impl Iterator<Item = &Span> {
        let spans = self.spans.get(at).map_or(&[][..], Vec::as_slice);
        let from = spans.partition_point(|s| s.end <= off);
        spans[from..]
            .iter()
            .take_while(move |s| s.start < off.saturating_add(len))
    }

    pub fn record_spans(&self, seq: u64) -> &[Span] {
        self.records.get(&seq).map_or(&[], Vec::as_slice)
    }
}

/// A span not yet tied to its stream: the copy's first record names it.
struct Pending {
    first: u64,
    span: Span,
    /// Blanked, not a secret (wins over secrets it overlaps): the item.
    blank: Option<u64>,
}

/// A copy whose text has framing inside it: lined up with the stream's
/// bytes once they are gathered.
struct Align {
    first: u64,
    start: u64,
    end: u64,
    text: Vec<u8>,
    finds: Vec<rules::Found>,
    raw: Vec<u8>,
    /// Bytes of the region gathered so far (a gap leaves zeros).
    filled: u64,
}

struct Collect<'a> {
    rules: &'a Rules,
    key: &'a [u8],
    keep_non_mcp: bool,
    pending: Vec<Pending>,
    align: Vec<Align>,
    /// The first record of every MCP message's copies: a compressed
    /// bitmap, as a capture holds millions (a hash set took 1 GiB).
    mcp_firsts: RoaringTreemap,
    /// Lines several writers mixed (item numbers): blanked in any stream.
    mixed: HashSet<u64>,
    found: Found,
}

impl Collect<'_> {
    fn count(&mut self, rule: usize, loc: String) {
        let name = self.rules.name(rule).to_string();
        *self.found.tally.entry((name, loc)).or_default() += 1;
    }
}

impl Sink for Collect<'_> {
    fn item(&mut self, item: &Item<'_>, _: u64) -> io::Result<Flow> {
        let copies: Vec<_> = [&item.writer, &item.reader]
            .into_iter()
            .flatten()
            .filter_map(|c| Some((*c.seqs.iter().min()?, c.start, c.end)))
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
            if (!self.keep_non_mcp || mixed) && framed_as_lines && whole_line {
                for &(first, start, end) in &copies {
                    if end - start != item.text.len() as u64 {
                        continue;
                    }
                    self.pending.push(Pending {
                        first,
                        span: Span {
                            start,
                            end,
                            with: vec![b' '; (end - start) as usize].into(),
                        },
                        blank: Some(item.n),
                    });
                }
                return Ok(Flow::Continue);
            }
        } else {
            for c in &copies {
                self.mcp_firsts.insert(c.0);
            }
        }
        let mut finds = Vec::new();
        self.rules
            .in_message(item.text, item.is_whole_json(), &mut finds);
        let finds = merge(finds);
        for f in &finds {
            self.count(f.rule, format!("message {}", item.n));
        }
        // Made once for both copies.
        let tokens: Vec<Rc<[u8]>> = finds
            .iter()
            .map(|f| token(self.key, &item.text[f.start..f.end]).into())
            .collect();
        for &(first, start, end) in &copies {
            if end - start == item.text.len() as u64 {
                for (f, with) in finds.iter().zip(&tokens) {
                    self.pending.push(Pending {
                        first,
                        span: Span {
                            start: start + f.start as u64,
                            end: start + f.end as u64,
                            with: Rc::clone(with),
                        },
                        blank: None,
                    });
                }
            } else if !finds.is_empty() {
                self.align.push(Align {
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
        Ok(Flow::Continue)
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

pub fn find(
    parent: &CaptureReader,
    rules: &Rules,
    key: &[u8],
    keep_non_mcp: bool,
    progress: &mut dyn Progress,
) -> Result<Found, QueryError> {
    let mut c = Collect {
        rules,
        key,
        keep_non_mcp,
        pending: Vec::new(),
        align: Vec::new(),
        mcp_firsts: RoaringTreemap::new(),
        mixed: HashSet::new(),
        found: Found::default(),
    };
    // As the child will show it: without the key log, which redact leaves
    // out, TLS ciphertext is not MCP (and its records are not rewritten).
    let every = Selection {
        whole: true,
        without_keylog: true,
        ..Selection::default()
    };
    run(parent, &every, &mut c, IndexUse::Never, progress)?;
    let mut wanted: HashSet<u64> = c.pending.iter().map(|p| p.first).collect();
    wanted.extend(c.align.iter().map(|a| a.first));
    let mut stream_of: HashMap<u64, Incarnation> = HashMap::new();
    // The streams that carry MCP messages.
    let mut of_messages: HashSet<StreamId> = HashSet::new();
    let mut incarnations = Incarnations::default();
    let mut carries: HashMap<Incarnation, Carry> = HashMap::new();
    // Regions to line up, by stream, from their first record until whole.
    let mut open: HashMap<Incarnation, Vec<usize>> = HashMap::new();
    let mut align_at: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, a) in c.align.iter().enumerate() {
        align_at.entry(a.first).or_default().push(i);
    }
    for block in parent.blocks(&BlockFilter::default())? {
        let Ok(block) = block else { continue };
        for rec in block.records() {
            let Record::Event(ev) = rec.record else {
                continue;
            };
            let h = &ev.hdr;
            if h.kind != kind::DATA {
                let mut finds = Vec::new();
                rules.in_text(ev.payload, &mut finds);
                for f in merge(finds) {
                    c.count(f.rule, format!("exec of pid {}", h.tgid));
                    c.found.records.entry(rec.seq).or_default().push(Span {
                        start: f.start as u64,
                        end: f.end as u64,
                        with: token(key, &ev.payload[f.start..f.end]).into(),
                    });
                }
                continue;
            }
            let at = incarnations.of(&ev);
            c.found.all_streams.insert(at.0);
            if wanted.contains(&rec.seq) {
                stream_of.insert(rec.seq, at);
            }
            if c.mcp_firsts.contains(rec.seq) {
                of_messages.insert(at.0);
            }
            if let Some(list) = align_at.remove(&rec.seq) {
                open.entry(at).or_default().extend(list);
            }
            if let Some(list) = open.get_mut(&at) {
                list.retain(|&i| gather(&mut c.align[i], h.stream_off, ev.payload));
            }
            let network =
                h.flags & flags::TLS != 0 || matches!(h.fd_kind, fd_kind::TCP4 | fd_kind::TCP6);
            if network {
                let carry = carries.entry(at).or_default();
                let (found, names_session) =
                    scan_headers(carry, h.stream_off, ev.payload, rules, key);
                if names_session {
                    c.found.session_streams.insert(at.0);
                }
                // Made only for a record with findings.
                let loc = || {
                    format!(
                        "HTTP headers {} pid {}",
                        if ev.direction() == Direction::Write {
                            "written by"
                        } else {
                            "read by"
                        },
                        h.tgid
                    )
                };
                for (f, span) in found {
                    let name = rules.name(f.rule).to_string();
                    *c.found.tally.entry((name, loc())).or_default() += 1;
                    c.found.spans.entry(at).or_default().push(span);
                }
            }
        }
    }
    settle(c, &stream_of, of_messages)
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

/// Ties every span to its stream, lines up the framed texts, and sorts.
fn settle(
    mut c: Collect<'_>,
    stream_of: &HashMap<u64, Incarnation>,
    of_messages: HashSet<StreamId>,
) -> Result<Found, QueryError> {
    let mut blanks: HashMap<Incarnation, Vec<(u64, Span)>> = HashMap::new();
    for p in std::mem::take(&mut c.pending) {
        match (stream_of.get(&p.first), p.blank) {
            (Some(id), Some(item)) => blanks.entry(*id).or_default().push((item, p.span)),
            (Some(id), None) => c.found.spans.entry(*id).or_default().push(p.span),
            (None, _) => c.found.unlocated += 1,
        }
    }
    for a in std::mem::take(&mut c.align) {
        let Some(id) = stream_of.get(&a.first) else {
            c.found.unlocated += a.finds.len() as u64;
            continue;
        };
        let maps = line_up(&a.text, &a.raw);
        if maps.is_empty() || a.filled < a.end - a.start {
            c.found.unlocated += a.finds.len() as u64;
            continue;
        }
        for map in maps {
            for f in &a.finds {
                let tok = token(c.key, &a.text[f.start..f.end]);
                for (i, j) in (f.start..f.end).enumerate() {
                    let at = a.start + map[j] as u64;
                    c.found.spans.entry(*id).or_default().push(Span {
                        start: at,
                        end: at + 1,
                        with: Rc::from([tok[i]]),
                    });
                }
            }
        }
    }
    let of_sessions: Vec<StreamId> = c.found.session_streams.iter().copied().collect();
    for id in of_messages.into_iter().chain(of_sessions) {
        // The other direction too: an HTTP response needs its request.
        c.found.mcp_streams.insert(id);
        c.found.mcp_streams.insert(id.reversed());
        c.found.pids.insert(id.tgid);
    }
    // Blanks matter in MCP streams, the others being left out whole unless
    // kept; in those, only mixed lines are blanked.
    for (at, list) in blanks.iter_mut() {
        if !c.found.mcp_streams.contains(&at.0) {
            list.retain(|(item, _)| c.keep_non_mcp && c.mixed.contains(item));
        }
    }
    blanks.retain(|_, list| !list.is_empty());
    let lines: HashSet<u64> = blanks.values().flatten().map(|(item, _)| *item).collect();
    c.found.blanked = lines.len() as u64;
    let mut blanks: HashMap<Incarnation, Vec<Span>> = blanks
        .into_iter()
        .map(|(at, b)| (at, b.into_iter().map(|(_, s)| s).collect()))
        .collect();
    for (id, spans) in c.found.spans.iter_mut() {
        let blank = blanks.remove(id).unwrap_or_default();
        spans.retain(|s| !blank.iter().any(|b| b.start < s.end && s.start < b.end));
        spans.extend(blank);
        spans.sort_by_key(|s| s.start);
    }
    for (id, blank) in blanks {
        let mut blank = blank;
        blank.sort_by_key(|s| s.start);
        c.found.spans.insert(id, blank);
    }
    Ok(c.found)
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
