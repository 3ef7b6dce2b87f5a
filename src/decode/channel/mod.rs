//! Channel merge: every message on a pipe or socket is seen twice, once as
//! the writer wrote it and once as the reader read it. This stage pairs the
//! two copies and yields each message once.
//!
//! A channel is one direction of one pipe or socket: the writer's stream and
//! the reader's stream of the same bytes. Copies pair first by content, in
//! FIFO order; the first pair fixes the offset difference between the two
//! streams, and from then on copies pair by offset, which also tells which
//! damaged frames of one side the other side has whole. A copy whose
//! counterpart has not arrived waits for a hold time and is then shown alone;
//! a counterpart that turns up later is recognised and absorbed. Lines of
//! several writers that the reader received mixed are found by `splice`.

use super::frame::{Frame, FrameBody};
use super::item::HttpMeta;
use super::MinSet;
use std::collections::VecDeque;
use std::sync::Arc;

mod splice;

/// The two ends of a channel (index into per-side arrays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Writer = 0,
    Reader = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Writer => Side::Reader,
            Side::Reader => Side::Writer,
        }
    }
}

/// A TCP end: address (IPv4 in the first 4 bytes) and port.
pub type TcpEnd = ([u8; 16], u16);

/// What identifies a channel from either end's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKey {
    /// Both ends see the pipe's inode.
    Pipe(u64),
    /// Unix socket: the writing socket's inode (the reader's peer inode).
    Unix(u64),
    /// TCP: (address, port) of the sender, then of the receiver.
    Tcp { tls: bool, from: TcpEnd, to: TcpEnd },
}

/// One side's copy of a message: where it was and which records carried it.
#[derive(Clone, Debug)]
pub struct Span {
    pub stream: usize,
    pub start: u64,
    pub end: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    pub seqs: Vec<u64>,
}

impl Span {
    /// The span of a frame being consumed (its record list moves here).
    fn take(stream: usize, f: &mut Frame) -> Span {
        Span {
            stream,
            start: f.start,
            end: f.end,
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            seqs: std::mem::take(&mut f.seqs),
        }
    }
}

/// A message (or damage) as this stage yields it: shown once.
#[derive(Debug)]
pub struct Merged {
    /// The text, from the writer's copy when it has one.
    pub body: FrameBody,
    pub writer: Option<Span>,
    pub reader: Option<Span>,
    /// The stream of the side not seen, when the channel has only one there.
    pub peer: Option<usize>,
    /// Both copies were seen and their bytes differ (the writer's is shown).
    pub differs: bool,
    /// HTTP: what the copies' framers learned (the writer's, its gaps
    /// filled from the reader's).
    pub http: Option<Arc<HttpMeta>>,
    pub interleaved: Interleaved,
}

/// Several writers on one pipe whose lines the reader received mixed.
#[derive(Debug, Default)]
pub enum Interleaved {
    #[default]
    No,
    /// A writer's line (shown alone) that the reader received in pieces,
    /// mixed with other writers' bytes.
    Sent,
    /// A line the reader read (shown alone): pieces of these writers'
    /// lines, in the order of their first byte; each span is the piece's
    /// text in its writer's offsets, and names no records of its own.
    Received(Vec<Span>),
}

impl Merged {
    /// Bytes of text it holds.
    pub fn body_len(&self) -> usize {
        match &self.body {
            FrameBody::Text { text, .. }
            | FrameBody::Unsupported { text, .. }
            | FrameBody::Notice { text, .. } => text.len(),
            FrameBody::Lost { .. } | FrameBody::Late | FrameBody::Event(_) => 0,
        }
    }

    /// The message's time: the writer's, else the reader's.
    pub fn ts(&self) -> u64 {
        self.writer
            .as_ref()
            .or(self.reader.as_ref())
            .map_or(0, |s| s.last_ts)
    }
}

struct Held {
    stream: usize,
    frame: Frame,
    deadline: u64,
}

/// How long a copy waits for its counterpart.
#[derive(Clone, Copy, Debug)]
pub struct Hold {
    pub normal: u64,
    /// While the channel's other side has never been seen.
    pub first_contact: u64,
}

/// A copy shown alone on time-out, whose counterpart may still arrive.
struct Ghost {
    start: u64,
    end: u64,
    text: Vec<u8>,
}

/// How far copies are searched for a content match.
const LOOKAHEAD: usize = 8;
/// Runs of captured text remembered per side, for coverage checks.
const COVER_RUNS: usize = 64;
/// Copies remembered after being shown alone.
const GHOSTS: usize = 256;

pub struct Channel {
    /// No other end can ever be seen: everything passes straight through.
    solo: bool,
    /// Whole-line copies waiting for their counterpart.
    queues: [VecDeque<Held>; 2],
    /// Damaged frames waiting to learn whether the other side has those bytes whole.
    damaged: [VecDeque<Held>; 2],
    ghosts: [VecDeque<Ghost>; 2],
    /// Runs of captured text, in each side's own offsets.
    cover: [VecDeque<(u64, u64)>; 2],
    /// End of the last frame seen, in each side's own offsets.
    progress: [Option<u64>; 2],
    streams: [Vec<usize>; 2],
    /// Reader offset minus writer offset of the same byte (one stream per side).
    delta: Option<i128>,
    held_bytes: usize,
    /// Timestamps of the held frames.
    held_ts: MinSet,
    /// A copy has been shown alone for want of a counterpart.
    timed_out: bool,
    /// Writers' lines that the reader has received only part of, mixed.
    partial: Vec<splice::Partial>,
    /// Changes to the waiting lines (a writer's pushed, any line shown),
    /// and the last search that did not explain the reader's oldest line:
    /// its (stream, start), the count of changes then, and how many
    /// searches it has had. Nothing is searched twice, nor often.
    changes: u64,
    unexplained: Option<(usize, u64, u64, u32)>,
}

impl Channel {
    pub fn new(solo: bool) -> Self {
        Channel {
            solo,
            queues: Default::default(),
            damaged: Default::default(),
            ghosts: Default::default(),
            cover: Default::default(),
            progress: [None; 2],
            streams: Default::default(),
            delta: None,
            held_bytes: 0,
            held_ts: MinSet::default(),
            timed_out: false,
            partial: Vec::new(),
            changes: 0,
            unexplained: None,
        }
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Earliest timestamp among held frames: no later output can be older.
    pub fn min_held_ts(&self) -> Option<u64> {
        self.held_ts.min()
    }

    /// When the oldest held frame times out.
    pub fn deadline(&self) -> Option<u64> {
        self.queues
            .iter()
            .chain(self.damaged.iter())
            .filter_map(|q| q.front().map(|h| h.deadline))
            .chain(self.partial.iter().map(|p| p.held.deadline))
            .min()
    }

    /// Whether a stream has been seen on `side`.
    pub fn has_side(&self, side: Side) -> bool {
        !self.streams[side as usize].is_empty()
    }

    /// The text of the oldest whole copy on `side` still waiting for its
    /// counterpart.
    pub fn waiting_text(&self, side: Side) -> Option<&[u8]> {
        self.queues[side as usize]
            .front()
            .and_then(|h| h.frame.text())
    }

    /// The streams seen on `side`.
    pub fn streams_on(&self, side: Side) -> &[usize] {
        &self.streams[side as usize]
    }

    /// The stream of `side`, if the channel has seen exactly one there.
    pub fn single_stream(&self, side: Side) -> Option<usize> {
        match self.streams[side as usize].as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// One stream per side: offsets can be (or are) aligned.
    fn alignable(&self) -> bool {
        self.streams[0].len() <= 1 && self.streams[1].len() <= 1
    }

    fn delta_mode(&self) -> Option<i128> {
        self.delta.filter(|_| self.alignable())
    }

    /// Maps a side's own offset to the writer's offsets (delta mode only).
    fn map(&self, side: Side, off: u64, delta: i128) -> i128 {
        match side {
            Side::Writer => off as i128,
            Side::Reader => off as i128 - delta,
        }
    }

    pub fn push(
        &mut self,
        side: Side,
        stream: usize,
        frame: Frame,
        now: u64,
        hold: Hold,
        out: &mut impl FnMut(Merged),
    ) {
        let s = side as usize;
        if !self.streams[s].contains(&stream) {
            self.streams[s].push(stream);
        }
        if self.solo || matches!(frame.body, FrameBody::Late) {
            return out(self.alone(side, stream, frame));
        }
        self.progress[s] = Some(self.progress[s].map_or(frame.end, |p| p.max(frame.end)));
        if side == Side::Writer {
            self.changes += 1;
        }
        // Until the other side has been seen at all, its process may still
        // be starting (a server reads its first request late): wait longer.
        let first_contact = self.streams[side.other() as usize].is_empty() && !self.timed_out;
        let wait = if first_contact {
            hold.first_contact
        } else {
            hold.normal
        };
        let deadline = frame.last_ts.max(now).saturating_add(wait);
        self.held_bytes += frame.text().map_or(0, <[u8]>::len);
        self.held_ts.insert(frame.last_ts);
        let held = Held {
            stream,
            frame,
            deadline,
        };
        if held.frame.ends_cleanly() && self.absorb(side, &held.frame) {
            self.held_bytes -= held.frame.text().map_or(0, <[u8]>::len);
            self.held_ts.remove(held.frame.last_ts);
            return;
        }
        // Bytes this side captured: what the other side lost there is shown
        // from here (whole, or as this side's own damage).
        if !matches!(held.frame.body, FrameBody::Lost { .. } | FrameBody::Late) {
            self.note_cover(side, held.frame.covers, held.frame.end);
        }
        if held.frame.ends_cleanly() {
            self.queues[s].push_back(held);
        } else {
            self.damaged[s].push_back(held);
        }
        self.settle(out);
    }

    fn note_cover(&mut self, side: Side, start: u64, end: u64) {
        let runs = &mut self.cover[side as usize];
        match runs.back_mut() {
            Some(last) if start <= last.1.saturating_add(1) && start >= last.0 => {
                last.1 = last.1.max(end)
            }
            _ => {
                runs.push_back((start, end));
                if runs.len() > COVER_RUNS {
                    runs.pop_front();
                }
            }
        }
    }

    /// Did the other side capture the bytes of `side`'s frame?
    fn covered(&self, side: Side, f: &Frame, delta: i128) -> bool {
        let other = side.other();
        let (start, end) = (self.map(side, f.start, delta), self.map(side, f.end, delta));
        self.cover[other as usize].iter().any(|&(a, b)| {
            self.map(other, a, delta) <= start && self.map(other, b, delta) + 1 >= end
        })
    }

    /// Has the other side got past the end of `side`'s frame?
    fn other_passed(&self, side: Side, f: &Frame, delta: i128) -> bool {
        let other = side.other();
        self.progress[other as usize]
            .is_some_and(|p| self.map(other, p, delta) + 1 >= self.map(side, f.end, delta))
    }

    /// A late counterpart of a copy already shown alone: drop it.
    fn absorb(&mut self, side: Side, f: &Frame) -> bool {
        let other = side.other();
        let text = f.text().unwrap_or_default();
        if let Some(delta) = self.delta_mode() {
            let start = self.map(side, f.start, delta);
            let end = self.map(side, f.end, delta);
            while let Some(g) = self.ghosts[other as usize].front() {
                let (gs, ge) = (
                    self.map(other, g.start, delta),
                    self.map(other, g.end, delta),
                );
                if ge < start {
                    self.ghosts[other as usize].pop_front();
                    continue;
                }
                if (gs, ge) == (start, end) && g.text == text {
                    self.ghosts[other as usize].pop_front();
                    return true;
                }
                return false;
            }
            return false;
        }
        let ghosts = &mut self.ghosts[other as usize];
        match ghosts.iter().take(LOOKAHEAD).position(|g| g.text == text) {
            Some(i) => {
                ghosts.drain(..=i);
                true
            }
            None => false,
        }
    }

    fn settle(&mut self, out: &mut impl FnMut(Merged)) {
        loop {
            let step = match (self.queues[0].front(), self.queues[1].front()) {
                (Some(w), Some(r)) => self.compare(w, r),
                _ => Step::Wait,
            };
            match step {
                Step::Pair => self.pair(out),
                Step::Alone(side) => {
                    let h = self.pop(side);
                    out(self.alone(side, h.stream, h.frame));
                }
                Step::Drop(side) => {
                    self.pop(side);
                }
                Step::Wait if self.splice(out) => {}
                Step::Wait => break,
            }
        }
        while self.merge_damaged(out) {}
        for side in [Side::Writer, Side::Reader] {
            while let Some(d) = self.damaged[side as usize].front() {
                match self.delta_mode() {
                    Some(delta) if !self.other_passed(side, &d.frame, delta) => break,
                    Some(delta) => {
                        let covered = self.covered(side, &d.frame, delta);
                        let h = self.pop_damaged(side);
                        if !covered {
                            out(self.alone(side, h.stream, h.frame));
                        }
                    }
                    // Offsets can still be aligned by a pair to come: wait
                    // (until the deadline) to learn what the other side has.
                    None if self.alignable() => break,
                    // Several streams on a side: there is no telling; show it.
                    None => {
                        let h = self.pop_damaged(side);
                        out(self.alone(side, h.stream, h.frame));
                    }
                }
            }
        }
    }

    /// Damage both copies have in the same place is shown once: the copy
    /// that kept more text, with both copies' records.
    /// Before any pair has aligned the offsets, damage the two copies have
    /// in common shows by its content: the same text over the same length.
    fn merge_damaged(&mut self, out: &mut impl FnMut(Merged)) -> bool {
        let (Some(w), Some(r)) = (self.damaged[0].front(), self.damaged[1].front()) else {
            return false;
        };
        let same = match self.delta_mode() {
            Some(delta) => {
                let (rs, re) = (r.frame.start as i128 - delta, r.frame.end as i128 - delta);
                (w.frame.start as i128) < re.max(rs + 1)
                    && rs < (w.frame.end as i128).max(w.frame.start as i128 + 1)
            }
            None => {
                self.alignable()
                    && w.frame.end - w.frame.start == r.frame.end - r.frame.start
                    && w.frame.text() == r.frame.text()
                    && std::mem::discriminant(&w.frame.body)
                        == std::mem::discriminant(&r.frame.body)
            }
        };
        if !same {
            return false;
        }
        let mut w = self.pop_damaged(Side::Writer);
        let mut r = self.pop_damaged(Side::Reader);
        let (writer, reader) = (
            Span::take(w.stream, &mut w.frame),
            Span::take(r.stream, &mut r.frame),
        );
        let text_len = |h: &Held| h.frame.text().map_or(0, <[u8]>::len);
        let kept = if text_len(&r) > text_len(&w) { r } else { w };
        out(Merged {
            body: kept.frame.body,
            writer: Some(writer),
            reader: Some(reader),
            peer: None,
            differs: false,
            http: kept.frame.http,
            interleaved: Interleaved::No,
        });
        true
    }

    fn compare(&self, w: &Held, r: &Held) -> Step {
        let (wt, rt) = (
            w.frame.text().unwrap_or_default(),
            r.frame.text().unwrap_or_default(),
        );
        let w_tail = matches!(
            w.frame.body,
            FrameBody::Text {
                cut_start: Some(_),
                ..
            }
        );
        let r_tail = matches!(
            r.frame.body,
            FrameBody::Text {
                cut_start: Some(_),
                ..
            }
        );
        if let Some(delta) = self.delta_mode() {
            let (ws, we) = (w.frame.start as i128, w.frame.end as i128);
            let (rs, re) = (r.frame.start as i128 - delta, r.frame.end as i128 - delta);
            if (ws, we) == (rs, re) {
                return Step::Pair;
            }
            // The tail of a message after lost bytes, when the other side has it whole.
            if w_tail && !r_tail && rs <= ws && re == we {
                return Step::Drop(Side::Writer);
            }
            if r_tail && !w_tail && ws <= rs && we == re {
                return Step::Drop(Side::Reader);
            }
            if we <= rs {
                return Step::Alone(Side::Writer);
            }
            if re <= ws {
                return Step::Alone(Side::Reader);
            }
            // Overlapping unequal ranges: the offsets no longer line up
            // (fall through to content).
        }
        if wt == rt {
            return Step::Pair;
        }
        if w_tail && !r_tail && rt.ends_with(wt) {
            return Step::Drop(Side::Writer);
        }
        if r_tail && !w_tail && wt.ends_with(rt) {
            return Step::Drop(Side::Reader);
        }
        let ahead = |side: Side, text: &[u8]| {
            self.queues[side as usize]
                .iter()
                .skip(1)
                .take(LOOKAHEAD)
                .any(|h| h.frame.text() == Some(text))
        };
        if ahead(Side::Writer, rt) {
            Step::Alone(Side::Writer)
        } else if ahead(Side::Reader, wt) {
            Step::Alone(Side::Reader)
        } else {
            Step::Wait
        }
    }

    fn pop(&mut self, side: Side) -> Held {
        let h = self.queues[side as usize]
            .pop_front()
            .expect("settle pops only a front it has seen");
        self.unhold(&h);
        h
    }

    fn pop_damaged(&mut self, side: Side) -> Held {
        let h = self.damaged[side as usize]
            .pop_front()
            .expect("settle pops only a front it has seen");
        self.unhold(&h);
        h
    }

    fn unhold(&mut self, h: &Held) {
        self.changes += 1;
        self.held_bytes -= h.frame.text().map_or(0, <[u8]>::len);
        self.held_ts.remove(h.frame.last_ts);
    }

    fn pair(&mut self, out: &mut impl FnMut(Merged)) {
        let mut w = self.pop(Side::Writer);
        let mut r = self.pop(Side::Reader);
        let single = self.streams[0].len() == 1 && self.streams[1].len() == 1;
        let aligned = r.frame.start as i128 - w.frame.start as i128;
        if single && self.delta != Some(aligned) {
            self.delta = Some(aligned);
        } else if !single {
            self.delta = None;
        }
        if self.delta_mode().is_none() {
            // FIFO: copies shown alone before this pair have no counterpart coming.
            self.ghosts[0].clear();
            self.ghosts[1].clear();
        }
        let differs = w.frame.text() != r.frame.text();
        let http = match (w.frame.http.take(), r.frame.http.take()) {
            (Some(mut mine), Some(theirs)) => {
                if mine != theirs {
                    Arc::make_mut(&mut mine).fill_from(&theirs);
                }
                Some(mine)
            }
            (mine, theirs) => mine.or(theirs),
        };
        out(Merged {
            writer: Some(Span::take(w.stream, &mut w.frame)),
            reader: Some(Span::take(r.stream, &mut r.frame)),
            body: w.frame.body,
            peer: None,
            differs,
            http,
            interleaved: Interleaved::No,
        });
    }

    fn alone(&self, side: Side, stream: usize, mut frame: Frame) -> Merged {
        let span = Span::take(stream, &mut frame);
        let (writer, reader) = match side {
            Side::Writer => (Some(span), None),
            Side::Reader => (None, Some(span)),
        };
        Merged {
            body: frame.body,
            writer,
            reader,
            peer: self.single_stream(side.other()),
            differs: false,
            http: frame.http,
            interleaved: Interleaved::No,
        }
    }

    /// Shows alone every held frame that has waited until `now` (or holds
    /// more than `max_held` bytes), remembering whole ones in case their
    /// counterpart still comes.
    pub fn expire(&mut self, now: u64, max_held: usize, out: &mut impl FnMut(Merged)) {
        loop {
            let over = self.held_bytes > max_held;
            let next = [Side::Writer, Side::Reader]
                .into_iter()
                .flat_map(|s| {
                    [
                        self.queues[s as usize]
                            .front()
                            .map(|h| (h.deadline, s, false)),
                        self.damaged[s as usize]
                            .front()
                            .map(|h| (h.deadline, s, true)),
                    ]
                })
                .flatten()
                .min_by_key(|&(d, ..)| d);
            let partial = self.partial_deadline();
            if partial.is_some_and(|p| next.is_none_or(|(d, ..)| p <= d) && (p <= now || over)) {
                self.expire_partial(out);
                self.settle(out);
                continue;
            }
            let Some((deadline, side, damaged)) = next else {
                break;
            };
            if deadline > now && !over {
                break;
            }
            if damaged && self.merge_damaged(out) {
                // Shown once, with the other side's copy.
            } else if damaged {
                let h = self.pop_damaged(side);
                let covered = self
                    .delta_mode()
                    .is_some_and(|delta| self.covered(side, &h.frame, delta));
                if !covered {
                    out(self.alone(side, h.stream, h.frame));
                }
            } else {
                let h = self.pop(side);
                self.timed_out = true;
                let ghosts = &mut self.ghosts[side as usize];
                ghosts.push_back(Ghost {
                    start: h.frame.start,
                    end: h.frame.end,
                    text: h.frame.text().unwrap_or_default().to_vec(),
                });
                if ghosts.len() > GHOSTS {
                    ghosts.pop_front();
                }
                out(self.alone(side, h.stream, h.frame));
            }
            self.settle(out);
        }
    }

    /// The capture is over: pairs what it can, shows the rest.
    pub fn finish(&mut self, out: &mut impl FnMut(Merged)) {
        self.settle(out);
        self.expire(u64::MAX, 0, out);
    }
}

enum Step {
    Pair,
    Alone(Side),
    Drop(Side),
    Wait,
}

#[cfg(test)]
mod tests;
