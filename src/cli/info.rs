//! `mcpspy info FILE`.

use super::Failure;
use crate::query::{CaptureReader, Overview};
use crate::render::info::render;
use std::io::Write;

pub fn run(path: &std::path::Path) -> Result<(), Failure> {
    let reader = CaptureReader::open(path)?;
    for note in &reader.notes {
        eprintln!("mcpspy: {note}");
    }
    let text = render(&Overview::of(&reader)?);
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
