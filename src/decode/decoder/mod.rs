//! The decoder: records in, items out, through the stages of this module.
//!
//! The decoder is incremental and deterministic: replay feeds it the records
//! of a file, the live recorder feeds it the records it writes, in the same
//! order, and both get the same items. Its only clock is the records' own
//! timestamps and ticks. Items come out in time order (message timestamp;
//! ties by stream offset, then release order): an item is released once
//! nothing still held could produce an earlier one, `reorder_ns` after the
//! clock passes it. Holding is bounded in time (`hold_ns`, `first_contact_ns`)
//! and in bytes (`max_held`), never by the size of the capture.
//!
//! The two ends of a TCP connection pair by their mirrored addresses. TLS
//! plaintext is keyed by the SSL* until the recorder learns its socket,
//! possibly only from a later record or from the other direction's: a TLS
//! stream whose socket is unknown holds its frames (up to
//! `first_contact_ns`) and joins its connection's channel once the socket
//! is known; a stream whose SSL* moves to another socket moves with it.

mod budget;
mod order;
mod route;
mod tables;

use super::channel::{Channel, ChannelKey, Merged, Side, TcpEnd};
use super::frame::Frame;
use super::framer::{Framer, SocketState};
use super::item::{Flag, FlagReason, Item, Peer, SessionSummary};
use super::reassembly::{self, Chunk, Reassembler};
use super::session::Sessions;
use super::tls::KeyLog;
use super::{BlockError, DecodeOptions, MinSet, Numbered, Record};
use crate::event::{fd_kind, flags, kind, Direction, EventHeader, RawEvent, StreamId};
use order::{Owner, Pending, Ready};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

struct Stream {
    hdr: EventHeader,
    reasm: Reassembler,
    framer: Framer,
    /// Its socket, shared with the other direction.
    sock: usize,
    /// The channel its frames go to: None while a TLS stream waits to
    /// learn its socket (its frames wait in `deferred`).
    channel: Option<usize>,
    /// The connection that channel belongs to (None: a channel of its own).
    keyed: Option<ChannelKey>,
    side: Side,
    timer_at: Option<u64>,
    deferred: Deferred,
    /// It has brought a message's text to its channel.
    brought_text: bool,
}

/// Frames of a TLS stream whose socket is not known yet.
#[derive(Default)]
struct Deferred {
    frames: Vec<Frame>,
    bytes: usize,
    ts: MinSet,
    /// Decoder clock when the first of them was held.
    since: Option<u64>,
}

/// One process's socket (or TLS connection): what its two directions share.
struct Socket {
    /// (local, remote) TCP ends, once known, and the file descriptor.
    tuple: Option<(TcpEnd, TcpEnd)>,
    fd_kind: u8,
    fd: u32,
    /// Ends the recorder still names after the SSL* moved to another
    /// socket (learned from the content): ignored from then on.
    stale: Option<(TcpEnd, TcpEnd)>,
    streams: Vec<usize>,
    state: SocketState,
}

impl Stream {
    fn peer(&self) -> Peer {
        Peer {
            pid: self.hdr.tgid,
            comm: self.hdr.comm,
        }
    }
}

struct ChannelSlot {
    chan: Channel,
    key: Option<ChannelKey>,
    timer_at: Option<u64>,
}

/// The correlator. Feed it records in file order; it calls `sink` with each item.
pub struct Decoder {
    opts: DecodeOptions,
    clock: u64,
    streams: Vec<Stream>,
    stream_index: HashMap<StreamId, usize>,
    sockets: Vec<Socket>,
    /// (tgid, tls, inode or SSL*) → socket.
    socket_index: HashMap<(u32, bool, u64), usize>,
    channels: Vec<ChannelSlot>,
    channel_index: HashMap<ChannelKey, usize>,
    /// TLS channels that have seen a writer but no reader, by the
    /// receiving end; and a reader but no writer, by the sending end.
    readerless: HashMap<TcpEnd, BTreeSet<usize>>,
    writerless: HashMap<TcpEnd, BTreeSet<usize>>,
    timers: BinaryHeap<Reverse<(u64, Owner)>>,
    waiting_streams: BTreeSet<usize>,
    waiting_channels: BTreeSet<usize>,
    ready: BinaryHeap<Reverse<Ready>>,
    /// Text bytes in `ready`.
    ready_bytes: usize,
    released: u64,
    sessions: Sessions,
    frames: Vec<Frame>,
    merged: Vec<Merged>,
    /// The first event time of the block being read: damage in it is shown
    /// no earlier (a damaged first block would otherwise show at time 0).
    damage_floor: u64,
    budget: budget::Budget,
    /// The capture's TLS key log lines so far.
    keys: KeyLog,
}

impl Decoder {
    pub fn new(opts: DecodeOptions) -> Self {
        let keys = KeyLog::new(opts.keylog);
        Decoder {
            opts,
            clock: 0,
            streams: Vec::new(),
            stream_index: HashMap::new(),
            sockets: Vec::new(),
            socket_index: HashMap::new(),
            channels: Vec::new(),
            channel_index: HashMap::new(),
            readerless: HashMap::new(),
            writerless: HashMap::new(),
            timers: BinaryHeap::new(),
            waiting_streams: BTreeSet::new(),
            waiting_channels: BTreeSet::new(),
            ready: BinaryHeap::new(),
            ready_bytes: 0,
            released: 0,
            sessions: Sessions::default(),
            frames: Vec::new(),
            merged: Vec::new(),
            damage_floor: 0,
            budget: budget::Budget::default(),
            keys,
        }
    }

    /// Sessions so far, by id.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionSummary> {
        self.sessions.summaries()
    }

    /// One record of a capture, in file order.
    pub fn push(&mut self, rec: &Numbered<'_>, sink: &mut impl FnMut(&Item<'_>)) {
        match &rec.record {
            Record::Event(ev) => self.push_event(rec.seq, ev, sink),
            Record::End(ev) => self.push_end(rec.seq, ev, sink),
            Record::Tick { ts_ns } => self.push_tick(*ts_ns, sink),
            Record::KeyLog { line, .. } if self.keys.expected() => self.keys.add(line),
            Record::KeyLog { .. } => {}
            Record::Damaged { reason, len } => {
                let flag = Flag::new(
                    FlagReason::DamagedRecord,
                    format!("record {} ({len} bytes) does not parse: {reason}", rec.seq),
                    *len as u64,
                );
                self.schedule(self.clock.max(self.damage_floor), 0, Pending::Damage(flag));
                self.release(sink);
            }
        }
    }

    /// A block whose records cannot be read, shown at the block's own time
    /// (as its row says). The streams they belonged to show the bytes as
    /// lost too.
    pub fn push_block_error(&mut self, e: &BlockError, sink: &mut impl FnMut(&Item<'_>)) {
        let flag = Flag::new(FlagReason::UnreadableBlock, e.to_string(), 0);
        self.schedule(
            e.first_ts_ns.unwrap_or(self.clock),
            0,
            Pending::Damage(flag),
        );
        self.release(sink);
    }

    /// The records that follow are in a block whose first event is at
    /// `first_ts_ns`: damage among them is shown no earlier.
    pub fn enter_block(&mut self, first_ts_ns: Option<u64>) {
        self.damage_floor = first_ts_ns.unwrap_or(0);
    }

    /// A tick: every record submitted before `ts_ns` has been seen.
    pub fn push_tick(&mut self, ts_ns: u64, sink: &mut impl FnMut(&Item<'_>)) {
        self.clock = self.clock.max(ts_ns);
        self.run_timers();
        self.release(sink);
    }

    /// A ring-buffer record; `seq` is its number in the capture.
    pub fn push_event(&mut self, seq: u64, ev: &RawEvent<'_>, sink: &mut impl FnMut(&Item<'_>)) {
        if let Some(why) = implausible(&ev.hdr) {
            let flag = Flag::new(
                FlagReason::DamagedRecord,
                format!("record {seq} {why}: no recording reaches it"),
                ev.payload.len() as u64,
            );
            self.schedule(self.clock.max(self.damage_floor), 0, Pending::Damage(flag));
            self.release(sink);
            return;
        }
        self.clock = self.clock.max(ev.hdr.ts_ns);
        match ev.hdr.kind {
            kind::DATA => {
                self.data(seq, ev);
                self.keep_to_budget();
            }
            // The records after an exec carry the new name; nothing to decode.
            kind::EXEC => {}
            other => {
                let flag = Flag::new(
                    FlagReason::DamagedRecord,
                    format!("record {seq} has kind {other}, unknown to this version"),
                    ev.payload.len() as u64,
                );
                self.schedule(self.clock, 0, Pending::Damage(flag));
            }
        }
        self.run_timers();
        self.release(sink);
    }

    /// The capture is over: everything held is shown.
    pub fn finish(&mut self, sink: &mut impl FnMut(&Item<'_>)) {
        self.report_refused();
        for i in 0..self.streams.len() {
            self.close_stream(i);
        }
        for i in 0..self.streams.len() {
            if self.streams[i].channel.is_none() {
                self.give_up_waiting(i);
            }
        }
        for c in 0..self.channels.len() {
            let mut merged = std::mem::take(&mut self.merged);
            self.channels[c].chan.finish(&mut |m| merged.push(m));
            self.schedule_merged(c, &mut merged);
            self.merged = merged;
        }
        self.waiting_streams.clear();
        self.waiting_channels.clear();
        self.timers.clear();
        while let Some(Reverse(r)) = self.ready.pop() {
            self.emit(r, sink);
        }
    }

    /// A watched TCP stream ended (feature `stream_ends`). On an HTTP/1.1
    /// connection, the stream of requests ending means the client closed
    /// the connection (its own close, or the server read its end), and the
    /// stream of responses ending means the server did.
    fn push_end(&mut self, seq: u64, ev: &RawEvent<'_>, sink: &mut impl FnMut(&Item<'_>)) {
        let h = &ev.hdr;
        if implausible(h).is_some() || h.lport == 0 || h.rport == 0 {
            return;
        }
        self.clock = self.clock.max(h.ts_ns);
        // The stream that ended, or, when that direction carried nothing
        // (a server that closes before it answers), the other direction,
        // whose role is the opposite.
        let id = ev.stream_id();
        let role = |id: StreamId, flip: bool| {
            self.stream_index.get(&id).and_then(|&i| {
                let s = &self.streams[i];
                let tls = s.hdr.flags & flags::TLS != 0 || s.framer.is_tls();
                s.framer
                    .http1_carries()
                    .map(|requests| (requests != flip, tls))
            })
        };
        let http1 = role(id, false).or_else(|| role(id.reversed(), true));
        if let Some((by_client, tls)) = http1 {
            let ends = ((h.laddr, h.lport), (h.raddr, h.rport));
            let closed = order::Closed {
                tls,
                ends,
                kind: h.fd_kind,
                by: Peer {
                    pid: h.tgid,
                    comm: h.comm,
                },
                read_end: ev.direction() == Direction::Read,
                by_client,
                seq,
                stream: id,
                fd: h.fd,
                stream_off: h.stream_off,
            };
            self.schedule(h.ts_ns, h.stream_off, Pending::Closed(Box::new(closed)));
        }
        self.run_timers();
        self.release(sink);
    }

    fn data(&mut self, seq: u64, ev: &RawEvent<'_>) {
        let h = &ev.hdr;
        let tls = h.flags & flags::TLS != 0;
        let id = if tls { h.ssl } else { h.ino };
        let key = StreamId {
            tgid: h.tgid,
            tls,
            id,
            direction: ev.direction(),
        };
        let start_flag = h.flags & flags::STREAM_START != 0;
        let restarts = |i: usize| {
            let s = &self.streams[i];
            // The other direction of its socket started over already (a
            // freed SSL* serving a new connection) and this one is back at 0.
            let superseded =
                h.stream_off == 0 && self.socket_index.get(&(h.tgid, tls, id)) != Some(&s.sock);
            (start_flag || superseded) && h.stream_off < s.reasm.next_offset()
        };
        let idx = match self.stream_index.get(&key) {
            // The kernel began the stream again (it had lost track of it, or
            // a freed SSL* serves a new connection): what was open ends here,
            // and offsets start over. (A first record that merely arrives
            // late is not below the next offset.)
            Some(&i) if restarts(i) => {
                self.close_stream(i);
                let sock = self.socket_anew(h.tgid, tls, id, h.fd_kind, self.streams[i].side);
                self.open_stream(key, h, sock)
            }
            Some(&i) => i,
            None if self.stream_index.len() >= self.opts.max_streams => {
                return self.refuse_stream(seq, ev.payload.len());
            }
            None => {
                let sock = self.socket(h.tgid, tls, id, h.fd_kind);
                self.open_stream(key, h, sock)
            }
        };
        let sock = self.streams[idx].sock;
        // TLS records name their socket once the recorder has learned it;
        // an SSL* can also move to another socket.
        if tls && matches!(h.fd_kind, fd_kind::TCP4 | fd_kind::TCP6) && h.lport != 0 && h.rport != 0
        {
            let tuple = ((h.laddr, h.lport), (h.raddr, h.rport));
            if self.sockets[sock].stale != Some(tuple) {
                self.learn_socket(sock, tuple, h.fd_kind, h.fd);
            }
        }
        let call_start = h.stream_off.saturating_sub(h.call_off);
        let chunk = Chunk {
            off: h.stream_off,
            bytes: ev.payload,
            ts: h.ts_ns,
            seq,
            read_failed: h.flags & flags::READ_FAILED != 0,
            call_end: call_start.saturating_add(h.call_len),
            truncated: h.flags & flags::TRUNCATED != 0,
        };
        let clock = self.clock;
        let (hold, max_held) = (self.opts.hold_ns, self.opts.max_held);
        self.took_in(ev.payload.len());
        let mut frames = std::mem::take(&mut self.frames);
        let s = &mut self.streams[idx];
        // The latest name: a process can exec, or name a thread.
        s.hdr.comm = h.comm;
        let http = &mut self.sockets[s.sock].state;
        let keys = &self.keys;
        let Stream { reasm, framer, .. } = s;
        let mut to_framer =
            |p: reassembly::Piece<'_>| framer.feed(p, http, keys, &mut |f| frames.push(f));
        reasm.push(chunk, clock, &mut to_framer);
        if reasm.pending_bytes() > max_held {
            reasm.expire(clock, hold, max_held, &mut to_framer);
        }
        if framer.is_tls() {
            self.key_as_tls(idx);
        }
        self.route_frames(idx, &mut frames);
        self.frames = frames;
        self.arm(Owner::Stream(idx));
    }
}

/// Stream offsets, call sizes and times stay below this (2^62: 4 EiB, or
/// 146 years of uptime), so that sums of a few never overflow. Only a
/// damaged or crafted record goes past it.
const PLAUSIBLE: u64 = 1 << 62;

/// Why a record's numbers cannot be real, if they cannot.
fn implausible(h: &EventHeader) -> Option<String> {
    let (off, len) = (h.stream_off, h.call_len);
    if off >= PLAUSIBLE || len >= PLAUSIBLE || h.call_off >= PLAUSIBLE {
        Some(format!(
            "claims stream offset {off} (call of {len} bytes at {})",
            h.call_off
        ))
    } else if h.ts_ns >= PLAUSIBLE {
        Some(format!("claims time {} ns", h.ts_ns))
    } else {
        None
    }
}
