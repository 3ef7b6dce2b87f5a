//! The decoder's memory as a whole. Each stream and channel bounds what it
//! holds (`max_held`, `max_line`), but a crafted capture can open very
//! many of them at once, each holding up to its own limit. So the totals
//! are bounded too: at most `max_streams` streams are decoded, and what
//! all of them hold stays near `max_total_held`, by forcing the largest
//! holders on (their open messages cut, and flagged where they were cut).

use super::order::{Owner, Pending};
use super::Decoder;
use crate::decode::item::{Flag, FlagReason};
use crate::decode::reassembly::{Loss, Piece};

/// What the budget keeps between records.
#[derive(Default)]
pub(super) struct Budget {
    /// Bytes taken in (records, and frames made) since holdings were last measured.
    fed: usize,
    /// Records of streams past `max_streams`: not decoded.
    refused_records: u64,
    refused_bytes: u64,
}

impl Decoder {
    /// Counts bytes taken in; holdings are measured once enough came in
    /// that they could have grown past the budget's slack.
    pub(super) fn took_in(&mut self, bytes: usize) {
        self.budget.fed = self.budget.fed.saturating_add(bytes);
    }

    /// A record of a stream past `max_streams`: the first is flagged, the
    /// rest counted (and flagged once, at the end).
    pub(super) fn refuse_stream(&mut self, seq: u64, bytes: usize) {
        let b = &mut self.budget;
        b.refused_records += 1;
        b.refused_bytes = b.refused_bytes.saturating_add(bytes as u64);
        if b.refused_records == 1 {
            let flag = Flag::new(
                FlagReason::Unsupported,
                format!(
                    "record {seq} opens stream number {} and the decoder follows at most {}: \
                     records of further streams are counted, not decoded",
                    self.opts.max_streams + 1,
                    self.opts.max_streams
                ),
                bytes as u64,
            );
            self.schedule(self.clock, 0, Pending::Damage(flag));
        }
    }

    /// The refused records, once, at the end.
    pub(super) fn report_refused(&mut self) {
        let b = &self.budget;
        if b.refused_records > 1 {
            let flag = Flag::new(
                FlagReason::Unsupported,
                format!(
                    "{} records ({} bytes) of streams past the decoder's {} were not decoded",
                    b.refused_records, b.refused_bytes, self.opts.max_streams
                ),
                b.refused_bytes,
            );
            self.schedule(self.clock, 0, Pending::Damage(flag));
        }
    }

    /// Measures what is held once enough came in since the last measure,
    /// and forces the largest holders on while the total is over budget.
    pub(super) fn keep_to_budget(&mut self) {
        let limit = self.opts.max_total_held;
        if self.budget.fed < limit / 4 {
            return;
        }
        self.budget.fed = 0;
        let streams = self.streams.iter().enumerate().map(|(i, s)| {
            let held = s.reasm.pending_bytes() + s.framer.held() + s.deferred.bytes;
            (held, Owner::Stream(i))
        });
        let channels = (self.channels.iter().enumerate())
            .map(|(c, ch)| (ch.chan.held_bytes(), Owner::Channel(c)));
        let mut holders: Vec<(usize, Owner)> =
            streams.chain(channels).filter(|(b, _)| *b > 0).collect();
        let mut total: usize = holders.iter().map(|h| h.0).sum::<usize>() + self.ready_bytes;
        if total <= limit {
            return;
        }
        holders.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        for (held, owner) in holders {
            if total <= limit / 2 {
                break;
            }
            self.force(owner);
            total -= held;
        }
    }

    /// Everything `owner` holds goes on now: a stream's holes are declared
    /// lost and its open message cut; a channel's copies stop waiting.
    fn force(&mut self, owner: Owner) {
        match owner {
            Owner::Stream(i) => {
                let clock = self.clock;
                let mut frames = std::mem::take(&mut self.frames);
                let s = &mut self.streams[i];
                let http = &mut self.sockets[s.sock].state;
                let keys = &self.keys;
                let (reasm, framer) = (&mut s.reasm, &mut s.framer);
                reasm.expire(clock, 0, 0, &mut |p| {
                    framer.feed(p, http, keys, &mut |f| frames.push(f))
                });
                if framer.held() > 0 {
                    let cut = Piece::Lost {
                        off: reasm.next_offset(),
                        len: 0,
                        why: Loss::Limit,
                        ts: clock,
                        seq: None,
                    };
                    framer.feed(cut, http, keys, &mut |f| frames.push(f));
                }
                self.route_frames(i, &mut frames);
                self.frames = frames;
                self.give_up_waiting(i);
                self.arm(owner);
            }
            Owner::Channel(c) => {
                let mut merged = std::mem::take(&mut self.merged);
                self.channels[c]
                    .chan
                    .expire(self.clock, 0, &mut |m| merged.push(m));
                self.schedule_merged(c, &mut merged);
                self.merged = merged;
                self.arm(owner);
            }
        }
    }
}
