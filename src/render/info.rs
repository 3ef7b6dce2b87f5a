//! `mcpspy info`: what a capture file holds, for people.

use super::size::human_bytes;
use super::{plural, CaptureId};
use crate::event::counter;
use crate::query::{DropRow, Overview};
use std::fmt::Write as _;

/// Provenance keys, in the order a reader wants them.
const META_ORDER: [(&str, &str); 18] = [
    ("tool_version", "mcpspy version"),
    ("hostname", "host"),
    ("kernel_release", "kernel"),
    ("machine", "machine"),
    ("boot_id", "boot id"),
    ("started_at", "started"),
    ("ended_at", "ended"),
    ("end_reason", "ended by"),
    ("command_line", "command line"),
    ("filters", "filters"),
    ("attach_rung", "attach point"),
    ("attach_tried", "attach points that failed"),
    ("ring_size", "ring buffer"),
    ("compression", "compression"),
    ("tls", "TLS probes"),
    ("event_version", "event version"),
    ("final_counters", "final kernel counters"),
    ("otlp_export", "sent to OTLP"),
];

pub fn render(v: &Overview) -> String {
    let mut out = String::new();
    let t = &v.totals;
    let _ = writeln!(out, "capture      {}", v.path.display());
    for (key, label) in META_ORDER {
        if let Some(val) = v.meta.get(key) {
            let shown = match key {
                "ring_size" => val
                    .parse::<u64>()
                    .map(human_bytes)
                    .unwrap_or_else(|_| val.clone()),
                "attach_tried" if val == "[]" => continue,
                _ => val.clone(),
            };
            let _ = writeln!(out, "{label:<12} {shown}");
        }
    }
    let id = CaptureId::from_meta(&v.meta);
    let how = if id.derived {
        " (derived from boot id, start and host: docs/parquet.md)"
    } else {
        ""
    };
    let _ = writeln!(out, "capture id   {}{how}", id.id);
    if !v.meta.contains_key("ended_at") {
        let _ = writeln!(
            out,
            "ended        not recorded: the recorder did not finish (killed?); the file holds what it committed"
        );
    }
    let span = match (t.first_ts_ns, t.last_ts_ns) {
        (Some(a), Some(b)) => format!("{:.3} s of events", b.saturating_sub(a) as f64 / 1e9),
        _ => "no events".to_string(),
    };
    let _ = writeln!(out, "time span    {span}");
    let _ = writeln!(
        out,
        "records      {} ({}, {})",
        t.records,
        plural(t.data_events, "data event"),
        plural(t.blocks, "block")
    );
    let _ = writeln!(out, "streams      {}", t.streams);
    if !v.undecoded.is_empty() {
        let kinds: Vec<String> = v
            .undecoded
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        let _ = writeln!(
            out,
            "not decoded  {}: {}",
            plural(v.undecoded.values().sum::<u64>(), "TCP stream"),
            kinds.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "processes    {} ({})",
        t.processes,
        plural(v.processes.len() as u64, "row")
    );
    let _ = writeln!(out, "data         {}", human_bytes(t.payload_bytes));
    let _ = writeln!(
        out,
        "raw bytes    {} (records as stored, before compression)",
        human_bytes(t.raw_bytes)
    );
    let _ = writeln!(
        out,
        "on disk      {} file, {} of compressed blocks",
        human_bytes(t.file_bytes),
        human_bytes(t.compressed_bytes)
    );
    if t.compressed_bytes > 0 {
        let _ = writeln!(
            out,
            "compression  {:.1}x (raw / compressed blocks); {:.3} file bytes per data byte",
            t.raw_bytes as f64 / t.compressed_bytes as f64,
            if t.payload_bytes > 0 {
                t.file_bytes as f64 / t.payload_bytes as f64
            } else {
                0.0
            }
        );
    }
    let mut sums = [0u64; counter::COUNT];
    let mut user_lost = 0;
    for d in &v.drops {
        for (s, c) in sums.iter_mut().zip(d.counts.iter()) {
            *s += c;
        }
        user_lost += d.user_lost;
    }
    let lossy: Vec<&DropRow> = v.drops.iter().filter(|d| d.losses() > 0).collect();
    let losses = counter::losses(&sums) + user_lost;
    if losses == 0 {
        let _ = writeln!(out, "drops        none");
    } else {
        let _ = writeln!(
            out,
            "drops        {} lost to a full ring ({}), {}, {}, {} ({}), {}; in {} of {}",
            plural(sums[counter::RING_FULL], "record"),
            human_bytes(sums[counter::RING_FULL_BYTES]),
            plural(sums[counter::READ_FAILED], "unreadable chunk"),
            plural(sums[counter::MAP_FULL], "untracked stream"),
            plural(sums[counter::TRUNCATED], "truncated call"),
            human_bytes(sums[counter::TRUNCATED_BYTES]),
            plural(user_lost, "unstorable record"),
            lossy.len(),
            plural(v.drops.len() as u64, "ledger slice")
        );
    }
    out
}
