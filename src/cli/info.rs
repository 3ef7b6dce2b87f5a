//! `mcpspy info FILE`.

use super::Failure;
use crate::capture::CaptureReader;
use crate::render::info::{render, InfoView};
use std::io::Write;

pub fn run(path: &std::path::Path) -> Result<(), Failure> {
    let reader = CaptureReader::open(path)?;
    for note in &reader.notes {
        eprintln!("mcpspy: {note}");
    }
    let meta = reader.meta()?;
    let totals = reader.totals()?;
    let drops = reader.drops()?;
    let processes = reader.processes()?;
    let undecoded = crate::decode::count_undecoded(&reader)?;
    let text = render(&InfoView {
        path,
        meta: &meta,
        totals: &totals,
        drops: &drops,
        processes: &processes,
        undecoded: &undecoded,
    });
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
