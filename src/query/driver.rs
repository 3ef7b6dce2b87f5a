//! The one way a capture is read: [`run`] finds the items a selection
//! keeps, from the index when that helps and from the decoder otherwise,
//! and hands them to a sink.

use super::index::{self, Builder, Index, IndexError, Key, Select};
use super::{
    Block, BlockFilter, CaptureError, CaptureReader, DecodeOptions, Decoder, Flow, Item, Numbered,
    Selection, SessionSummary, Sink,
};
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Whether the index is used. A read that uses it builds it first when
/// there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexUse {
    Always,
    /// When it helps: the selection narrows, or the sink needs no text (a
    /// sink that takes every text reads the capture as fast itself).
    WhenItHelps,
    /// Decode the capture.
    Never,
}

/// What a long read tells the user while it runs. Every method has a
/// default that does nothing.
pub trait Progress {
    /// A pass over `total` raw bytes begins (`label` is empty for a single pass).
    fn pass(&mut self, label: &'static str, total: u64) {
        let _ = (label, total);
    }
    fn advance(&mut self, bytes: u64) {
        let _ = bytes;
    }
    fn pass_done(&mut self) {}
    /// Something the user should know (why the index is not used).
    fn note(&mut self, text: &str) {
        let _ = text;
    }
}

/// A progress that shows nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// How a read ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Items the selection kept and the sink took.
    pub matched: u64,
    /// The sink stopped the read before the end.
    pub stopped: bool,
    /// Pieces of damage to the file (unreadable blocks, damaged records)
    /// the read met, whether or not the selection kept them: the answer
    /// may be incomplete.
    pub damage: u64,
    /// Of those, the ones the selection kept (and the sink showed).
    pub damage_shown: u64,
}

#[derive(Debug)]
pub enum QueryError {
    Capture(CaptureError),
    /// Writing the output failed.
    Io(io::Error),
    /// The index did not read back; it was removed.
    Index {
        path: PathBuf,
        why: IndexError,
    },
    /// The selection asks for something the capture does not record.
    Unsupported(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Capture(e) => e.fmt(f),
            QueryError::Io(e) => e.fmt(f),
            QueryError::Unsupported(why) => f.write_str(why),
            QueryError::Index { path, why } => write!(
                f,
                "{}: the index does not read back ({why}); it was removed, and the next query rebuilds it (or use --no-index)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<CaptureError> for QueryError {
    fn from(e: CaptureError) -> Self {
        QueryError::Capture(e)
    }
}

impl From<io::Error> for QueryError {
    fn from(e: io::Error) -> Self {
        QueryError::Io(e)
    }
}

/// Why reading an index stopped.
enum IndexStop {
    Io(io::Error),
    Index(IndexError),
}

impl From<IndexError> for IndexStop {
    fn from(e: IndexError) -> Self {
        IndexStop::Index(e)
    }
}

/// Hands the capture's processes to `sink`, then every item `sel` keeps,
/// in output order, then the sessions to its `finish`.
pub fn run(
    reader: &CaptureReader,
    sel: &Selection,
    sink: &mut dyn Sink,
    index: IndexUse,
    progress: &mut dyn Progress,
) -> Result<Outcome, QueryError> {
    // A slice shows the messages it selected (its view) only.
    let viewed;
    let sel = match reader.view()?.filter(|_| !sel.whole) {
        Some(view) => {
            viewed = Selection {
                view: Some(std::sync::Arc::new(view)),
                ..sel.clone()
            };
            &viewed
        }
        None => sel,
    };
    let processes = reader.processes()?;
    // Containers and cgroups name processes: the items of those pids are theirs.
    let scoped;
    let sel = if sel.containers.is_empty() && sel.cgroups.is_empty() {
        sel
    } else {
        if processes.iter().all(|p| p.cgroup.is_none()) {
            return Err(QueryError::Unsupported(
                "--container and --cgroup need a capture that records each process's cgroup \
                 (this one does not: it was recorded before mcpspy knew them, or on a host \
                 without cgroup v2)"
                    .into(),
            ));
        }
        let pids = processes.iter().filter(|p| sel.scopes(p)).map(|p| p.pid);
        scoped = Selection {
            scoped_pids: Some(std::sync::Arc::new(pids.collect())),
            ..sel.clone()
        };
        &scoped
    };
    for p in &processes {
        sink.process(p);
    }
    let use_index = match index {
        IndexUse::Always => true,
        IndexUse::WhenItHelps => !sel.is_everything() || !sink.needs_text(),
        IndexUse::Never => false,
    };
    if use_index {
        if let Some((found, path)) = open_index(reader, progress) {
            if let Some(alarm) = found.seal_alarm() {
                reader.raise_seal_alarm(alarm);
            }
            return from_index(&found, sel, sink).map_err(|e| match e {
                IndexStop::Io(e) => QueryError::Io(e),
                IndexStop::Index(why) => {
                    // Never trusted again: the next read builds it anew.
                    let _ = std::fs::remove_file(&path);
                    QueryError::Index { path, why }
                }
            });
        }
    }
    from_decoder(reader, sel, sink, progress)
}

fn from_index(index: &Index, sel: &Selection, sink: &mut dyn Sink) -> Result<Outcome, IndexStop> {
    let mut selected = HashSet::new();
    if sel.needs_answers() {
        index.each(Select::Answers(sel), false, |item, _| {
            selected.extend(sel.answer_selects(item));
            Ok::<_, IndexStop>(Flow::Continue)
        })?;
    }
    let mut outcome = Outcome {
        damage: index.damage(),
        ..Outcome::default()
    };
    let flow = index.each(Select::Matches(sel), sink.needs_text(), |item, size| {
        take(sel, &selected, sink, &mut outcome, item, size).map_err(IndexStop::Io)
    })?;
    outcome.stopped = flow == Flow::Stop;
    sink.finish(index.sessions()).map_err(IndexStop::Io)?;
    Ok(outcome)
}

fn from_decoder(
    reader: &CaptureReader,
    sel: &Selection,
    sink: &mut dyn Sink,
    progress: &mut dyn Progress,
) -> Result<Outcome, QueryError> {
    let two = sel.needs_answers();
    let keylog = !sel.without_keylog && reader.lists_feature(super::KEYLOG_FEATURE);
    let mut selected = HashSet::new();
    if two {
        decode(reader, progress, "pass 1/2", keylog, |item| {
            selected.extend(sel.answer_selects(item));
            Ok(Flow::Continue)
        })?;
    }
    let mut outcome = Outcome::default();
    let label = if two { "pass 2/2" } else { "" };
    let mut damage = 0;
    let (sessions, flow) = decode(reader, progress, label, keylog, |item| {
        damage += u64::from(item.kind.is_damage());
        take(
            sel,
            &selected,
            sink,
            &mut outcome,
            item,
            item.text.len() as u64,
        )
    })?;
    outcome.stopped = flow == Flow::Stop;
    outcome.damage = damage;
    sink.finish(&sessions)?;
    Ok(outcome)
}

/// Gives the sink an item the selection keeps.
fn take(
    sel: &Selection,
    selected: &HashSet<u64>,
    sink: &mut dyn Sink,
    outcome: &mut Outcome,
    item: &Item<'_>,
    size: u64,
) -> io::Result<Flow> {
    if !sel.matches(item, selected) {
        return Ok(Flow::Continue);
    }
    outcome.matched += 1;
    outcome.damage_shown += u64::from(item.kind.is_damage());
    sink.item(item, size)
}

/// Runs the decoder over the whole capture (until `each` says stop);
/// `keylog`: TLS is opened with the capture's key log.
/// Returns the sessions as they stood when it ended, and how it ended.
pub(super) fn decode(
    reader: &CaptureReader,
    progress: &mut dyn Progress,
    label: &'static str,
    keylog: bool,
    each: impl FnMut(&Item<'_>) -> io::Result<Flow>,
) -> Result<(Vec<SessionSummary>, Flow), QueryError> {
    decode_tapped(reader, progress, label, keylog, &mut (), each)
}

/// Sees what the decoder reads, before the decoder does: each readable
/// block, then its records (so that a record is seen before any item
/// made of it).
pub(super) trait ReadTap {
    fn block(&mut self, block: &Block);
    fn record(&mut self, rec: &Numbered<'_>);
}

/// No tap.
impl ReadTap for () {
    fn block(&mut self, _: &Block) {}
    fn record(&mut self, _: &Numbered<'_>) {}
}

/// [`decode`], showing `tap` what it reads.
pub(super) fn decode_tapped(
    reader: &CaptureReader,
    progress: &mut dyn Progress,
    label: &'static str,
    keylog: bool,
    tap: &mut impl ReadTap,
    mut each: impl FnMut(&Item<'_>) -> io::Result<Flow>,
) -> Result<(Vec<SessionSummary>, Flow), QueryError> {
    progress.pass(label, reader.raw_bytes()?);
    let mut decoder = Decoder::new(DecodeOptions {
        keylog,
        ..DecodeOptions::default()
    });
    // The decoder cannot be told to stop: the first error or stop is kept
    // here, and no more items are taken.
    let mut ended: Option<io::Result<Flow>> = None;
    for block in reader.blocks(&BlockFilter::default())? {
        match block {
            Ok(b) => {
                decoder.enter_block(b.first_ts_ns);
                tap.block(&b);
                for rec in b.records() {
                    tap.record(&rec);
                    decoder.push(&rec, &mut until_ended(&mut each, &mut ended));
                }
                progress.advance(b.data.len() as u64);
            }
            Err(e) => decoder.push_block_error(&e, &mut until_ended(&mut each, &mut ended)),
        }
        if ended.is_some() {
            break;
        }
    }
    if ended.is_none() {
        decoder.finish(&mut until_ended(&mut each, &mut ended));
    }
    progress.pass_done();
    let sessions = decoder.sessions().cloned().collect();
    match ended {
        Some(Err(e)) => Err(e.into()),
        Some(Ok(flow)) => Ok((sessions, flow)),
        None => Ok((sessions, Flow::Continue)),
    }
}

/// Calls `each` until it fails or says stop, and keeps which.
fn until_ended<'a>(
    each: &'a mut impl FnMut(&Item<'_>) -> io::Result<Flow>,
    ended: &'a mut Option<io::Result<Flow>>,
) -> impl FnMut(&Item<'_>) + 'a {
    move |item| {
        if ended.is_none() {
            match each(item) {
                Ok(Flow::Continue) => {}
                other => *ended = Some(other),
            }
        }
    }
}

/// The capture's index, and where it is: opened, or first built by one
/// full decode. None (with a note saying why) when there can be none; the
/// caller then decodes the capture itself.
fn open_index(reader: &CaptureReader, progress: &mut dyn Progress) -> Option<(Index, PathBuf)> {
    let mut attempt = || -> Result<(Index, PathBuf), String> {
        let dir = index::cache_dir()
            .ok_or("no cache folder: neither $XDG_CACHE_HOME nor $HOME is set")?;
        let key = Key::of(reader).map_err(|e| e.to_string())?;
        let path = index::path_in(&dir, &key.capture);
        index::private_dir(&dir).map_err(|e| e.to_string())?;
        if let Ok(found) = Index::open(&path, &key) {
            return Ok((found, path));
        }
        index::prune(&dir);
        let mut builder = Builder::create(&path, key.clone()).map_err(|e| e.to_string())?;
        let keylog = reader.lists_feature(super::KEYLOG_FEATURE);
        let (sessions, _) = decode(reader, progress, "indexing", keylog, |item| {
            builder.item(item, item.text.len() as u64)
        })
        .map_err(|e| e.to_string())?;
        builder.seal_alarm(reader.seal_alarm());
        builder.finish(&sessions).map_err(|e| e.to_string())?;
        builder.install().map_err(|e| e.to_string())?;
        let built = Index::open(&path, &key).map_err(|e| e.to_string())?;
        Ok((built, path))
    };
    match attempt() {
        Ok(found) => Some(found),
        Err(why) => {
            progress.note(&format!(
                "decoding the whole capture, without an index: {why}"
            ));
            None
        }
    }
}
