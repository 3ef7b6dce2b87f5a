//! Command-line glue: parse arguments, pick a selection and a sink (or call
//! a stage), and map errors to exit codes.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod args;
mod check;
mod derive;
mod info;
mod read;
mod record;
mod show;
mod verify;
mod when;

pub use args::{FilterArgs, Input, TimeArgs, TimeChoice, TransportChoice};

const EXIT_CODES: &str = "\
EXIT CODES:
  0  done; for readers, at least one message matched
  1  readers: nothing matched, or the capture is damaged and the answer may be
     incomplete (a line on stderr says which)
  2  an error: bad arguments, a file that is not a capture, a failed write";

#[derive(Parser, Debug)]
#[command(
    name = "mcpspy",
    version,
    about = "Record and replay MCP traffic, captured from the kernel",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// When to colour the output (NO_COLOR in the environment means never)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour standard output.
    pub fn stdout(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Capture pipe, socket and TLS traffic into a capture file (needs root)
    #[command(after_help = RECORD_EXAMPLES)]
    Record(RecordArgs),
    /// Show what a capture file holds: provenance, counts, drops, size
    #[command(after_help = INFO_EXAMPLES)]
    Info {
        #[command(flatten)]
        input: Input,
    },
    /// Print the console view of a capture, as a live run prints it
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Filter the messages of a capture, or summarise them in tables
    #[command(after_help = QUERY_EXAMPLES)]
    Query(QueryArgs),
    /// Export the messages of a capture for other tools
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Audit a capture: tool-definition drift, poisoned tool text, secrets
    /// in traffic, protocol faults and the capture's own health, as text,
    /// JSON, SARIF or JUnit
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Show one message in full: its JSON, its request or response, the
    /// processes, HTTP headers and the raw records it came from
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Check that a sealed capture is whole and unaltered, and who signed it
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Write a smaller capture: the messages a filter keeps, with what they
    /// need to decode as in the original (sealed; it names its parent)
    #[command(after_help = SLICE_HELP)]
    Slice(SliceArgs),
    /// Write a copy of a capture with its secrets replaced by keyed
    /// pseudonyms of the same length (sealed; it names its parent)
    #[command(after_help = REDACT_HELP)]
    Redact(RedactArgs),
    /// Say whether programs carry BoringSSL without symbols, and where
    /// `record` probes them (one JSON line per file; no root needed)
    #[command(
        after_help = "EXAMPLES:\n  mcpspy scan-tls $(command -v claude)\n  mcpspy scan-tls --no-cache ./app"
    )]
    ScanTls {
        #[arg(required = true, value_name = "PROGRAM")]
        programs: Vec<PathBuf>,
        /// Scan even if the cache has this build's result (and do not keep it)
        #[arg(long)]
        no_cache: bool,
    },
    /// Make an Ed25519 key pair for `record --sign`
    #[command(
        after_help = "EXAMPLES:\n  mcpspy keygen                                  ~/.config/mcpspy/signing.key (.pub beside it)\n  mcpspy keygen -o alice.key"
    )]
    Keygen {
        /// Private key file (mode 0600; the public key goes to FILE.pub)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script
    #[command(
        after_help = "EXAMPLES:\n  mcpspy completions bash > /etc/bash_completion.d/mcpspy\n  mcpspy completions zsh > ~/.zfunc/_mcpspy"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff)
    #[command(after_help = "EXAMPLES:\n  mcpspy man > mcpspy.1 && man ./mcpspy.1")]
    Man,
}

const RECORD_EXAMPLES: &str = "\
EXAMPLES:
  sudo mcpspy record -w audit.db                       until Ctrl+C
  sudo mcpspy record -w audit.db --duration 5m --comm python3 --comm node
  sudo mcpspy record --live                            print messages as they happen
  sudo mcpspy record -w audit.db -- python agent.py    a command and all it starts, until it exits
  sudo mcpspy record -w audit.db --follow 4242         a process and all it starts
  sudo mcpspy record -w audit.db --cgroup /sys/fs/cgroup/system.slice/agent.service
  sudo mcpspy record -w audit.db --container 3f2a6b1c9d0e
  sudo mcpspy record -w audit.db --otlp-endpoint http://127.0.0.1:4318";
const VERIFY_HELP: &str = "\
EXAMPLES:
  mcpspy verify audit.db
  mcpspy verify audit.db --key alice.pub             also: signed by this key
  mcpspy verify audit.db --deep --json

EXIT CODES (verify):
  0  intact (also when lossy, unless --fail-on-loss)
  1  altered, incomplete (not finished, or damaged), not sealed, or not signed by --key
  2  not a capture, or bad arguments";
const CHECK_HELP: &str = "\
EXAMPLES:
  mcpspy check audit.db                              findings by severity; exit 1 on an error
  mcpspy check audit.db --format sarif -o audit.sarif
  mcpspy check audit.db --format junit -o audit.xml
  mcpspy check today.db --baseline last-week.db      tools changed since an earlier capture
  mcpspy check audit.db --baseline tools.lock.json   ... or since a pinned inventory
  mcpspy check audit.db --write-baseline tools.lock.json
  mcpspy check audit.db --rule drift --skip-rule drift.session --slow 5s
  mcpspy check --list-rules

A rules file (--rules FILE, TOML) sets severities by rule id or family:
  [severity]
  \"secret.header\" = \"off\"
  poison = \"warning\"
docs/check.md describes every rule.

EXIT CODES (check):
  0  no finding at or above --fail-on (default: error)
  1  findings at or above --fail-on
  2  an error: bad arguments, a file that is not a capture, a failed write";
const SLICE_HELP: &str = "\
EXAMPLES:
  mcpspy slice audit.db -o session3.db --session 3
  mcpspy slice audit.db -o window.db --since 12:00 --until 12:05 --pid 4242 --transport http

A slice keeps each selected message's streams from their start, so that
framing and pairing decode exactly as in the original; readers of the slice
show the selected messages only. mcpspy verify and mcpspy info name its parent.";
const REDACT_HELP: &str = "\
EXAMPLES:
  mcpspy redact audit.db -o share.db                   default rules, a fresh random key
  mcpspy redact audit.db -o share.db --key-file team.key --rules extra-rules.toml
  mcpspy redact audit.db --dry-run                     what would be redacted, nothing written
  head -c 32 /dev/urandom > team.key                   a key for tokens that match across captures

Secrets become HMAC-SHA-256 pseudonyms under the key, as long as the secret:
the same secret gives the same token, and every message keeps its size and
place. The key is never stored. Streams that carry no MCP message, and
non-MCP lines of stdio streams, are left out unless --keep-non-mcp.";
const INFO_EXAMPLES: &str = "\
EXAMPLES:
  mcpspy info audit.db
  mcpspy info -r audit.db";
const REPLAY_EXAMPLES: &str = "\
EXAMPLES:
  mcpspy replay audit.db
  mcpspy replay -r audit.db -b --method tools/call     with each message's JSON
  mcpspy replay audit.db -t r -c 20                    relative times, first 20 messages
  ssh host cat audit.db | mcpspy replay -";
const QUERY_EXAMPLES: &str = "\
EXAMPLES:
  mcpspy query audit.db --tool get_weather --errors
  mcpspy query audit.db --since 12:00 --until 12:05 --utc
  mcpspy query audit.db --summary --format csv > summary.csv
  mcpspy query audit.db --summary --wide               capabilities, cells in full
  mcpspy query audit.db --tools                        every server's tools, prompts, resources";
const EXPORT_EXAMPLES: &str = "\
EXAMPLES:
  mcpspy export audit.db -o audit.jsonl
  mcpspy export audit.db --session 3 | jq .method
  mcpspy export audit.db --format parquet -o audit.parquet
  mcpspy export audit.db --format otlp-json -o audit.otlp.jsonl
  mcpspy export audit.db --format otlp --endpoint http://127.0.0.1:4318";
const SHOW_EXAMPLES: &str = "\
EXAMPLES:
  mcpspy show audit.db 42                              item 42 (the JSONL's n)
  mcpspy show audit.db --id 7 --session 2              the request with JSON-RPC id 7";

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
    #[arg(
        short = 'w',
        long = "write",
        visible_short_alias = 'o',
        visible_alias = "output",
        default_value = "capture.db",
        value_name = "FILE"
    )]
    pub output: PathBuf,
    /// Stop after this long (30s, 5m, 1h; default: until Ctrl+C or SIGTERM)
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Capture only processes with this name (repeatable; kernel comm, 15 chars)
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,
    /// Capture only this process id (repeatable)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Capture this process and every process it starts, now and later (repeatable)
    #[arg(long, value_name = "PID")]
    pub follow: Vec<u32>,
    /// Capture the processes of this cgroup v2 and the cgroups below it
    /// (a directory of /sys/fs/cgroup; repeatable)
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<PathBuf>,
    /// Capture the processes of this container (docker, containerd, CRI-O or
    /// podman; its id, or the first 12 or more digits of it; repeatable)
    #[arg(long, value_name = "ID")]
    pub container: Vec<String>,
    /// Run this command as the user who ran sudo, capture it and every
    /// process it starts, stop when it exits and exit with its exit code
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
    /// Capture every pipe and socket byte, not only streams that carry MCP
    #[arg(long)]
    pub all: bool,
    /// Kernel attach point
    #[arg(long, value_enum, default_value_t = AttachChoice::Auto)]
    pub attach: AttachChoice,
    /// Ring buffer size, bytes (K, M, G suffixes; a power of two)
    #[arg(long, default_value = "64M", value_parser = args::parse_size)]
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
    /// With --live: show non-MCP JSON item by item, not only counted per process at the end
    #[arg(short = 'v', long, requires = "live")]
    pub verbose: bool,
    /// Follow this TLS key log (the NSS format SSLKEYLOGFILE writes) while
    /// recording, and keep the ciphertext of TLS connections, which readers
    /// then decrypt (TLS 1.3, and TLS 1.2's AEAD suites) with its secrets;
    /// the command form's command gets SSLKEYLOGFILE set to the first one
    /// (repeatable)
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
    /// Do not probe OpenSSL for TLS plaintext
    #[arg(long)]
    pub no_tls: bool,
    /// Also send spans and metrics to this OpenTelemetry collector while
    /// recording (OTLP/HTTP base URL, http:// only); never slows the capture
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// With --otlp-endpoint: tool call arguments and results in the spans
    #[arg(long, requires = "otlp_endpoint")]
    pub include_content: bool,
    /// Sign the capture's commits and manifest with this Ed25519 key (mcpspy keygen)
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: Input,
    /// The public key (FILE.pub of mcpspy keygen) the capture must be signed with
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,
    /// Also decompress every block and check every stream's offsets
    #[arg(long)]
    pub deep: bool,
    /// The report as JSON
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when the capture lost records, even if it is intact
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Args, Debug)]
#[command(after_help = when::TIMES_HELP)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Print each message's JSON too
    #[arg(short = 'b', long = "body")]
    pub body: bool,
    /// Show non-MCP JSON item by item, not only counted per process at the end
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Tables per method/tool and per session instead of lines
    #[arg(long)]
    pub summary: bool,
    /// With --summary: the tables as text (fitted to the terminal), CSV or JSON
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table, requires = "summary")]
    pub format: SummaryFormat,
    /// With --summary: cells in full, and the capabilities table
    #[arg(long, requires = "summary")]
    pub wide: bool,
    /// The inventory: every server, its tools, prompts and resources, and
    /// their digests (as `check --write-baseline` pins them)
    #[arg(long, conflicts_with_all = ["summary", "body"])]
    pub tools: bool,
    /// Print each message's JSON too
    #[arg(short = 'b', long = "body")]
    pub body: bool,
    /// Show non-MCP JSON item by item, not only counted per process at the end
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Decode the whole capture instead of reading its index (which the
    /// first query builds, in $XDG_CACHE_HOME/mcpspy or ~/.cache/mcpspy)
    #[arg(long)]
    pub no_index: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Table,
    Csv,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per message (docs/jsonl.md)
    Jsonl,
    /// One row per message, for DuckDB, ClickHouse, Spark (docs/parquet.md)
    Parquet,
    /// OpenTelemetry spans and metrics as OTLP/JSON lines, the collector's
    /// file format (docs/otlp.md)
    OtlpJson,
    /// OpenTelemetry spans and metrics sent to a collector over OTLP/HTTP
    /// (protobuf); needs --endpoint
    Otlp,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub input: Input,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Output file (default: standard output)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// With --format otlp: the collector's OTLP/HTTP base URL (http:// only)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// With --format otlp or otlp-json: tool call arguments and results in
    /// the spans (gen_ai.tool.call.arguments, gen_ai.tool.call.result)
    #[arg(long)]
    pub include_content: bool,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Grouped by severity, for people
    Text,
    /// One JSON object per finding, one per line
    Json,
    /// SARIF 2.1.0, for code-scanning UIs
    Sarif,
    /// JUnit XML, one testcase per rule, for CI reports
    Junit,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Never,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: Input,
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Output file (default: standard output)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output or baseline file
    #[arg(long)]
    pub force: bool,
    /// Compare tool definitions with this baseline: a capture, or a tools
    /// lock file (JSON) written by --write-baseline
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write the capture's inventory (servers, tools, prompts, resources,
    /// digests) as a tools lock file for later --baseline
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Which severity makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Only this rule, or family of rules (repeatable: drift, poison.directive)
    #[arg(long, value_name = "ID")]
    pub rule: Vec<String>,
    /// Not this rule, or family (repeatable)
    #[arg(long, value_name = "ID")]
    pub skip_rule: Vec<String>,
    /// Severities per rule or family (TOML: a [severity] table; error,
    /// warning, note or off)
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// More secret rules, added to redact's (TOML, or JSON; as redact --rules)
    #[arg(long, value_name = "FILE")]
    pub secret_rules: Vec<PathBuf>,
    /// Report responses slower than this (250ms, 5s) as protocol.late
    #[arg(long, value_name = "DURATION")]
    pub slow: Option<String>,
    /// Print the rules (id, severity, title) and exit
    #[arg(long)]
    pub list_rules: bool,
}

#[derive(Args, Debug)]
pub struct SliceArgs {
    #[command(flatten)]
    pub input: Input,
    /// The new capture
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    /// Sign the new capture's seal with this key (mcpspy keygen)
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RedactArgs {
    #[command(flatten)]
    pub input: Input,
    /// The new capture
    #[arg(short, long, value_name = "FILE", required_unless_present = "dry_run")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    /// Sign the new capture's seal with this key (mcpspy keygen)
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// The HMAC key (a file of at least 16 bytes), for tokens that stay the
    /// same across captures [default: a fresh random key, forgotten after]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// More rules (TOML, or JSON), added to the defaults
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Keep the streams that carry no MCP message, and non-MCP lines
    #[arg(long)]
    pub keep_non_mcp: bool,
    /// Print what would be redacted (rule, where, count), write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Capture file, then the item's number (as in the JSONL's `n`); with
    /// -r, the number alone
    #[arg(value_name = "FILE N", num_args = 0..=2)]
    pub positional: Vec<String>,
    /// Capture file, as tcpdump and tshark take it
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<PathBuf>,
    /// The message with this JSON-RPC id (as JSON: 7, or "abc" quoted)
    #[arg(long)]
    pub id: Option<String>,
    /// With --id: in this session
    #[arg(long, requires = "id")]
    pub session: Option<u64>,
    #[command(flatten)]
    pub time: TimeArgs,
}

/// An error that ends the command: exit code 2 (EXIT CODES in --help).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// Writes `lines` to standard output. A reader that went away (`| head`)
/// ends the output quietly, as it ends the read commands'.
pub fn print_lines<T: std::fmt::Display>(
    lines: impl IntoIterator<Item = T>,
) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = lines
        .into_iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::other(format!("writing to standard output: {e}")))
        }
        _ => Ok(()),
    }
}

impl Failure {
    /// Bad input: a file that is not a capture, bad arguments.
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    /// Anything else that went wrong.
    pub fn other(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<crate::query::CaptureError> for Failure {
    fn from(e: crate::query::CaptureError) -> Self {
        Failure::input(e.to_string())
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

/// How a command ended without an error.
pub enum Done {
    /// Exit 0.
    Ok,
    /// A reader found nothing (exit 1), and says so in this note.
    NothingMatched(String),
    /// A reader met damage to the file (exit 1): this warning says what.
    Incomplete(String),
    /// `record -- CMD`: exit with the command's exit code.
    Exit(u8),
    /// A check found what fails it (exit 1): this line says what.
    Failed(String),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = cli.color;
    let result = match cli.command {
        Command::Record(a) => record::run(a, color),
        Command::Info { input } => info::run(&input).map(|()| Done::Ok),
        Command::Replay(a) => read::replay(a, color),
        Command::Query(a) => read::query(a, color),
        Command::Export(a) => read::export(a),
        Command::Check(a) => check::run(a),
        Command::Show(a) => show::run(a, color),
        Command::Verify(a) => verify::run(a),
        Command::Slice(a) => derive::slice(a),
        Command::Redact(a) => derive::redact(a),
        Command::ScanTls { programs, no_cache } => {
            record::scan_tls(&programs, no_cache).map(|()| Done::Ok)
        }
        Command::Keygen { output } => verify::keygen(output),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mcpspy", &mut std::io::stdout());
            Ok(Done::Ok)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Done::Ok)
            .map_err(Failure::from),
    };
    match result {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::NothingMatched(note)) => {
            eprintln!("mcpspy: {note}");
            ExitCode::from(1)
        }
        Ok(Done::Failed(note)) => {
            eprintln!("mcpspy: {note}");
            ExitCode::from(1)
        }
        Ok(Done::Incomplete(warning)) => {
            eprintln!("mcpspy: warning: {warning}");
            ExitCode::from(1)
        }
        Ok(Done::Exit(code)) => ExitCode::from(code),
        Err(f) => {
            // A closed pipe (mcpspy replay | head) is not an error worth a
            // message, nor one whose report was its output (verify).
            if !f.message.is_empty() && !f.message.contains("Broken pipe") {
                eprintln!("mcpspy: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
