//! replay, query and export: open the capture, pick a selection and a sink,
//! and let the query driver read the capture into it.

use super::args::{parse_duration, FilterArgs, Input, TimeArgs, TimeChoice, TransportChoice};
use super::when::{self, Span};
use super::{
    ColorChoice, Done, ExportArgs, ExportFormat, Failure, QueryArgs, ReplayArgs, SummaryFormat,
};
use crate::capture::SQLITE_HEADER;
use crate::query::{
    self, CaptureError, CaptureReader, IndexUse, Limit, Outcome, Progress, QueryError, Selection,
    Sink,
};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::jsonl::Jsonl;
use crate::render::otlp::{self, Destination, Http, JsonLines, Offloaded, Otlp};
use crate::render::parquet::Parquet;
use crate::render::summary::{Format, Layout, Summary};
use crate::render::{plural, CaptureId, TimeFormat, WallClock};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

pub fn replay(a: ReplayArgs, color: ColorChoice) -> Result<Done, Failure> {
    let opened = Opened::new(&a.input)?;
    let sel = selection(&a.filter, &opened.span)?;
    let mut sink = console(&opened, &a.time, color, a.body, a.verbose)?;
    opened.read(&sel, &mut sink, a.filter.count, IndexUse::Never)
}

pub fn query(a: QueryArgs, color: ColorChoice) -> Result<Done, Failure> {
    let opened = Opened::new(&a.input)?;
    if a.tools {
        return super::check::tools(&opened.reader);
    }
    let sel = selection(&a.filter, &opened.span)?;
    let index = if a.no_index {
        IndexUse::Never
    } else {
        IndexUse::Always
    };
    if a.summary {
        let layout = Layout {
            format: match a.format {
                SummaryFormat::Table => Format::Table,
                SummaryFormat::Csv => Format::Csv,
                SummaryFormat::Json => Format::Json,
            },
            wide: a.wide,
            width: terminal_width(),
        };
        let drops = opened.reader.drops()?;
        let mut sink = Summary::new(opened.span.clock, drops, layout, io::stdout().lock());
        return opened.read(&sel, &mut sink, a.filter.count, index);
    }
    let mut sink = console(&opened, &a.time, color, a.body, a.verbose)?;
    opened.read(&sel, &mut sink, a.filter.count, index)
}

pub fn export(a: ExportArgs) -> Result<Done, Failure> {
    check_export(&a)?;
    if let Some(endpoint) = a.endpoint.as_deref() {
        let mut http = Http::new(endpoint).map_err(Failure::input)?;
        let opened = Opened::new(&a.input)?;
        let sel = selection(&a.filter, &opened.span)?;
        let meta = opened.reader.meta()?;
        let done = otlp_export(&opened, &sel, &a, &meta, &mut http)?;
        let sent = http.sent;
        eprintln!(
            "mcpspy: sent {} and {} to {endpoint}",
            plural(sent.spans.sent, "span"),
            plural(sent.metrics.sent, "metrics request")
        );
        return Ok(done);
    }
    let output = Output::choose(a.output.as_deref(), a.force, &a.input)?;
    if matches!(output, Output::Stdout)
        && a.format == ExportFormat::Parquet
        && io::stdout().is_terminal()
    {
        return Err(Failure::input(
            "Parquet is binary: give -o FILE, or redirect standard output",
        ));
    }
    let opened = Opened::new(&a.input)?;
    let sel = selection(&a.filter, &opened.span)?;
    let clock = opened.span.clock;
    let meta = opened.reader.meta()?;
    let write = |out: &mut (dyn Write + Send)| -> Result<Done, Failure> {
        let out = BufWriter::with_capacity(1 << 16, out);
        let mut sink: Box<dyn Sink + '_> = match a.format {
            ExportFormat::Jsonl => Box::new(Jsonl::new(clock, out)),
            ExportFormat::Parquet => {
                let id = CaptureId::from_meta(&meta);
                return std::thread::scope(|scope| {
                    let mut sink = Parquet::new(scope, out, clock, &id)?;
                    opened.read(&sel, &mut sink, a.filter.count, IndexUse::WhenItHelps)
                });
            }
            ExportFormat::OtlpJson | ExportFormat::Otlp => {
                return otlp_export(&opened, &sel, &a, &meta, JsonLines::new(out));
            }
        };
        opened.read(&sel, sink.as_mut(), a.filter.count, IndexUse::WhenItHelps)
    };
    output.write(write)
}

/// An OTLP export to `destination`, written or posted on a second thread.
fn otlp_export<D: Destination + Send>(
    opened: &Opened,
    sel: &Selection,
    a: &ExportArgs,
    meta: &BTreeMap<String, String>,
    destination: D,
) -> Result<Done, Failure> {
    std::thread::scope(|scope| {
        let exporter = Offloaded::start(scope, destination)?;
        let mut sink = Otlp::new(exporter, otlp_options(a), opened.span.clock, meta);
        opened.read(sel, &mut sink, a.filter.count, IndexUse::WhenItHelps)
    })
}

/// The options that go together, and those that do not.
fn check_export(a: &ExportArgs) -> Result<(), Failure> {
    let why = match (a.format, a.endpoint.is_some()) {
        (ExportFormat::Otlp, false) => {
            "--format otlp sends to a collector: give --endpoint URL (http://host:4318)"
        }
        (ExportFormat::Otlp, true) if a.output.is_some() => {
            "--format otlp sends to --endpoint, not to -o (--format otlp-json writes the collector's file format)"
        }
        (ExportFormat::Jsonl | ExportFormat::Parquet | ExportFormat::OtlpJson, true) => {
            "--endpoint is for --format otlp"
        }
        (ExportFormat::Jsonl | ExportFormat::Parquet, _) if a.include_content => {
            "--include-content is for --format otlp and otlp-json (the other formats always hold the messages)"
        }
        _ => return Ok(()),
    };
    Err(Failure::input(why))
}

/// Spans per OTLP request in an export.
const OTLP_BATCH: usize = 512;

fn otlp_options(a: &ExportArgs) -> otlp::Options {
    otlp::Options {
        content: a.include_content,
        batch: OTLP_BATCH,
        metrics_every_ns: None,
    }
}

/// A capture opened for reading, with its clock and time span.
pub struct Opened {
    pub reader: CaptureReader,
    pub span: Span,
    /// A copy of standard input, when the capture came from there.
    stdin_copy: Option<tempfile::NamedTempFile>,
}

impl Opened {
    pub fn new(input: &Input) -> Result<Opened, Failure> {
        Self::open(input, |e| e.into())
    }

    /// Opens the capture; `refused` says what a file that cannot be read as
    /// a capture means to the command.
    pub fn open(
        input: &Input,
        refused: impl Fn(CaptureError) -> Failure,
    ) -> Result<Opened, Failure> {
        let path = input.path();
        let (reader, copy) = if path == Path::new("-") {
            let copy = stdin_copy(&refused)?;
            let reader = CaptureReader::open_as(copy.path(), Path::new("-")).map_err(&refused)?;
            (reader, Some(copy))
        } else {
            (CaptureReader::open(&path).map_err(&refused)?, None)
        };
        let mut err = io::stderr().lock();
        for note in &reader.notes {
            let _ = writeln!(err, "mcpspy: note: {note}");
        }
        if let Some(why) = reader.seal_broken() {
            let _ = writeln!(
                err,
                "mcpspy: warning: {}: the seal is broken ({why}); what follows may not be what \
                 was recorded (mcpspy verify says more)",
                reader.name().display()
            );
        }
        let totals = reader.totals()?;
        let span = Span {
            clock: WallClock::from_meta(&reader.meta()?),
            first_ns: totals.first_ts_ns,
            last_ns: totals.last_ts_ns,
        };
        Ok(Opened {
            reader,
            span,
            stdin_copy: copy,
        })
    }

    /// Runs the query driver into `sink` (the first `count` items only); a
    /// closed pipe downstream (`| head`) ends the output quietly.
    pub fn read(
        &self,
        sel: &Selection,
        sink: &mut dyn Sink,
        count: Option<u64>,
        index: IndexUse,
    ) -> Result<Done, Failure> {
        let mut bar = Bar::default();
        // A copy of standard input is gone after this read: no index for it.
        let index = if self.stdin_copy.is_some() {
            IndexUse::Never
        } else {
            index
        };
        let mut limited;
        let sink: &mut dyn Sink = match count {
            Some(n) => {
                limited = Limit::new(sink, n);
                &mut limited
            }
            None => sink,
        };
        let result = query::run(&self.reader, sel, sink, index, &mut bar);
        if let Some(alarm) = self.reader.seal_alarm() {
            eprintln!(
                "mcpspy: warning: {}: {alarm}: it was altered after it was written (mcpspy verify says more)",
                self.reader.name().display()
            );
        }
        let outcome: Outcome = match result {
            Ok(outcome) => outcome,
            Err(QueryError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Done::Ok),
            Err(QueryError::Capture(e)) => return Err(e.into()),
            Err(QueryError::Unsupported(why)) => return Err(Failure::input(why)),
            Err(e) => return Err(Failure::other(e.to_string())),
        };
        Ok(if outcome.damage > 0 {
            let hidden = outcome.damage - outcome.damage_shown;
            Done::Incomplete(format!(
                "{} is damaged: the read met {} (unreadable blocks or records){}; the answer \
                 may be incomplete (mcpspy info says more)",
                self.reader.name().display(),
                plural(outcome.damage, "damaged place"),
                if hidden > 0 {
                    format!(", {hidden} of them not shown by the filters")
                } else {
                    String::new()
                }
            ))
        } else if outcome.matched > 0 {
            Done::Ok
        } else if sel.is_everything() {
            Done::NothingMatched("the capture holds no messages".into())
        } else {
            Done::NothingMatched("no message matched".into())
        })
    }
}

/// Standard input, copied to a private temporary file: SQLite reads files.
/// Input that does not begin as an SQLite file is refused before any of it
/// is copied.
fn stdin_copy(
    refused: impl Fn(CaptureError) -> Failure,
) -> Result<tempfile::NamedTempFile, Failure> {
    if io::stdin().is_terminal() {
        return Err(Failure::input(
            "`-` reads a capture from standard input, which is a terminal here; pipe one in (cat capture.db | mcpspy replay -)",
        ));
    }
    let reading = |e: io::Error| Failure::other(format!("reading standard input: {e}"));
    let mut stdin = io::stdin().lock();
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    (&mut stdin)
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(reading)?;
    if header != SQLITE_HEADER {
        return Err(refused(CaptureError::NotACapture {
            path: "-".into(),
            why: "standard input does not begin as an SQLite file".into(),
        }));
    }
    let mut copy = tempfile::Builder::new()
        .prefix("mcpspy-stdin-")
        .tempfile()
        .map_err(|e| Failure::other(format!("a temporary copy of standard input: {e}")))?;
    copy.as_file_mut()
        .write_all(&header)
        .and_then(|()| io::copy(&mut stdin, copy.as_file_mut()).map(drop))
        .map_err(reading)?;
    Ok(copy)
}

/// Where an export goes.
pub enum Output {
    Stdout,
    /// An existing device or pipe (/dev/null, a FIFO): written to, since
    /// renaming a file over it would replace it.
    Device(PathBuf),
    File {
        path: PathBuf,
        force: bool,
    },
}

impl Output {
    /// Runs `write` into the output. A file is written beside its target
    /// and renamed at the end: a write that fails leaves no half-written
    /// file behind.
    pub fn write(
        self,
        write: impl FnOnce(&mut (dyn Write + Send)) -> Result<Done, Failure>,
    ) -> Result<Done, Failure> {
        match self {
            Output::Stdout => write(&mut io::stdout()),
            Output::Device(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Failure::other(format!("{}: {e}", path.display())))?;
                write(&mut file)
            }
            Output::File { path, force } => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let io_err = |e: io::Error| Failure::other(format!("{}: {e}", path.display()));
                let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
                let done = write(tmp.as_file_mut())?;
                tmp.as_file().sync_all().map_err(io_err)?;
                let persisted = if force {
                    tmp.persist(&path)
                } else {
                    tmp.persist_noclobber(&path)
                };
                persisted.map_err(|e| io_err(e.error))?;
                Ok(done)
            }
        }
    }

    /// The output at `path` (standard output when none, or `-`); never
    /// the capture being read, `input`, even with --force.
    pub fn choose(path: Option<&Path>, force: bool, input: &Input) -> Result<Output, Failure> {
        let Some(path) = path.filter(|p| *p != Path::new("-")) else {
            return Ok(Output::Stdout);
        };
        if crate::capture::same_file(path, &input.path()) {
            return Err(Failure::input(format!(
                "{} is the capture being read; write to another file",
                path.display()
            )));
        }
        if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file() && !m.is_dir()) {
            return Ok(Output::Device(path.to_path_buf()));
        }
        if !force && path.exists() {
            return Err(Failure::input(format!(
                "{} already exists; choose another name or pass --force to overwrite it",
                path.display()
            )));
        }
        Ok(Output::File {
            path: path.to_path_buf(),
            force,
        })
    }
}

/// How the console shows times, from -t / --utc; the default adds the date
/// when the capture spans midnight.
pub fn time_format(t: &TimeArgs, span: &Span) -> TimeFormat {
    let midnight = match (span.first_ns, span.last_ns) {
        (Some(a), Some(b)) => span.clock.spans_midnight(a, b),
        _ => false,
    };
    match (t.time, t.utc) {
        (Some(TimeChoice::Ad), _) => TimeFormat::Local { date: true },
        (Some(TimeChoice::U), _) => TimeFormat::Utc { date: false },
        (Some(TimeChoice::Ud), _) => TimeFormat::Utc { date: true },
        (Some(TimeChoice::R), _) => TimeFormat::Relative,
        (Some(TimeChoice::E), _) => TimeFormat::Epoch,
        (_, true) => TimeFormat::Utc { date: midnight },
        (Some(TimeChoice::A) | None, false) => TimeFormat::Local { date: midnight },
    }
}

/// The console view on standard output.
fn console(
    opened: &Opened,
    time: &TimeArgs,
    color: ColorChoice,
    body: bool,
    verbose: bool,
) -> Result<Console<BufWriter<io::StdoutLock<'static>>>, Failure> {
    let style = ConsoleStyle {
        color: color.stdout(),
        body,
        verbose,
        time: time_format(time, &opened.span),
    };
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    Ok(Console::new(opened.span.clock, style, out))
}

/// The width tables fit: the terminal's, else $COLUMNS, else none.
fn terminal_width() -> Option<u16> {
    let mut probe = comfy_table::Table::new();
    if io::stdout().is_terminal() {
        if let Some(w) = probe.width() {
            return Some(w);
        }
    }
    probe.force_no_tty();
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
}

/// A progress bar on stderr for large captures, on a terminal only.
#[derive(Default)]
pub struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn pass(&mut self, label: &'static str, total: u64) {
        const LARGE: u64 = 16 << 20;
        if !io::stderr().is_terminal() || total < LARGE {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if label.is_empty() {
            "[{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{prefix} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        self.0 = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }

    fn pass_done(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }

    fn note(&mut self, text: &str) {
        eprintln!("mcpspy: note: {text}");
    }
}

pub fn selection(a: &FilterArgs, span: &Span) -> Result<Selection, Failure> {
    let since_ns = a
        .since
        .as_deref()
        .map(|s| when::instant("--since", s, span))
        .transpose()?;
    let until_ns = a
        .until
        .as_deref()
        .map(|s| when::instant("--until", s, span))
        .transpose()?;
    if let (Some(s), Some(u)) = (since_ns, until_ns) {
        if s > u {
            return Err(Failure::input(format!(
                "--since ({}) is after --until ({}): nothing could match",
                a.since.as_deref().unwrap_or_default(),
                a.until.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(Selection {
        methods: a.method.clone(),
        tools: a.tool.clone(),
        pids: a.pid.clone(),
        comms: a.comm.clone(),
        containers: a.container.iter().map(|c| c.to_ascii_lowercase()).collect(),
        cgroups: a.cgroup.clone(),
        sessions: a.session.clone(),
        since_ns,
        until_ns,
        errors: a.errors,
        min_latency_ns: a
            .min_latency
            .as_deref()
            .map(|s| parse_duration("--min-latency", s))
            .transpose()?,
        transport: a.transport.map(|t| match t {
            TransportChoice::Stdio => "stdio",
            TransportChoice::Http => "http",
        }),
        ..Selection::default()
    })
}
