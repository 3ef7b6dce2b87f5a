//! Command-line glue: parse arguments, call the pipeline, map errors to exit codes.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

mod info;
mod read;
mod record;

#[derive(Parser, Debug)]
#[command(
    name = "mcpspy",
    version,
    about = "Record and replay MCP traffic, captured from the kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Capture pipe, socket and TLS traffic into a capture file (needs root)
    Record(RecordArgs),
    /// Show what a capture file holds: provenance, counts, drops, size
    Info {
        /// Capture file
        file: PathBuf,
    },
    /// Print the console view of a capture, as a live run prints it
    Replay(ReplayArgs),
    /// Filter the messages of a capture, or summarise them in tables
    Query(QueryArgs),
    /// Export the messages of a capture for other tools
    Export(ExportArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttachChoice {
    /// The cheapest rung that loads
    Auto,
    /// BTF-typed raw tracepoint on sys_exit
    TpBtf,
    /// Raw tracepoint on sys_exit
    RawTp,
    /// Classic per-syscall tracepoints (syscalls:sys_exit_*)
    Tracepoint,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Capture file to write
    #[arg(short, long, default_value = "capture.db")]
    pub output: PathBuf,
    /// Stop after this many seconds (default: until Ctrl+C or SIGTERM)
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Capture only processes with this name (repeatable; kernel comm, 15 chars)
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,
    /// Capture only this process id (repeatable)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Capture every pipe and socket byte, not only streams that carry MCP
    #[arg(long)]
    pub all: bool,
    /// Kernel attach point
    #[arg(long, value_enum, default_value_t = AttachChoice::Auto)]
    pub attach: AttachChoice,
    /// Ring buffer size, bytes (K, M, G suffixes; a power of two)
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub ring_size: u64,
    /// Overwrite an existing capture file
    #[arg(long)]
    pub force: bool,
    /// Print the console view while recording
    #[arg(long)]
    pub live: bool,
    /// With --live: print each message's JSON too
    #[arg(short = 'b', long = "body", requires = "live")]
    pub body: bool,
    /// Do not probe OpenSSL for TLS plaintext
    #[arg(long)]
    pub no_tls: bool,
}

/// Filters shared by query and export; they combine with AND.
#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only this method (responses match their request's method)
    #[arg(long)]
    pub method: Vec<String>,
    /// Only tools/call of this tool
    #[arg(long)]
    pub tool: Vec<String>,
    /// Only messages sent or received by this process
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Only messages sent or received by a process of this name
    #[arg(long)]
    pub comm: Vec<String>,
    /// Only this session
    #[arg(long)]
    pub session: Vec<u64>,
    /// Only messages at or after this time (HH:MM[:SS[.fff]] local, or RFC 3339)
    #[arg(long)]
    pub since: Option<String>,
    /// Only messages at or before this time (HH:MM[:SS[.fff]] local, or RFC 3339)
    #[arg(long)]
    pub until: Option<String>,
    /// Only error responses, and requests that got one
    #[arg(long)]
    pub errors: bool,
    /// Only responses slower than this (e.g. 250ms, 2s), and their requests
    #[arg(long, value_name = "DURATION")]
    pub min_latency: Option<String>,
    /// Only this transport
    #[arg(long, value_enum)]
    pub transport: Option<TransportChoice>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    Stdio,
    Http,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Capture file
    #[arg(default_value = "capture.db")]
    pub file: PathBuf,
    /// Print each message's JSON too
    #[arg(short = 'b', long = "body")]
    pub body: bool,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Capture file
    #[arg(default_value = "capture.db")]
    pub file: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Tables per method/tool and per session instead of lines
    #[arg(long)]
    pub summary: bool,
    /// Print each message's JSON too
    #[arg(short = 'b', long = "body")]
    pub body: bool,
    /// Decode the whole capture instead of reading its index (which the
    /// first query builds, in $XDG_CACHE_HOME/mcpspy or ~/.cache/mcpspy)
    #[arg(long)]
    pub no_index: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Capture file
    #[arg(default_value = "capture.db")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Output file (default: standard output)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Parses sizes such as 4096, 64K, 16M, 1G.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 4096, 64K, 16M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// An error that ends the command, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Bad input: a file that is not a capture, bad arguments (exit code 2).
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    /// Anything else that went wrong (exit code 1).
    pub fn other(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<crate::capture::CaptureError> for Failure {
    fn from(e: crate::capture::CaptureError) -> Self {
        use crate::capture::CaptureError::*;
        match e {
            Io { .. } => Failure::other(e.to_string()),
            _ => Failure::input(e.to_string()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::other(format!("{e:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::other(e.to_string())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(a) => record::run(a),
        Command::Info { file } => info::run(&file),
        Command::Replay(a) => read::replay(a),
        Command::Query(a) => read::query(a),
        Command::Export(a) => read::export(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A closed pipe (mcpspy replay | head) is not an error worth a message.
            if !f.message.contains("Broken pipe") {
                eprintln!("mcpspy: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
