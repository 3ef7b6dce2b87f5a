//! Tests that record with the real kernel programs (root and BPF), between
//! real peers from the registries, checked against strace's copy of every
//! byte each process moved. They run one at a time (`support::serial`).

mod check;
#[path = "../cli/collector.rs"]
mod collector;
mod go_tls;
mod http;
mod http_decode;
mod keylog;
mod lifecycle;
mod otlp;
mod peers;
mod pipes;
mod redact;
mod scope;
mod support;
#[path = "../decode/tamper.rs"]
mod tamper;
mod tls_apps;
#[path = "../cli/tls_programs.rs"]
mod tls_programs;
