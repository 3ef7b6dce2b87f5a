//! TLS under a network stream, opened with the capture's key log (`record
//! --keylog`, feature `tls_keylog`). Each direction's records are cut from
//! its reassembled bytes; the clear hellos name the connection (the client
//! random, which key logs are keyed by) and its version and suite; TLS 1.3
//! records open with the traffic secrets of the key log, TLS 1.2's (AEAD
//! suites) with its master secret, and their content goes to a framer of
//! its own, sniffed like any stream (HTTP/1.1, HTTP/2).
//!
//! Nothing that does not open is shown as content: a connection the key
//! log has no secrets for is reported once as "TLS, no keys", and so is a
//! record that does not open, a suite that is not AEAD, and a stream picked
//! up after its hello or past a loss (record numbers, which the nonces
//! hold, are lost with the bytes).

mod hello;
mod keys;
mod protect;
#[cfg(test)]
mod tests;

pub use keys::KeyLog;

use super::frame::{lost_frame, Frame, FrameBody};
use super::framer::{Framer, SocketState};
use super::item::FlagReason;
use super::reassembly::Piece;
use crate::event::keylog::Label;
use hello::Hello;
use protect::{Protection, Suite};
use std::collections::VecDeque;

/// What both directions of one TLS connection share.
#[derive(Debug, Default)]
pub struct SocketTls {
    /// The ClientHello's random.
    random: Option<[u8; 32]>,
    /// The ServerHello's version, suite and random.
    server: Option<(u16, u16, [u8; 32])>,
    /// The plaintext protocols' state of this connection.
    pub inner: SocketState,
}

/// One direction of a TLS connection.
pub struct Tls {
    inner: Framer,
    /// Ciphertext not yet a whole record; `buf[0]` is at stream offset `buf_off`.
    buf: Vec<u8>,
    buf_off: u64,
    /// Clear handshake bytes not yet a whole message.
    clear: Vec<u8>,
    /// Opened handshake bytes not yet a whole message.
    sealed_handshake: Vec<u8>,
    /// This direction carries the client's records (it has the ClientHello).
    client: Option<bool>,
    /// This direction sent change_cipher_spec: every record after it is
    /// sealed (in TLS 1.3 it is only there for compatibility).
    cipher_changed: bool,
    phase: Phase,
    /// Sealed records waiting for their secrets, or for the other
    /// direction's ServerHello.
    waiting: VecDeque<Sealed>,
    waiting_bytes: usize,
    /// Offset of the next plaintext byte.
    plain_off: u64,
    /// Sealed records that opened under no secret known for them.
    unopened: u32,
    /// The latest sealed record: (offset, time, record number).
    last_sealed: Option<(u64, u64, u64)>,
    /// When the first waiting record last waited: the key log's
    /// generation, and whether the hellos were known.
    waited: Option<(u64, bool, bool)>,
}

struct Sealed {
    header: [u8; 5],
    body: Vec<u8>,
    off: u64,
    ts: u64,
    seq: u64,
}

enum Phase {
    /// No record has opened under the traffic secret yet; `hs` opens the
    /// handshake's, when the key log has its secret.
    Handshake {
        hs: Option<Protection>,
    },
    App(Protection),
    /// Nothing more opens; `report` is said with the next bytes, if any.
    Stopped {
        report: Option<String>,
    },
}

/// What to do with one sealed record.
enum Step {
    /// Its secrets, or the ServerHello, are not known yet.
    Wait(Sealed),
    Opened(u8, Vec<u8>),
    /// A handshake record: nothing to show.
    Skipped,
    Stop(String),
}

/// Largest record: 2^14 bytes of content, and 256 of expansion.
const MAX_RECORD: usize = (1 << 14) + 256;
/// Sealed bytes held for keys still to come; past it, the stream is
/// reported as having no keys.
const MAX_WAITING: usize = 4 << 20;
/// What a waiting record costs beside its bytes (counted, so that many
/// tiny records cannot grow the queue past the limit unseen).
const WAITING_OVERHEAD: usize = 64;
/// Sealed records that open under no known secret, taken as handshake
/// records whose secret the key log lacks; past it, the secrets do not
/// belong to this connection.
const MAX_UNOPENED: u32 = 16;
const NO_KEYS: &str = "TLS, no keys: the key log has no secrets that open this connection";
const CONTENT: u8 = 23;
const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const CHANGE_CIPHER_SPEC: u8 = 20;

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client", &self.client)
            .field("plain_off", &self.plain_off)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// `after_loss`: the stream's first bytes were lost, its hello with them.
    pub fn new(max_line: usize, after_loss: bool) -> Tls {
        Tls {
            inner: Framer::sniffing_in_tls(max_line),
            buf: Vec::new(),
            buf_off: 0,
            clear: Vec::new(),
            sealed_handshake: Vec::new(),
            client: None,
            cipher_changed: false,
            phase: if after_loss {
                Phase::Stopped {
                    report: Some("TLS picked up after its handshake: not decrypted".into()),
                }
            } else {
                Phase::Handshake { hs: None }
            },
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            plain_off: 0,
            unopened: 0,
            last_sealed: None,
            waited: None,
        }
    }

    pub fn inner(&self) -> &Framer {
        &self.inner
    }

    pub fn held(&self) -> usize {
        self.inner.held() + self.buf.len() + self.waiting_bytes
    }

    pub fn feed(
        &mut self,
        piece: Piece<'_>,
        sock: &mut SocketState,
        keys: &KeyLog,
        out: &mut impl FnMut(Frame),
    ) {
        match piece {
            Piece::Data {
                off,
                bytes,
                ts,
                seq,
            } => {
                if let Phase::Stopped { report } = &mut self.phase {
                    if let Some(why) = report.take() {
                        let at = self.at(off);
                        out(said(why, at, 0, ts, seq));
                    }
                    return;
                }
                if self.buf.is_empty() {
                    self.buf_off = off;
                }
                self.buf.extend_from_slice(bytes);
                self.records(sock, keys, ts, seq, out);
            }
            // A cut (the decoder's budget), not a loss: the open message
            // inside is cut, the records go on.
            Piece::Lost {
                len: 0,
                why,
                ts,
                seq,
                ..
            } => {
                // Records waiting for secrets wait no longer either.
                self.open_waiting(sock, keys, true, out);
                let cut = Piece::Lost {
                    off: self.plain_off,
                    len: 0,
                    why,
                    ts,
                    seq,
                };
                let st = sock.tls.get_or_insert_with(Default::default);
                self.inner.feed(cut, &mut st.inner, keys, out);
            }
            Piece::Lost {
                off,
                len,
                why,
                ts,
                seq,
            } => {
                // What waits is opened with the secrets known now, or said
                // not to open; then the loss, and nothing past it.
                self.open_waiting(sock, keys, true, out);
                out(lost_frame(self.at(off), len, why, ts, seq));
                if !matches!(self.phase, Phase::Stopped { .. }) {
                    self.halt();
                    self.phase = Phase::Stopped {
                        report: Some("TLS past lost bytes: its records cannot be opened".into()),
                    };
                }
            }
            Piece::Late { .. } => {}
        }
    }

    /// The whole records in `buf`, one by one.
    fn records(
        &mut self,
        sock: &mut SocketState,
        keys: &KeyLog,
        ts: u64,
        seq: u64,
        out: &mut impl FnMut(Frame),
    ) {
        let mut at = 0;
        while let Some(h) = self.buf.get(at..at + 5) {
            let header: [u8; 5] = h.try_into().expect("five bytes");
            let len = u16::from_be_bytes([h[3], h[4]]) as usize;
            let off = self.buf_off + at as u64;
            if h[1] != 3 || len > MAX_RECORD {
                let why = format!("TLS out of step: no record header at offset {off}");
                return self.stop(why, off, ts, seq, out);
            }
            let Some(body) = self.buf.get(at + 5..at + 5 + len) else {
                break;
            };
            let body = body.to_vec();
            at += 5 + len;
            self.record(header, body, off, ts, seq, sock, keys, out);
            if matches!(self.phase, Phase::Stopped { .. }) {
                return; // halt() let go of the buffer
            }
        }
        self.buf.drain(..at);
        self.buf_off += at as u64;
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        header: [u8; 5],
        body: Vec<u8>,
        off: u64,
        ts: u64,
        seq: u64,
        sock: &mut SocketState,
        keys: &KeyLog,
        out: &mut impl FnMut(Frame),
    ) {
        // Before the ServerHello is known, handshake records are clear (a
        // HelloRetryRequest is followed by a compatibility change_cipher_spec
        // and a ServerHello); after this direction's change_cipher_spec,
        // TLS 1.2's are sealed.
        let hello_unknown = sock.tls.as_ref().is_none_or(|t| t.server.is_none());
        match header[0] {
            HANDSHAKE if !self.cipher_changed || hello_unknown => self.clear_handshake(&body, sock),
            CHANGE_CIPHER_SPEC => self.cipher_changed = true,
            CONTENT | HANDSHAKE | ALERT if header[0] == CONTENT || self.cipher_changed => {
                // Not even a tag: no suite seals that.
                if body.len() < protect::TAG_LEN {
                    let why = format!(
                        "TLS out of step: a sealed record of {} bytes at offset {off}",
                        body.len()
                    );
                    return self.stop(why, off, ts, seq, out);
                }
                self.last_sealed = Some((off, ts, seq));
                self.waiting_bytes += body.len() + WAITING_OVERHEAD;
                self.waiting.push_back(Sealed {
                    header,
                    body,
                    off,
                    ts,
                    seq,
                });
                self.open_waiting(sock, keys, false, out);
            }
            // Clear alerts, heartbeats.
            ALERT | 24 => {}
            other => {
                let why = format!("TLS out of step: a record of type {other} at offset {off}");
                self.stop(why, off, ts, seq, out);
            }
        }
    }

    /// The hellos: which side this direction is, the connection's random,
    /// version and suite.
    fn clear_handshake(&mut self, body: &[u8], sock: &mut SocketState) {
        if self.clear.len() + body.len() > hello::MAX_CLEAR_HANDSHAKE {
            self.clear.clear();
            return;
        }
        self.clear.extend_from_slice(body);
        let st = sock.tls.get_or_insert_with(Default::default);
        let (messages, used) = hello::messages(&self.clear);
        for (kind, body) in messages {
            match hello::parse(kind, body) {
                Some(Hello::Client { random }) => {
                    self.client = Some(true);
                    st.random = Some(random);
                }
                Some(Hello::Server {
                    version,
                    suite,
                    random,
                }) => {
                    self.client = Some(false);
                    st.server = Some((version, suite, random));
                }
                Some(Hello::Retry) => self.client = Some(false),
                None => {}
            }
        }
        self.clear.drain(..used);
    }

    /// Opens the waiting records in order, as far as the secrets allow.
    /// `last`: nothing more will wait (the end of the stream, a loss, the
    /// decoder's budget).
    fn open_waiting(
        &mut self,
        sock: &mut SocketState,
        keys: &KeyLog,
        last: bool,
        out: &mut impl FnMut(Frame),
    ) {
        let st = sock.tls.get_or_insert_with(Default::default);
        // The first record waited, and nothing it waits on has moved since.
        let stamp = (keys.generation(), st.server.is_some(), st.random.is_some());
        if !last && self.waited == Some(stamp) && self.waiting_bytes < MAX_WAITING {
            return;
        }
        self.waited = None;
        while let Some(rec) = self.waiting.pop_front() {
            self.waiting_bytes -= rec.body.len() + WAITING_OVERHEAD;
            let (off, ts, seq) = (rec.off, rec.ts, rec.seq);
            match self.step(rec, st, keys) {
                Step::Wait(rec) if !last && self.waiting_bytes < MAX_WAITING => {
                    self.waiting_bytes += rec.body.len() + WAITING_OVERHEAD;
                    self.waiting.push_front(rec);
                    self.waited = Some(stamp);
                    return;
                }
                Step::Wait(_) => {
                    let why = if st.server.is_none() {
                        "TLS without its ServerHello (not captured): not decrypted"
                    } else if st.random.is_none() {
                        "TLS without its ClientHello (not captured): not decrypted"
                    } else {
                        NO_KEYS
                    };
                    self.stop(why.into(), off, ts, seq, out);
                }
                Step::Skipped => {}
                Step::Stop(why) => self.stop(why, off, ts, seq, out),
                Step::Opened(kind, content) => self.opened(kind, &content, ts, seq, st, keys, out),
            }
            if matches!(self.phase, Phase::Stopped { .. }) {
                return;
            }
        }
    }
}

impl Tls {
    /// What one sealed record is, under the secrets known now.
    fn step(&mut self, rec: Sealed, st: &SocketTls, keys: &KeyLog) -> Step {
        if matches!(self.phase, Phase::Stopped { .. }) {
            return Step::Skipped;
        }
        if !keys.expected() {
            return Step::Stop(
                "TLS, no keys: the capture holds no key log (record --keylog)".into(),
            );
        }
        let Some(client) = self.client else {
            return Step::Stop("TLS picked up after its hello: not decrypted".into());
        };
        let Some((version, suite, server_random)) = st.server else {
            return Step::Wait(rec);
        };
        if let Phase::App(p) = &mut self.phase {
            let mut body = rec.body;
            return match p.open(p.seq, &rec.header, &mut body) {
                Ok(kind) => {
                    p.seq += 1;
                    Step::Opened(kind, body)
                }
                Err(()) => Step::Stop(format!(
                    "TLS record {} does not open with the key log's secrets (damaged, or a \
                     key change missed): not decrypted from here on",
                    p.seq
                )),
            };
        }
        let aead = match version {
            hello::TLS13 => Suite::from_id(suite),
            hello::TLS12 => Suite::from_tls12_id(suite),
            _ => {
                return Step::Stop(format!(
                    "TLS version {version:#06x}: only TLS 1.2 and 1.3 are decrypted"
                ))
            }
        };
        let Some(suite) = aead else {
            return Step::Stop(format!(
                "TLS suite {suite:#06x}: only AEAD suites are decrypted"
            ));
        };
        let Some(random) = st.random else {
            return Step::Wait(rec);
        };
        if version == hello::TLS12 {
            // The first sealed record of each direction opens with the keys
            // of the master secret (it is the Finished message).
            let Some(master) = keys.secret(&random, Label::Master) else {
                return Step::Wait(rec);
            };
            let p = Protection::tls12(suite, master, &random, &server_random, client);
            let mut body = rec.body;
            return match p {
                Some(mut p) if p.open(0, &rec.header, &mut body).is_ok() => {
                    p.seq = 1;
                    self.phase = Phase::App(p);
                    Step::Skipped
                }
                _ => Step::Stop(NO_KEYS.into()),
            };
        }
        let (app, hs) = if client {
            (Label::ClientTraffic, Label::ClientHandshake)
        } else {
            (Label::ServerTraffic, Label::ServerHandshake)
        };
        // Stopped: nothing more opens.
        let Phase::Handshake { hs: hs_prot } = &mut self.phase else {
            return Step::Skipped;
        };
        if hs_prot.is_none() {
            *hs_prot = keys
                .secret(&random, hs)
                .and_then(|s| Protection::new(suite, s));
        }
        if let Some(h) = hs_prot {
            let mut body = rec.body.clone();
            if h.open(h.seq, &rec.header, &mut body).is_ok() {
                h.seq += 1;
                return Step::Skipped;
            }
        }
        let Some(secret) = keys.secret(&random, app) else {
            return Step::Wait(rec);
        };
        let Some(mut p) = Protection::new(suite, secret) else {
            return Step::Stop(NO_KEYS.into());
        };
        let mut body = rec.body;
        if let Ok(kind) = p.open(0, &rec.header, &mut body) {
            p.seq = 1;
            self.phase = Phase::App(p);
            return Step::Opened(kind, body);
        }
        self.unopened += 1;
        if self.unopened > MAX_UNOPENED {
            Step::Stop(NO_KEYS.into())
        } else {
            Step::Skipped
        }
    }

    /// A record's content: application data goes to the inner framer; a
    /// KeyUpdate changes the keys from the next record on.
    #[allow(clippy::too_many_arguments)]
    fn opened(
        &mut self,
        kind: u8,
        content: &[u8],
        ts: u64,
        seq: u64,
        st: &mut SocketTls,
        keys: &KeyLog,
        out: &mut impl FnMut(Frame),
    ) {
        match kind {
            CONTENT if !content.is_empty() => {
                let piece = Piece::Data {
                    off: self.plain_off,
                    bytes: content,
                    ts,
                    seq,
                };
                self.plain_off += content.len() as u64;
                self.inner.feed(piece, &mut st.inner, keys, out);
            }
            HANDSHAKE => {
                // Post-handshake messages (tickets, KeyUpdate) may span records.
                if self.sealed_handshake.len() + content.len() > hello::MAX_CLEAR_HANDSHAKE {
                    self.sealed_handshake.clear();
                }
                self.sealed_handshake.extend_from_slice(content);
                let (messages, used) = hello::messages(&self.sealed_handshake);
                let updates = messages.iter().any(|(k, _)| *k == hello::KEY_UPDATE);
                self.sealed_handshake.drain(..used);
                if let (true, Phase::App(p)) = (updates, &mut self.phase) {
                    if p.update().is_none() {
                        let why = "TLS key update failed: not decrypted from here on".into();
                        self.stop(why, self.plain_off, ts, seq, out);
                    }
                }
            }
            // Alerts (close_notify) and the rest carry no content.
            _ => {}
        }
    }

    /// Nothing more of this direction is opened; says why, once.
    fn stop(&mut self, why: String, off: u64, ts: u64, seq: u64, out: &mut impl FnMut(Frame)) {
        out(said(why, self.at(off), 0, ts, seq));
        self.halt();
        self.phase = Phase::Stopped { report: None };
    }

    /// Where a report about ciphertext at `off` goes: once plaintext has
    /// come out, at the plaintext's end (a stream's frames never go back).
    fn at(&self, off: u64) -> u64 {
        if self.plain_off > 0 {
            self.plain_off
        } else {
            off
        }
    }

    /// Drops what was held for opening: nothing of it will open.
    fn halt(&mut self) {
        self.waiting.clear();
        self.waiting_bytes = 0;
        self.buf.clear();
        self.waited = None;
    }

    /// The stream is over: records still waiting get the secrets known now.
    pub fn finish(&mut self, sock: &mut SocketState, keys: &KeyLog, out: &mut impl FnMut(Frame)) {
        if !matches!(self.phase, Phase::Stopped { .. }) {
            self.open_waiting(sock, keys, true, out);
        }
        if let (Phase::Handshake { .. }, true, Some((off, ts, seq))) =
            (&self.phase, self.unopened > 0, self.last_sealed)
        {
            self.stop(NO_KEYS.into(), off, ts, seq, out);
        }
        let st = sock.tls.get_or_insert_with(Default::default);
        self.inner.finish(&mut st.inner, keys, out);
    }
}

/// The one report of a TLS stream (or the rest of one) that is not decrypted.
fn said(why: String, off: u64, len: u64, ts: u64, seq: u64) -> Frame {
    Frame::plain(
        off,
        off + len,
        ts,
        ts,
        vec![seq],
        FrameBody::Notice {
            reason: FlagReason::NotDecrypted,
            detail: why,
            text: Vec::new(),
        },
    )
}
