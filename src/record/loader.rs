//! Load the kernel programs and attach them at the best rung that works here.

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::OpenObject;
use std::mem::MaybeUninit;

#[allow(clippy::all, dead_code, non_camel_case_types, non_snake_case, unused)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/mcpspy.skel.rs"));
}
pub use skel::McpspySkel;
use skel::*;

/// Where the syscall programs hook in, best first. Each is measured in
/// BENCHMARKS.md; fentry/fexit and kprobes are absent: they do not load here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rung {
    /// BTF-typed raw tracepoint on sys_exit.
    TpBtf,
    /// Raw tracepoint on sys_exit.
    RawTp,
    /// Classic tracepoints syscalls:sys_exit_* (needs tracefs).
    Tracepoint,
}

impl Rung {
    pub const LADDER: [Rung; 3] = [Rung::TpBtf, Rung::RawTp, Rung::Tracepoint];

    pub fn name(self) -> &'static str {
        match self {
            Rung::TpBtf => "tp_btf",
            Rung::RawTp => "raw_tp",
            Rung::Tracepoint => "tracepoint",
        }
    }
}

/// Capture-time settings baked into the programs before they load.
#[derive(Clone, Debug, Default)]
pub struct KernelConfig {
    pub self_tgid: u32,
    pub capture_all: bool,
    pub capture_tcp: bool,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// Roots of process trees followed in the kernel (--follow; the
    /// recorder itself for the command form): they and every process they
    /// start from now on.
    pub follow: Vec<u32>,
    pub cgroups: Vec<super::scope::Cgroup>,
    pub ring_size: u64,
    /// Load the OpenSSL uprobe programs (the recorder attaches them).
    pub tls: bool,
    /// Watch TCP streams that start with a TLS ClientHello (record --keylog).
    pub tls_cipher: bool,
}

/// Filters the programs hold (MCPSPY_MAX_FILTERS in bpf/mcpspy.bpf.c).
pub const MAX_FILTERS: usize = 8;

/// A rung that was tried and failed, with why.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub rung: Rung,
    pub error: String,
}

/// Loads and attaches at the first rung that works (or only at `forced`), then
/// runs `f` with the live skeleton. Failed attempts are passed on for the record.
pub fn with_attached<R>(
    cfg: &KernelConfig,
    forced: Option<Rung>,
    f: impl FnOnce(&mut McpspySkel<'_>, Rung, &[Attempt]) -> Result<R>,
) -> Result<R> {
    validate(cfg)?;
    libbpf_log::install();
    let ladder: Vec<Rung> = match forced {
        Some(r) => vec![r],
        None => Rung::LADDER.to_vec(),
    };
    let mut attempts = Vec::new();
    for rung in ladder {
        let mut storage = MaybeUninit::<OpenObject>::uninit();
        let loaded = load_and_attach(&mut storage, cfg, rung);
        match loaded {
            Ok(mut skel) => return f(&mut skel, rung, &attempts),
            Err(e) => attempts.push(Attempt {
                rung,
                error: format!("{e:#}{}", libbpf_log::tail(12)),
            }),
        };
    }
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.rung.name(), a.error))
        .collect();
    bail!(
        "no attach point works on this kernel (are you root?):\n  {}",
        tried.join("\n  ")
    )
}

fn validate(cfg: &KernelConfig) -> Result<()> {
    if cfg.pids.len() > MAX_FILTERS || cfg.comms.len() > MAX_FILTERS {
        bail!("at most {MAX_FILTERS} --pid and {MAX_FILTERS} --comm filters");
    }
    if cfg.cgroups.len() > MAX_FILTERS {
        bail!("at most {MAX_FILTERS} cgroups (--cgroup, --container)");
    }
    if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 4096 || cfg.ring_size > (1 << 30) {
        bail!(
            "--ring-size must be a power of two between 4K and 1G, not {}",
            cfg.ring_size
        );
    }
    Ok(())
}

fn load_and_attach<'o>(
    storage: &'o mut MaybeUninit<OpenObject>,
    cfg: &KernelConfig,
    rung: Rung,
) -> Result<McpspySkel<'o>> {
    if rung == Rung::Tracepoint {
        super::mounts::ensure_tracefs()?;
    }
    let mut open = McpspySkelBuilder::default()
        .open(storage)
        .context("opening the BPF object")?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("the BPF object has no read-only data")?;
    ro.self_tgid = cfg.self_tgid;
    ro.capture_all = cfg.capture_all as u8;
    ro.capture_tcp = cfg.capture_tcp as u8;
    ro.n_filter_pids = cfg.pids.len() as u32;
    for (slot, pid) in ro.filter_pids.iter_mut().zip(&cfg.pids) {
        *slot = *pid;
    }
    ro.n_filter_comms = cfg.comms.len() as u32;
    for (slot, comm) in ro.filter_comms.iter_mut().zip(&cfg.comms) {
        for (dst, src) in slot.iter_mut().zip(comm.bytes().take(15)) {
            *dst = src as i8;
        }
    }
    ro.follow = !cfg.follow.is_empty() as u8;
    ro.n_filter_cgroups = cfg.cgroups.len() as u32;
    for (i, c) in cfg.cgroups.iter().enumerate() {
        ro.filter_cgroup_ids[i] = c.id;
        ro.filter_cgroup_levels[i] = c.level;
    }
    ro.tls_probes = cfg.tls as u8;
    ro.capture_tls_cipher = cfg.tls_cipher as u8;
    // Wake the reader early once an eighth of the ring is waiting.
    ro.wakeup_bytes = cfg.ring_size / 8;
    open.maps
        .events
        .set_max_entries(cfg.ring_size as u32)
        .context("sizing the ring buffer")?;

    let p = &mut open.progs;
    p.mcpspy_tp_btf_exit.set_autoload(rung == Rung::TpBtf);
    p.mcpspy_exec_tp_btf.set_autoload(rung == Rung::TpBtf);
    p.mcpspy_raw_tp_exit.set_autoload(rung == Rung::RawTp);
    p.mcpspy_exec_raw_tp.set_autoload(rung == Rung::RawTp);
    p.mcpspy_exec_tp.set_autoload(rung == Rung::Tracepoint);
    // Followed trees only: otherwise no fork or exit on the host runs anything.
    let trees = !cfg.follow.is_empty();
    p.mcpspy_fork_tp_btf
        .set_autoload(trees && rung == Rung::TpBtf);
    p.mcpspy_task_exit_tp_btf
        .set_autoload(trees && rung == Rung::TpBtf);
    p.mcpspy_fork_raw_tp
        .set_autoload(trees && rung == Rung::RawTp);
    p.mcpspy_task_exit_raw_tp
        .set_autoload(trees && rung == Rung::RawTp);
    p.mcpspy_fork_tp
        .set_autoload(trees && rung == Rung::Tracepoint);
    p.mcpspy_task_exit_tp
        .set_autoload(trees && rung == Rung::Tracepoint);
    for prog in [
        &mut p.mcpspy_tp_exit_read,
        &mut p.mcpspy_tp_exit_write,
        &mut p.mcpspy_tp_exit_readv,
        &mut p.mcpspy_tp_exit_writev,
        &mut p.mcpspy_tp_exit_recvfrom,
        &mut p.mcpspy_tp_exit_sendto,
        &mut p.mcpspy_tp_exit_recvmsg,
        &mut p.mcpspy_tp_exit_sendmsg,
    ] {
        prog.set_autoload(rung == Rung::Tracepoint);
    }
    let multi = cfg.tls && super::uprobes::multi_supported();
    for prog in [
        &mut p.mcpspy_ssl_write,
        &mut p.mcpspy_ssl_write_ex,
        &mut p.mcpspy_ssl_read,
        &mut p.mcpspy_ssl_read_ex,
        &mut p.mcpspy_ssl_ret,
        &mut p.mcpspy_ssl_free,
        &mut p.mcpspy_ssl_new_ret,
    ] {
        prog.set_autoload(cfg.tls);
        super::uprobes::prepare(prog, multi);
    }
    for prog in [
        &mut p.mcpspy_go_tls_write,
        &mut p.mcpspy_go_tls_read,
        &mut p.mcpspy_go_tls_read_ret,
    ] {
        super::uprobes::prepare(prog, multi);
    }
    // Attached on its own (attach_close): a classic tracepoint, which needs
    // tracefs, and without which everything else still works.
    p.mcpspy_close_tp.set_autoattach(false);
    libbpf_log::clear();
    let mut skel = open
        .load()
        .with_context(|| format!("loading the {} programs", rung.name()))?;
    for &root in &cfg.follow {
        follow(&skel, root)?;
    }
    skel.attach()
        .with_context(|| format!("attaching the {} programs", rung.name()))?;
    Ok(skel)
}

/// Follows `pid` and, from now on, whatever it starts.
pub fn follow(skel: &McpspySkel<'_>, pid: u32) -> Result<()> {
    use libbpf_rs::MapCore;
    skel.maps
        .followed
        .update(&pid.to_ne_bytes(), &[1], libbpf_rs::MapFlags::ANY)
        .with_context(|| format!("following process {pid}"))
}

/// Attaches the close(2) tracepoint, which shows a TCP stream's end
/// (feature `stream_ends`).
pub fn attach_close(skel: &mut McpspySkel<'_>) -> Result<()> {
    super::mounts::ensure_tracefs()?;
    let link = skel
        .progs
        .mcpspy_close_tp
        .attach()
        .context("attaching the close(2) tracepoint")?;
    skel.links.mcpspy_close_tp = Some(link);
    Ok(())
}

/// The per-CPU END record counters, summed: (submitted, lost to a full ring).
pub fn read_end_counts(skel: &McpspySkel<'_>) -> Result<(u64, u64)> {
    use crate::event::end_counter;
    use libbpf_rs::MapCore;
    let mut out = [0u64; end_counter::COUNT];
    for (i, slot) in out.iter_mut().enumerate() {
        let per_cpu = skel
            .maps
            .end_counts
            .lookup_percpu(&(i as u32).to_ne_bytes(), libbpf_rs::MapFlags::ANY)
            .context("reading the stream-end counters")?
            .unwrap_or_default();
        *slot = sum_per_cpu(&per_cpu);
    }
    Ok((out[end_counter::SUBMITTED], out[end_counter::RING_FULL]))
}

fn sum_per_cpu(per_cpu: &[Vec<u8>]) -> u64 {
    per_cpu
        .iter()
        .filter_map(|v| {
            v.get(..8)
                .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
        })
        .sum()
}

/// Tells every program to return at once (the `stopped` global).
pub fn stop_emitting(skel: &mut McpspySkel<'_>) {
    if let Some(bss) = skel.maps.bss_data.as_deref_mut() {
        // SAFETY: a valid, aligned pointer into the map's mmap'ed memory.
        unsafe { std::ptr::write_volatile(&mut bss.stopped, 1) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Sums the per-CPU counters (enum mcpspy_counter).
pub fn read_counters(skel: &McpspySkel<'_>) -> Result<[u64; crate::event::counter::COUNT]> {
    use libbpf_rs::MapCore;
    let mut out = [0u64; crate::event::counter::COUNT];
    for (i, slot) in out.iter_mut().enumerate() {
        let key = (i as u32).to_ne_bytes();
        let per_cpu = skel
            .maps
            .counters
            .lookup_percpu(&key, libbpf_rs::MapFlags::ANY)
            .context("reading the counters")?
            .unwrap_or_default();
        *slot = sum_per_cpu(&per_cpu);
    }
    Ok(out)
}

/// libbpf's messages, kept rather than printed: a failed rung reports the
/// tail with its error, and probing programs that lack OpenSSL stays quiet.
mod libbpf_log {
    use std::sync::Mutex;

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    const KEEP: usize = 400;

    fn collect(_level: libbpf_rs::PrintLevel, msg: String) {
        if let Ok(mut lines) = LINES.lock() {
            if lines.len() >= KEEP {
                lines.drain(..KEEP / 2);
            }
            lines.push(msg.trim_end().to_string());
        }
    }

    pub fn install() {
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Warn, collect)));
    }

    pub fn clear() {
        if let Ok(mut lines) = LINES.lock() {
            lines.clear();
        }
    }

    /// The last `n` lines, as an indented block (empty when there are none).
    pub fn tail(n: usize) -> String {
        let lines = LINES.lock().map(|l| l.clone()).unwrap_or_default();
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|l| format!("\n      {l}"))
            .collect()
    }
}
