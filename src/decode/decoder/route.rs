//! Who sent a merged message to whom, over what, and in which session.

use super::{order, Decoder, Stream};
use crate::decode::channel::{self, ChannelKey, Interleaved, Merged, TcpEnd};
use crate::decode::item::{CopyInfo, HttpMeta, Transport, WriterPiece};
use crate::decode::session::{ConnKey, HttpRoute, Route, SessionKey};
use crate::event::{fd_kind, flags};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

impl Decoder {
    /// The writers' pieces a line read mixed is made of.
    pub(super) fn pieces(&self, m: &Merged) -> Vec<WriterPiece> {
        let Interleaved::Received(spans) = &m.interleaved else {
            return Vec::new();
        };
        spans
            .iter()
            .map(|s| WriterPiece {
                peer: self.streams[s.stream].peer(),
                fd: self.streams[s.stream].hdr.fd,
                start: s.start,
                end: s.end,
            })
            .collect()
    }

    /// Who sent a merged message to whom, over what, in which session.
    pub(super) fn route<'m>(
        &self,
        m: &'m Merged,
        channel: usize,
        pieces: &'m [WriterPiece],
    ) -> Route<'m> {
        let stream_of =
            |span: &Option<channel::Span>| span.as_ref().map(|s| &self.streams[s.stream]);
        let guess = m.peer.map(|i| &self.streams[i]);
        let ws = stream_of(&m.writer).or(guess.filter(|_| m.writer.is_none()));
        let rs = stream_of(&m.reader).or(guess.filter(|_| m.reader.is_none()));
        let copy = |span: &'m Option<channel::Span>| {
            span.as_ref().map(|s| CopyInfo {
                stream: self.streams[s.stream].hdr.stream_id(),
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
        let tls = any.is_some_and(|s| s.hdr.flags & flags::TLS != 0 || s.framer.is_tls());
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
            interleaved: matches!(m.interleaved, Interleaved::Sent),
            pieces,
            http,
        }
    }
}

impl order::Closed {
    /// Where a closed connection's notice goes: sent by the end that closed.
    pub(super) fn route<'m>(&'m self, ts_ns: u64, meta: &'m HttpMeta) -> Route<'m> {
        let (local, remote) = self.ends;
        // The closing end is the one that saw its close, not its end of file.
        let (closer, other) = if self.read_end {
            (remote, local)
        } else {
            (local, remote)
        };
        let (client, server) = if self.by_client {
            (closer, other)
        } else {
            (other, closer)
        };
        Route {
            ts_ns,
            transport: Some(Transport::Http {
                tls: self.tls,
                client: Some(socket_addr(self.kind, client)),
                server: Some(socket_addr(self.kind, server)),
            }),
            key: None,
            from_end: usize::from(!self.by_client),
            from: (!self.read_end).then_some(self.by),
            to: self.read_end.then_some(self.by),
            // Its record: the closing end's (a writer's), or the end of
            // file the other read.
            writer: (!self.read_end).then(|| self.copy(ts_ns)),
            reader: self.read_end.then(|| self.copy(ts_ns)),
            copies_differ: false,
            interleaved: false,
            pieces: &[],
            http: Some(HttpRoute {
                conn: ConnKey::Tcp {
                    tls: self.tls,
                    a: local.min(remote),
                    b: local.max(remote),
                },
                meta: Some(meta),
                from_client: Some(self.by_client),
            }),
        }
    }
}

impl order::Closed {
    fn copy(&self, ts_ns: u64) -> CopyInfo<'_> {
        CopyInfo {
            stream: self.stream,
            fd: self.fd,
            start: self.stream_off,
            end: self.stream_off,
            first_ts: ts_ns,
            last_ts: ts_ns,
            seqs: std::slice::from_ref(&self.seq),
        }
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
