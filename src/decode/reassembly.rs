//! Stream reassembly: one stream's records, in arrival order, become its bytes
//! in offset order, with every hole made explicit.
//!
//! The kernel numbers each stream's bytes (`stream_off`) and counts even the
//! bytes of records it then lost, so a lost record is a hole in the offsets.
//! Records of one stream can arrive slightly out of offset order (several
//! threads), so data beyond a hole waits, for a while, for the hole to fill.

use super::MinSet;
use std::collections::BTreeMap;

/// Why bytes of a stream are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Their records are not in the capture (ring buffer full, or the
    /// recorder stopped before storing them).
    Missing,
    /// The kernel could not read the caller's memory.
    ReadFailed,
    /// The kernel captured only the first part of the call.
    Truncated,
    /// Captured, but the decoder cut the message there to bound its memory
    /// (a capture holding more at once than any real one does).
    Limit,
}

impl Loss {
    pub fn as_str(self) -> &'static str {
        match self {
            Loss::Missing => "records missing from the capture",
            Loss::ReadFailed => "the kernel could not read the data",
            Loss::Truncated => "the recorder captured only part of the call",
            Loss::Limit => {
                "the message was cut here: the decoder holds at most its memory limit at once"
            }
        }
    }
}

/// One record's contribution to its stream.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    pub off: u64,
    pub bytes: &'a [u8],
    pub ts: u64,
    pub seq: u64,
    /// The record is a READ_FAILED marker: its bytes are lost.
    pub read_failed: bool,
    /// Offset just past the end of the call this chunk belongs to.
    pub call_end: u64,
    /// The bytes of the call after this chunk were not captured.
    pub truncated: bool,
}

/// Reassembled output, in offset order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Data {
        off: u64,
        bytes: &'a [u8],
        ts: u64,
        seq: u64,
    },
    Lost {
        off: u64,
        len: u64,
        why: Loss,
        ts: u64,
        seq: Option<u64>,
    },
    /// Bytes that arrived after their place in the stream had been passed
    /// (reported lost, or delivered already).
    Late {
        off: u64,
        len: u64,
        ts: u64,
        seq: u64,
    },
}

#[derive(Debug)]
enum Body {
    Data(Vec<u8>),
    /// `soft`: the extent is an upper bound; the next segment's offset ends it.
    Lost {
        len: u64,
        soft: bool,
        why: Loss,
    },
}

#[derive(Debug)]
struct Segment {
    body: Body,
    ts: u64,
    seq: u64,
    /// Decoder clock when it arrived: holes time out from here.
    arrival: u64,
}

pub struct Reassembler {
    /// Every byte before this offset has been delivered.
    next: u64,
    /// Timestamp of the last record delivered: lost bytes came after it.
    last_ts: Option<u64>,
    pending: BTreeMap<u64, Segment>,
    pending_bytes: usize,
    /// Timestamps and arrivals of the pending segments.
    pending_ts: MinSet,
    pending_arrivals: MinSet,
}

impl Reassembler {
    /// A stream whose first byte is at `start`.
    pub fn new(start: u64) -> Self {
        Reassembler {
            next: start,
            last_ts: None,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            pending_ts: MinSet::default(),
            pending_arrivals: MinSet::default(),
        }
    }

    pub fn next_offset(&self) -> u64 {
        self.next
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Smallest timestamp of the data held back.
    pub fn min_pending_ts(&self) -> Option<u64> {
        self.pending_ts.min()
    }

    /// When the oldest hole times out.
    pub fn deadline(&self, hold: u64) -> Option<u64> {
        self.pending_arrivals.min().map(|a| a.saturating_add(hold))
    }

    pub fn push(&mut self, c: Chunk<'_>, clock: u64, out: &mut impl FnMut(Piece<'_>)) {
        let data_end = c.off.saturating_add(c.bytes.len() as u64);
        if c.read_failed {
            let len = c
                .call_end
                .saturating_sub(c.off)
                .min(crate::event::CHUNK_MAX as u64);
            self.insert(
                c.off,
                Body::Lost {
                    len,
                    soft: true,
                    why: Loss::ReadFailed,
                },
                c,
                clock,
                out,
            );
        } else if !c.bytes.is_empty() {
            if self.pending.is_empty() && c.off == self.next {
                // The common case: in order, nothing held. No copy.
                out(Piece::Data {
                    off: c.off,
                    bytes: c.bytes,
                    ts: c.ts,
                    seq: c.seq,
                });
                self.next = data_end;
                self.last_ts = Some(c.ts);
            } else {
                self.insert(c.off, Body::Data(c.bytes.to_vec()), c, clock, out);
            }
        }
        if c.truncated && c.call_end > data_end {
            let body = Body::Lost {
                len: c.call_end - data_end,
                soft: false,
                why: Loss::Truncated,
            };
            self.insert(data_end, body, c, clock, out);
        }
        self.drain(out);
    }

    fn insert(
        &mut self,
        off: u64,
        body: Body,
        c: Chunk<'_>,
        clock: u64,
        out: &mut impl FnMut(Piece<'_>),
    ) {
        let len = match &body {
            Body::Data(v) => v.len() as u64,
            Body::Lost { len, .. } => *len,
        };
        if len == 0 {
            return;
        }
        let late = Piece::Late {
            off,
            len,
            ts: c.ts,
            seq: c.seq,
        };
        if off.saturating_add(len) <= self.next {
            out(late);
            return;
        }
        let seg = Segment {
            body,
            ts: c.ts,
            seq: c.seq,
            arrival: clock.max(c.ts),
        };
        match self.pending.get(&off) {
            // Data beats a loss marker at the same place; anything else there is a duplicate.
            Some(Segment {
                body: Body::Lost { .. },
                ..
            }) if matches!(seg.body, Body::Data(_)) => {
                self.remove_at(off);
            }
            Some(_) => {
                out(late);
                return;
            }
            None => {}
        }
        if let Body::Data(v) = &seg.body {
            self.pending_bytes += v.len();
        }
        self.pending_ts.insert(seg.ts);
        self.pending_arrivals.insert(seg.arrival);
        self.pending.insert(off, seg);
    }

    fn remove_at(&mut self, off: u64) -> Option<Segment> {
        let seg = self.pending.remove(&off)?;
        if let Body::Data(v) = &seg.body {
            self.pending_bytes -= v.len();
        }
        self.pending_ts.remove(seg.ts);
        self.pending_arrivals.remove(seg.arrival);
        Some(seg)
    }

    /// Delivers everything that is now in order.
    fn drain(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        while let Some((&off, seg)) = self.pending.first_key_value() {
            if off > self.next {
                break;
            }
            let end = match &seg.body {
                Body::Lost {
                    len, soft: true, ..
                } => {
                    // A failed read's extent ends where the next segment starts.
                    let Some((&following, _)) = self.pending.range(off + 1..).next() else {
                        break;
                    };
                    off.saturating_add(*len).min(following)
                }
                Body::Lost { len, .. } => off.saturating_add(*len),
                Body::Data(v) => off + v.len() as u64,
            };
            let Some(seg) = self.remove_at(off) else {
                break;
            };
            self.deliver(off, end, seg, out);
        }
    }

    fn deliver(&mut self, off: u64, end: u64, seg: Segment, out: &mut impl FnMut(Piece<'_>)) {
        if end <= self.next {
            out(Piece::Late {
                off,
                len: end - off,
                ts: seg.ts,
                seq: seg.seq,
            });
            return;
        }
        let from = self.next.max(off);
        match seg.body {
            Body::Data(v) => {
                let skip = (from - off) as usize;
                out(Piece::Data {
                    off: from,
                    bytes: &v[skip..],
                    ts: seg.ts,
                    seq: seg.seq,
                });
            }
            Body::Lost { why, .. } => out(Piece::Lost {
                off: from,
                len: end - from,
                why,
                ts: seg.ts,
                seq: Some(seg.seq),
            }),
        }
        self.next = end;
        self.last_ts = Some(self.last_ts.map_or(seg.ts, |t| t.max(seg.ts)));
    }

    /// Gives up waiting on holes that have waited `hold` or longer (all of
    /// them when `clock` is u64::MAX), and on any hold over `max_pending` bytes.
    pub fn expire(
        &mut self,
        clock: u64,
        hold: u64,
        max_pending: usize,
        out: &mut impl FnMut(Piece<'_>),
    ) {
        while self
            .deadline(hold)
            .is_some_and(|d| d <= clock || self.pending_bytes > max_pending)
        {
            let before = (self.next, self.pending.len());
            self.resolve_front(out);
            self.drain(out);
            if (self.next, self.pending.len()) == before {
                break;
            }
        }
    }

    /// Declares the first hole lost, or ends a failed read that nothing follows.
    fn resolve_front(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        let Some((&off, seg)) = self.pending.first_key_value() else {
            return;
        };
        if off > self.next {
            out(Piece::Lost {
                off: self.next,
                len: off - self.next,
                why: Loss::Missing,
                ts: self.last_ts.unwrap_or(seg.ts),
                seq: None,
            });
            self.next = off;
        } else if let Body::Lost { len, .. } = seg.body {
            let end = off.saturating_add(len);
            if let Some(seg) = self.remove_at(off) {
                self.deliver(off, end, seg, out);
            }
        }
    }

    /// Delivers everything held: the stream has ended.
    pub fn finish(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        self.expire(u64::MAX, 0, 0, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum P {
        D(u64, Vec<u8>),
        L(u64, u64, Loss),
        Late(u64, u64),
    }

    fn own(p: Piece<'_>) -> P {
        match p {
            Piece::Data { off, bytes, .. } => P::D(off, bytes.to_vec()),
            Piece::Lost { off, len, why, .. } => P::L(off, len, why),
            Piece::Late { off, len, .. } => P::Late(off, len),
        }
    }

    fn chunk(off: u64, bytes: &[u8]) -> Chunk<'_> {
        Chunk {
            off,
            bytes,
            ts: 0,
            seq: 0,
            read_failed: false,
            call_end: off + bytes.len() as u64,
            truncated: false,
        }
    }

    fn run(r: &mut Reassembler, c: Chunk<'_>, clock: u64) -> Vec<P> {
        let mut v = Vec::new();
        r.push(c, clock, &mut |p| v.push(own(p)));
        v
    }

    #[test]
    fn out_of_order_chunks_are_put_back_in_order() {
        let mut r = Reassembler::new(0);
        assert_eq!(
            run(&mut r, chunk(0, b"ab"), 0),
            vec![P::D(0, b"ab".to_vec())]
        );
        assert!(run(&mut r, chunk(4, b"ef"), 0).is_empty());
        assert_eq!(r.min_pending_ts(), Some(0));
        assert_eq!(
            run(&mut r, chunk(2, b"cd"), 0),
            vec![P::D(2, b"cd".to_vec()), P::D(4, b"ef".to_vec())]
        );
        assert!(r.deadline(0).is_none());
        // A duplicate and an overlap.
        assert_eq!(run(&mut r, chunk(2, b"cd"), 0), vec![P::Late(2, 2)]);
        assert!(run(&mut r, chunk(7, b"hi"), 0).is_empty());
        assert_eq!(
            run(&mut r, chunk(5, b"fg"), 0),
            vec![P::D(6, b"g".to_vec()), P::D(7, b"hi".to_vec())]
        );
    }

    #[test]
    fn holes_time_out_into_losses() {
        let mut r = Reassembler::new(0);
        assert!(run(&mut r, chunk(10, b"xy"), 100).is_empty());
        assert_eq!(r.deadline(50), Some(150));
        let mut v = Vec::new();
        r.expire(149, 50, usize::MAX, &mut |p| v.push(own(p)));
        assert!(v.is_empty());
        r.expire(150, 50, usize::MAX, &mut |p| v.push(own(p)));
        assert_eq!(
            v,
            vec![P::L(0, 10, Loss::Missing), P::D(10, b"xy".to_vec())]
        );
        // The missing bytes turning up later are reported, not replayed.
        assert_eq!(
            run(&mut r, chunk(0, b"0123456789"), 200),
            vec![P::Late(0, 10)]
        );
    }

    #[test]
    fn failed_reads_and_truncated_calls_are_losses() {
        let mut r = Reassembler::new(0);
        // A 20-byte call: chunk one unreadable (its size is set by the next chunk).
        let failed = Chunk {
            read_failed: true,
            call_end: 20,
            ..chunk(0, b"")
        };
        assert!(run(&mut r, failed, 0).is_empty());
        let second = Chunk {
            call_end: 20,
            ..chunk(12, b"abcdefgh")
        };
        assert_eq!(
            run(&mut r, second, 0),
            vec![
                P::L(0, 12, Loss::ReadFailed),
                P::D(12, b"abcdefgh".to_vec())
            ]
        );
        // A call of 100 bytes of which 4 were captured.
        let cut = Chunk {
            truncated: true,
            call_end: 120,
            ..chunk(20, b"head")
        };
        assert_eq!(
            run(&mut r, cut, 0),
            vec![P::D(20, b"head".to_vec()), P::L(24, 96, Loss::Truncated)]
        );
        // A failed read at the end of the capture.
        let last = Chunk {
            read_failed: true,
            call_end: 125,
            ..chunk(120, b"")
        };
        assert!(run(&mut r, last, 0).is_empty());
        let mut v = Vec::new();
        r.finish(&mut |p| v.push(own(p)));
        assert_eq!(v, vec![P::L(120, 5, Loss::ReadFailed)]);
        assert!(r.deadline(0).is_none());
    }

    #[test]
    fn memory_cap_forces_a_gap() {
        let mut r = Reassembler::new(0);
        run(&mut r, chunk(5, &[b'x'; 100]), 0);
        let mut v = Vec::new();
        r.expire(0, 1_000, 50, &mut |p| v.push(own(p)));
        assert_eq!(v[0], P::L(0, 5, Loss::Missing));
        assert!(r.deadline(0).is_none());
    }
}
