//! `mcpspy info FILE`.

use super::read::Opened;
use super::{Failure, Input};
use crate::query::Overview;
use crate::render::info::render;
use std::io::Write;

pub fn run(input: &Input) -> Result<(), Failure> {
    let opened = Opened::new(input)?;
    let text = render(&Overview::of(&opened.reader)?);
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
