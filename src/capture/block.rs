//! The framing of records inside a block (see schema/v1.sql, table `blocks`).
//!
//! A record is a tag, a length and a body. Tags below [`TAG_OPTIONAL`] are
//! part of the major version: a reader that meets one it does not know has
//! met damage. Tags from [`TAG_OPTIONAL`] up belong to optional features
//! (schema/README.md): a reader that does not know one skips it, and the
//! record still takes its number.

use crate::event::{kind, EventHeader, RawEvent, StreamId};

pub const TAG_EVENT: u8 = 1;
pub const TAG_TICK: u8 = 2;
/// The first tag a reader may skip when it does not know it.
pub const TAG_OPTIONAL: u8 = 128;
/// Feature `tls_keylog`: one line of a TLS key log the recorder followed.
pub const TAG_KEYLOG: u8 = 128;
pub const KEYLOG_FEATURE: &str = "tls_keylog";
/// Feature `stream_ends`: a ring-buffer record of kind END (a watched TCP
/// stream's close or end of file), kept out of tag 1 so that readers that
/// do not know it skip it.
pub const TAG_END: u8 = 129;
pub const END_FEATURE: &str = "stream_ends";
const FRAME_HEADER: usize = 5;

/// One stored record.
#[derive(Clone, Debug)]
pub enum Record<'a> {
    /// A ring-buffer record, as the kernel wrote it.
    Event(RawEvent<'a>),
    /// A ring-buffer record of kind END (feature `stream_ends`).
    End(RawEvent<'a>),
    /// The recorder had drained every record submitted before `ts_ns`.
    Tick { ts_ns: u64 },
    /// One line of an NSS key log (feature `tls_keylog`), as the recorder
    /// read it at `ts_ns`: the secrets of a TLS connection.
    KeyLog { ts_ns: u64, line: &'a [u8] },
    /// Bytes that do not parse (`len` of them, framing included): kept in
    /// view, never skipped silently.
    Damaged { reason: String, len: usize },
}

/// A record and its number in the file.
#[derive(Clone, Debug)]
pub struct Numbered<'a> {
    pub seq: u64,
    pub record: Record<'a>,
}

/// What a block's records are, learned as they were read: what a writer
/// counts as it stores them, so that it can take the block whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockFacts {
    /// Records of every kind.
    pub records: u64,
    /// Data and exec records; the data records' payload bytes.
    pub events: u64,
    pub payload_bytes: u64,
    /// The data and exec records' time range.
    pub ts: Option<(u64, u64)>,
    /// Data records by stream.
    pub streams: Vec<(StreamId, u64)>,
    pub ends: u64,
    pub keylog_lines: u64,
    /// Bytes that do not parse as records, and records of optional
    /// features this reader skips: a block with either is never taken
    /// whole (its records are not all seen, so not all searched).
    pub damaged: u64,
    pub skipped: u64,
    /// The block's decompressed size.
    pub raw_bytes: u64,
}

impl BlockFacts {
    /// The facts of decompressed block `data` before its records are
    /// counted: its size, and the optional records [`Records`] skips.
    pub fn new(data: &[u8]) -> BlockFacts {
        let mut skipped = 0;
        let mut rest = data;
        while let Ok((tag, _, used)) = next_frame(rest) {
            skipped += u64::from(skips(tag));
            rest = &rest[used..];
        }
        BlockFacts {
            records: 0,
            events: 0,
            payload_bytes: 0,
            ts: None,
            streams: Vec::new(),
            ends: 0,
            keylog_lines: 0,
            damaged: 0,
            skipped,
            raw_bytes: data.len() as u64,
        }
    }

    /// Counts one more record of the block, as the writer counts it.
    pub fn add(&mut self, rec: &Record<'_>) {
        self.records += 1;
        match rec {
            Record::Event(ev) => {
                let ts = ev.hdr.ts_ns;
                self.events += 1;
                self.ts = Some(
                    self.ts
                        .map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))),
                );
                if ev.hdr.kind == kind::DATA {
                    self.payload_bytes += ev.payload.len() as u64;
                    let key = ev.stream_id();
                    match self.streams.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, n)) => *n += 1,
                        None => self.streams.push((key, 1)),
                    }
                }
            }
            Record::End(_) => self.ends += 1,
            Record::KeyLog { .. } => self.keylog_lines += 1,
            Record::Damaged { .. } => self.damaged += 1,
            Record::Tick { .. } => {}
        }
    }
}

/// Appends an event: its header, then exactly `len` payload bytes; an END
/// record under its own tag.
pub fn append_event(buf: &mut Vec<u8>, hdr: &EventHeader, payload: &[u8]) {
    let header = hdr.to_bytes();
    buf.push(if hdr.kind == crate::event::kind::END {
        TAG_END
    } else {
        TAG_EVENT
    });
    buf.extend_from_slice(&((header.len() + payload.len()) as u32).to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
}

pub fn append_tick(buf: &mut Vec<u8>, ts_ns: u64) {
    buf.push(TAG_TICK);
    buf.extend_from_slice(&8u32.to_le_bytes());
    buf.extend_from_slice(&ts_ns.to_le_bytes());
}

pub fn append_keylog(buf: &mut Vec<u8>, ts_ns: u64, line: &[u8]) {
    buf.push(TAG_KEYLOG);
    buf.extend_from_slice(&((8 + line.len()) as u32).to_le_bytes());
    buf.extend_from_slice(&ts_ns.to_le_bytes());
    buf.extend_from_slice(line);
}

/// The first frame of `data`: (tag, body, bytes consumed), or why it is cut.
pub fn next_frame(data: &[u8]) -> Result<(u8, &[u8], usize), String> {
    if data.len() < FRAME_HEADER {
        return Err(format!(
            "block ends inside a record frame ({} bytes left)",
            data.len()
        ));
    }
    let len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
    match data.get(FRAME_HEADER..FRAME_HEADER + len) {
        Some(body) => Ok((data[0], body, FRAME_HEADER + len)),
        None => Err(format!(
            "record frame declares {len} bytes, block holds {}",
            data.len() - FRAME_HEADER
        )),
    }
}

/// An optional feature's record this reader does not know: skipped.
fn skips(tag: u8) -> bool {
    tag >= TAG_OPTIONAL && tag != TAG_KEYLOG && tag != TAG_END
}

/// Walks the records of a decompressed block.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    seq: u64,
}

impl<'a> Records<'a> {
    pub fn new(data: &'a [u8], first_seq: u64) -> Self {
        Records {
            data,
            pos: 0,
            seq: first_seq,
        }
    }

    /// The record at the start of `rest`, numbered `seq`.
    fn frame(&mut self, seq: u64, rest: &'a [u8]) -> Numbered<'a> {
        let (tag, body, used) = match next_frame(rest) {
            Ok(frame) => frame,
            Err(reason) => {
                self.pos = self.data.len();
                let len = rest.len();
                return Numbered {
                    seq,
                    record: Record::Damaged { reason, len },
                };
            }
        };
        self.pos += used;
        let len = body.len();
        let record = match tag {
            TAG_EVENT | TAG_END => match RawEvent::parse(body) {
                // Only tag 129 carries END records: under tag 1 one would
                // become live if copied.
                Ok(ev) if ev.stored_len() == len && tag == TAG_EVENT => {
                    if ev.hdr.kind == crate::event::kind::END {
                        Record::Damaged {
                            reason: format!("record of tag {TAG_EVENT} has kind END, which only tag {TAG_END} carries"),
                            len: used,
                        }
                    } else {
                        Record::Event(ev)
                    }
                }
                Ok(ev) if ev.stored_len() == len && ev.hdr.kind == crate::event::kind::END => {
                    Record::End(ev)
                }
                Ok(ev) if ev.stored_len() == len => Record::Damaged {
                    reason: format!("record of tag {TAG_END} has kind {}", ev.hdr.kind),
                    len: used,
                },
                Ok(ev) => Record::Damaged {
                    reason: format!(
                        "event declares {} payload bytes, frame holds {}",
                        ev.payload.len(),
                        len - crate::event::HEADER_LEN
                    ),
                    len: used,
                },
                Err(e) => Record::Damaged {
                    reason: e.to_string(),
                    len: used,
                },
            },
            TAG_TICK if len == 8 => Record::Tick {
                ts_ns: u64::from_le_bytes(body.try_into().expect("length checked")),
            },
            TAG_KEYLOG if len >= 8 => Record::KeyLog {
                ts_ns: u64::from_le_bytes(body[..8].try_into().expect("length checked")),
                line: &body[8..],
            },
            _ => Record::Damaged {
                reason: format!("unknown record tag {tag} ({len} bytes)"),
                len: used,
            },
        };
        Numbered { seq, record }
    }
}

impl<'a> Records<'a> {
    /// The next record, an optional feature's records skipped.
    fn next_one(&mut self) -> Option<Numbered<'a>> {
        loop {
            let rest = &self.data[self.pos..];
            if rest.is_empty() {
                return None;
            }
            let seq = self.seq;
            self.seq += 1;
            // An optional feature's record: skipped, its number taken.
            if let Ok((tag, _, used)) = next_frame(rest) {
                if skips(tag) {
                    self.pos += used;
                    continue;
                }
            }
            return Some(self.frame(seq, rest));
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Numbered<'a>;

    /// Damage that follows damage is one run, reported once (a block of
    /// zeros is a run of 5-byte frames of tag 0).
    fn next(&mut self) -> Option<Self::Item> {
        let first = self.next_one()?;
        let Record::Damaged { reason, mut len } = first.record else {
            return Some(first);
        };
        let mut more = 0u64;
        loop {
            let (pos, seq) = (self.pos, self.seq);
            match self.next_one() {
                Some(Numbered {
                    record: Record::Damaged { len: l, .. },
                    ..
                }) => {
                    len += l;
                    more += 1;
                }
                Some(_) => {
                    (self.pos, self.seq) = (pos, seq);
                    break;
                }
                None => break,
            }
        }
        let reason = if more == 0 {
            reason
        } else {
            format!("{reason}, and the {more} records after it")
        };
        Some(Numbered {
            seq: first.seq,
            record: Record::Damaged { reason, len },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{encode, EventHeader, RawEvent};

    #[test]
    fn frames_round_trip_and_damage_is_reported() {
        let bytes = encode(
            &EventHeader {
                tgid: 7,
                ..Default::default()
            },
            b"abc",
        );
        let ev = RawEvent::parse(&bytes).unwrap();
        let mut buf = Vec::new();
        append_event(&mut buf, &ev.hdr, ev.payload);
        append_tick(&mut buf, 99);
        let before = buf.len();
        append_keylog(&mut buf, 5, b"CLIENT_TRAFFIC_SECRET_0 00 11");
        let recs: Vec<_> = Records::new(&buf, 10).collect();
        assert_eq!(recs.len(), 3);
        assert!(
            matches!(recs[2].record, Record::KeyLog { ts_ns: 5, line } if line.ends_with(b"00 11"))
        );
        assert_eq!(recs[0].seq, 10);
        assert!(
            matches!(recs[0].record, Record::Event(e) if e.payload == b"abc" && e.hdr.tgid == 7)
        );
        assert!(matches!(recs[1].record, Record::Tick { ts_ns: 99 }));
        buf.truncate(before);

        // A cut block yields one damaged record, not a panic or silence.
        let cut: Vec<_> = Records::new(&buf[..buf.len() - 3], 0).collect();
        assert_eq!(cut.len(), 2);
        assert!(
            matches!(&cut[1].record, Record::Damaged { reason, .. } if reason.contains("declares 8"))
        );
        buf.push(9);
        let tail: Vec<_> = Records::new(&buf, 0).collect();
        assert!(
            matches!(&tail[2].record, Record::Damaged { reason, .. } if reason.contains("inside a record frame"))
        );
    }

    #[test]
    fn a_run_of_damage_is_one_record() {
        let mut buf = Vec::new();
        append_tick(&mut buf, 1);
        buf.extend_from_slice(&[0u8; 5000]);
        append_tick(&mut buf, 2);
        let recs: Vec<_> = Records::new(&buf, 0).collect();
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert!(
            matches!(&recs[1].record, Record::Damaged { len: 5000, reason } if reason.contains("999 records after it"))
        );
        assert!(matches!(recs[2].record, Record::Tick { ts_ns: 2 }));
        assert_eq!(recs[2].seq, 1001, "every damaged frame kept its number");
    }

    #[test]
    fn optional_records_are_skipped_and_keep_their_numbers() {
        let mut buf = Vec::new();
        append_tick(&mut buf, 1);
        // A record of tag 200 ("a feature this build does not know").
        buf.push(200);
        buf.extend_from_slice(&3u32.to_le_bytes());
        buf.extend_from_slice(b"new");
        append_tick(&mut buf, 2);
        buf.extend_from_slice(&[7, 3, 0, 0, 0, 1, 2, 3]);
        let recs: Vec<_> = Records::new(&buf, 0).collect();
        assert_eq!(recs.len(), 3);
        assert!(matches!(recs[1].record, Record::Tick { ts_ns: 2 }));
        assert_eq!(recs[1].seq, 2, "the skipped record keeps its number");
        // A tag below TAG_OPTIONAL that this build does not know is damage.
        assert!(
            matches!(&recs[2].record, Record::Damaged { reason, .. } if reason.contains("unknown record tag 7"))
        );
    }

    /// An END record belongs under tag 129; under tag 1, where an older
    /// reader would take it for data, it is damage.
    #[test]
    fn an_end_record_under_the_event_tag_is_damage() {
        let end = EventHeader {
            kind: crate::event::kind::END,
            ..Default::default()
        };
        let header = end.to_bytes();
        let mut buf = vec![TAG_EVENT];
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(&header);
        append_event(&mut buf, &end, b"");
        let recs: Vec<_> = Records::new(&buf, 0).collect();
        assert!(
            matches!(&recs[0].record, Record::Damaged { reason, .. } if reason.contains("kind END")),
            "{recs:?}"
        );
        assert!(matches!(recs[1].record, Record::End(e) if e.hdr.kind == crate::event::kind::END));
    }
}
