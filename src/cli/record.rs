//! `mcpspy record`: the recorder, storing into a capture writer, with the
//! live console as the writer's tap when asked.

use super::{AttachChoice, Failure, RecordArgs};
use crate::capture::{CaptureWriter, CreateOptions};
use crate::query::Live;
use crate::record::{self, KernelConfig, Rung};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::size::human_bytes;
use crate::render::WallClock;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub fn run(a: RecordArgs) -> Result<(), Failure> {
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
    let duration = match a.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(Failure::input(
                "--duration must be a positive number of seconds",
            ))
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
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
            ring_size: a.ring_size,
            tls: !a.no_tls,
        },
        forced_rung,
        command_line: std::env::args().collect(),
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut writer = CaptureWriter::create(
        &a.output,
        &CreateOptions {
            force: a.force,
            owner: sudo_owner(),
        },
    )?;
    if a.live {
        let body = a.body;
        writer = writer.with_tap(Box::new(Live::new(move |meta| {
            let stdout = std::io::stdout();
            let style = ConsoleStyle::for_terminal(stdout.is_terminal(), body);
            Console::new(WallClock::from_meta(meta), style, stdout)
        })));
    }
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
                "mcpspy: recording to {} (attach: {}{}); Ctrl+C to stop",
                s.output.display(),
                s.rung.name(),
                if tried.is_empty() {
                    String::new()
                } else {
                    format!("; {}", tried.join("; "))
                }
            );
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        },
        &mut |st| {
            if let Some(b) = &bar {
                b.set_message(format!(
                    "{:.0}s  {} events  {}  {} streams  {} drops  file {}",
                    st.elapsed.as_secs_f64(),
                    st.store.events,
                    human_bytes(st.store.payload_bytes),
                    st.store.streams,
                    st.losses,
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
    eprintln!(
        "mcpspy: recorded {} events, {} of data, {} streams, {} processes in {:.1}s via {}; {} drops; {} {}{ratio}; ended by {}",
        summary.store.events,
        human_bytes(summary.store.payload_bytes),
        summary.store.streams,
        summary.processes,
        summary.elapsed.as_secs_f64(),
        summary.rung.name(),
        summary.losses(),
        opts.output.display(),
        human_bytes(summary.store.file_bytes),
        summary.end_reason,
    );
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The user who ran sudo, who gets the capture file.
fn sudo_owner() -> Option<(u32, u32)> {
    let id = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    Some((id("SUDO_UID")?, id("SUDO_GID")?))
}
