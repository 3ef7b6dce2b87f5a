//! mcpspy: record-and-replay forensic capture of MCP traffic.
//!
//! The pipeline: bpf/ (kernel) → [`record`] (load, attach, drain) → [`capture`]
//! (the file) → [`decode`] (streams → frames → JSON-RPC → MCP sessions) →
//! [`render`] (console, table, JSONL) ← [`cli`].

pub mod capture;
pub mod cli;
pub mod decode;
pub mod event;
pub mod record;
pub mod render;
