//! The `streams` table as a writer keeps it: a row per stream, made from
//! the data records stored, numbered in the order streams first appear.

use crate::event::{tcp_endpoints, Direction, RawEvent, StreamId};
use anyhow::Result;
// A fast seeded hash: a row is looked up for every data record.
use foldhash::HashMap;
use rusqlite::{params, Connection};

struct StreamRow {
    id: i64,
    fd: u32,
    fd_kind: u8,
    ssl: u64,
    ino: u64,
    peer_ino: u64,
    tcp: Option<(String, u16, String, u16)>,
    first_ts: u64,
    last_ts: u64,
    events: u64,
    bytes: u64,
    dirty: bool,
}

#[derive(Default)]
pub struct Streams {
    rows: HashMap<StreamId, StreamRow>,
}

impl Streams {
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The streams that have a row.
    pub fn ids(&self) -> impl Iterator<Item = &StreamId> {
        self.rows.keys()
    }

    /// The number of stream `key`, if it has a row.
    pub fn id(&self, key: &StreamId) -> Option<i64> {
        self.rows.get(key).map(|r| r.id)
    }

    /// Counts a data record in its stream's row (made on first sight);
    /// returns the stream's number.
    pub fn note(&mut self, ev: &RawEvent) -> i64 {
        let h = &ev.hdr;
        let key = ev.stream_id();
        let next_id = self.rows.len() as i64 + 1;
        let row = self.rows.entry(key).or_insert_with(|| StreamRow {
            id: next_id,
            fd: h.fd,
            fd_kind: h.fd_kind,
            ssl: h.ssl,
            ino: h.ino,
            peer_ino: h.peer_ino,
            tcp: tcp_endpoints(h),
            first_ts: h.ts_ns,
            last_ts: h.ts_ns,
            events: 0,
            bytes: 0,
            dirty: true,
        });
        row.first_ts = row.first_ts.min(h.ts_ns);
        row.last_ts = row.last_ts.max(h.ts_ns);
        row.events += 1;
        row.bytes += ev.payload.len() as u64;
        row.dirty = true;
        let id = row.id;
        // A TLS stream learns its socket after its first calls, maybe in the
        // other direction: both directions of the SSL* take it.
        if ev.is_tls() && h.ino != 0 {
            for dir in [Direction::Read, Direction::Write] {
                if let Some(r) = self.rows.get_mut(&StreamId {
                    direction: dir,
                    ..key
                }) {
                    if r.ino == 0 {
                        r.ino = h.ino;
                        r.fd = h.fd;
                        r.fd_kind = h.fd_kind;
                        r.tcp = tcp_endpoints(h);
                        r.dirty = true;
                    }
                }
            }
        }
        id
    }

    /// Keeps the rows of the streams `keep` names, numbered again in the
    /// order they first appeared: the rows a writer given only the records
    /// of those streams would have made, when both directions of each
    /// stream are kept or neither (a TLS stream's row learns its socket
    /// from the other direction).
    pub fn retain(&mut self, mut keep: impl FnMut(&StreamId) -> bool) {
        self.rows.retain(|k, _| keep(k));
        let mut order: Vec<(i64, StreamId)> = self.rows.iter().map(|(k, r)| (r.id, *k)).collect();
        order.sort_unstable();
        for (n, (_, key)) in order.into_iter().enumerate() {
            if let Some(r) = self.rows.get_mut(&key) {
                r.id = n as i64 + 1;
                r.dirty = true;
            }
        }
    }

    /// Writes the rows changed since the last write.
    pub(super) fn write(&mut self, conn: &Connection) -> Result<()> {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO streams (stream_id, pid, fd, fd_kind, tls, ssl, ino, peer_ino, direction,
               laddr, lport, raddr, rport, first_ts_ns, last_ts_ns, events, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT (stream_id) DO UPDATE SET ino = excluded.ino, fd = excluded.fd,
               fd_kind = excluded.fd_kind,
               laddr = excluded.laddr, lport = excluded.lport, raddr = excluded.raddr,
               rport = excluded.rport, first_ts_ns = excluded.first_ts_ns,
               last_ts_ns = excluded.last_ts_ns, events = excluded.events, bytes = excluded.bytes",
        )?;
        for (key, row) in self.rows.iter_mut().filter(|(_, r)| r.dirty) {
            let (laddr, lport, raddr, rport) = match &row.tcp {
                Some((la, lp, ra, rp)) => {
                    (Some(la.as_str()), Some(*lp), Some(ra.as_str()), Some(*rp))
                }
                None => (None, None, None, None),
            };
            stmt.execute(params![
                row.id,
                key.tgid,
                row.fd,
                row.fd_kind,
                key.tls,
                row.ssl as i64,
                row.ino as i64,
                row.peer_ino as i64,
                match key.direction {
                    Direction::Read => "read",
                    Direction::Write => "write",
                },
                laddr,
                lport,
                raddr,
                rport,
                row.first_ts as i64,
                row.last_ts as i64,
                row.events as i64,
                row.bytes as i64
            ])?;
            row.dirty = false;
        }
        Ok(())
    }
}
