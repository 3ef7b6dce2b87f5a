//! Two or more writers on one pipe: a line the reader read may be made of
//! pieces of several writers' lines, when they wrote them in more than one
//! `write` each. This finds the pieces: the reader's line as an interleaving
//! of the writers' pending bytes, each writer's taken in its own order.

use super::{Channel, Held, Interleaved, Merged, Side, Span};
use crate::decode::frame::FrameBody;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

/// A writer's line that the reader has received part of.
pub(super) struct Partial {
    pub held: Held,
    /// Its bytes (text, then newline) the reader has received.
    pub taken: usize,
}

/// Writers' lines looked through for each writer's oldest.
const SEARCH: usize = 64;
/// Longer lines are not taken apart: writes of up to the pipe's atomic
/// size (4 KiB) are what interleave, and the search is bounded by length.
const MAX_LINE: usize = 64 << 10;
/// Searches one reader's line gets (each after a change to the writers'
/// lines), and steps each search may take beyond the line's length.
const MAX_SEARCHES: u32 = 8;
const SPARE_STEPS: usize = 10_000;

/// The text of a whole line with nothing else in its span (no HTTP, no
/// cuts, no carriage return): what can be matched byte for byte.
fn plain_text(h: &Held) -> Option<&[u8]> {
    match &h.frame.body {
        FrameBody::Text {
            text,
            cut_start: None,
            cut_end: None,
        } if h.frame.http.is_none()
            && text.len() <= MAX_LINE
            && text.len() as u64 == h.frame.end - h.frame.start =>
        {
            Some(text)
        }
        _ => None,
    }
}

/// Where a source came from.
#[derive(Clone, Copy)]
enum From {
    Partial(usize),
    Queued(usize),
}

impl Channel {
    /// Takes the reader's oldest waiting line apart into pieces of the
    /// writers' lines, when it is made of them; shows it, and every
    /// writer's line it completes. False when it is not (or not yet) one.
    pub(super) fn splice(&mut self, out: &mut impl FnMut(Merged)) -> bool {
        if self.streams[Side::Writer as usize].len() < 2 {
            return false;
        }
        let Some(front) = self.queues[Side::Reader as usize].front() else {
            return false;
        };
        let searches = match self.unexplained {
            Some((stream, start, changes, n))
                if (stream, start) == (front.stream, front.frame.start) =>
            {
                if changes == self.changes || n >= MAX_SEARCHES {
                    return false;
                }
                n + 1
            }
            _ => 1,
        };
        let failed = (front.stream, front.frame.start, self.changes, searches);
        let Some(line) = plain_text(front) else {
            return false;
        };
        let mut from = Vec::new();
        let mut sources = Vec::new();
        for &stream in &self.streams[Side::Writer as usize] {
            if sources.len() == MAX_SOURCES {
                break;
            }
            let (source, text, taken) =
                match self.partial.iter().position(|p| p.held.stream == stream) {
                    Some(i) => (
                        From::Partial(i),
                        plain_text(&self.partial[i].held),
                        self.partial[i].taken,
                    ),
                    None => {
                        let queue = &self.queues[Side::Writer as usize];
                        match queue.iter().take(SEARCH).position(|h| h.stream == stream) {
                            Some(i) => (From::Queued(i), plain_text(&queue[i]), 0),
                            None => continue,
                        }
                    }
                };
            if let Some(text) = text {
                from.push(source);
                sources.push(Source { text, taken });
            }
        }
        // Where writers' bytes are alike, the one that began its line first
        // is taken first.
        let began = |f: &From| match *f {
            From::Partial(i) => self.partial[i].held.frame.first_ts,
            From::Queued(i) => self.queues[Side::Writer as usize][i].frame.first_ts,
        };
        let mut order: Vec<usize> = (0..from.len()).collect();
        order.sort_by_key(|&i| began(&from[i]));
        let from: Vec<From> = order.iter().map(|&i| from[i]).collect();
        let sources: Vec<Source<'_>> = order.iter().map(|&i| sources[i]).collect();
        let budget = 2 * (line.len() + 1) + SPARE_STEPS;
        let Some(shares) = explain(line, &sources, budget) else {
            self.unexplained = Some(failed);
            return false;
        };
        // One writer's whole line is a copy out of order, for pairing.
        if let [one] = shares.as_slice() {
            if matches!(from[one.source], From::Queued(_)) && one.len == sources[one.source].left()
            {
                self.unexplained = Some(failed);
                return false;
            }
        }
        let pieces: Vec<Span> = shares
            .iter()
            .map(|sh| {
                let (held, taken) = match from[sh.source] {
                    From::Partial(i) => (&self.partial[i].held, self.partial[i].taken),
                    From::Queued(i) => (&self.queues[Side::Writer as usize][i], 0),
                };
                let f = &held.frame;
                let at = |n: usize| f.start + (n as u64).min(f.end - f.start);
                // A piece of only the newline is empty, at its line's end.
                let (start, end) = (at(taken), at(taken + sh.len));
                Span {
                    stream: held.stream,
                    start,
                    end,
                    first_ts: f.first_ts,
                    last_ts: f.last_ts,
                    seqs: Vec::new(),
                }
            })
            .collect();
        let mut queued = Vec::new();
        for sh in &shares {
            match from[sh.source] {
                From::Partial(i) => self.partial[i].taken += sh.len,
                From::Queued(i) => queued.push((i, sh.len)),
            }
        }
        // Later places first, so that the earlier ones stay where they are.
        queued.sort_unstable_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, taken) in queued {
            if let Some(held) = self.queues[Side::Writer as usize].remove(i) {
                self.partial.push(Partial { held, taken });
            }
        }
        let mut r = self.pop(Side::Reader);
        out(Merged {
            reader: Some(Span::take(r.stream, &mut r.frame)),
            body: r.frame.body,
            writer: None,
            peer: None,
            differs: false,
            http: None,
            interleaved: Interleaved::Received(pieces),
        });
        let mut i = 0;
        while i < self.partial.len() {
            let p = &self.partial[i];
            if p.taken > p.held.frame.text().map_or(0, <[u8]>::len) {
                let p = self.partial.remove(i);
                self.show_sent(p.held, out);
            } else {
                i += 1;
            }
        }
        true
    }

    pub(super) fn partial_deadline(&self) -> Option<u64> {
        self.partial.iter().map(|p| p.held.deadline).min()
    }

    /// Shows the writer's line received in part that has waited longest.
    pub(super) fn expire_partial(&mut self, out: &mut impl FnMut(Merged)) {
        let oldest = (0..self.partial.len()).min_by_key(|&i| self.partial[i].held.deadline);
        if let Some(i) = oldest {
            let p = self.partial.remove(i);
            self.show_sent(p.held, out);
        }
    }

    fn show_sent(&mut self, held: Held, out: &mut impl FnMut(Merged)) {
        self.unhold(&held);
        let mut m = self.alone(Side::Writer, held.stream, held.frame);
        m.interleaved = Interleaved::Sent;
        out(m);
    }
}

/// A writer's pending bytes: `text[taken..]`, then the newline that ended
/// the line.
#[derive(Clone, Copy, Debug)]
pub(super) struct Source<'a> {
    pub text: &'a [u8],
    pub taken: usize,
}

impl Source<'_> {
    fn byte(&self, i: usize) -> Option<u8> {
        match i.cmp(&self.text.len()) {
            std::cmp::Ordering::Less => Some(self.text[i]),
            std::cmp::Ordering::Equal => Some(b'\n'),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Bytes left, the newline included.
    pub fn left(&self) -> usize {
        (self.text.len() + 1).saturating_sub(self.taken)
    }
}

/// Writers considered at once (a step's choice is stored in a byte).
pub(super) const MAX_SOURCES: usize = 16;

/// One source's share of the line: how many bytes, and where its first
/// byte sits in the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Share {
    pub source: usize,
    pub first: usize,
    pub len: usize,
}

/// The reader's `line` (its newline implied) as pieces of the sources, in
/// order of first appearance; None when it is not one, or when telling
/// would take more than `budget` steps. Only the line's newline can end a
/// source's line, so every other source gives a piece of the middle of its
/// own. A run of one source is tried first: writers write in runs.
pub(super) fn explain(line: &[u8], sources: &[Source<'_>], budget: usize) -> Option<Vec<Share>> {
    debug_assert!(sources.len() <= MAX_SOURCES);
    let len = line.len() + 1;
    let at = |pos: usize| if pos < line.len() { line[pos] } else { b'\n' };
    let mut taken: Vec<usize> = sources.iter().map(|s| s.taken).collect();
    // At each position: the source used, and its rank among the choices.
    let mut path: Vec<(u8, u8)> = Vec::with_capacity(len);
    // States known to lead nowhere (positions follow from `taken`), by
    // hash: 8 bytes each, at most one a step (a collision can only lose an
    // explanation, never make one).
    let state = RandomState::new();
    let mut dead: HashSet<u64> = HashSet::new();
    let mut from_rank = 0;
    let mut steps = 0usize;
    while path.len() < len {
        let prev = path.last().map(|&(s, _)| usize::from(s));
        // Rank 0 is the source of the byte before; then the rest in order.
        let choice = |rank: usize| match prev {
            Some(p) if rank == 0 => p,
            Some(p) => (0..sources.len())
                .filter(|&s| s != p)
                .nth(rank - 1)
                .unwrap_or(p),
            None => rank,
        };
        let want = at(path.len());
        let mut next = None;
        for rank in from_rank..sources.len() {
            let s = choice(rank);
            if sources[s].byte(taken[s]) != Some(want) {
                continue;
            }
            taken[s] += 1;
            if dead.contains(&state.hash_one(&taken)) {
                taken[s] -= 1;
                continue;
            }
            next = Some((s as u8, rank as u8));
            break;
        }
        steps += 1;
        if steps > budget {
            return None;
        }
        match next {
            Some(step) => {
                path.push(step);
                from_rank = 0;
            }
            None => {
                dead.insert(state.hash_one(&taken));
                let (s, rank) = path.pop()?;
                taken[usize::from(s)] -= 1;
                from_rank = usize::from(rank) + 1;
            }
        }
    }
    let mut shares: Vec<Share> = Vec::new();
    for (pos, &(s, _)) in path.iter().enumerate() {
        let s = usize::from(s);
        match shares.iter_mut().find(|sh| sh.source == s) {
            Some(sh) => sh.len += 1,
            None => shares.push(Share {
                source: s,
                first: pos,
                len: 1,
            }),
        }
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str, taken: usize) -> Source<'_> {
        Source {
            text: text.as_bytes(),
            taken,
        }
    }

    fn share(source: usize, first: usize, len: usize) -> Share {
        Share { source, first, len }
    }

    #[test]
    fn pieces_of_two_lines_are_found_in_turn() {
        // A wrote `{"a":1,"x":2}` as `{"a":1,` + `"x":2}`, B `{"b":3}` whole
        // between them; the reader's first line ends at B's newline.
        let a = src(r#"{"a":1,"x":2}"#, 0);
        let b = src(r#"{"b":3}"#, 0);
        let line = br#"{"a":1,{"b":3}"#;
        assert_eq!(
            explain(line, &[a, b], 10_000),
            Some(vec![share(0, 0, 7), share(1, 7, 8)])
        );
        // The rest of A's line is the reader's next line, alone.
        let a = src(r#"{"a":1,"x":2}"#, 7);
        assert_eq!(
            explain(br#""x":2}"#, &[a, b], 10_000).map(|s| s.len()),
            Some(1)
        );
    }

    #[test]
    fn a_common_prefix_is_resolved_by_backtracking() {
        // Both lines start alike; the first guess (A throughout) fails.
        let a = src(r#"{"id":1,"m":"x"}"#, 0);
        let b = src(r#"{"id":2}"#, 0);
        let line = br#"{"id":{"id":2}"#;
        assert_eq!(
            explain(line, &[a, b], 10_000),
            Some(vec![share(0, 0, 6), share(1, 6, 9)])
        );
    }

    #[test]
    fn a_line_that_is_no_interleaving_is_refused() {
        let a = src(r#"{"a":1}"#, 0);
        let b = src(r#"{"b":2}"#, 0);
        assert_eq!(explain(br#"{"c":3}"#, &[a, b], 10_000), None);
        // A newline only ends the line: B's cannot come before A's bytes.
        assert_eq!(explain(br#"{"b":2}{"a":1}{"a":1}"#, &[a, b], 10_000), None);
        // Bytes the writers have not (yet) written.
        assert_eq!(explain(br#"{"a":1,{"b":2}"#, &[a, b], 10_000), None);
    }

    #[test]
    fn the_budget_bounds_the_search() {
        let a = "x".repeat(200);
        let b = format!("{}y", "x".repeat(100));
        let line = format!("{}y", "x".repeat(300));
        let sources = [src(&a, 0), src(&b, 0)];
        let found = explain(line.as_bytes(), &sources, 10_000);
        assert_eq!(found, Some(vec![share(0, 0, 200), share(1, 200, 102)]));
        assert_eq!(explain(line.as_bytes(), &sources, 100), None);
    }
}
