//! Recording: load the kernel programs, attach, and drain the ring buffer
//! into a [`Store`] (the capture writer implements it).
//!
//! Threads: this one polls the ring and reads /proc; a writer thread owns
//! the store, so that compression and storage never stall the ring.

mod boringssl;
mod command;
mod go;
mod keylog;
mod loader;
mod mounts;
mod procfs;
mod scope;
mod tls;
mod uprobes;

use crate::event::{self, counter, Batch, DropRow, ProcessRow, RawEvent, Store, StoreStats};
use anyhow::{Context, Result};
pub use boringssl::{scan_cached, Cache as ScanCache, Outcome as ScanOutcome};
pub use command::RunAs;
pub use loader::{Attempt, KernelConfig, Rung, MAX_FILTERS};
pub use scope::{cgroup2_root, cgroup_at, container_cgroups, process_exists, Cgroup};
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
/// Read the loss counters this often.
const LEDGER_INTERVAL: Duration = Duration::from_secs(1);
/// Commit this often. A record waits at most one poll in the ring and then
/// until the next commit: a SIGKILL loses at most a second (README) with
/// room for a slow commit.
const COMMIT_INTERVAL: Duration = Duration::from_millis(750);
/// Batches queued for the writer. When it falls this far behind, draining
/// waits, the ring fills, and the kernel counts what it cannot keep.
const WRITER_QUEUE: usize = 256;

pub struct Options {
    /// Where the store keeps what is recorded, for the messages.
    pub output: PathBuf,
    pub duration: Option<Duration>,
    pub kernel: KernelConfig,
    pub forced_rung: Option<Rung>,
    /// The recorder's argv, for provenance.
    pub command_line: Vec<String>,
    /// A folder only this user can write, where BoringSSL scans are cached.
    pub scan_cache: Option<PathBuf>,
    /// The command form: run this once attached, follow it (the kernel
    /// config follows the recorder), and stop when it exits.
    pub command: Option<Vec<std::ffi::OsString>>,
    /// Who the command runs as (the user who ran sudo).
    pub run_as: Option<RunAs>,
    /// --container ids, for provenance (their cgroups are in `kernel`).
    pub containers: Vec<String>,
    /// --keylog files: TLS key logs followed while recording.
    pub keylogs: Vec<PathBuf>,
}

/// Known once the programs are attached.
#[derive(Clone)]
pub struct Started {
    pub rung: Rung,
    pub attempts: Vec<Attempt>,
    pub output: PathBuf,
    /// Programs probed through the BoringSSL scan, and ones it could not locate.
    pub boringssl: Vec<String>,
}

/// A snapshot for the status line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub store: StoreStats,
    pub losses: u64,
    pub elapsed: Duration,
}

#[derive(Clone, Debug)]
pub struct Summary {
    /// Each Go binary whose crypto/tls was probed, or could not be located.
    pub go_tls: Vec<String>,
    pub rung: Rung,
    pub store: StoreStats,
    pub processes: usize,
    pub counters: [u64; counter::COUNT],
    /// The recording's own span: from attached to told to stop.
    pub span: Duration,
    /// From attached to done: the span, the final drain and detaching.
    pub elapsed: Duration,
    pub end_reason: String,
    /// Every program probed through the BoringSSL scan (or not located), start to end.
    pub boringssl: Vec<String>,
    /// The command form: the command's exit code (128 + signal if killed).
    pub command_exit: Option<i32>,
}

impl Summary {
    pub fn losses(&self) -> u64 {
        counter::losses(&self.counters)
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
    Records(Batch),
    Process(ProcessRow),
    Drops(DropRow),
    Meta(String, String),
}

/// Records until a signal or the duration ends it.
pub fn run(
    opts: &Options,
    mut store: Box<dyn Store>,
    on_started: &mut dyn FnMut(&Started),
    on_status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    STOP.store(false, Ordering::SeqCst);
    install_signal_handlers();
    let host = procfs::host_facts();
    let kernel = &opts.kernel;
    let mut filters = serde_json::json!({
        "pid": kernel.pids, "comm": kernel.comms, "all": kernel.capture_all, "tcp": kernel.capture_tcp,
    });
    // The scope beyond pid and comm, named only when used (schema/v1.sql, meta.filters).
    let scope = &mut filters;
    if let Some(argv) = &opts.command {
        let argv: Vec<_> = argv.iter().map(|a| a.to_string_lossy()).collect();
        scope["command"] = serde_json::json!(argv);
        if let Some(u) = &opts.run_as {
            scope["command_uid"] = u.uid.into();
        }
    } else if !kernel.follow.is_empty() {
        scope["follow"] = serde_json::json!(kernel.follow);
    }
    if !kernel.cgroups.is_empty() {
        let cgroups: Vec<_> = kernel
            .cgroups
            .iter()
            .map(|c| serde_json::json!({"path": c.path, "id": c.id}))
            .collect();
        scope["cgroup"] = cgroups.into();
    }
    if !opts.containers.is_empty() {
        scope["container"] = serde_json::json!(opts.containers);
    }
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
    ] {
        store.meta(k, &v)?;
    }
    store.commit()?;

    // The key logs' ends are taken before anything is attached: a line
    // written from then on may open a connection whose start is captured.
    let mut keylogs = (!opts.keylogs.is_empty()).then(|| keylog::KeyLogs::new(&opts.keylogs));
    // The store moves to the writer thread once attached; until then it
    // stays here, so that a failure to attach can discard it.
    let mut store = Some(store);
    let result = loader::with_attached(kernel, opts.forced_rung, |skel, rung, attempts| {
        let mut store = store.take().context("the store was already taken")?;
        let tried: Vec<_> = attempts
            .iter()
            .map(|a| serde_json::json!({"rung": a.rung.name(), "error": a.error}))
            .collect();
        store.meta("attach_rung", rung.name())?;
        store.meta("attach_tried", &serde_json::to_string(&tried)?)?;
        let started = Started {
            rung,
            attempts: attempts.to_vec(),
            output: opts.output.clone(),
            boringssl: Vec::new(),
        };
        drain(
            skel,
            &started,
            opts,
            store,
            keylogs.take(),
            on_started,
            on_status,
        )
    });
    if let Some(store) = store {
        // Nothing was recorded: an empty capture would only mislead.
        store.discard();
    }
    result
}

/// Everything the ring-buffer callback collects between two polls.
#[derive(Default)]
struct Collected {
    records: Batch,
    /// Processes to look up in /proc: (pid, kernel comm, ts).
    new_pids: Vec<(u32, String, u64)>,
    /// Every execve on the host: (pid, file name), for the TLS probes.
    execs: Vec<(u32, String)>,
    seen: HashSet<u32>,
    malformed: u64,
    /// Exec records of processes with no captured traffic, left out on
    /// purpose (the kernel counts them as submitted).
    execs_skipped: u64,
}

impl Collected {
    fn take(&mut self, raw: &[u8]) {
        // The slot may be larger than the record (size classes): keep header + len.
        let Ok(ev) = RawEvent::parse(raw) else {
            self.malformed += 1;
            return;
        };
        let h = &ev.hdr;
        if h.kind == event::kind::EXEC {
            self.execs
                .push((h.tgid, String::from_utf8_lossy(ev.payload).into_owned()));
            // Only processes whose traffic is captured belong in the file; for
            // them an exec means a new program image, worth a new row.
            if !self.seen.contains(&h.tgid) {
                self.execs_skipped += 1;
                return;
            }
            self.new_pids.push((h.tgid, ev.comm(), h.ts_ns));
        } else if self.seen.insert(h.tgid) {
            self.new_pids.push((h.tgid, ev.comm(), h.ts_ns));
        }
        self.records.push_event(&ev);
    }
}

fn drain(
    skel: &mut loader::McpspySkel<'_>,
    started: &Started,
    opts: &Options,
    mut store: Box<dyn Store>,
    keylogs: Option<keylog::KeyLogs>,
    on_started: &mut dyn FnMut(&Started),
    on_status: &mut dyn FnMut(&Status),
) -> Result<Summary> {
    let rung = started.rung;
    // Without it, only cancellation by closing an HTTP/1.1 connection is
    // not seen: say so, and record that it was not attached.
    let ends_attached = match loader::attach_close(skel) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("mcpspy: warning: connection closes will not be seen: {e:#}");
            false
        }
    };
    let mut tls = opts
        .kernel
        .tls
        .then(|| tls::TlsProbes::start(skel, opts.scan_cache.clone()));
    let mut started = started.clone();
    if let Some(t) = &tls {
        store.meta("tls", &t.describe())?;
        started.boringssl = t.boringssl_notes();
    }
    // Processes already below a followed root: marked after the fork
    // tracepoint is attached, twice, so that one forked meanwhile is not missed.
    for _ in 0..2 {
        for pid in scope::descendants(&opts.kernel.follow) {
            loader::follow(skel, pid)?;
        }
    }
    // Everything is attached now: what happens from here on is captured.
    on_started(&started);
    let start = Instant::now();
    let anchor = procfs::ClockAnchor::now();
    let (started_at, started_ktime) = (anchor.rfc3339(), anchor.ktime_ns.to_string());
    store.meta("started_at", &started_at)?;
    store.meta("started_ktime_ns", &started_ktime)?;
    store.commit()?;

    let shared = Arc::new(Mutex::new(Status::default()));
    let (to_writer, writer_rx) = mpsc::sync_channel::<ToWriter>(WRITER_QUEUE);
    let writer_shared = Arc::clone(&shared);
    let writer_thread = std::thread::Builder::new()
        .name("mcpspy-writer".into())
        .spawn(move || write_loop(store, writer_rx, writer_shared))
        .context("starting the writer thread")?;

    let child = match &opts.command {
        Some(argv) => Some(command::spawn(
            argv,
            opts.run_as.as_ref(),
            opts.keylogs.first(),
        )?),
        None => None,
    };
    let batch = Rc::new(RefCell::new(Collected::default()));
    let cb_batch = Rc::clone(&batch);
    let mut rb = libbpf_rs::RingBufferBuilder::new();
    rb.add(&skel.maps.events, move |raw: &[u8]| {
        cb_batch.borrow_mut().take(raw);
        0
    })
    .context("opening the ring buffer")?;
    let ring = rb.build().context("opening the ring buffer")?;

    let mut d = Drainer {
        ring: &ring,
        batch: &batch,
        to_writer: &to_writer,
        // The counters start at zero when the programs load: every record
        // since then is in the ledger.
        ledger: Ledger::new([0; counter::COUNT]),
        processes: 0,
        tls: tls.as_mut(),
        tls_known: 0,
        keylogs,
        keylog_described: false,
        start,
        child,
        command_exit: None,
        span: Duration::ZERO,
    };
    let end_reason = match d.run(skel, opts, &shared, on_status) {
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
    let (ledger, processes, span) = (d.ledger, d.processes, d.span);
    let command_exit = match d.child.take() {
        // Stopped by a signal while the command ran: it gets the signal too.
        Some(mut child) => {
            let sig = STOP_SIGNAL.load(Ordering::SeqCst);
            // SAFETY: kill on our own child's pid.
            unsafe {
                libc::kill(
                    child.id() as i32,
                    if sig != 0 { sig } else { libc::SIGTERM },
                )
            };
            Some(command::exit_code(
                child.wait().context("waiting for the command")?,
            ))
        }
        None => d.command_exit,
    };
    let end = procfs::ClockAnchor::now();
    let totals = ledger.totals;
    let final_counters: std::collections::BTreeMap<String, u64> = counter::NAMES
        .iter()
        .zip(totals.iter())
        .map(|(n, v)| (n.to_string(), *v))
        .chain([
            ("user_lost".to_string(), ledger.user_lost),
            ("execs_not_stored".to_string(), ledger.execs_skipped),
        ])
        .collect();
    let (submitted, ring_full) = loader::read_end_counts(skel)?;
    let stream_ends = serde_json::json!({
        "attached": ends_attached,
        "submitted": submitted,
        "ring_full": ring_full,
    });
    for (k, v) in [
        ("stream_ends", stream_ends.to_string()),
        ("ended_at", end.rfc3339()),
        ("ended_ktime_ns", end.ktime_ns.to_string()),
        ("end_reason", end_reason.clone()),
        ("final_counters", serde_json::to_string(&final_counters)?),
    ] {
        to_writer
            .send(ToWriter::Meta(k.to_string(), v))
            .map_err(|_| anyhow::anyhow!("the capture writer stopped"))?;
    }
    drop(to_writer);
    drop(ring);
    let stats = writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the capture writer panicked"))??;
    let go_tls = tls.as_ref().map(|t| t.go_notes()).unwrap_or_default();
    if let Some(t) = tls.as_mut() {
        t.detach();
    }
    Ok(Summary {
        go_tls,
        rung,
        store: stats,
        processes,
        counters: totals,
        span,
        elapsed: start.elapsed(),
        end_reason,
        boringssl: tls.map(|t| t.boringssl_notes()).unwrap_or_default(),
        command_exit,
    })
}

/// The polling thread's state between two polls.
struct Drainer<'a> {
    ring: &'a libbpf_rs::RingBuffer<'a>,
    batch: &'a RefCell<Collected>,
    to_writer: &'a mpsc::SyncSender<ToWriter>,
    ledger: Ledger,
    processes: usize,
    tls: Option<&'a mut tls::TlsProbes>,
    /// Targets and errors the tls meta last described.
    tls_known: usize,
    keylogs: Option<keylog::KeyLogs>,
    /// The keylog meta was written once.
    keylog_described: bool,
    start: Instant,
    /// The command form's command, until it exits.
    child: Option<std::process::Child>,
    command_exit: Option<i32>,
    /// Set when told to stop.
    span: Duration,
}

impl Drainer<'_> {
    fn send(&self, msg: ToWriter) -> Result<()> {
        self.to_writer
            .send(msg)
            .map_err(|_| anyhow::anyhow!("the capture writer stopped"))
    }

    /// Polls until a signal or the duration; returns why it stopped.
    fn run(
        &mut self,
        skel: &mut loader::McpspySkel<'_>,
        opts: &Options,
        shared: &Mutex<Status>,
        on_status: &mut dyn FnMut(&Status),
    ) -> Result<String> {
        let mut last_ledger = Instant::now();
        loop {
            if let Err(e) = self.ring.poll(POLL_INTERVAL) {
                if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                    return Err(e).context("polling the ring buffer");
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("waiting for the command")? {
                    self.command_exit = Some(command::exit_code(status));
                    self.child = None;
                }
            }
            let stopping = STOP.load(Ordering::SeqCst)
                || self.command_exit.is_some()
                || opts.duration.is_some_and(|d| self.start.elapsed() >= d);
            if stopping {
                self.span = self.start.elapsed();
                // Stop emitting first, so that what is drained below is all
                // there will be; programs already running get a moment to finish.
                loader::stop_emitting(skel);
                skel.links = Default::default();
                std::thread::sleep(Duration::from_millis(20));
            }
            // Records that arrived without a wake-up (they are batched) and, when stopping, the rest.
            self.ring.consume().context("draining the ring buffer")?;
            self.flush(skel)?;
            if stopping || last_ledger.elapsed() >= LEDGER_INTERVAL {
                last_ledger = Instant::now();
                if let Some(row) = self.ledger.slice(loader::read_counters(skel)?) {
                    self.send(ToWriter::Drops(row))?;
                }
            }
            {
                let mut s = shared.lock().map_err(|_| anyhow::anyhow!("status lock"))?;
                s.losses = self.ledger.losses();
                s.elapsed = self.start.elapsed();
                on_status(&s);
            }
            if stopping {
                return Ok(if let Some(code) = self.command_exit {
                    format!("command exited ({code})")
                } else if !STOP.load(Ordering::SeqCst) {
                    "duration".to_string()
                } else if STOP_SIGNAL.load(Ordering::SeqCst) == libc::SIGTERM {
                    "signal SIGTERM".to_string()
                } else {
                    "signal SIGINT".to_string()
                });
            }
        }
    }

    /// Hands what the last poll collected to the writer, with a clock tick.
    fn flush(&mut self, skel: &loader::McpspySkel<'_>) -> Result<()> {
        // Key log lines go ahead of the records drained with them: each was
        // written before the data it opens was sent (keylog.rs).
        if let Some(k) = self.keylogs.as_mut() {
            let mut lines = Batch::default();
            let changed = k.poll(&mut lines, event::monotonic_ns());
            // Said at the first flush, then only when it changed.
            let described = (changed || !self.keylog_described).then(|| k.describe());
            if !lines.is_empty() {
                self.send(ToWriter::Records(lines))?;
            }
            if let Some(described) = described {
                self.keylog_described = true;
                self.send(ToWriter::Meta("keylog".into(), described))?;
            }
        }
        let (records, new_pids, execs, malformed, skipped) = {
            let mut b = self.batch.borrow_mut();
            b.records.push_tick(event::monotonic_ns());
            (
                std::mem::take(&mut b.records),
                std::mem::take(&mut b.new_pids),
                std::mem::take(&mut b.execs),
                std::mem::take(&mut b.malformed),
                std::mem::take(&mut b.execs_skipped),
            )
        };
        self.ledger.user_lost += malformed;
        self.ledger.execs_skipped += skipped;
        for (pid, comm, ts) in new_pids {
            self.processes += 1;
            self.send(ToWriter::Process(procfs::process_row(pid, &comm, ts)))?;
        }
        self.send(ToWriter::Records(records))?;
        if let Some(t) = self.tls.as_mut() {
            for (pid, file) in &execs {
                t.on_exec(skel, *pid, file);
            }
            t.rescan_if_due(skel);
            let known = t.targets.len() + t.errors.len();
            if known != self.tls_known {
                self.tls_known = known;
                let described = t.describe();
                self.send(ToWriter::Meta("tls".into(), described))?;
            }
        }
        Ok(())
    }
}

fn write_loop(
    mut store: Box<dyn Store>,
    rx: mpsc::Receiver<ToWriter>,
    shared: Arc<Mutex<Status>>,
) -> Result<StoreStats> {
    let mut next_commit = Instant::now() + COMMIT_INTERVAL;
    loop {
        // A timer, not a count of messages: the promise holds when nothing arrives.
        match rx.recv_timeout(next_commit.saturating_duration_since(Instant::now())) {
            Ok(ToWriter::Records(batch)) => store.records(&batch)?,
            Ok(ToWriter::Process(row)) => store.process(&row)?,
            Ok(ToWriter::Drops(row)) => store.drops(&row)?,
            Ok(ToWriter::Meta(k, v)) => store.meta(&k, &v)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_commit {
            store.commit()?;
            next_commit = Instant::now() + COMMIT_INTERVAL;
            if let Ok(mut s) = shared.lock() {
                s.store = store.stats();
            }
        }
    }
    store.finish()
}

/// Turns counter readings into drop-ledger slices.
struct Ledger {
    last: [u64; counter::COUNT],
    last_ktime: u64,
    totals: [u64; counter::COUNT],
    user_lost: u64,
    user_lost_written: u64,
    execs_skipped: u64,
}

impl Ledger {
    fn new(initial: [u64; counter::COUNT]) -> Self {
        Ledger {
            last: initial,
            last_ktime: event::monotonic_ns(),
            totals: [0; counter::COUNT],
            user_lost: 0,
            user_lost_written: 0,
            execs_skipped: 0,
        }
    }

    /// The increase since the previous reading, if anything moved.
    fn slice(&mut self, now: [u64; counter::COUNT]) -> Option<DropRow> {
        let ktime = event::monotonic_ns();
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
        counter::losses(&self.totals) + self.user_lost
    }
}
