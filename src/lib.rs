//! mcpspy: record-and-replay forensic capture of MCP traffic.
//!
//! One pipeline, one folder per stage (DEVELOPERS.md, "Stages"):
//! bpf/ (kernel) → [`record`] (load, attach, drain) → [`capture`] (the file)
//! → [`decode`] (streams → frames → JSON-RPC → MCP sessions) → [`query`]
//! (selection, index, the sink contract) → [`render`] (console, JSONL,
//! tables) ← [`cli`]. [`event`] is the raw record, shared by all.

pub mod capture;
pub mod cli;
pub mod decode;
pub mod event;
pub mod query;
pub mod record;
pub mod render;
