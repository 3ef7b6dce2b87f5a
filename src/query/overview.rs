//! What `info` shows of a capture besides its messages: provenance, counts,
//! the drop ledger, the damage, the processes, and the streams that are
//! not decoded.

use super::undecoded::count_undecoded;
use super::{
    BlockFilter, CaptureError, CaptureReader, DropRow, ProcessRow, Record, Report, Step, Totals,
};
use crate::event::kind;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct Overview {
    pub path: PathBuf,
    pub meta: BTreeMap<String, String>,
    pub totals: Totals,
    pub drops: Vec<DropRow>,
    pub processes: Vec<ProcessRow>,
    /// TCP and TLS streams the decoder does not decode, by what they carry.
    pub undecoded: BTreeMap<String, u64>,
    /// The seal's structure (not the blocks' data: `verify` hashes those).
    pub seal: Report,
    pub damage: Damage,
    /// How the file was made from others (slice, redact), the oldest step first.
    pub derivation: Vec<Step>,
}

/// What the file holds that cannot be read, found by reading every block:
/// damage, beside the losses the drop ledger counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Blocks that cannot be read, and the records their rows declare.
    pub unreadable_blocks: u64,
    pub unreadable_records: u64,
    /// Runs of bytes inside readable blocks that are not records.
    pub damaged_records: u64,
    /// The blocks table cannot be listed to its end.
    pub unlisted: Option<String>,
    /// Data events the streams table counts that no readable block holds
    /// (blocks deleted, or unreadable).
    pub missing_events: u64,
}

impl Damage {
    pub fn is_none(&self) -> bool {
        *self == Damage::default()
    }

    fn scan(reader: &CaptureReader, totals: &Totals) -> Result<Damage, CaptureError> {
        let mut d = Damage::default();
        let mut data_events = 0u64;
        for block in reader.blocks(&BlockFilter::default())? {
            match block {
                Ok(b) => {
                    for rec in b.records() {
                        match rec.record {
                            Record::Event(ev) if ev.hdr.kind == kind::DATA => data_events += 1,
                            Record::Damaged { .. } => d.damaged_records += 1,
                            _ => {}
                        }
                    }
                }
                Err(e) if e.block_id.is_none() => d.unlisted = Some(e.why),
                Err(e) => {
                    d.unreadable_blocks += 1;
                    d.unreadable_records = d.unreadable_records.saturating_add(e.records);
                }
            }
        }
        d.missing_events = totals.data_events.saturating_sub(data_events);
        Ok(d)
    }
}

impl Overview {
    pub fn of(reader: &CaptureReader) -> Result<Overview, CaptureError> {
        let totals = reader.totals()?;
        Ok(Overview {
            path: reader.name().to_path_buf(),
            meta: reader.meta()?,
            damage: Damage::scan(reader, &totals)?,
            totals,
            drops: reader.drops()?,
            processes: reader.processes()?,
            undecoded: count_undecoded(reader)?,
            seal: reader.seal_state()?,
            derivation: reader.derivation()?,
        })
    }
}
