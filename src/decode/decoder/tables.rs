//! The decoder's tables: streams, the sockets their two directions share,
//! and the channels that pair the writer's and the reader's copies.

use super::{ChannelSlot, Decoder, Deferred, Owner, Socket, Stream};
use crate::decode::channel::{Channel, ChannelKey, Hold, Merged, Side, TcpEnd};
use crate::decode::frame::{self, Frame, FrameBody};
use crate::decode::framer::{Framer, SocketState};
use crate::decode::reassembly::Reassembler;
use crate::event::{fd_kind, flags, Direction as IoDirection, EventHeader, StreamId};
use std::collections::{BTreeSet, HashMap};

impl Decoder {
    /// The socket of (tgid, tls, inode or SSL*), made on first sight.
    pub(super) fn socket(&mut self, tgid: u32, tls: bool, id: u64, kind: u8) -> usize {
        *self.socket_index.entry((tgid, tls, id)).or_insert_with(|| {
            self.sockets.push(Socket {
                tuple: None,
                fd_kind: kind,
                fd: 0,
                stale: None,
                streams: Vec::new(),
                state: SocketState::default(),
            });
            self.sockets.len() - 1
        })
    }

    /// The socket of a stream that starts over: a new one (what the old
    /// connection's socket knew does not carry over), unless the other
    /// direction has started over already and made it.
    pub(super) fn socket_anew(
        &mut self,
        tgid: u32,
        tls: bool,
        id: u64,
        kind: u8,
        side: Side,
    ) -> usize {
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
    pub(super) fn learn_socket(&mut self, sock: usize, tuple: (TcpEnd, TcpEnd), kind: u8, fd: u32) {
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
    pub(super) fn give_up_waiting(&mut self, i: usize) {
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

    pub(super) fn open_stream(&mut self, key: StreamId, h: &EventHeader, sock: usize) -> usize {
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
            brought_text: false,
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
    pub(super) fn close_stream(&mut self, i: usize) {
        let mut frames = std::mem::take(&mut self.frames);
        let Stream {
            reasm,
            framer,
            sock,
            ..
        } = &mut self.streams[i];
        let http = &mut self.sockets[*sock].state;
        let keys = &self.keys;
        reasm.finish(&mut |p| framer.feed(p, http, keys, &mut |f| frames.push(f)));
        framer.finish(http, keys, &mut |f| frames.push(f));
        self.route_frames(i, &mut frames);
        self.frames = frames;
        self.waiting_streams.remove(&i);
    }

    pub(super) fn route_frames(&mut self, stream: usize, frames: &mut Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        self.took_in(frames.iter().map(|f| f.text().map_or(0, <[u8]>::len)).sum());
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
        if self.twin_of(stream, c, side) {
            frames.clear();
            return;
        }
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
            if matches!(f.body, FrameBody::Text { .. }) {
                self.streams[stream].brought_text = true;
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

    /// Whether `stream` is a second copy of what one stream of the same
    /// process already brings to this side of the channel: TLS plaintext
    /// from the library's probes, and the same connection's ciphertext
    /// opened with the key log. The first of the two to bring a message's
    /// text is kept (a report that the ciphertext did not open does not
    /// count); the other is the same bytes again.
    fn twin_of(&self, stream: usize, c: usize, side: Side) -> bool {
        let me = &self.streams[stream];
        let opened = me.framer.is_tls();
        if !opened && me.hdr.flags & flags::TLS == 0 {
            return false;
        }
        self.channels[c].chan.streams_on(side).iter().any(|&j| {
            let other = &self.streams[j];
            j != stream
                && other.brought_text
                && other.hdr.tgid == me.hdr.tgid
                && if opened {
                    other.hdr.flags & flags::TLS != 0
                } else {
                    other.framer.is_tls()
                }
        })
    }

    /// A stream found to be TLS opened with the key log joins its
    /// connection's TLS channel, where the other end's plaintext goes too.
    pub(super) fn key_as_tls(&mut self, i: usize) {
        let s = &self.streams[i];
        let Some(ChannelKey::Tcp {
            tls: false,
            from,
            to,
        }) = s.keyed
        else {
            return;
        };
        let key = ChannelKey::Tcp {
            tls: true,
            from,
            to,
        };
        let c = self.channel_for(Some(key));
        let s = &mut self.streams[i];
        s.channel = Some(c);
        s.keyed = Some(key);
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
            frame::FrameBody::Text {
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
