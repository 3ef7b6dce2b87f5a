//! Recording: load the kernel programs, attach, drain the ring buffer into a capture.
//!
//! Threads: this one polls the ring and reads /proc; a writer thread owns the
//! capture file (compression and SQLite never stall the ring); an optional live
//! thread receives every stored batch, in file order.

pub mod loader;
mod mounts;
pub mod procfs;

use crate::capture::{block, CaptureWriter, DropRow, ProcessRow, WriterStats};
use crate::event::{self, counter, RawEvent, HEADER_LEN};
use anyhow::{Context, Result};
pub use loader::{Attempt, KernelConfig, Rung};
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one poll waits when the kernel does not wake us: the live view's
/// worst-case delay, and the spacing of clock ticks in the file.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Commit (and read the loss counters) at least this often.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Batches queued for the writer. When it falls this far behind, draining
/// waits, the ring fills, and the kernel counts what it cannot keep.
const WRITER_QUEUE: usize = 256;

pub struct Options {
    pub output: PathBuf,
    pub force: bool,
    pub duration: Option<Duration>,
    pub kernel: KernelConfig,
    pub forced_rung: Option<Rung>,
    /// The recorder's argv, for provenance.
    pub command_line: Vec<String>,
}

/// Receives every stored batch of records, in file order.
pub trait LiveSink: Send {
    /// `framed` uses the block framing of capture::block; its first record is number `first_seq`.
    fn records(&mut self, framed: &[u8], first_seq: u64);
    fn finish(&mut self);
}

/// Known once the programs are attached.
pub struct Started {
    pub rung: Rung,
    pub attempts: Vec<Attempt>,
    pub output: PathBuf,
}

/// A snapshot for the status line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub writer: WriterStats,
    pub file_bytes: u64,
    pub losses: u64,
    pub elapsed: Duration,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub rung: Rung,
    pub writer: WriterStats,
    pub processes: usize,
    pub counters: [u64; counter::COUNT],
    pub file_bytes: u64,
    pub elapsed: Duration,
    pub end_reason: String,
}

impl Summary {
    pub fn losses(&self) -> u64 {
        self.counters[counter::RING_FULL]
            + self.counters[counter::READ_FAILED]
            + self.counters[counter::MAP_FULL]
            + self.counters[counter::TRUNCATED]
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

enum ToWriter {
    Records(Vec<u8>),
    Process(ProcessRow),
    Drops(DropRow),
    Meta(String, String),
}

/// Records until a signal or the duration ends it.
pub fn run(
    opts: &Options,
    live: Option<Box<dyn LiveSink>>,
    on_started: &mut dyn FnMut(&Started),
    on_status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    STOP.store(false, Ordering::SeqCst);
    install_signal_handlers();
    let mut writer = CaptureWriter::create(&opts.output, opts.force)?;
    chown_to_sudo_user(&opts.output)?;
    let host = procfs::host_facts();
    let kernel = &opts.kernel;
    let filters = serde_json::json!({
        "pid": kernel.pids, "comm": kernel.comms, "all": kernel.capture_all, "tcp": kernel.capture_tcp,
    });
    for (k, v) in [
        ("tool_version", env!("CARGO_PKG_VERSION").to_string()),
        ("event_version", event::EVENT_VERSION.to_string()),
        ("hostname", host.hostname),
        ("kernel_release", host.kernel_release),
        ("machine", host.machine),
        ("boot_id", host.boot_id),
        ("command_line", serde_json::to_string(&opts.command_line)?),
        ("filters", filters.to_string()),
        ("ring_size", kernel.ring_size.to_string()),
        (
            "compression",
            format!("zstd level {}", crate::capture::writer::ZSTD_LEVEL),
        ),
    ] {
        writer.set_meta(k, &v)?;
    }
    writer.commit()?;

    let mut attached = false;
    let result = loader::with_attached(kernel, opts.forced_rung, |skel, rung, attempts| {
        attached = true;
        let tried: Vec<_> = attempts
            .iter()
            .map(|a| serde_json::json!({"rung": a.rung.name(), "error": a.error}))
            .collect();
        writer.set_meta("attach_rung", rung.name())?;
        writer.set_meta("attach_tried", &serde_json::to_string(&tried)?)?;
        on_started(&Started {
            rung,
            attempts: attempts.to_vec(),
            output: opts.output.clone(),
        });
        drain(skel, rung, opts, writer, live, on_status)
    });
    if result.is_err() && !attached {
        // Nothing was recorded: an empty capture would only mislead.
        let _ = std::fs::remove_file(&opts.output);
    }
    result
}

fn chown_to_sudo_user(path: &std::path::Path) -> Result<()> {
    let id = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to the sudo user", path.display()))?;
    }
    Ok(())
}

/// Everything the ring-buffer callback collects between two polls.
#[derive(Default)]
struct Batch {
    framed: Vec<u8>,
    /// Processes to look up in /proc: (pid, kernel comm, ts, exec'd).
    new_pids: Vec<(u32, String, u64)>,
    seen: HashSet<u32>,
    malformed: u64,
}

impl Batch {
    fn take(&mut self, raw: &[u8]) {
        // The slot may be larger than the record (size classes): keep header + len.
        let Ok(ev) = RawEvent::parse(raw) else {
            self.malformed += 1;
            return;
        };
        let h = &ev.hdr;
        if h.kind == event::kind::EXEC {
            // Only processes whose traffic is captured belong in the file; for
            // them an exec means a new program image, worth a new row.
            if !self.seen.contains(&h.tgid) {
                return;
            }
            self.new_pids.push((h.tgid, ev.comm(), h.ts_ns));
        } else if self.seen.insert(h.tgid) {
            self.new_pids.push((h.tgid, ev.comm(), h.ts_ns));
        }
        block::append_event(&mut self.framed, &raw[..HEADER_LEN + ev.payload.len()]);
    }
}

fn drain(
    skel: &mut loader::McpspySkel<'_>,
    rung: Rung,
    opts: &Options,
    mut writer: CaptureWriter,
    live: Option<Box<dyn LiveSink>>,
    on_status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    let start = Instant::now();
    let anchor = procfs::ClockAnchor::now();
    writer.set_meta("started_at", &anchor.rfc3339())?;
    writer.set_meta("started_ktime_ns", &anchor.ktime_ns.to_string())?;
    writer.commit()?;

    let shared = Arc::new(Mutex::new(Status::default()));
    let (to_writer, writer_rx) = mpsc::sync_channel::<ToWriter>(WRITER_QUEUE);
    let writer_shared = Arc::clone(&shared);
    let writer_thread = std::thread::Builder::new()
        .name("mcpspy-writer".into())
        .spawn(move || write_loop(writer, writer_rx, live, writer_shared))
        .context("starting the writer thread")?;

    let batch = Rc::new(RefCell::new(Batch::default()));
    let cb_batch = Rc::clone(&batch);
    let mut rb = libbpf_rs::RingBufferBuilder::new();
    rb.add(&skel.maps.events, move |raw: &[u8]| {
        cb_batch.borrow_mut().take(raw);
        0
    })
    .context("opening the ring buffer")?;
    let ring = rb.build().context("opening the ring buffer")?;

    let mut ledger = Ledger::new(loader::read_counters(skel)?);
    let mut processes = 0usize;
    let polled = poll_loop(
        skel,
        &ring,
        &batch,
        opts,
        &to_writer,
        &shared,
        &mut ledger,
        &mut processes,
        start,
        on_status,
    );
    let end_reason = match polled {
        Ok(reason) => reason,
        Err(e) => {
            // A writer failure surfaces here as a closed channel: report its own error.
            drop(to_writer);
            return match writer_thread.join() {
                Ok(Err(werr)) => Err(werr.context("writing the capture")),
                _ => Err(e),
            };
        }
    };
    let end = procfs::ClockAnchor::now();
    let totals = ledger.totals;
    for (k, v) in [
        ("ended_at", end.rfc3339()),
        ("ended_ktime_ns", end.ktime_ns.to_string()),
        ("end_reason", end_reason.clone()),
        (
            "final_counters",
            serde_json::to_string(
                &counter::NAMES
                    .iter()
                    .zip(totals.iter())
                    .map(|(n, v)| (n.to_string(), *v))
                    .chain(std::iter::once(("user_lost".to_string(), ledger.user_lost)))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )?,
        ),
    ] {
        to_writer
            .send(ToWriter::Meta(k.to_string(), v))
            .map_err(|_| anyhow::anyhow!("the capture writer stopped"))?;
    }
    drop(to_writer);
    drop(ring);
    let (stats, file_bytes) = writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the capture writer panicked"))??;
    chown_to_sudo_user(&opts.output)?;
    Ok(Summary {
        rung,
        writer: stats,
        processes,
        counters: totals,
        file_bytes,
        elapsed: start.elapsed(),
        end_reason,
    })
}

#[allow(clippy::too_many_arguments)]
fn poll_loop(
    skel: &mut loader::McpspySkel<'_>,
    ring: &libbpf_rs::RingBuffer<'_>,
    batch: &RefCell<Batch>,
    opts: &Options,
    to_writer: &mpsc::SyncSender<ToWriter>,
    shared: &Mutex<Status>,
    ledger: &mut Ledger,
    processes: &mut usize,
    start: Instant,
    on_status: &mut dyn FnMut(&Status),
) -> Result<String> {
    let send = |msg: ToWriter| -> Result<()> {
        to_writer
            .send(msg)
            .map_err(|_| anyhow::anyhow!("the capture writer stopped"))
    };
    let mut last_ledger = Instant::now();
    loop {
        if let Err(e) = ring.poll(POLL_INTERVAL) {
            if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                return Err(e).context("polling the ring buffer");
            }
        }
        let stopping =
            STOP.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| start.elapsed() >= d);
        if stopping {
            // Detach first, so that what is drained below is all there will be.
            skel.links = Default::default();
        }
        // Records that arrived without a wake-up (they are batched) and, when stopping, the rest.
        ring.consume().context("draining the ring buffer")?;
        let (framed, new_pids, malformed) = {
            let mut b = batch.borrow_mut();
            block::append_tick(&mut b.framed, procfs::monotonic_ns());
            let malformed = std::mem::take(&mut b.malformed);
            (
                std::mem::take(&mut b.framed),
                std::mem::take(&mut b.new_pids),
                malformed,
            )
        };
        ledger.user_lost += malformed;
        for (pid, comm, ts) in new_pids {
            *processes += 1;
            send(ToWriter::Process(procfs::process_row(pid, &comm, ts)))?;
        }
        send(ToWriter::Records(framed))?;
        if stopping || last_ledger.elapsed() >= COMMIT_INTERVAL {
            last_ledger = Instant::now();
            if let Some(row) = ledger.slice(loader::read_counters(skel)?) {
                send(ToWriter::Drops(row))?;
            }
        }
        {
            let mut s = shared.lock().map_err(|_| anyhow::anyhow!("status lock"))?;
            s.losses = ledger.losses();
            s.elapsed = start.elapsed();
            on_status(&s);
        }
        if stopping {
            return Ok(if STOP.load(Ordering::SeqCst) {
                if STOP_SIGNAL.load(Ordering::SeqCst) == libc::SIGTERM {
                    "signal SIGTERM".to_string()
                } else {
                    "signal SIGINT".to_string()
                }
            } else {
                "duration".to_string()
            });
        }
    }
}

fn write_loop(
    mut writer: CaptureWriter,
    rx: mpsc::Receiver<ToWriter>,
    mut live: Option<Box<dyn LiveSink>>,
    shared: Arc<Mutex<Status>>,
) -> Result<(WriterStats, u64)> {
    let mut last_commit = Instant::now();
    loop {
        let msg = rx.recv_timeout(COMMIT_INTERVAL);
        match msg {
            Ok(ToWriter::Records(framed)) => {
                let first_seq = writer.stats().records;
                writer.push_framed(&framed)?;
                if let Some(sink) = live.as_mut() {
                    sink.records(&framed, first_seq);
                }
            }
            Ok(ToWriter::Process(row)) => writer.add_process(&row)?,
            Ok(ToWriter::Drops(row)) => writer.add_drops(&row)?,
            Ok(ToWriter::Meta(k, v)) => writer.set_meta(&k, &v)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            writer.commit()?;
            last_commit = Instant::now();
            if let Ok(mut s) = shared.lock() {
                s.writer = writer.stats();
                s.file_bytes = writer.file_bytes();
            }
        }
    }
    let stats = writer.stats();
    let path = writer.path().to_path_buf();
    writer.finish()?;
    if let Some(sink) = live.as_mut() {
        sink.finish();
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok((stats, file_bytes))
}

/// Turns counter readings into drop-ledger slices.
struct Ledger {
    last: [u64; counter::COUNT],
    last_ktime: u64,
    totals: [u64; counter::COUNT],
    user_lost: u64,
    user_lost_written: u64,
}

impl Ledger {
    fn new(initial: [u64; counter::COUNT]) -> Self {
        Ledger {
            last: initial,
            last_ktime: procfs::monotonic_ns(),
            totals: [0; counter::COUNT],
            user_lost: 0,
            user_lost_written: 0,
        }
    }

    /// The increase since the previous reading, if anything moved.
    fn slice(&mut self, now: [u64; counter::COUNT]) -> Option<DropRow> {
        let ktime = procfs::monotonic_ns();
        let mut counts = [0u64; counter::COUNT];
        for i in 0..counter::COUNT {
            counts[i] = now[i].saturating_sub(self.last[i]);
            self.totals[i] += counts[i];
        }
        let user_lost = self.user_lost - self.user_lost_written;
        self.user_lost_written = self.user_lost;
        let row = DropRow {
            start_ktime_ns: self.last_ktime,
            end_ktime_ns: ktime,
            counts,
            user_lost,
        };
        self.last = now;
        self.last_ktime = ktime;
        (counts.iter().any(|&c| c > 0) || user_lost > 0).then_some(row)
    }

    fn losses(&self) -> u64 {
        self.totals[counter::RING_FULL]
            + self.totals[counter::READ_FAILED]
            + self.totals[counter::MAP_FULL]
            + self.totals[counter::TRUNCATED]
            + self.user_lost
    }
}
