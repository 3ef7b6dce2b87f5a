//! `verify --deep`: every block decompressed and every record read, and
//! every stream's offsets checked: a gap is a loss, and the losses the
//! drop ledger records must account for the gaps.

use super::{BlockFilter, CaptureError, CaptureReader, Record};
use crate::event::{counter, flags, kind, StreamId, CHUNK_MAX};
use std::collections::{BTreeMap, HashMap};

/// What the deep pass found.
#[derive(Default)]
pub struct Deep {
    pub failures: Vec<String>,
    pub checks: Vec<String>,
    pub losses: Vec<String>,
    /// Ring-buffer records (events) in the file.
    pub events: u64,
    /// END records (feature `stream_ends`), counted apart.
    pub ends: u64,
}

/// A recording's END records against the kernel's own count of them
/// (`meta.stream_ends`): (whether they agree, what was found).
pub fn ends_accounted(stream_ends: &str, found: u64) -> (bool, String) {
    let v: serde_json::Value = serde_json::from_str(stream_ends).unwrap_or_default();
    let (submitted, lost) = (v["submitted"].as_u64(), v["ring_full"].as_u64());
    let ok = matches!((submitted, lost), (Some(s), Some(l)) if s == found.saturating_add(l));
    let said = format!(
        "deep: {found} stream-end records; the kernel submitted {} and lost {} to a full ring",
        submitted.map_or("?".into(), |n| n.to_string()),
        lost.map_or("?".into(), |n| n.to_string()),
    );
    (ok, said)
}

/// The byte ranges of one stream seen so far, merged where they touch.
#[derive(Default)]
struct Covered(BTreeMap<u64, u64>);

impl Covered {
    fn add(&mut self, start: u64, end: u64) {
        let (mut start, mut end) = (start, end);
        // Merge with whatever overlaps or touches [start, end].
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.0.insert(start, end);
    }

    /// Holes between the first byte and the last: (count, bytes).
    fn holes(&self) -> (u64, u64) {
        let mut ends = self.0.iter();
        let Some((_, &first_end)) = ends.next() else {
            return (0, 0);
        };
        let mut prev_end = first_end;
        let (mut n, mut bytes) = (0, 0);
        for (&s, &e) in ends {
            n += 1;
            bytes += s - prev_end;
            prev_end = e;
        }
        (n, bytes)
    }
}

pub fn deep(reader: &CaptureReader) -> Result<Deep, CaptureError> {
    let mut d = Deep::default();
    let mut streams: HashMap<StreamId, Covered> = HashMap::new();
    let (mut blocks, mut records) = (0u64, 0u64);
    for block in reader.blocks(&BlockFilter::default())? {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                d.failures.push(e.to_string());
                continue;
            }
        };
        blocks += 1;
        for rec in block.records() {
            records += 1;
            match rec.record {
                Record::Event(ev) => {
                    d.events += 1;
                    if ev.hdr.kind == kind::DATA {
                        let h = &ev.hdr;
                        // A chunk the kernel could not read still takes its place.
                        let len = if h.flags & flags::READ_FAILED != 0 {
                            h.call_len.saturating_sub(h.call_off).min(CHUNK_MAX as u64)
                        } else {
                            ev.payload.len() as u64
                        };
                        let end = h.stream_off.saturating_add(len);
                        streams
                            .entry(ev.stream_id())
                            .or_default()
                            .add(h.stream_off, end);
                    }
                }
                Record::End(_) => d.ends += 1,
                Record::Tick { .. } | Record::KeyLog { .. } => {}
                Record::Damaged { reason, .. } => d
                    .failures
                    .push(format!("record {} does not parse: {reason}", rec.seq)),
            }
        }
    }
    d.checks.push(format!(
        "deep: every block decompresses to its size ({blocks}); records read: {records}"
    ));
    let (mut holes, mut hole_bytes) = (0u64, 0u64);
    for c in streams.values() {
        let (n, b) = c.holes();
        holes += n;
        hole_bytes += b;
    }
    let drops = reader.drops()?;
    let lost_bytes: u64 = drops
        .iter()
        .map(|r| r.counts[counter::RING_FULL_BYTES] + r.counts[counter::TRUNCATED_BYTES])
        .sum();
    let lost_records: u64 = drops.iter().map(|r| r.losses()).sum();
    if holes == 0 {
        d.checks.push(format!(
            "deep: every stream's offsets run without a gap (streams: {})",
            streams.len()
        ));
    } else {
        d.losses.push(format!(
            "{holes} gaps in stream offsets, {hole_bytes} bytes in all"
        ));
        if lost_records == 0 || hole_bytes > lost_bytes {
            d.failures.push(format!(
                "{holes} gaps in stream offsets ({hole_bytes} bytes) that the drop ledger does \
                 not account for ({lost_records} records, {lost_bytes} bytes lost): records \
                 were removed"
            ));
        } else {
            d.checks
                .push("deep: the gaps in stream offsets are losses the ledger records".into());
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::Covered;

    #[test]
    fn ranges_merge_and_holes_are_counted() {
        let mut c = Covered::default();
        c.add(10, 20);
        c.add(0, 10);
        c.add(30, 40);
        c.add(15, 25);
        assert_eq!(c.holes(), (1, 5));
        c.add(25, 30);
        assert_eq!(c.holes(), (0, 0));
        assert_eq!(c.0.len(), 1);
    }
}
