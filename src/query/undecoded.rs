//! The TCP and TLS streams a capture holds that the decoder does not
//! decode (for `info`), judged as the decoder judges them.

use super::{classify, BlockFilter, CaptureError, CaptureReader, Protocol, Record};
use crate::event::{fd_kind, kind, Direction, StreamId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// TCP and TLS streams that are not decoded, by what they carry: the
/// protocol each stream starts with, as the decoder judges it (a stream
/// whose other direction is HTTP/2 is decoded with it).
/// Reads only until every such stream's first record has been seen.
pub fn count_undecoded(reader: &CaptureReader) -> Result<BTreeMap<String, u64>, CaptureError> {
    let mut wanted: HashSet<StreamId> = HashSet::new();
    let mut ids = Vec::new();
    for s in reader.streams()? {
        if s.tls || matches!(s.fd_kind, fd_kind::TCP4 | fd_kind::TCP6) {
            let direction = if s.direction == "write" {
                Direction::Write
            } else {
                Direction::Read
            };
            wanted.insert(StreamId {
                tgid: s.pid,
                tls: s.tls,
                id: if s.tls { s.ssl } else { s.ino },
                direction,
            });
            ids.push(s.stream_id);
        }
    }
    // Only the blocks that hold records of those streams.
    let filter = BlockFilter {
        streams: Some(ids),
        ..BlockFilter::default()
    };
    let mut first: HashMap<StreamId, Vec<u8>> = HashMap::new();
    if !wanted.is_empty() {
        'blocks: for block in reader.blocks(&filter)? {
            // An unreadable block is reported by the decoder; here it only
            // means fewer first records.
            let Ok(block) = block else { continue };
            for rec in block.records() {
                let Record::Event(ev) = rec.record else {
                    continue;
                };
                if ev.hdr.kind != kind::DATA || ev.payload.is_empty() {
                    continue;
                }
                let key = ev.stream_id();
                if wanted.contains(&key) && !first.contains_key(&key) {
                    first.insert(key, ev.payload[..ev.payload.len().min(64)].to_vec());
                    if first.len() == wanted.len() {
                        break 'blocks;
                    }
                }
            }
        }
    }
    let judged: HashMap<StreamId, Protocol> = first
        .iter()
        .filter_map(|(k, bytes)| Some((*k, classify(bytes, false)?)))
        .collect();
    let keylog = reader.lists_feature(super::KEYLOG_FEATURE);
    let mut counts = BTreeMap::new();
    for (k, p) in &judged {
        let sibling = judged.get(&k.reversed());
        let name = match (p, sibling) {
            // TLS is decoded when the capture's key log opens it, and the
            // decoder reports each stream it does not ("TLS, no keys").
            (Protocol::Tls, _) if keylog => continue,
            (Protocol::Tls, _) => "TLS handshake (encrypted; no key log)".to_string(),
            (Protocol::Json | Protocol::Http1 | Protocol::Http2, _) => continue,
            // The other direction of an HTTP/2 connection is decoded with it.
            (_, Some(Protocol::Http2)) => continue,
            (Protocol::Other(s), _) => s.clone(),
        };
        *counts.entry(name).or_insert(0) += 1;
    }
    Ok(counts)
}
