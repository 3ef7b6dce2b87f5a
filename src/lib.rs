//! mcpspy: record-and-replay forensic capture of MCP traffic.
//!
//! The pipeline: bpf/ (kernel) → [`record`] (load, attach, drain) → [`capture`]
//! (the file) → [`decode`] (streams → frames → JSON-RPC → MCP sessions) →
//! [`render`] (console, table, JSONL) ← [`cli`]; [`index`] keeps decoded
//! items beside the pipeline, for `query`.

pub mod capture;
pub mod cli;
pub mod decode;
pub mod event;
pub mod index;
pub mod record;
pub mod render;
