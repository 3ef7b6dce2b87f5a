//! `mcpspy record`: the recorder, storing into a capture writer, with the
//! live console as the writer's tap when asked.

use super::args::parse_duration;
use super::{AttachChoice, ColorChoice, Done, Failure, RecordArgs};
use crate::capture::{CaptureWriter, CreateOptions, SigningIdentity, OTLP_EXPORT};
use crate::query::{Fanout, Live, Sink};
use crate::record::{self, KernelConfig, RunAs, Rung};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::otlp::{self, Background, Http, Otlp, Sent};
use crate::render::size::human_bytes;
use crate::render::{plural, TimeFormat, WallClock};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub fn run(a: RecordArgs, color: ColorChoice) -> Result<Done, Failure> {
    // A pid that names no process would record nothing, silently.
    for (flag, pid) in a
        .pid
        .iter()
        .map(|p| ("--pid", p))
        .chain(a.follow.iter().map(|p| ("--follow", p)))
    {
        if !record::process_exists(*pid) {
            return Err(Failure::input(format!("{flag} {pid}: no such process")));
        }
    }
    let mut cgroups = Vec::new();
    for path in &a.cgroup {
        cgroups.push(record::cgroup_at(path).map_err(|e| Failure::input(format!("{e:#}")))?);
    }
    for id in &a.container {
        cgroups
            .extend(record::container_cgroups(id).map_err(|e| Failure::input(format!("{e:#}")))?);
    }
    if let Some(missing) = missing_privileges(!a.no_tls) {
        return Err(Failure::input(format!(
            "recording needs root, or the capabilities CAP_BPF, CAP_PERFMON and (for TLS) \
             CAP_SYS_ADMIN; this process lacks {missing} (try sudo)"
        )));
    }
    let forced_rung = match a.attach {
        AttachChoice::Auto => None,
        AttachChoice::TpBtf => Some(Rung::TpBtf),
        AttachChoice::RawTp => Some(Rung::RawTp),
        AttachChoice::Tracepoint => Some(Rung::Tracepoint),
    };
    for c in &a.comm {
        if c.is_empty() || c.len() > 15 {
            return Err(Failure::input(format!(
                "--comm {c:?}: the kernel keeps 1 to 15 bytes of a process name"
            )));
        }
    }
    let command = (!a.command.is_empty()).then(|| a.command.clone());
    let mut follow = a.follow.clone();
    if command.is_some() {
        // The recorder's children: the command and all it starts.
        follow.push(std::process::id());
    }
    let duration = match a.duration.as_deref() {
        Some(s) => match parse_duration("--duration", s)? {
            0 => return Err(Failure::input("--duration must be longer than 0")),
            ns => Some(Duration::from_nanos(ns)),
        },
        None => None,
    };
    let opts = record::Options {
        output: a.output.clone(),
        duration,
        kernel: KernelConfig {
            self_tgid: std::process::id(),
            capture_all: a.all,
            capture_tcp: true,
            pids: a.pid.clone(),
            comms: a.comm.clone(),
            follow,
            cgroups,
            ring_size: a.ring_size,
            tls: !a.no_tls,
            tls_cipher: !a.keylog.is_empty(),
        },
        forced_rung,
        command_line: std::env::args().collect(),
        scan_cache: scan_cache().ok(),
        run_as: sudo_owner().map(|(uid, gid)| RunAs { uid, gid }),
        command,
        containers: a.container.clone(),
        keylogs: a.keylog.clone(),
    };
    // The command owns the terminal: no status line over its output.
    let bar = (std::io::stderr().is_terminal() && opts.command.is_none()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    // The key is read before anything is created: a bad key records nothing.
    let signer = a.sign.as_deref().map(SigningIdentity::load).transpose()?;
    let mut writer = CaptureWriter::create(
        &a.output,
        &CreateOptions {
            force: a.force,
            owner: sudo_owner(),
        },
    )?;
    if let Some(signer) = signer {
        writer = writer.with_signer(signer)?;
    }
    let otlp = match a.otlp_endpoint.as_deref() {
        Some(endpoint) => {
            let http = Http::new(endpoint).map_err(Failure::input)?;
            Some(Background::start(http)?)
        }
        None => None,
    };
    let report = otlp.as_ref().map(Background::report);
    if a.live || otlp.is_some() {
        let (live, body, verbose, content) = (a.live, a.body, a.verbose, a.include_content);
        let mut tap = Live::new(move |meta| {
            let clock = WallClock::from_meta(meta);
            let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
            if live {
                let style = ConsoleStyle {
                    color: color.stdout(),
                    body,
                    verbose,
                    time: TimeFormat::default(),
                };
                sinks.push(Box::new(Console::new(clock, style, std::io::stdout())));
            }
            if let Some(exporter) = otlp {
                let opts = otlp::Options {
                    content,
                    // One span a request: the exporter's thread batches them.
                    batch: 1,
                    metrics_every_ns: Some(OTLP_METRICS_EVERY.as_nanos() as u64),
                };
                sinks.push(Box::new(Otlp::new(exporter, opts, clock, meta)));
            }
            Fanout::new(sinks)
        });
        if let (Some(r), Some(endpoint)) = (report.clone(), a.otlp_endpoint.clone()) {
            tap = tap.reporting(move || vec![(OTLP_EXPORT, otlp_fact(&endpoint, r.sent()))]);
        }
        writer = writer.with_tap(Box::new(tap))?;
    }
    let command_form = opts.command.is_some();
    let summary = record::run(
        &opts,
        Box::new(writer),
        &mut |s| {
            let tried: Vec<String> = s
                .attempts
                .iter()
                .map(|t| format!("{} failed: {}", t.rung.name(), first_line(&t.error)))
                .collect();
            let line = format!(
                "mcpspy: recording to {} (attach: {}{}); {}",
                s.output.display(),
                s.rung.name(),
                if tried.is_empty() {
                    String::new()
                } else {
                    format!("; {}", tried.join("; "))
                },
                if command_form {
                    "until the command exits"
                } else {
                    "Ctrl+C to stop"
                }
            );
            let notes = s.boringssl.iter().map(|n| format!("mcpspy: {n}"));
            for line in std::iter::once(line).chain(notes) {
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
        },
        &mut |st| {
            if let Some(b) = &bar {
                b.set_message(format!(
                    "{:.0}s  {}  {}  {}  {}  file {}",
                    st.elapsed.as_secs_f64(),
                    plural(st.store.events, "event"),
                    human_bytes(st.store.payload_bytes),
                    plural(st.store.streams, "stream"),
                    plural(st.losses, "drop"),
                    human_bytes(st.store.file_bytes)
                ));
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let ratio = if summary.store.payload_bytes > 0 {
        format!(
            " ({:.3} bytes on disk per captured byte)",
            summary.store.file_bytes as f64 / summary.store.payload_bytes as f64
        )
    } else {
        String::new()
    };
    for note in &summary.go_tls {
        eprintln!("mcpspy: {note}");
    }
    eprintln!(
        "mcpspy: recorded {}, {} of data, {}, {} in {:.1}s via {}; {}; {} {}{ratio}; ended by {} \
         (stopped in {:.1}s)",
        plural(summary.store.events, "event"),
        human_bytes(summary.store.payload_bytes),
        plural(summary.store.streams, "stream"),
        plural(summary.processes as u64, "process"),
        summary.span.as_secs_f64(),
        summary.rung.name(),
        plural(summary.losses(), "drop"),
        opts.output.display(),
        human_bytes(summary.store.file_bytes),
        summary.end_reason,
        (summary.elapsed - summary.span).as_secs_f64(),
    );
    for note in &summary.boringssl {
        eprintln!("mcpspy: {note}");
    }
    if let (Some(r), Some(endpoint)) = (report, &a.otlp_endpoint) {
        let sent = r.sent();
        eprintln!(
            "mcpspy: OTLP to {endpoint}: {} sent, {} failed, {} dropped; {} sent, {} failed, {} dropped",
            plural(sent.spans.sent, "span"),
            sent.spans.failed,
            sent.spans.dropped,
            plural(sent.metrics.sent, "metrics request"),
            sent.metrics.failed,
            sent.metrics.dropped,
        );
    }
    Ok(match summary.command_exit {
        Some(code) => Done::Exit(code.clamp(0, 255) as u8),
        None => Done::Ok,
    })
}

/// How often a recording sends its metrics (capture time).
const OTLP_METRICS_EVERY: Duration = Duration::from_secs(10);

/// The `otlp_export` fact of the capture's meta (schema/README.md).
fn otlp_fact(endpoint: &str, sent: Sent) -> String {
    serde_json::json!({"endpoint": endpoint, "spans": sent.spans, "metrics": sent.metrics})
        .to_string()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The user who ran sudo, who gets the capture file.
fn sudo_owner() -> Option<(u32, u32)> {
    let id = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    Some((id("SUDO_UID")?, id("SUDO_GID")?))
}

/// The privileges recording needs that this process lacks, named; None when
/// it has them (root, or the capabilities in its effective set).
fn missing_privileges(tls: bool) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let mut wanted = vec![("CAP_BPF", 39), ("CAP_PERFMON", 38)];
    if tls {
        wanted.push(("CAP_SYS_ADMIN", 21));
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, bit)| effective & (1 << bit) == 0)
        .map(|(name, _)| *name)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// The user's cache folder for scan results, if it can be trusted.
fn scan_cache() -> Result<std::path::PathBuf, String> {
    let dir = crate::query::index::cache_dir()
        .ok_or("no cache folder: neither $XDG_CACHE_HOME nor $HOME is set")?;
    crate::query::index::private_dir(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `mcpspy scan-tls`: what the BoringSSL scan says of each program.
pub fn scan_tls(programs: &[std::path::PathBuf], no_cache: bool) -> Result<(), Failure> {
    let cache = match no_cache {
        true => None,
        false => scan_cache().ok().map(record::ScanCache::new),
    };
    for p in programs {
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(Failure::input(format!("{}: not a file", p.display()))),
            Err(e) => return Err(Failure::input(format!("{}: {e}", p.display()))),
        }
        let started = std::time::Instant::now();
        let (outcome, cached) = record::scan_cached(p, cache.as_ref());
        let line = serde_json::json!({
            "program": p.display().to_string(),
            "cached": cached,
            "seconds": started.elapsed().as_secs_f64(),
            "scan": outcome,
        });
        super::print_lines([line])?;
    }
    Ok(())
}
