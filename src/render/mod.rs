//! Output: console lines, tables and JSONL, from decoded messages.
