//! The framing of records inside a block (see schema/v1.sql, table `blocks`).

use crate::event::RawEvent;

pub const TAG_EVENT: u8 = 1;
pub const TAG_TICK: u8 = 2;
const FRAME_HEADER: usize = 5;

/// One stored record.
#[derive(Clone, Debug)]
pub enum Record<'a> {
    /// A ring-buffer record, as the kernel wrote it.
    Event(RawEvent<'a>),
    /// The recorder had drained every record submitted before `ts_ns`.
    Tick { ts_ns: u64 },
    /// Bytes that do not parse: kept in view, never skipped silently.
    Damaged { reason: String, len: usize },
}

/// A record and its number in the file.
#[derive(Clone, Debug)]
pub struct Numbered<'a> {
    pub seq: u64,
    pub record: Record<'a>,
}

pub fn append_event(buf: &mut Vec<u8>, event_bytes: &[u8]) {
    buf.push(TAG_EVENT);
    buf.extend_from_slice(&(event_bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(event_bytes);
}

pub fn append_tick(buf: &mut Vec<u8>, ts_ns: u64) {
    buf.push(TAG_TICK);
    buf.extend_from_slice(&8u32.to_le_bytes());
    buf.extend_from_slice(&ts_ns.to_le_bytes());
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
}

impl<'a> Iterator for Records<'a> {
    type Item = Numbered<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let seq = self.seq;
        self.seq += 1;
        let (tag, body, used) = match next_frame(rest) {
            Ok(frame) => frame,
            Err(reason) => {
                self.pos = self.data.len();
                let len = rest.len();
                return Some(Numbered {
                    seq,
                    record: Record::Damaged { reason, len },
                });
            }
        };
        self.pos += used;
        let len = body.len();
        let record = match tag {
            TAG_EVENT => match RawEvent::parse(body) {
                Ok(ev) if ev.stored_len() == len => Record::Event(ev),
                Ok(ev) => Record::Damaged {
                    reason: format!(
                        "event declares {} payload bytes, frame holds {}",
                        ev.payload.len(),
                        len - crate::event::HEADER_LEN
                    ),
                    len,
                },
                Err(e) => Record::Damaged {
                    reason: e.to_string(),
                    len,
                },
            },
            TAG_TICK if len == 8 => Record::Tick {
                ts_ns: u64::from_le_bytes(body.try_into().expect("length checked")),
            },
            _ => Record::Damaged {
                reason: format!("unknown record tag {tag} ({len} bytes)"),
                len,
            },
        };
        Some(Numbered { seq, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{encode, EventHeader};

    #[test]
    fn frames_round_trip_and_damage_is_reported() {
        let ev = encode(
            &EventHeader {
                tgid: 7,
                ..Default::default()
            },
            b"abc",
        );
        let mut buf = Vec::new();
        append_event(&mut buf, &ev);
        append_tick(&mut buf, 99);
        let recs: Vec<_> = Records::new(&buf, 10).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].seq, 10);
        assert!(
            matches!(recs[0].record, Record::Event(e) if e.payload == b"abc" && e.hdr.tgid == 7)
        );
        assert!(matches!(recs[1].record, Record::Tick { ts_ns: 99 }));

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
}
