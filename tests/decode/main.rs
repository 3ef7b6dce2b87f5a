//! Tests that need no root: the capture file, the raw event's layout, the
//! decoder (real fixtures with goldens, synthetic captures, damage), and
//! the query index. One binary: the helpers in `support` compile once.

mod architecture;
mod capture_file;
mod damage;
mod derive;
mod derive_blocks;
mod derive_whole;
mod event_layout;
mod fuzz_harness;
mod fuzz_regressions;
mod golden;
mod http;
mod http_close;
mod http_faults;
mod interleaved;
mod otlp_reuse;
mod query_index;
mod robustness;
mod seal;
mod session;
mod support;
mod tamper;
mod tls;
