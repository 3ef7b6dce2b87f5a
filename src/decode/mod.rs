//! The MCP correlator: raw records in, MCP messages out.
//!
//! One pipeline, one module per stage:
//! [`reassembly`] (each stream's bytes in offset order, losses explicit) →
//! [`framing`] (lines of JSON, or [`http`] bodies and [`sse`] events, after
//! [`sniff`]ing network streams) →
//! [`channel`] (the writer's and the reader's copy of each message, shown once) →
//! [`jsonrpc`] (parsed in place, once per message) →
//! [`session`] (sessions, roles, request/response pairing) → [`Item`]s.
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

mod channel;
mod framing;
mod http;
mod item;
mod jsonrpc;
mod mcp;
mod reassembly;
mod session;
mod sniff;
mod sse;

pub use item::{
    BatchPos, CopyInfo, Direction, Flag, FlagReason, HttpMeta, HttpSession, HttpView,
    Implementation, Item, Kind, Peer, RequestRef, SessionSummary, Transport,
};
pub use mcp::about as method_about;
pub use reassembly::Loss;
pub use sniff::{classify, Protocol, HTTP2};

// What later stages read of a capture passes through here, so that none
// reaches past this stage (DEVELOPERS.md, "Stages").
pub use crate::capture::{
    BlockError, BlockFilter, CaptureError, CaptureReader, DropRow, Numbered, ProcessRow, Record,
    Tap, Totals,
};
use crate::event::{fd_kind, flags, kind, Direction as IoDirection, EventHeader, RawEvent};
use channel::{Channel, ChannelKey, Hold, Merged, Side, TcpEnd};
use framing::{Frame, Framer};
use http::SocketHttp;
use reassembly::{Chunk, Reassembler};
use session::{ConnKey, HttpRoute, Route, SessionKey, Sessions};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// How long a copy waits for its counterpart, and data for a hole to fill.
    pub hold_ns: u64,
    /// How long the first copies on a channel wait while its other side has
    /// never been seen (a server still starting up).
    pub first_contact_ns: u64,
    /// How far records may arrive behind the clock and still be ordered.
    pub reorder_ns: u64,
    /// Longest message kept whole; longer ones are cut (and flagged).
    pub max_line: usize,
    /// Bytes one stream or channel may hold back before it is forced on.
    pub max_held: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            hold_ns: 500_000_000,
            first_contact_ns: 5_000_000_000,
            reorder_ns: 50_000_000,
            max_line: 64 << 20,
            max_held: 64 << 20,
        }
    }
}

/// One stream: one process's side of one file, one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StreamKey {
    tgid: u32,
    tls: bool,
    /// Inode, or the SSL* for TLS plaintext.
    id: u64,
    direction: IoDirection,
}

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
    http: SocketHttp,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Stream(usize),
    Channel(usize),
}

enum Pending {
    /// A message (or damage) out of a channel, and the channel. Boxed: the
    /// ready queue moves its entries as it sorts them.
    Merged(Box<Merged>, usize),
    Damage(Flag),
}

/// An item ready to be shown, ordered by timestamp, then stream offset (a
/// loss and the message after it can share a timestamp), then release order.
struct Ready {
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

/// The correlator. Feed it records in file order; it calls `sink` with each item.
pub struct Decoder {
    opts: DecodeOptions,
    clock: u64,
    streams: Vec<Stream>,
    stream_index: HashMap<StreamKey, usize>,
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
}

impl Decoder {
    pub fn new(opts: DecodeOptions) -> Self {
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
            Record::Tick { ts_ns } => self.push_tick(*ts_ns, sink),
            Record::Damaged { reason, len } => {
                let flag = Flag {
                    reason: FlagReason::DamagedRecord,
                    detail: format!("record {} ({len} bytes) does not parse: {reason}", rec.seq),
                    len: *len as u64,
                };
                self.schedule(self.clock, 0, Pending::Damage(flag));
                self.release(sink);
            }
        }
    }

    /// A block whose records cannot be read. The streams they belonged to
    /// show the bytes as lost too.
    pub fn push_block_error(&mut self, e: &BlockError, sink: &mut impl FnMut(&Item<'_>)) {
        let last = (e.first_seq + e.records).saturating_sub(1);
        let flag = Flag {
            reason: FlagReason::UnreadableBlock,
            detail: format!(
                "block {} (records {}..={last}) cannot be read: {}",
                e.block_id, e.first_seq, e.why
            ),
            len: 0,
        };
        self.schedule(self.clock, 0, Pending::Damage(flag));
        self.release(sink);
    }

    /// A tick: every record submitted before `ts_ns` has been seen.
    pub fn push_tick(&mut self, ts_ns: u64, sink: &mut impl FnMut(&Item<'_>)) {
        self.clock = self.clock.max(ts_ns);
        self.run_timers();
        self.release(sink);
    }

    /// A ring-buffer record; `seq` is its number in the capture.
    pub fn push_event(&mut self, seq: u64, ev: &RawEvent<'_>, sink: &mut impl FnMut(&Item<'_>)) {
        self.clock = self.clock.max(ev.hdr.ts_ns);
        match ev.hdr.kind {
            kind::DATA => self.data(seq, ev),
            // The records after an exec carry the new name; nothing to decode.
            kind::EXEC => {}
            other => {
                let flag = Flag {
                    reason: FlagReason::DamagedRecord,
                    detail: format!("record {seq} has kind {other}, unknown to this version"),
                    len: ev.payload.len() as u64,
                };
                self.schedule(self.clock, 0, Pending::Damage(flag));
            }
        }
        self.run_timers();
        self.release(sink);
    }

    /// The capture is over: everything held is shown.
    pub fn finish(&mut self, sink: &mut impl FnMut(&Item<'_>)) {
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

    fn data(&mut self, seq: u64, ev: &RawEvent<'_>) {
        let h = &ev.hdr;
        let tls = h.flags & flags::TLS != 0;
        let id = if tls { h.ssl } else { h.ino };
        let key = StreamKey {
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
        let mut frames = std::mem::take(&mut self.frames);
        let s = &mut self.streams[idx];
        // The latest name: a process can exec, or name a thread.
        s.hdr.comm = h.comm;
        let http = &mut self.sockets[s.sock].http;
        let Stream { reasm, framer, .. } = s;
        let mut to_framer =
            |p: reassembly::Piece<'_>| framer.feed(p, http, &mut |f| frames.push(f));
        reasm.push(chunk, clock, &mut to_framer);
        if reasm.pending_bytes() > max_held {
            reasm.expire(clock, hold, max_held, &mut to_framer);
        }
        self.route_frames(idx, &mut frames);
        self.frames = frames;
        self.arm(Owner::Stream(idx));
    }

    /// The socket of (tgid, tls, inode or SSL*), made on first sight.
    fn socket(&mut self, tgid: u32, tls: bool, id: u64, kind: u8) -> usize {
        *self.socket_index.entry((tgid, tls, id)).or_insert_with(|| {
            self.sockets.push(Socket {
                tuple: None,
                fd_kind: kind,
                fd: 0,
                stale: None,
                streams: Vec::new(),
                http: SocketHttp::default(),
            });
            self.sockets.len() - 1
        })
    }

    /// The socket of a stream that starts over: a new one (what the old
    /// connection's socket knew does not carry over), unless the other
    /// direction has started over already and made it.
    fn socket_anew(&mut self, tgid: u32, tls: bool, id: u64, kind: u8, side: Side) -> usize {
        let current = self.socket(tgid, tls, id, kind);
        let taken = self.sockets[current]
            .streams
            .iter()
            .any(|&i| self.streams[i].side == side);
        if !taken {
            return current;
        }
        self.socket_index.remove(&(tgid, tls, id));
        self.socket(tgid, tls, id, kind)
    }

    /// A TLS connection's socket is known (or changed): its streams join
    /// that connection's channels.
    fn learn_socket(&mut self, sock: usize, tuple: (TcpEnd, TcpEnd), kind: u8, fd: u32) {
        let s = &mut self.sockets[sock];
        if s.tuple == Some(tuple) {
            return;
        }
        (s.tuple, s.fd_kind, s.fd) = (Some(tuple), kind, fd);
        for i in s.streams.clone() {
            self.streams[i].hdr.fd = fd;
            self.key_stream(i);
        }
    }

    /// Sends a stream's frames to the channel of its socket's connection.
    fn key_stream(&mut self, i: usize) {
        let s = &self.streams[i];
        let Some((local, remote)) = self.sockets[s.sock].tuple else {
            return;
        };
        let (from, to) = match s.side {
            Side::Writer => (local, remote),
            Side::Reader => (remote, local),
        };
        let tls = s.hdr.flags & flags::TLS != 0;
        let key = ChannelKey::Tcp { tls, from, to };
        if s.keyed == Some(key) {
            return;
        }
        let c = self.channel_for(Some(key));
        let s = &mut self.streams[i];
        s.channel = Some(c);
        s.keyed = Some(key);
        self.release_deferred(i);
    }

    /// The channel of `key` (made if new), or a new channel of its own.
    fn channel_for(&mut self, key: Option<ChannelKey>) -> usize {
        if let Some(&c) = key.and_then(|k| self.channel_index.get(&k)) {
            return c;
        }
        let c = self.channels.len();
        self.channels.push(ChannelSlot {
            chan: Channel::new(key.is_none()),
            key,
            timer_at: None,
        });
        if let Some(k) = key {
            self.channel_index.insert(k, c);
        }
        c
    }

    /// A TLS stream whose socket did not become known in time: its frames
    /// go on alone.
    fn give_up_waiting(&mut self, i: usize) {
        if self.streams[i].channel.is_some() {
            return;
        }
        let c = self.channel_for(None);
        self.streams[i].channel = Some(c);
        self.release_deferred(i);
    }

    fn release_deferred(&mut self, i: usize) {
        let d = std::mem::take(&mut self.streams[i].deferred);
        let mut frames = d.frames;
        if !frames.is_empty() {
            self.route_frames(i, &mut frames);
        }
    }

    fn open_stream(&mut self, key: StreamKey, h: &EventHeader, sock: usize) -> usize {
        let idx = self.streams.len();
        let (channel, keyed) = if key.tls {
            // Keyed once its socket is known (maybe from this very record).
            (None, None)
        } else {
            let k = channel_key(h, key.direction);
            (Some(self.channel_for(k)), k)
        };
        let framer = match h.fd_kind {
            _ if key.tls => Framer::sniffing(self.opts.max_line),
            fd_kind::TCP4 | fd_kind::TCP6 => Framer::sniffing(self.opts.max_line),
            _ => Framer::ndjson(self.opts.max_line),
        };
        let start = if h.flags & flags::STREAM_START != 0 {
            h.stream_off
        } else {
            0
        };
        self.streams.push(Stream {
            hdr: *h,
            reasm: Reassembler::new(start),
            framer,
            sock,
            channel,
            keyed,
            side: match key.direction {
                IoDirection::Write => Side::Writer,
                IoDirection::Read => Side::Reader,
            },
            timer_at: None,
            deferred: Deferred::default(),
        });
        self.sockets[sock].streams.push(idx);
        self.stream_index.insert(key, idx);
        if key.tls && self.sockets[sock].tuple.is_some() {
            self.streams[idx].hdr.fd = self.sockets[sock].fd;
            self.key_stream(idx);
        }
        idx
    }

    /// Flushes a stream that has ended (restart, or end of capture).
    fn close_stream(&mut self, i: usize) {
        let mut frames = std::mem::take(&mut self.frames);
        let Stream {
            reasm,
            framer,
            sock,
            ..
        } = &mut self.streams[i];
        let http = &mut self.sockets[*sock].http;
        reasm.finish(&mut |p| framer.feed(p, http, &mut |f| frames.push(f)));
        framer.finish(http, &mut |f| frames.push(f));
        self.route_frames(i, &mut frames);
        self.frames = frames;
        self.waiting_streams.remove(&i);
    }

    fn route_frames(&mut self, stream: usize, frames: &mut Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        let (c, side) = (self.streams[stream].channel, self.streams[stream].side);
        let Some(c) = c else {
            let d = &mut self.streams[stream].deferred;
            d.since.get_or_insert(self.clock);
            for f in frames.drain(..) {
                d.bytes += f.text().map_or(0, <[u8]>::len);
                d.ts.insert(f.last_ts);
                d.frames.push(f);
            }
            if d.bytes > self.opts.max_held {
                self.give_up_waiting(stream);
            }
            return;
        };
        let tls = self.streams[stream].hdr.flags & flags::TLS != 0;
        let mut c = c;
        let mut merged = std::mem::take(&mut self.merged);
        let (clock, max_held) = (self.clock, self.opts.max_held);
        let hold = Hold {
            normal: self.opts.hold_ns,
            first_contact: self.opts.first_contact_ns,
        };
        for f in frames.drain(..) {
            if tls {
                if let Some(moved) = self.moved_connection(stream, c, &f) {
                    self.finish_push(c, &mut merged);
                    c = moved;
                }
            }
            let chan = &mut self.channels[c].chan;
            chan.push(side, stream, f, clock, hold, &mut |m| merged.push(m));
            if chan.held_bytes() > max_held {
                chan.expire(clock, max_held, &mut |m| merged.push(m));
            }
            self.note_sides(c);
        }
        self.finish_push(c, &mut merged);
        self.merged = merged;
    }

    fn finish_push(&mut self, c: usize, merged: &mut Vec<Merged>) {
        self.schedule_merged(c, merged);
        self.arm(Owner::Channel(c));
    }

    /// Keeps the index of TLS channels that have seen one side only.
    fn note_sides(&mut self, c: usize) {
        let Some(ChannelKey::Tcp {
            tls: true,
            from,
            to,
        }) = self.channels[c].key
        else {
            return;
        };
        let chan = &self.channels[c].chan;
        let (w, r) = (chan.has_side(Side::Writer), chan.has_side(Side::Reader));
        let note = |map: &mut HashMap<TcpEnd, BTreeSet<usize>>, end: TcpEnd, on: bool| {
            if on {
                map.entry(end).or_default().insert(c);
            } else if let Some(set) = map.get_mut(&end) {
                set.remove(&c);
                if set.is_empty() {
                    map.remove(&end);
                }
            }
        };
        note(&mut self.readerless, to, w && !r);
        note(&mut self.writerless, from, r && !w);
    }

    /// A TLS copy that nothing waits for in its connection, while a
    /// connection with the same end on this side waits for exactly this
    /// text on the other side and has never seen this side: the SSL* serves
    /// that connection now (an SSL* and its descriptor reused after a close,
    /// the recorder still naming the old socket). The socket is re-keyed by
    /// content; returns the channel the stream now belongs to.
    fn moved_connection(&mut self, stream: usize, c: usize, f: &Frame) -> Option<usize> {
        let text = match &f.body {
            framing::FrameBody::Text {
                text,
                cut_start: None,
                cut_end: None,
            } => text,
            _ => return None,
        };
        let s = &self.streams[stream];
        let Some(ChannelKey::Tcp { from, to, .. }) = self.channels[c].key else {
            return None;
        };
        let other = match s.side {
            Side::Writer => Side::Reader,
            Side::Reader => Side::Writer,
        };
        if self.channels[c].chan.waiting_text(other).is_some() {
            return None;
        }
        // Channels that saw the other side only, with this stream's own end.
        let candidates = match s.side {
            Side::Writer => self.writerless.get(&from),
            Side::Reader => self.readerless.get(&to),
        }?;
        let found = candidates.iter().copied().find(|&b| {
            b != c && self.channels[b].chan.waiting_text(other) == Some(text.as_slice())
        })?;
        let Some(ChannelKey::Tcp { from, to, .. }) = self.channels[found].key else {
            return None;
        };
        let tuple = match s.side {
            Side::Writer => (from, to),
            Side::Reader => (to, from),
        };
        let sock = s.sock;
        let (stale, kind, fd) = {
            let k = &self.sockets[sock];
            (k.tuple, k.fd_kind, k.fd)
        };
        self.sockets[sock].stale = stale;
        self.learn_socket(sock, tuple, kind, fd);
        self.streams[stream].channel
    }

    fn schedule_merged(&mut self, channel: usize, merged: &mut Vec<Merged>) {
        for m in merged.drain(..) {
            let offset = m
                .writer
                .as_ref()
                .or(m.reader.as_ref())
                .map_or(0, |s| s.start);
            self.schedule(m.ts(), offset, Pending::Merged(Box::new(m), channel));
        }
    }

    fn schedule(&mut self, ts: u64, offset: u64, what: Pending) {
        self.released += 1;
        let bytes = match &what {
            Pending::Merged(m, _) => m.body_len(),
            Pending::Damage(_) => 0,
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
    fn arm(&mut self, owner: Owner) {
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

    fn run_timers(&mut self) {
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
                    let http = &mut self.sockets[*sock].http;
                    reasm.expire(clock, hold, max_held, &mut |p| {
                        framer.feed(p, http, &mut |f| frames.push(f))
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
    fn release(&mut self, sink: &mut impl FnMut(&Item<'_>)) {
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

    fn emit(&mut self, r: Ready, sink: &mut impl FnMut(&Item<'_>)) {
        self.ready_bytes -= r.bytes;
        match r.what {
            Pending::Damage(flag) => self.sessions.damage(r.ts, flag, sink),
            Pending::Merged(m, channel) => {
                let route = self.route(&m, channel);
                self.sessions.handle(&route, &m.body, sink);
            }
        }
    }

    /// Who sent a merged message to whom, over what, in which session.
    fn route<'m>(&self, m: &'m Merged, channel: usize) -> Route<'m> {
        let stream_of =
            |span: &Option<channel::Span>| span.as_ref().map(|s| &self.streams[s.stream]);
        let guess = m.peer.map(|i| &self.streams[i]);
        let ws = stream_of(&m.writer).or(guess.filter(|_| m.writer.is_none()));
        let rs = stream_of(&m.reader).or(guess.filter(|_| m.reader.is_none()));
        let copy = |span: &'m Option<channel::Span>| {
            span.as_ref().map(|s| CopyInfo {
                pid: self.streams[s.stream].hdr.tgid,
                fd: self.streams[s.stream].hdr.fd,
                start: s.start,
                end: s.end,
                first_ts: s.first_ts,
                last_ts: s.last_ts,
                seqs: &s.seqs,
            })
        };
        let any = ws.or(rs);
        // TCP: the sender's and the receiver's ends, from the channel.
        let ends = match self.channels[channel].key {
            Some(ChannelKey::Tcp { from, to, .. }) => Some((from, to)),
            _ => None,
        };
        let tls = any.is_some_and(|s| s.hdr.flags & flags::TLS != 0);
        let kind = any.map_or(0, |s| self.sockets[s.sock].fd_kind);
        let is_http = m.http.is_some() || any.is_some_and(|s| s.framer.is_http());
        let mut http = None;
        let (transport, key, from_end) = match any.map(|s| s.hdr.fd_kind) {
            Some(kind @ (fd_kind::PIPE | fd_kind::UNIX)) => {
                let transport = if kind == fd_kind::PIPE {
                    Transport::Pipe {
                        ino: any.map_or(0, |s| s.hdr.ino),
                    }
                } else {
                    // The writing socket, and the reading one (each end
                    // names the other as its peer).
                    Transport::Unix {
                        ino: ws
                            .map(|s| s.hdr.ino)
                            .or(rs.map(|s| s.hdr.peer_ino))
                            .unwrap_or(0),
                        peer_ino: rs
                            .map(|s| s.hdr.ino)
                            .or(ws.map(|s| s.hdr.peer_ino))
                            .unwrap_or(0),
                    }
                };
                let (key, end) = pid_key(ws.map(|s| s.hdr.tgid), rs.map(|s| s.hdr.tgid));
                (Some(transport), key, end)
            }
            _ if is_http => {
                let meta = m.http.as_deref();
                let from_client = meta
                    .map(|h| h.is_request)
                    .or_else(|| ws.and_then(|s| s.framer.http_requests()))
                    .or_else(|| rs.and_then(|s| s.framer.http_requests()));
                let (client, server) = match (ends, from_client) {
                    (Some((from, to)), Some(true)) => (Some(from), Some(to)),
                    (Some((from, to)), Some(false)) => (Some(to), Some(from)),
                    _ => (None, None),
                };
                let conn = match ends {
                    Some((from, to)) => ConnKey::Tcp {
                        tls,
                        a: from.min(to),
                        b: from.max(to),
                    },
                    None => ConnKey::Ssl {
                        pid: any.map_or(0, |s| s.hdr.tgid),
                        ssl: any.map_or(0, |s| if tls { s.hdr.ssl } else { s.hdr.ino }),
                    },
                };
                http = Some(HttpRoute {
                    conn,
                    meta,
                    from_client,
                });
                let transport = Transport::Http {
                    tls,
                    client: client.map(|e| socket_addr(kind, e)),
                    server: server.map(|e| socket_addr(kind, e)),
                };
                (
                    Some(transport),
                    None,
                    usize::from(from_client == Some(false)),
                )
            }
            Some(k) if tls || matches!(k, fd_kind::TCP4 | fd_kind::TCP6) => match ends {
                Some((from, to)) => (
                    Some(Transport::Tcp {
                        tls,
                        from: socket_addr(kind, from),
                        to: socket_addr(kind, to),
                    }),
                    Some(SessionKey::Tcp(from.min(to), from.max(to))),
                    usize::from(from > to),
                ),
                None => {
                    let (key, end) = one_pid(ws, rs);
                    (None, key, end)
                }
            },
            _ => {
                let (key, end) = one_pid(ws, rs);
                let ino = any.map_or(0, |s| s.hdr.ino);
                (Some(Transport::Other { ino }), key, end)
            }
        };
        Route {
            ts_ns: m.ts(),
            transport,
            key,
            from_end,
            from: ws.map(Stream::peer),
            to: rs.map(Stream::peer),
            writer: copy(&m.writer),
            reader: copy(&m.reader),
            copies_differ: m.differs,
            http,
        }
    }
}

/// A multiset of timestamps with a cheap minimum: what is held, by time.
#[derive(Debug, Default)]
struct MinSet(std::collections::BTreeMap<u64, u32>);

impl MinSet {
    fn insert(&mut self, v: u64) {
        *self.0.entry(v).or_default() += 1;
    }

    fn remove(&mut self, v: u64) {
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.0.entry(v) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    fn min(&self) -> Option<u64> {
        self.0.keys().next().copied()
    }
}

/// The session of pipes or sockets between two processes, and the sender's end.
fn pid_key(writer: Option<u32>, reader: Option<u32>) -> (Option<SessionKey>, usize) {
    match (writer, reader) {
        (Some(w), Some(r)) => (
            Some(SessionKey::Pids(w.min(r), w.max(r))),
            usize::from(w > r),
        ),
        (Some(w), None) => (Some(SessionKey::OnePid(w)), 0),
        (None, Some(r)) => (Some(SessionKey::OnePid(r)), 1),
        (None, None) => (None, 0),
    }
}

fn one_pid(ws: Option<&Stream>, rs: Option<&Stream>) -> (Option<SessionKey>, usize) {
    match (ws, rs) {
        (Some(w), _) => (Some(SessionKey::OnePid(w.hdr.tgid)), 0),
        (None, Some(r)) => (Some(SessionKey::OnePid(r.hdr.tgid)), 1),
        (None, None) => (None, 0),
    }
}

fn socket_addr(kind: u8, (addr, port): TcpEnd) -> SocketAddr {
    let ip = if kind == fd_kind::TCP4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        let v6 = Ipv6Addr::from(addr);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    };
    SocketAddr::new(ip, port)
}

/// The channel a stream's records belong to, from either end; None when no
/// other end can be recognised.
fn channel_key(h: &EventHeader, dir: IoDirection) -> Option<ChannelKey> {
    let tls = h.flags & flags::TLS != 0;
    match (h.fd_kind, dir) {
        (fd_kind::PIPE, _) if !tls => Some(ChannelKey::Pipe(h.ino)),
        (fd_kind::UNIX, IoDirection::Write) if !tls => Some(ChannelKey::Unix(h.ino)),
        (fd_kind::UNIX, IoDirection::Read) if !tls && h.peer_ino != 0 => {
            Some(ChannelKey::Unix(h.peer_ino))
        }
        (fd_kind::TCP4 | fd_kind::TCP6, _) if h.lport != 0 && h.rport != 0 => {
            let (local, remote) = ((h.laddr, h.lport), (h.raddr, h.rport));
            let (from, to) = match dir {
                IoDirection::Write => (local, remote),
                IoDirection::Read => (remote, local),
            };
            Some(ChannelKey::Tcp { tls, from, to })
        }
        _ => None,
    }
}
