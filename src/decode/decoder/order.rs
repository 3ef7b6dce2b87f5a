//! The order in which items come out: a heap of ready items, released once
//! nothing still held could precede them, and the timers that force held
//! copies and holes on.

use super::{Decoder, Stream};
use crate::decode::channel::{Merged, TcpEnd};
use crate::decode::item::{Flag, HttpMeta, Item, Peer};
use crate::event::StreamId;
use std::cmp::{Ordering, Reverse};

/// What holds data back and has a timer: a stream or a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Owner {
    Stream(usize),
    Channel(usize),
}

pub(super) enum Pending {
    /// A message (or damage) out of a channel, and the channel. Boxed: the
    /// ready queue moves its entries as it sorts them.
    Merged(Box<Merged>, usize),
    Damage(Flag),
    /// One end of an HTTP/1.1 connection closed.
    Closed(Box<Closed>),
}

/// One end of an HTTP/1.1 connection closed, seen at that end (its close)
/// or at the other (its end of file).
pub(super) struct Closed {
    pub(super) tls: bool,
    /// The (local, remote) ends of the process that saw it.
    pub(super) ends: (TcpEnd, TcpEnd),
    pub(super) kind: u8,
    /// The process that saw it.
    pub(super) by: Peer,
    /// It was seen as an end of file (else as the closing end's close).
    pub(super) read_end: bool,
    /// The client closed (else the server).
    pub(super) by_client: bool,
    /// The END record: its number, stream, descriptor and place in it.
    pub(super) seq: u64,
    pub(super) stream: StreamId,
    pub(super) fd: u32,
    pub(super) stream_off: u64,
}

/// An item ready to be shown, ordered by timestamp, then stream offset (a
/// loss and the message after it can share a timestamp), then release order.
pub(super) struct Ready {
    ts: u64,
    offset: u64,
    order: u64,
    bytes: usize,
    what: Pending,
}

impl Ready {
    fn key(&self) -> (u64, u64, u64) {
        (self.ts, self.offset, self.order)
    }
}

impl PartialEq for Ready {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ready {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

impl Decoder {
    pub(super) fn schedule_merged(&mut self, channel: usize, merged: &mut Vec<Merged>) {
        for m in merged.drain(..) {
            let offset = m
                .writer
                .as_ref()
                .or(m.reader.as_ref())
                .map_or(0, |s| s.start);
            self.schedule(m.ts(), offset, Pending::Merged(Box::new(m), channel));
        }
    }

    pub(super) fn schedule(&mut self, ts: u64, offset: u64, what: Pending) {
        self.released += 1;
        let bytes = match &what {
            Pending::Merged(m, _) => m.body_len(),
            Pending::Damage(_) => 0,
            // Not text, but held like it: a flood of them is bounded too.
            Pending::Closed(_) => std::mem::size_of::<Closed>(),
        };
        self.ready_bytes += bytes;
        self.ready.push(Reverse(Ready {
            ts,
            offset,
            order: self.released,
            bytes,
            what,
        }));
    }

    /// Sets a timer for the owner's next deadline, and tracks what it holds.
    pub(super) fn arm(&mut self, owner: Owner) {
        let (deadline, timer_at, waiting) = match owner {
            Owner::Stream(i) => {
                let s = &mut self.streams[i];
                let waiting = s
                    .deferred
                    .since
                    .map(|t| t.saturating_add(self.opts.first_contact_ns));
                let deadline = match (s.reasm.deadline(self.opts.hold_ns), waiting) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (deadline, &mut s.timer_at, &mut self.waiting_streams)
            }
            Owner::Channel(c) => {
                let ch = &mut self.channels[c];
                (
                    ch.chan.deadline(),
                    &mut ch.timer_at,
                    &mut self.waiting_channels,
                )
            }
        };
        let idx = match owner {
            Owner::Stream(i) | Owner::Channel(i) => i,
        };
        match deadline {
            Some(d) => {
                waiting.insert(idx);
                if timer_at.is_none_or(|t| d < t) {
                    *timer_at = Some(d);
                    self.timers.push(Reverse((d, owner)));
                }
            }
            None => {
                waiting.remove(&idx);
            }
        }
    }

    pub(super) fn run_timers(&mut self) {
        while let Some(&Reverse((t, owner))) = self.timers.peek() {
            if t > self.clock {
                break;
            }
            self.timers.pop();
            let (clock, hold, max_held) = (self.clock, self.opts.hold_ns, self.opts.max_held);
            match owner {
                Owner::Stream(i) => {
                    let mut frames = std::mem::take(&mut self.frames);
                    let s = &mut self.streams[i];
                    if s.timer_at == Some(t) {
                        s.timer_at = None;
                    }
                    let Stream {
                        reasm,
                        framer,
                        sock,
                        ..
                    } = s;
                    let http = &mut self.sockets[*sock].state;
                    let keys = &self.keys;
                    reasm.expire(clock, hold, max_held, &mut |p| {
                        framer.feed(p, http, keys, &mut |f| frames.push(f))
                    });
                    self.route_frames(i, &mut frames);
                    self.frames = frames;
                    let waited = self.streams[i]
                        .deferred
                        .since
                        .is_some_and(|t| t.saturating_add(self.opts.first_contact_ns) <= clock);
                    if waited {
                        self.give_up_waiting(i);
                    }
                }
                Owner::Channel(c) => {
                    let mut merged = std::mem::take(&mut self.merged);
                    let ch = &mut self.channels[c];
                    if ch.timer_at == Some(t) {
                        ch.timer_at = None;
                    }
                    ch.chan.expire(clock, max_held, &mut |m| merged.push(m));
                    self.schedule_merged(c, &mut merged);
                    self.merged = merged;
                }
            }
            self.arm(owner);
        }
    }

    /// Shows the ready items that nothing held back could precede (and,
    /// when the clock stands still, the oldest ones past the memory limit).
    pub(super) fn release(&mut self, sink: &mut impl FnMut(&Item<'_>)) {
        while self.ready_bytes > self.opts.max_held {
            match self.ready.pop() {
                Some(Reverse(r)) => self.emit(r, sink),
                None => break,
            }
        }
        let Some(Reverse(top)) = self.ready.peek() else {
            return;
        };
        let horizon = self.clock.saturating_sub(self.opts.reorder_ns);
        if top.ts > horizon {
            return;
        }
        let held = self
            .waiting_streams
            .iter()
            .filter_map(|&i| {
                let s = &self.streams[i];
                match (s.reasm.min_pending_ts(), s.deferred.ts.min()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .chain(
                self.waiting_channels
                    .iter()
                    .filter_map(|&c| self.channels[c].chan.min_held_ts()),
            )
            .min();
        let bound = held.map_or(horizon, |h| h.min(horizon));
        while self.ready.peek().is_some_and(|Reverse(r)| r.ts <= bound) {
            if let Some(Reverse(r)) = self.ready.pop() {
                self.emit(r, sink);
            }
        }
    }

    pub(super) fn emit(&mut self, r: Ready, sink: &mut impl FnMut(&Item<'_>)) {
        self.ready_bytes -= r.bytes;
        match r.what {
            Pending::Damage(flag) => self.sessions.damage(r.ts, flag, sink),
            Pending::Merged(m, channel) => {
                let pieces = self.pieces(&m);
                let route = self.route(&m, channel, &pieces);
                self.sessions.handle(&route, &m.body, sink);
            }
            Pending::Closed(c) => {
                let meta = HttpMeta {
                    is_request: c.by_client,
                    ..HttpMeta::default()
                };
                let route = c.route(r.ts, &meta);
                self.sessions.closed(&route, c.read_end, c.by_client, sink);
            }
        }
    }
}
