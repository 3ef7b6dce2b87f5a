//! replay, query and export: pick a selection and a sink, and let the
//! query driver read the capture into it.

use super::{
    ExportArgs, ExportFormat, Failure, FilterArgs, QueryArgs, ReplayArgs, TransportChoice,
};
use crate::query::{self, CaptureReader, IndexUse, Outcome, Progress, QueryError, Selection, Sink};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::jsonl::Jsonl;
use crate::render::summary::Summary;
use crate::render::WallClock;
use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub fn replay(a: ReplayArgs) -> Result<(), Failure> {
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let mut sink = console(clock, a.body);
    read(&reader, &Selection::default(), &mut sink, IndexUse::Never).map(drop)
}

pub fn query(a: QueryArgs) -> Result<(), Failure> {
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let sel = selection(&a.filter, &clock)?;
    let index = if a.no_index {
        IndexUse::Never
    } else {
        IndexUse::Always
    };
    if a.summary {
        let mut sink = Summary::new(clock, reader.drops()?, io::stdout().lock());
        return read(&reader, &sel, &mut sink, index).map(drop);
    }
    let mut sink = console(clock, a.body);
    read(&reader, &sel, &mut sink, index).map(drop)
}

pub fn export(a: ExportArgs) -> Result<(), Failure> {
    let output = Output::choose(a.output.as_deref(), a.force)?;
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let sel = selection(&a.filter, &clock)?;
    let write = |out: &mut dyn Write| -> Result<Outcome, Failure> {
        let out = BufWriter::with_capacity(1 << 16, out);
        match a.format {
            ExportFormat::Jsonl => read(
                &reader,
                &sel,
                &mut Jsonl::new(clock, out),
                IndexUse::WhenItHelps,
            ),
        }
    };
    match output {
        Output::Stdout => write(&mut io::stdout().lock()).map(drop),
        Output::Device(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Failure::other(format!("{}: {e}", path.display())))?;
            write(&mut file).map(drop)
        }
        Output::File { path, force } => {
            // Written beside the target and renamed at the end: an export
            // that fails leaves no half-written file behind.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let io_err = |e: io::Error| Failure::other(format!("{}: {e}", path.display()));
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
            let outcome = write(tmp.as_file_mut())?;
            if outcome.stopped {
                return Err(Failure::other(format!(
                    "{}: writing stopped",
                    path.display()
                )));
            }
            tmp.as_file().sync_all().map_err(io_err)?;
            let persisted = if force {
                tmp.persist(&path)
            } else {
                tmp.persist_noclobber(&path)
            };
            persisted.map_err(|e| io_err(e.error))?;
            Ok(())
        }
    }
}

/// Where an export goes.
enum Output {
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
    fn choose(path: Option<&Path>, force: bool) -> Result<Output, Failure> {
        let Some(path) = path else {
            return Ok(Output::Stdout);
        };
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

/// The console view on standard output.
fn console(clock: WallClock, body: bool) -> Console<BufWriter<io::StdoutLock<'static>>> {
    let stdout = io::stdout();
    let style = ConsoleStyle::for_terminal(stdout.is_terminal(), body);
    Console::new(
        clock,
        style,
        BufWriter::with_capacity(1 << 16, stdout.lock()),
    )
}

fn open(path: &Path) -> Result<CaptureReader, Failure> {
    let reader = CaptureReader::open(path)?;
    let mut err = io::stderr().lock();
    for note in &reader.notes {
        let _ = writeln!(err, "mcpspy: note: {note}");
    }
    Ok(reader)
}

/// Runs the query driver; a closed pipe downstream (`| head`) ends the
/// output quietly.
fn read(
    reader: &CaptureReader,
    sel: &Selection,
    sink: &mut dyn Sink,
    index: IndexUse,
) -> Result<Outcome, Failure> {
    let mut bar = Bar::default();
    match query::run(reader, sel, sink, index, &mut bar) {
        Ok(outcome) => Ok(outcome),
        Err(QueryError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Outcome {
            stopped: true,
            ..Outcome::default()
        }),
        Err(QueryError::Capture(e)) => Err(e.into()),
        Err(e) => Err(Failure::other(e.to_string())),
    }
}

/// A progress bar on stderr for large captures, on a terminal only.
#[derive(Default)]
struct Bar(Option<ProgressBar>);

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

fn selection(a: &FilterArgs, clock: &WallClock) -> Result<Selection, Failure> {
    Ok(Selection {
        methods: a.method.clone(),
        tools: a.tool.clone(),
        pids: a.pid.clone(),
        comms: a.comm.clone(),
        sessions: a.session.clone(),
        since_ns: a
            .since
            .as_deref()
            .map(|s| parse_time("--since", s, clock))
            .transpose()?,
        until_ns: a
            .until
            .as_deref()
            .map(|s| parse_time("--until", s, clock))
            .transpose()?,
        errors: a.errors,
        min_latency_ns: a
            .min_latency
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(Failure::input)?,
        transport: a.transport.map(|t| match t {
            TransportChoice::Stdio => "stdio",
            TransportChoice::Http => "http",
        }),
    })
}

/// HH:MM[:SS[.fff]] in local time on the capture's start date, or RFC 3339,
/// as a kernel timestamp.
fn parse_time(flag: &str, s: &str, clock: &WallClock) -> Result<u64, Failure> {
    let bad = || {
        Failure::input(format!(
            "{flag}: `{s}` is not a time (use HH:MM, HH:MM:SS, HH:MM:SS.fff or RFC 3339)"
        ))
    };
    let wall: DateTime<Utc> = match DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let time = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
                .iter()
                .find_map(|f| NaiveTime::parse_from_str(s.trim(), f).ok())
                .ok_or_else(bad)?;
            let date = clock.local_start_date().ok_or_else(|| {
                Failure::input(format!(
                    "{flag}: the capture records no start time, so `{s}` has no date; use RFC 3339"
                ))
            })?;
            Local
                .from_local_datetime(&date.and_time(time))
                .earliest()
                .ok_or_else(|| {
                    Failure::input(format!(
                        "{flag}: `{s}` does not exist in local time on {date}"
                    ))
                })?
                .with_timezone(&Utc)
        }
    };
    clock.ktime(wall).ok_or_else(|| {
        Failure::input(format!(
            "{flag}: `{s}` cannot be placed on the capture's clock (no start time, or out of range)"
        ))
    })
}

/// 250ms, 2s, 1.5s, 800us, 100ns, 1m; a bare number is milliseconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "ms" => 1e6,
        "s" => 1e9,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        _ => f64::NAN,
    };
    let ns = num.parse::<f64>().map(|v| v * scale).unwrap_or(f64::NAN);
    if ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64 {
        Ok(ns.round() as u64)
    } else {
        Err(format!(
            "--min-latency: `{s}` is not a duration (examples: 250ms, 2s, 1.5s, 800us)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("800us"), Ok(800_000));
        assert_eq!(parse_duration("7"), Ok(7_000_000));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn times() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = WallClock::new(at, 1_000_000_000);
        assert_eq!(
            parse_time("--since", "2026-03-01T12:00:01.5Z", &clock).ok(),
            Some(2_500_000_000)
        );
        assert!(parse_time("--since", "25:00", &clock).is_err());
        assert!(parse_time("--since", "noon", &clock).is_err());
        assert!(parse_time("--since", "12:00", &WallClock::default()).is_err());
        // A clock time lands on the capture's local date.
        let local = at.with_timezone(&Local).format("%H:%M:%S").to_string();
        assert_eq!(
            parse_time("--since", &local, &clock).ok(),
            Some(1_000_000_000)
        );
    }
}
