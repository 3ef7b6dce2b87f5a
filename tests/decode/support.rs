//! Synthetic captures that behave like the kernel's: every pipe or socket
//! message is recorded at the writer and again at the reader, offsets count
//! per stream, large calls are chunked, reads take whatever the pipe holds.
//! Shared by the decode_* and cli_read_* tests (`mod decode_support;`).
#![allow(dead_code)]

use mcpspy::capture::{
    CaptureReader, CaptureWriter, CreateOptions, DropRow, ProcessRow, SigningIdentity,
};
use mcpspy::decode::{DecodeOptions, Decoder, Item, Kind};
use mcpspy::event::{self, call, counter, fd_kind, flags, kind, EventHeader, CHUNK_MAX};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Wall clock and CLOCK_MONOTONIC at the start of every synthetic capture.
pub const STARTED_AT: &str = "2026-03-01T12:00:00.000000000Z";
pub const START_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: u32,
    pub comm: &'static str,
}

pub const CLIENT: Proc = Proc {
    pid: 1000,
    comm: "python3",
};
pub const SERVER: Proc = Proc {
    pid: 2000,
    comm: "mcp-server",
};

/// A TCP end: IPv4 address in the first 4 bytes, and a port.
pub type TcpEnd = ([u8; 16], u16);

/// One direction of a pipe or socket pair: what was written and not yet read.
struct Chan {
    fd_kind: u8,
    w_ino: u64,
    w_peer: u64,
    r_ino: u64,
    r_peer: u64,
    /// TCP: the writer's (local, remote) ends; the reader sees them swapped.
    tcp: Option<(TcpEnd, TcpEnd)>,
    /// TLS plaintext: the writer's and the reader's SSL*.
    ssl: Option<(u64, u64)>,
    buf: VecDeque<u8>,
}

pub fn ipv4(a: [u8; 4], port: u16) -> TcpEnd {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a);
    (addr, port)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChanId(usize);

pub struct Synth {
    writer: CaptureWriter,
    path: PathBuf,
    pub now: u64,
    next_ino: u64,
    chans: Vec<Chan>,
    /// Next offset per (pid, ino or SSL*, direction).
    offsets: HashMap<(u32, u64, u8), u64>,
    /// Streams already started.
    started: HashMap<(u32, u64, u8), ()>,
    /// SSL* whose socket the recorder knows: their records carry it.
    ssl_known: std::collections::HashSet<u64>,
    /// SSL* whose records name these (local, remote) ends, whatever
    /// connection they serve (a recorder that kept a stale socket).
    ssl_named: HashMap<u64, (TcpEnd, TcpEnd)>,
    /// The drop ledger so far: its sums, and the records it says were not stored.
    ledger: [u64; counter::COUNT],
    unstored: u64,
}

fn comm(name: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    let n = name.len().min(15);
    c[..n].copy_from_slice(&name.as_bytes()[..n]);
    c
}

impl Synth {
    pub fn new(path: &Path) -> Synth {
        Synth::signed(path, None)
    }

    /// A capture whose seal is signed with `key`, as `record --sign` makes.
    pub fn signed(path: &Path, key: Option<SigningIdentity>) -> Synth {
        let mut writer = CaptureWriter::create(
            path,
            &CreateOptions {
                force: true,
                owner: None,
            },
        )
        .expect("create capture");
        if let Some(key) = key {
            writer = writer.with_signer(key).expect("a signed capture");
        }
        writer.set_meta("started_at", STARTED_AT).unwrap();
        writer
            .set_meta("started_ktime_ns", &START_NS.to_string())
            .unwrap();
        Synth {
            writer,
            path: path.to_path_buf(),
            now: START_NS + 1_000_000,
            next_ino: 5000,
            chans: Vec::new(),
            offsets: HashMap::new(),
            started: HashMap::new(),
            ssl_known: Default::default(),
            ssl_named: HashMap::new(),
            ledger: [0; counter::COUNT],
            unstored: 0,
        }
    }

    pub fn pipe(&mut self) -> ChanId {
        self.next_ino += 1;
        let ino = self.next_ino;
        self.chans.push(Chan {
            fd_kind: fd_kind::PIPE,
            w_ino: ino,
            w_peer: 0,
            r_ino: ino,
            r_peer: 0,
            tcp: None,
            ssl: None,
            buf: VecDeque::new(),
        });
        ChanId(self.chans.len() - 1)
    }

    /// A connected Unix socket pair: (a → b, b → a).
    pub fn socketpair(&mut self) -> (ChanId, ChanId) {
        let (a, b) = (self.next_ino + 1, self.next_ino + 2);
        self.next_ino += 2;
        for (w, r) in [(a, b), (b, a)] {
            self.chans.push(Chan {
                fd_kind: fd_kind::UNIX,
                w_ino: w,
                w_peer: r,
                r_ino: r,
                r_peer: w,
                tcp: None,
                ssl: None,
                buf: VecDeque::new(),
            });
        }
        (ChanId(self.chans.len() - 2), ChanId(self.chans.len() - 1))
    }

    /// A loopback TCP connection: (client → server, server → client).
    pub fn tcp(&mut self, client: TcpEnd, server: TcpEnd) -> (ChanId, ChanId) {
        let (c, sv) = (self.next_ino + 1, self.next_ino + 2);
        self.next_ino += 2;
        for (w, r, ends) in [(c, sv, (client, server)), (sv, c, (server, client))] {
            self.chans.push(Chan {
                fd_kind: fd_kind::TCP4,
                w_ino: w,
                w_peer: 0,
                r_ino: r,
                r_peer: 0,
                tcp: Some(ends),
                ssl: None,
                buf: VecDeque::new(),
            });
        }
        (ChanId(self.chans.len() - 2), ChanId(self.chans.len() - 1))
    }

    /// A TLS connection over loopback, seen as plaintext through the TLS
    /// library: (client → server, server → client). Records carry the
    /// SSL* and, once [`Synth::know_socket`] says so, the socket.
    pub fn tls(
        &mut self,
        client: TcpEnd,
        server: TcpEnd,
        client_ssl: u64,
        server_ssl: u64,
    ) -> (ChanId, ChanId) {
        let (a, b) = self.tcp(client, server);
        self.chans[a.0].ssl = Some((client_ssl, server_ssl));
        self.chans[b.0].ssl = Some((server_ssl, client_ssl));
        (a, b)
    }

    /// From now on the records of this SSL* name its socket.
    pub fn know_socket(&mut self, ssl: u64) {
        self.ssl_known.insert(ssl);
    }

    /// The SSL* was freed and serves a new connection: the recorder starts
    /// its streams over (offsets from 0) without a socket, marking the
    /// first record with STREAM_START in the directions `flagged` (read,
    /// write) says.
    pub fn reuse_ssl(&mut self, pid: u32, ssl: u64, flagged: [bool; 2]) {
        for dir in [0, 1] {
            self.offsets.remove(&(pid, ssl, dir));
            if flagged[dir as usize] {
                self.started.remove(&(pid, ssl, dir));
            }
        }
        self.ssl_known.remove(&ssl);
    }

    /// From now on the records of this SSL* name these ends, whatever
    /// connection it serves.
    pub fn name_socket(&mut self, ssl: u64, local: TcpEnd, remote: TcpEnd) {
        self.ssl_named.insert(ssl, (local, remote));
    }

    pub fn advance(&mut self, ns: u64) {
        self.now += ns;
    }

    /// Ends the writer's block here, before it fills as a recorder's would
    /// (given no parent block, `end_block` compresses it as it is).
    pub fn end_block(&mut self) {
        self.writer.end_block(&[], &[]).unwrap();
    }

    pub fn tick(&mut self) {
        self.writer.push_tick(self.now).unwrap();
    }

    /// A header for `p`'s side of `chan`.
    fn header(&mut self, p: Proc, chan: ChanId, write: bool) -> EventHeader {
        let c = &self.chans[chan.0];
        let (ino, peer) = if write {
            (c.w_ino, c.w_peer)
        } else {
            (c.r_ino, c.r_peer)
        };
        let ((laddr, lport), (raddr, rport)) = match c.tcp {
            Some((w, r)) if write => (w, r),
            Some((w, r)) => (r, w),
            None => (([0; 16], 0), ([0; 16], 0)),
        };
        let mut h = EventHeader {
            laddr,
            lport,
            raddr,
            rport,
            kind: kind::DATA,
            call: if write { call::WRITE } else { call::READ },
            direction: u8::from(write),
            fd_kind: c.fd_kind,
            fd: if write { 1 } else { 0 },
            ts_ns: self.now,
            tgid: p.pid,
            tid: p.pid,
            ino,
            peer_ino: peer,
            comm: comm(p.comm),
            ..Default::default()
        };
        if let Some((w_ssl, r_ssl)) = c.ssl {
            h.ssl = if write { w_ssl } else { r_ssl };
            h.flags |= flags::TLS;
            h.call = if write {
                call::SSL_WRITE
            } else {
                call::SSL_READ
            };
            if !self.ssl_known.contains(&h.ssl) {
                (h.fd_kind, h.ino, h.fd) = (0, 0, 0);
                (h.laddr, h.raddr, h.lport, h.rport) = ([0; 16], [0; 16], 0, 0);
            }
            if let Some(((la, lp), (ra, rp))) = self.ssl_named.get(&h.ssl) {
                (h.laddr, h.lport, h.raddr, h.rport) = (*la, *lp, *ra, *rp);
            }
        }
        h
    }

    /// The records of one call moving `bytes` (chunked like the kernel),
    /// advancing the stream offset; not stored yet.
    pub fn call_records(
        &mut self,
        p: Proc,
        chan: ChanId,
        write: bool,
        bytes: &[u8],
    ) -> Vec<Vec<u8>> {
        let mut hdr = self.header(p, chan, write);
        let id = if hdr.flags & flags::TLS != 0 {
            hdr.ssl
        } else {
            hdr.ino
        };
        let key = (p.pid, id, hdr.direction);
        let off = *self.offsets.get(&key).unwrap_or(&0);
        if self.started.insert(key, ()).is_none() {
            hdr.flags |= flags::STREAM_START;
        }
        self.offsets.insert(key, off + bytes.len() as u64);
        hdr.call_len = bytes.len() as u64;
        let mut recs = Vec::new();
        for (i, chunk) in bytes.chunks(CHUNK_MAX).enumerate() {
            let mut h = hdr;
            if i > 0 {
                h.flags &= !flags::STREAM_START;
            }
            h.stream_off = off + (i * CHUNK_MAX) as u64;
            h.call_off = (i * CHUNK_MAX) as u64;
            recs.push(event::encode(&h, chunk));
        }
        self.now += 10_000;
        recs
    }

    pub fn store(&mut self, recs: impl IntoIterator<Item = Vec<u8>>) {
        for r in recs {
            self.writer.push_event(&r).unwrap();
        }
    }

    /// One write call: recorded, and its bytes wait in the channel.
    pub fn write(&mut self, p: Proc, chan: ChanId, bytes: &[u8]) {
        let recs = self.call_records(p, chan, true, bytes);
        self.store(recs);
        self.chans[chan.0].buf.extend(bytes);
    }

    /// A write whose records never reach the capture (a counted drop).
    pub fn write_lost(&mut self, p: Proc, chan: ChanId, bytes: &[u8]) {
        self.call_records(p, chan, true, bytes);
        self.chans[chan.0].buf.extend(bytes);
    }

    /// One read call taking up to `max` bytes of what waits in the channel.
    pub fn read(&mut self, p: Proc, chan: ChanId, max: usize) -> usize {
        let bytes = self.take(chan, max);
        if !bytes.is_empty() {
            let recs = self.call_records(p, chan, false, &bytes);
            self.store(recs);
        }
        bytes.len()
    }

    /// A read whose records never reach the capture.
    pub fn read_lost(&mut self, p: Proc, chan: ChanId, max: usize) -> usize {
        let bytes = self.take(chan, max);
        self.call_records(p, chan, false, &bytes);
        bytes.len()
    }

    fn take(&mut self, chan: ChanId, max: usize) -> Vec<u8> {
        let buf = &mut self.chans[chan.0].buf;
        let n = max.min(buf.len());
        buf.drain(..n).collect()
    }

    /// A read whose buffer the kernel could not read: a READ_FAILED record.
    pub fn read_failed(&mut self, p: Proc, chan: ChanId, max: usize) -> usize {
        let bytes = self.take(chan, max);
        let mut recs = self.call_records(p, chan, false, &bytes);
        for r in &mut recs {
            let mut h = event::RawEvent::parse(r).expect("own record").hdr;
            h.flags |= flags::READ_FAILED;
            *r = event::encode(&h, b"");
        }
        self.store(recs);
        bytes.len()
    }

    /// Sets a meta key, as the recorder does at its end.
    pub fn set_meta(&mut self, key: &str, value: &str) {
        self.writer.set_meta(key, value).unwrap();
    }

    /// The end of `p`'s side of `chan` (feature `stream_ends`): the
    /// writer's close (`write`), or the reader's end of file.
    pub fn end(&mut self, p: Proc, chan: ChanId, write: bool) {
        let mut h = self.header(p, chan, write);
        let id = if h.flags & flags::TLS != 0 {
            h.ssl
        } else {
            h.ino
        };
        h.kind = kind::END;
        h.call = if write { call::CLOSE } else { call::READ };
        h.stream_off = *self.offsets.get(&(p.pid, id, h.direction)).unwrap_or(&0);
        self.writer.push_event(&event::encode(&h, b"")).unwrap();
        self.now += 10_000;
    }

    /// A write of which the kernel captured only the first `kept` bytes.
    pub fn write_truncated(&mut self, p: Proc, chan: ChanId, bytes: &[u8], kept: usize) {
        let recs = self.call_records(p, chan, true, bytes);
        let mut h = event::RawEvent::parse(&recs[0]).expect("own record").hdr;
        h.flags |= flags::TRUNCATED;
        self.store([event::encode(&h, &bytes[..kept])]);
        self.chans[chan.0].buf.extend(bytes);
    }

    /// Reads until the channel is empty, `size` bytes at a time.
    pub fn drain(&mut self, p: Proc, chan: ChanId, size: usize) {
        while self.read(p, chan, size) > 0 {}
    }

    /// A message sent and received whole: one write, reads of 4 KiB.
    pub fn send(&mut self, from: Proc, to: Proc, chan: ChanId, json: &str) {
        let mut line = json.as_bytes().to_vec();
        line.push(b'\n');
        self.write(from, chan, &line);
        self.advance(20_000);
        self.drain(to, chan, 4096);
        self.advance(50_000);
    }

    /// Commits what is written so far, as the recorder does each second.
    pub fn commit(&mut self) {
        self.writer.commit().unwrap();
    }

    pub fn add_drops(&mut self, d: &DropRow) {
        for (sum, c) in self.ledger.iter_mut().zip(d.counts) {
            *sum += c;
        }
        self.unstored += d.user_lost;
        self.writer.add_drops(d).unwrap();
    }

    pub fn add_process(&mut self, p: Proc) {
        self.add_process_row(&ProcessRow {
            pid: p.pid,
            seen_ts_ns: START_NS,
            comm: p.comm.into(),
            ..Default::default()
        });
    }

    pub fn add_process_row(&mut self, row: &ProcessRow) {
        self.writer.add_process(row).unwrap();
    }

    /// Ends the capture as the recorder does: the kernel's counters (every
    /// record submitted was stored) in the drop ledger and in the meta.
    pub fn finish(mut self) -> PathBuf {
        let mut counts = [0u64; counter::COUNT];
        counts[counter::EVENTS] = (self.writer.stats().events + self.unstored)
            .saturating_sub(self.ledger[counter::EVENTS]);
        let end = self.now;
        self.add_drops(&DropRow {
            start_ktime_ns: end,
            end_ktime_ns: end,
            counts,
            user_lost: 0,
        });
        let mut finals: std::collections::BTreeMap<&str, u64> =
            counter::NAMES.iter().copied().zip(self.ledger).collect();
        finals.insert("user_lost", self.unstored);
        finals.insert("execs_not_stored", 0);
        let finals = serde_json::to_string(&finals).unwrap();
        self.writer.set_meta("final_counters", &finals).unwrap();
        self.writer.finish().unwrap();
        self.path
    }
}

/// An item, reduced to owned values for assertions.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub n: u64,
    pub ts_ns: u64,
    pub kind: String,
    pub method: Option<String>,
    pub subject: Option<String>,
    pub id: Option<String>,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub session: Option<u64>,
    pub direction: Option<String>,
    pub text: String,
    pub latency_ns: Option<u64>,
    pub answers: Option<u64>,
    pub refers_to: Option<u64>,
    pub flag: Option<(String, String)>,
    pub writer_seqs: Vec<u64>,
    pub reader_seqs: Vec<u64>,
    pub writer_off: Option<u64>,
    pub reader_off: Option<u64>,
    pub batch: Option<(usize, usize)>,
    pub truncated: bool,
    /// `query --transport`'s name for it.
    pub transport: Option<&'static str>,
    /// HTTP: the connection number and what HTTP said.
    pub connection: Option<u64>,
    pub http: Option<mcpspy::decode::HttpMeta>,
    /// A writer's line its reader received mixed with another writer's.
    pub interleaved: bool,
    /// An interleaved flag's pieces: (writer pid, start, end).
    pub writers: Vec<(u32, u64, u64)>,
}

impl Seen {
    pub fn of(item: &Item<'_>) -> Seen {
        let (kind, id, refers_to) = match &item.kind {
            Kind::Request { id, .. } => ("request", Some(id.get().to_string()), None),
            Kind::Notification { refers_to, .. } => ("notification", None, refers_to.map(|r| r.n)),
            Kind::Response { id, .. } => ("response", Some(id.get().to_string()), None),
            Kind::Error { id, .. } => ("error", id.map(|i| i.get().to_string()), None),
            Kind::Flagged(_) => ("flagged", None, None),
        };
        Seen {
            n: item.n,
            ts_ns: item.ts_ns,
            kind: kind.into(),
            method: item.kind.method().map(str::to_string),
            subject: item.kind.subject().map(str::to_string),
            id,
            from: item.from.map(|p| p.pid),
            to: item.to.map(|p| p.pid),
            session: item.session.map(|s| s.id),
            direction: item.direction.map(|d| format!("{d:?}")),
            text: String::from_utf8_lossy(item.text).into_owned(),
            latency_ns: item.kind.latency_ns(),
            answers: item.kind.answers().map(|a| a.n),
            refers_to,
            flag: match &item.kind {
                Kind::Flagged(f) => Some((f.reason.code().to_string(), f.detail.clone())),
                _ => None,
            },
            writer_seqs: item.writer.map(|c| c.seqs.to_vec()).unwrap_or_default(),
            reader_seqs: item.reader.map(|c| c.seqs.to_vec()).unwrap_or_default(),
            writer_off: item.writer.map(|c| c.start),
            reader_off: item.reader.map(|c| c.start),
            batch: item.batch.map(|b| (b.index, b.len)),
            truncated: item.truncated,
            transport: item.transport.map(|t| t.family()),
            connection: item.http.map(|h| h.connection),
            http: item.http.and_then(|h| h.meta).cloned(),
            interleaved: item.interleaved,
            writers: match &item.kind {
                Kind::Flagged(f) => f
                    .writers
                    .iter()
                    .map(|w| (w.peer.pid, w.start, w.end))
                    .collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// Decodes a capture file, the way replay does.
pub fn decode_file(path: &Path) -> (Vec<Seen>, Vec<mcpspy::decode::SessionSummary>) {
    decode_file_with(path, DecodeOptions::default())
}

pub fn decode_file_with(
    path: &Path,
    opts: DecodeOptions,
) -> (Vec<Seen>, Vec<mcpspy::decode::SessionSummary>) {
    let reader = CaptureReader::open(path).expect("open capture");
    let mut dec = Decoder::new(opts);
    let mut seen = Vec::new();
    for block in reader.blocks(&Default::default()).unwrap() {
        match block {
            Ok(b) => {
                for rec in b.records() {
                    dec.push(&rec, &mut |it| seen.push(Seen::of(it)));
                }
            }
            Err(e) => dec.push_block_error(&e, &mut |it| seen.push(Seen::of(it))),
        }
    }
    dec.finish(&mut |it| seen.push(Seen::of(it)));
    (seen, dec.sessions().cloned().collect())
}

/// Two writers on one pipe, each line in pieces written in turns, and one
/// reader: returns the capture and the lines the writers wrote (A's, B's).
pub fn two_writers(path: &Path) -> (PathBuf, [String; 2], String) {
    let (a, b) = (
        Proc {
            pid: 301,
            comm: "writer-a",
        },
        Proc {
            pid: 302,
            comm: "writer-b",
        },
    );
    let mut s = Synth::new(path);
    let pipe = s.pipe();
    let a0 = request(1, "tools/call", r#"{"name":"from-a"}"#) + "\n";
    let b0 = request(2, "tools/call", r#"{"name":"from-b"}"#) + "\n";
    // A, B, A, B (its newline: the reader's first line ends), A.
    for (p, bytes) in [
        (a, &a0[..10]),
        (b, &b0[..12]),
        (a, &a0[10..20]),
        (b, &b0[12..]),
        (a, &a0[20..]),
    ] {
        s.write(p, pipe, bytes.as_bytes());
        s.advance(10_000);
    }
    s.drain(SERVER, pipe, 4096);
    // A line written whole, alone.
    let a1 = request(3, "tools/list", "{}");
    s.send(a, SERVER, pipe, &a1);
    (s.finish(), [a0, b0], a1)
}

/// JSON-RPC lines of a typical session.
pub fn request(id: u64, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

pub fn notification(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#)
}

pub fn response(id: u64, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

pub fn error(id: u64, code: i64, message: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#)
}

pub const INIT_PARAMS: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"test-client","version":"1.2.3"}}"#;
pub const INIT_RESULT: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"test-server","version":"9.8.7"}}"#;

pub fn big_result() -> String {
    format!(
        r#"{{"content":[{{"type":"text","text":"{}"}}]}}"#,
        "x".repeat(200_000)
    )
}

/// Client → server on one pipe, server → client on another.
pub fn typical_session(path: &std::path::Path) -> std::path::PathBuf {
    let mut s = Synth::new(path);
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &notification("notifications/initialized", "{}"),
    );
    s.send(CLIENT, SERVER, c2s, &request(1, "tools/list", "{}"));
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &response(1, r#"{"tools":[{"name":"get_weather"}]}"#),
    );
    // A call with a progress token and unicode arguments.
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(
            2,
            "tools/call",
            r#"{"name":"get_weather","arguments":{"city":"Zürich 東京 🌦"},"_meta":{"progressToken":"tok-2"}}"#,
        ),
    );
    // The server asks the client something, reusing id 2 in its own direction.
    s.send(SERVER, CLIENT, s2c, &request(2, "roots/list", "{}"));
    s.send(CLIENT, SERVER, c2s, &response(2, r#"{"roots":[]}"#));
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &notification(
            "notifications/progress",
            r#"{"progressToken":"tok-2","progress":1,"total":2}"#,
        ),
    );
    s.advance(100_000_000);
    // A 200 KB result: one write, chunked by the kernel, read in 4 KiB pieces
    // that start before the write's record arrives (the write blocks).
    let line = format!("{}\n", response(2, &big_result()));
    let recs = s.call_records(SERVER, s2c, true, line.as_bytes());
    // The reader's reads of the same bytes come first.
    {
        let mut done = 0;
        let bytes = line.as_bytes().to_vec();
        while done < bytes.len() {
            let n = (bytes.len() - done).min(4096);
            let r = s.call_records(CLIENT, s2c, false, &bytes[done..done + n]);
            s.store(r);
            done += n;
        }
    }
    s.store(recs);
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(3, "tools/call", r#"{"name":"nope","arguments":{}}"#),
    );
    s.send(SERVER, CLIENT, s2c, &error(3, -32602, "Unknown tool: nope"));
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(4, "tools/call", r#"{"name":"slow","arguments":{}}"#),
    );
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &notification(
            "notifications/cancelled",
            r#"{"requestId":4,"reason":"user"}"#,
        ),
    );
    // A batch, with one element that is not JSON-RPC.
    s.send(
        CLIENT,
        SERVER,
        c2s,
        r#"[{"jsonrpc":"2.0","id":5,"method":"ping"},{"jsonrpc":"2.0","method":"x/custom"},17]"#,
    );
    s.send(
        SERVER,
        CLIENT,
        s2c,
        r#"[{"jsonrpc":"2.0","id":5,"result":{}}]"#,
    );
    s.tick();
    s.finish()
}

/// Everything that can go wrong, in one capture, each followed by messages
/// that decode: bad lines, losses on one side and on both, a call the
/// kernel cut short, a failed read, a message cut by the end of the
/// capture, and a second session (MCP 2026-07-28 over a socket pair).
pub fn damaged_session(path: &Path) -> PathBuf {
    let mut s = Synth::new(path);
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.add_process(CLIENT);
    s.add_process(SERVER);
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    s.send(SERVER, CLIENT, s2c, "server log line, not JSON");
    let mut utf8 =
        br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":""#.to_vec();
    utf8.extend_from_slice(b"\xc3\x28\"}}\n");
    s.write(SERVER, s2c, &utf8);
    s.drain(CLIENT, s2c, 4096);
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(1, "tools/call", r#"{"name":"a","arguments":{}}"#),
    );
    // Lost at the reader only: shown from the writer's copy.
    s.write(
        SERVER,
        s2c,
        format!("{}\n", response(1, r#"{"content":[]}"#)).as_bytes(),
    );
    s.read_lost(CLIENT, s2c, 4096);
    // Lost on both sides: a gap.
    s.write_lost(
        CLIENT,
        c2s,
        format!("{}\n", request(2, "tools/call", r#"{"name":"b"}"#)).as_bytes(),
    );
    s.read_lost(SERVER, c2s, 4096);
    s.add_drops(&DropRow {
        start_ktime_ns: s.now - 1_000_000,
        end_ktime_ns: s.now,
        counts: [4, 200, 2, 120, 0, 0, 0, 0],
        user_lost: 0,
    });
    s.send(SERVER, CLIENT, s2c, &error(2, -32603, "Internal error"));
    // A call the kernel captured only the start of, without a reader copy.
    let three: String = (3..=5)
        .map(|i| format!("{}\n", request(i, "ping", "{}")))
        .collect();
    s.write_truncated(CLIENT, c2s, three.as_bytes(), 12);
    s.read_lost(SERVER, c2s, 4096);
    // A failed read, filled from the writer.
    s.write(
        CLIENT,
        c2s,
        format!("{}\n", request(6, "ping", "{}")).as_bytes(),
    );
    s.read_failed(SERVER, c2s, 4096);
    s.send(SERVER, CLIENT, s2c, &response(6, "{}"));
    // A second session over a Unix socket pair, MCP 2026-07-28.
    let node = Proc {
        pid: 3000,
        comm: "node",
    };
    let (a2b, b2a) = s.socketpair();
    let meta = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c2","version":"2.3.0"}}}"#;
    s.send(CLIENT, node, a2b, &request(0, "server/discover", meta));
    s.send(
        node,
        CLIENT,
        b2a,
        &response(0, r#"{"supportedVersions":["2026-07-28"],"capabilities":{},"serverInfo":{"name":"everything","version":"2026.8.31"}}"#),
    );
    s.send(
        node,
        CLIENT,
        b2a,
        &request(0, "sampling/createMessage", r#"{"messages":[]}"#),
    );
    s.send(CLIENT, node, a2b, &error(0, -32601, "Method not found"));
    s.tick();
    // The capture ends inside a message.
    let half = request(7, "tools/call", r#"{"name":"c","arguments":{"x":1}}"#);
    s.write(CLIENT, c2s, &half.as_bytes()[..40]);
    s.drain(SERVER, c2s, 4096);
    s.finish()
}

/// An HTTP/1.1 request: head (with Host and, for a body, Content-Length
/// unless a Transfer-Encoding is given) and body.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n").into_bytes();
    head_rest(&mut out, headers, body, !body.is_empty());
    out
}

/// An HTTP/1.1 response; Content-Length is added unless a
/// Transfer-Encoding is given or `length` is false.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8], length: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    head_rest(&mut out, headers, body, length);
    out
}

fn head_rest(out: &mut Vec<u8>, headers: &[(&str, &str)], body: &[u8], length: bool) {
    let chunked = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if length && !chunked {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A chunked body of these chunks, and its last chunk.
pub fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One SSE event carrying `data`, as the Python SDK writes it.
pub fn sse(data: &str) -> String {
    format!("event: message\r\ndata: {data}\r\n\r\n")
}

pub const JSON: (&str, &str) = ("Content-Type", "application/json");
pub const EVENT_STREAM: (&str, &str) = ("Content-Type", "text/event-stream");
pub const CHUNKED: (&str, &str) = ("Transfer-Encoding", "chunked");

/// The legacy SSE transport's event stream, from `client` on `port`: a GET
/// answered by an event stream whose first event is `endpoint` (an SSE
/// event, its framing included).
pub fn legacy_stream(s: &mut Synth, client: Proc, port: u16, endpoint: &str) -> Conn {
    let stream = Conn::new(s, client, SERVER, port);
    stream.request(
        s,
        &http_request("GET", "/sse", &[("Accept", "text/event-stream")], b""),
    );
    let mut first = http_response("200 OK", &[EVENT_STREAM, CHUNKED], b"", false);
    first.extend_from_slice(format!("{:x}\r\n{endpoint}\r\n", endpoint.len()).as_bytes());
    stream.respond(s, &first);
    stream
}

/// The output of `mcpspy ARGS PATH`, which must succeed.
pub fn mcpspy_stdout(args: &[&str], path: &Path) -> String {
    let out = mcpspy_command().args(args).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The items `mcpspy export PATH` gives, as JSON.
pub fn exported_items(path: &Path) -> Vec<serde_json::Value> {
    mcpspy_stdout(&["export"], path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `n` of the request whose JSON-RPC id is `id`.
pub fn n_of_request(items: &[serde_json::Value], id: u64) -> serde_json::Value {
    items
        .iter()
        .find(|i| i["type"] == "request" && i["id"] == id)
        .map(|i| i["n"].clone())
        .unwrap_or_else(|| panic!("no request {id}: {items:#?}"))
}

/// Two ends of an HTTP connection on this host, and what each copy of the
/// bytes goes through.
pub struct Conn {
    pub c2s: ChanId,
    pub s2c: ChanId,
    pub client: Proc,
    pub server: Proc,
    /// Reads of this many bytes at most.
    pub read: usize,
}

impl Conn {
    pub fn new(s: &mut Synth, client: Proc, server: Proc, port: u16) -> Conn {
        let (c2s, s2c) = s.tcp(ipv4([127, 0, 0, 1], port), ipv4([127, 0, 0, 1], 8000));
        Conn {
            c2s,
            s2c,
            client,
            server,
            read: 4096,
        }
    }

    /// CLIENT and SERVER on the channels `s.tcp` or `s.tls` made.
    pub fn of((c2s, s2c): (ChanId, ChanId)) -> Conn {
        Conn {
            c2s,
            s2c,
            client: CLIENT,
            server: SERVER,
            read: 4096,
        }
    }

    /// The client sends `bytes`; the server reads them.
    pub fn request(&self, s: &mut Synth, bytes: &[u8]) {
        s.write(self.client, self.c2s, bytes);
        s.advance(20_000);
        s.drain(self.server, self.c2s, self.read);
        s.advance(50_000);
    }

    /// The server sends `bytes`; the client reads them.
    pub fn respond(&self, s: &mut Synth, bytes: &[u8]) {
        s.write(self.server, self.s2c, bytes);
        s.advance(20_000);
        s.drain(self.client, self.s2c, self.read);
        s.advance(50_000);
    }

    /// The client POSTs `json` to /mcp.
    pub fn post(&self, s: &mut Synth, json: &str) {
        self.post_at(s, "/mcp", json);
    }

    /// The client POSTs `json` to `path`.
    pub fn post_at(&self, s: &mut Synth, path: &str, json: &str) {
        self.request(s, &http_request("POST", path, &[JSON], json.as_bytes()));
    }

    /// The server answers 200 OK with `json`, its length given.
    pub fn ok(&self, s: &mut Synth, json: &str) {
        self.respond(s, &http_response("200 OK", &[JSON], json.as_bytes(), true));
    }
}

/// Every capture of fixtures/ and fixtures/synthetic/, in name order.
pub fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for dir in ["fixtures", "fixtures/synthetic"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "db") {
                all.push(p);
            }
        }
    }
    all.sort();
    all
}

/// The built mcpspy as the tests run it: clock times in UTC, colour left to
/// the terminal test, and query indexes in a folder of this test run rather
/// than the user's cache.
pub fn mcpspy_command() -> Command {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().expect("a scratch cache folder"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcpspy"));
    c.env("TZ", "UTC")
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("NO_COLOR");
    c
}

/// `mcpspy redact PARENT -o CHILD`, with `more` arguments.
pub fn redact(parent: &Path, child: &Path, more: &[&str]) -> std::process::Output {
    let mut c = mcpspy_command();
    c.arg("redact").arg(parent).arg("-o").arg(child).args(more);
    c.output().expect("mcpspy runs")
}

/// The same, which must succeed.
pub fn redact_ok(parent: &Path, child: &Path, more: &[&str]) {
    let out = redact(parent, child, more);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
