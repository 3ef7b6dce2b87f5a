//! `mcpspy record`: thin glue over crate::record.

use super::{AttachChoice, Failure, RecordArgs};
use crate::capture::block::Records;
use crate::decode::{DecodeOptions, Decoder};
use crate::record::{self, KernelConfig, Rung};
use crate::render::console::{Console, ConsoleStyle};
use crate::render::size::human_bytes;
use crate::render::WallClock;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
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
        force: a.force,
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
    let live: Option<Box<dyn record::LiveSink>> = a
        .live
        .then(|| Box::new(LiveConsole::new(a.body)) as Box<dyn record::LiveSink>);
    let summary = record::run(
        &opts,
        live,
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
                    st.writer.events,
                    human_bytes(st.writer.payload_bytes),
                    st.writer.streams,
                    st.losses,
                    human_bytes(st.file_bytes)
                ));
            }
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let ratio = if summary.writer.payload_bytes > 0 {
        format!(
            " ({:.3} bytes on disk per captured byte)",
            summary.file_bytes as f64 / summary.writer.payload_bytes as f64
        )
    } else {
        String::new()
    };
    eprintln!(
        "mcpspy: recorded {} events, {} of data, {} streams, {} processes in {:.1}s via {}; {} drops; {} {}{ratio}; ended by {}",
        summary.writer.events,
        human_bytes(summary.writer.payload_bytes),
        summary.writer.streams,
        summary.processes,
        summary.elapsed.as_secs_f64(),
        summary.rung.name(),
        summary.losses(),
        opts.output.display(),
        human_bytes(summary.file_bytes),
        summary.end_reason,
    );
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// `record --live`: the decoder and the console renderer of `replay`, fed the
/// records as they are stored, so its lines are the lines replay prints.
struct LiveConsole {
    decoder: Decoder,
    console: Option<Console>,
    body: bool,
    /// Output stops at the first write error (a closed pipe); recording goes on.
    failed: bool,
}

impl LiveConsole {
    fn new(body: bool) -> Self {
        LiveConsole {
            decoder: Decoder::new(DecodeOptions::default()),
            console: None,
            body,
            failed: false,
        }
    }

    fn emit(&mut self, run: impl FnOnce(&mut Decoder, &mut dyn FnMut(&crate::decode::Item<'_>))) {
        let Some(console) = self.console.as_mut() else {
            return;
        };
        let mut out = std::io::stdout().lock();
        let failed = &mut self.failed;
        run(&mut self.decoder, &mut |item| {
            if !*failed && console.write(item, &mut out).is_err() {
                *failed = true;
            }
        });
        if out.flush().is_err() {
            self.failed = true;
        }
    }
}

impl record::LiveSink for LiveConsole {
    fn clock(&mut self, started_at: &str, started_ktime_ns: &str) {
        let meta = BTreeMap::from([
            ("started_at".to_string(), started_at.to_string()),
            ("started_ktime_ns".to_string(), started_ktime_ns.to_string()),
        ]);
        let style = ConsoleStyle::for_terminal(std::io::stdout().is_terminal(), self.body);
        self.console = Some(Console::new(WallClock::from_meta(&meta), style));
    }

    fn records(&mut self, framed: &[u8], first_seq: u64) {
        self.emit(|decoder, sink| {
            for rec in Records::new(framed, first_seq) {
                decoder.push(&rec, &mut |item| sink(item));
            }
        });
    }

    fn finish(&mut self) {
        self.emit(|decoder, sink| decoder.finish(&mut |item| sink(item)));
    }
}
