//! What `info` shows of a capture besides its messages: provenance, counts,
//! the drop ledger, the processes, and the streams that are not decoded.

use super::undecoded::count_undecoded;
use super::{CaptureError, CaptureReader, DropRow, ProcessRow, Report, Totals};
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
}

impl Overview {
    pub fn of(reader: &CaptureReader) -> Result<Overview, CaptureError> {
        Ok(Overview {
            path: reader.name().to_path_buf(),
            meta: reader.meta()?,
            totals: reader.totals()?,
            drops: reader.drops()?,
            processes: reader.processes()?,
            undecoded: count_undecoded(reader)?,
            seal: reader.seal_state()?,
        })
    }
}
