//! replay, query and export: read a capture, decode it, render it.

use super::{
    ExportArgs, ExportFormat, Failure, FilterArgs, QueryArgs, ReplayArgs, TransportChoice,
};
use crate::capture::{BlockFilter, CaptureReader};
use crate::decode::{DecodeOptions, Decoder, Item, SessionSummary};
use crate::index::{self, Index, IndexError, Key, Select};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::filter::Filter;
use crate::render::jsonl::Jsonl;
use crate::render::summary::Summary;
use crate::render::WallClock;
use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub fn replay(a: ReplayArgs) -> Result<(), Failure> {
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let stdout = io::stdout();
    let mut console = Console::new(
        clock,
        ConsoleStyle::for_terminal(stdout.is_terminal(), a.body),
    );
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    decode(&reader, "", |item| console.write(item, &mut out))?;
    finish(out.flush())
}

pub fn query(a: QueryArgs) -> Result<(), Failure> {
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let filter = filter(&a.filter, &clock)?;
    if !a.no_index {
        if let Some((index, path)) = open_index(&reader) {
            return query_index(&a, &reader, &index, &clock, &filter).map_err(|e| match e {
                Stop::Io(e) => Failure::from(e),
                Stop::Index(e) => {
                    // Never trusted again: the next query builds it anew.
                    let _ = std::fs::remove_file(&path);
                    Failure::other(format!(
                        "{}: the index does not read back ({e}); it was removed, and the next query rebuilds it (or use --no-index)",
                        path.display()
                    ))
                }
            });
        }
    }
    let selected = first_pass(&reader, &filter)?;
    let stdout = io::stdout();
    if a.summary {
        let mut summary = Summary::default();
        let sessions = decode(&reader, pass_label(&filter, 2), |item| {
            if filter.matches(item, &selected) {
                summary.add(item);
            }
            Ok(())
        })?;
        let tables = summary.render(&sessions.unwrap_or_default(), &reader.drops()?, &clock);
        let mut out = stdout.lock();
        return finish(out.write_all(tables.as_bytes()).and_then(|()| out.flush()));
    }
    let mut console = Console::new(
        clock,
        ConsoleStyle::for_terminal(stdout.is_terminal(), a.body),
    );
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    decode(&reader, pass_label(&filter, 2), |item| {
        if filter.matches(item, &selected) {
            console.write(item, &mut out)?;
        }
        Ok(())
    })?;
    finish(out.flush())
}

/// Why reading an index stopped.
enum Stop {
    Io(io::Error),
    Index(IndexError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

impl From<IndexError> for Stop {
    fn from(e: IndexError) -> Self {
        Stop::Index(e)
    }
}

/// `query` from the index: the same filter, console and tables, on items
/// read back instead of decoded.
fn query_index(
    a: &QueryArgs,
    reader: &CaptureReader,
    index: &Index,
    clock: &WallClock,
    filter: &Filter,
) -> Result<(), Stop> {
    let mut selected = HashSet::new();
    if filter.needs_answers() {
        index.each(Select::Answers(filter), false, |item, _| {
            selected.extend(filter.answer_selects(item));
            Ok::<(), Stop>(())
        })?;
    }
    let stdout = io::stdout();
    if a.summary {
        let mut summary = Summary::default();
        index.each(Select::Matches(filter), false, |item, size| {
            if filter.matches(item, &selected) {
                summary.add_sized(item, size);
            }
            Ok::<(), Stop>(())
        })?;
        let drops = reader
            .drops()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tables = summary.render(index.sessions(), &drops, clock);
        let mut out = stdout.lock();
        return quiet_pipe(out.write_all(tables.as_bytes()).and_then(|()| out.flush()));
    }
    let mut console = Console::new(
        *clock,
        ConsoleStyle::for_terminal(stdout.is_terminal(), a.body),
    );
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = index.each(Select::Matches(filter), a.body, |item, _| {
        if filter.matches(item, &selected) {
            console.write(item, &mut out)?;
        }
        Ok::<(), Stop>(())
    });
    match written {
        Err(Stop::Io(e)) => quiet_pipe(Err(e)),
        other => other.and_then(|()| quiet_pipe(out.flush())),
    }
}

fn quiet_pipe(r: io::Result<()>) -> Result<(), Stop> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Stop::Io),
    }
}

/// The capture's index, and where it is: opened, or first built by one
/// full decode. None (with a note saying why) when there can be none;
/// query then decodes the capture itself.
fn open_index(reader: &CaptureReader) -> Option<(Index, PathBuf)> {
    let attempt = || -> Result<(Index, PathBuf), String> {
        let dir = index::cache_dir()
            .ok_or("no cache folder: neither $XDG_CACHE_HOME nor $HOME is set")?;
        let key = Key::of(reader).map_err(|e| e.to_string())?;
        let path = index::path_in(&dir, &key.capture);
        index::private_dir(&dir).map_err(|e| e.to_string())?;
        if let Ok(found) = Index::open(&path, &key) {
            return Ok((found, path));
        }
        index::prune(&dir);
        let mut builder = index::Builder::create(&path).map_err(|e| e.to_string())?;
        let sessions = decode(reader, "indexing", |item| {
            builder.add(item).map_err(io::Error::other)
        })
        .map_err(|f| f.message)?
        .unwrap_or_default();
        builder.finish(&key, &sessions).map_err(|e| e.to_string())?;
        let built = Index::open(&path, &key).map_err(|e| e.to_string())?;
        Ok((built, path))
    };
    match attempt() {
        Ok(found) => Some(found),
        Err(why) => {
            eprintln!("mcpspy: note: decoding the whole capture, without an index: {why}");
            None
        }
    }
}

pub fn export(a: ExportArgs) -> Result<(), Failure> {
    let ExportFormat::Jsonl = a.format;
    // An existing device or pipe (/dev/null, a FIFO) is written to; renaming
    // a file over it would replace it.
    let stream_to = a
        .output
        .as_ref()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.file_type().is_file() && !m.is_dir()));
    if let Some(path) = a.output.as_ref().filter(|_| stream_to.is_none()) {
        if !a.force && path.exists() {
            return Err(Failure::input(format!(
                "{} already exists; choose another name or pass --force to overwrite it",
                path.display()
            )));
        }
    }
    let reader = open(&a.file)?;
    let clock = WallClock::from_meta(&reader.meta()?);
    let filter = filter(&a.filter, &clock)?;
    let selected = first_pass(&reader, &filter)?;
    let mut jsonl = Jsonl::new(clock);
    let label = pass_label(&filter, 2);
    let mut stream = |out: &mut dyn Write| -> Result<(), Failure> {
        let mut out = BufWriter::with_capacity(1 << 16, out);
        decode(&reader, label, |item| {
            if filter.matches(item, &selected) {
                jsonl.write(item, &mut out)?;
            }
            Ok(())
        })?;
        finish(out.flush())
    };
    match (&a.output, stream_to) {
        (None, _) => stream(&mut io::stdout().lock()),
        (Some(path), Some(_)) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Failure::other(format!("{}: {e}", path.display())))?;
            stream(&mut file)
        }
        (Some(path), None) => {
            // Written beside the target and renamed at the end: an export
            // that fails leaves no half-written file behind.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let io_err = |e: io::Error| Failure::other(format!("{}: {e}", path.display()));
            let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
            let mut out = BufWriter::with_capacity(1 << 16, tmp);
            let written = decode(&reader, label, |item| {
                if filter.matches(item, &selected) {
                    jsonl.write(item, &mut out)?;
                }
                Ok(())
            })?;
            if written.is_none() {
                return Err(Failure::other(format!(
                    "{}: writing stopped",
                    path.display()
                )));
            }
            let tmp = out.into_inner().map_err(|e| io_err(e.into_error()))?;
            tmp.as_file().sync_all().map_err(io_err)?;
            let persisted = if a.force {
                tmp.persist(path)
            } else {
                tmp.persist_noclobber(path)
            };
            persisted.map_err(|e| io_err(e.error))?;
            Ok(())
        }
    }
}

fn open(path: &Path) -> Result<CaptureReader, Failure> {
    let reader = CaptureReader::open(path)?;
    let mut err = io::stderr().lock();
    for note in &reader.notes {
        let _ = writeln!(err, "mcpspy: note: {note}");
    }
    Ok(reader)
}

/// A closed pipe downstream (`| head`) ends the output quietly.
fn finish(r: io::Result<()>) -> Result<(), Failure> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Failure::from),
    }
}

fn pass_label(filter: &Filter, pass: u8) -> &'static str {
    match (filter.needs_answers(), pass) {
        (false, _) => "",
        (true, 1) => "pass 1/2",
        (true, _) => "pass 2/2",
    }
}

/// The requests whose responses the filter selects (a first pass).
fn first_pass(reader: &CaptureReader, filter: &Filter) -> Result<HashSet<u64>, Failure> {
    let mut selected = HashSet::new();
    if filter.needs_answers() {
        decode(reader, pass_label(filter, 1), |item| {
            selected.extend(filter.answer_selects(item));
            Ok(())
        })?;
    }
    Ok(selected)
}

/// Runs the decoder over the whole capture, calling `sink` for each item.
/// Returns the sessions, or None when the sink's output was closed (EPIPE).
fn decode(
    reader: &CaptureReader,
    label: &'static str,
    mut sink: impl FnMut(&Item<'_>) -> io::Result<()>,
) -> Result<Option<Vec<SessionSummary>>, Failure> {
    let bar = progress(reader, label)?;
    let mut decoder = Decoder::new(DecodeOptions::default());
    // The first write error stops the output; the decoder is not told.
    let mut failed: Option<io::Error> = None;
    let mut on_item = |failed: &mut Option<io::Error>, item: &Item<'_>| {
        if failed.is_none() {
            *failed = sink(item).err();
        }
    };
    for block in reader.blocks(&BlockFilter::default())? {
        match block {
            Ok(b) => {
                for rec in b.records() {
                    decoder.push(&rec, &mut |item| on_item(&mut failed, item));
                }
                bar.inc(b.data.len() as u64);
            }
            Err(e) => decoder.push_block_error(&e, &mut |item| on_item(&mut failed, item)),
        }
        if failed.is_some() {
            break;
        }
    }
    if failed.is_none() {
        decoder.finish(&mut |item| on_item(&mut failed, item));
    }
    bar.finish_and_clear();
    match failed {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(None),
        Some(e) => Err(e.into()),
        None => Ok(Some(decoder.sessions().cloned().collect())),
    }
}

/// A progress bar on stderr for large captures, on a terminal only.
fn progress(reader: &CaptureReader, label: &'static str) -> Result<ProgressBar, Failure> {
    const LARGE: u64 = 16 << 20;
    let total = reader.raw_bytes()?;
    if !io::stderr().is_terminal() || total < LARGE {
        return Ok(ProgressBar::hidden());
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
    Ok(bar)
}

fn filter(a: &FilterArgs, clock: &WallClock) -> Result<Filter, Failure> {
    Ok(Filter {
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
