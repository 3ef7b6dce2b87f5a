//! Output: console lines, tables and JSONL, from decoded messages.

pub mod info;
pub mod size;
