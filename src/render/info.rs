//! `mcpspy info`: what a capture file holds, for people.

use super::size::human_bytes;
use super::{plural, CaptureId};
use crate::event::counter;
use crate::query::{Damage, DropRow, Overview, Step, Verdict};
use std::fmt::Write as _;

/// Provenance keys, in the order a reader wants them.
const META_ORDER: [(&str, &str); 20] = [
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
    ("keylog", "TLS key logs"),
    ("stream_ends", "stream ends"),
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
    let _ = writeln!(out, "seal         {}", seal_line(&v.seal));
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
    let _ = writeln!(out, "damage       {}", damage_line(&v.damage));
    for (i, step) in v.derivation.iter().enumerate().rev() {
        let label = if i + 1 == v.derivation.len() {
            "derived"
        } else {
            ""
        };
        let _ = writeln!(out, "{label:<12} {}", step_line(step));
    }
    out
}

/// One derivation step: what, from which parent, and what it was asked.
fn step_line(s: &Step) -> String {
    let parent = s
        .parent
        .capture_id
        .as_deref()
        .unwrap_or("a capture without an id");
    let asked = match s.op.as_str() {
        "redact" => {
            let counts = s.params.get("counts").and_then(|c| c.as_object());
            let found: Vec<String> = counts
                .into_iter()
                .flatten()
                .map(|(rule, n)| format!("{rule} {n}"))
                .collect();
            format!(
                "; rules v{} ({}): {}; non-MCP {}",
                s.params["rules_version"],
                s.params["rules_digest"]
                    .as_str()
                    .unwrap_or("?")
                    .get(..12)
                    .unwrap_or("?"),
                if found.is_empty() {
                    "nothing found".into()
                } else {
                    found.join(", ")
                },
                s.params["non_mcp"].as_str().unwrap_or("?")
            )
        }
        "slice" => format!(
            "; {} selected by {}",
            plural(s.params["messages"].as_u64().unwrap_or(0), "message"),
            selection_text(&s.params["selection"])
        ),
        _ => String::new(),
    };
    format!(
        "by {} at {} from {parent} (sha256 {}…): kept {} of {} records{asked}",
        s.op,
        s.at,
        s.parent
            .file_sha256
            .get(..16)
            .unwrap_or(&s.parent.file_sha256),
        s.records_kept,
        s.parent.records
    )
}

/// The conditions of a slice's selection that were set, as `key=value`.
fn selection_text(sel: &serde_json::Value) -> String {
    let set: Vec<String> = sel
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !(v.is_null() || v == &false || v.as_array().is_some_and(Vec::is_empty)))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if set.is_empty() {
        "no condition".into()
    } else {
        set.join(" ")
    }
}

/// What cannot be read, in one line.
fn damage_line(d: &Damage) -> String {
    if d.is_none() {
        return "none (every block read)".into();
    }
    let mut parts = Vec::new();
    if d.unreadable_blocks > 0 {
        parts.push(format!(
            "{} ({} declared)",
            plural(d.unreadable_blocks, "unreadable block"),
            plural(d.unreadable_records, "record")
        ));
    }
    if d.damaged_records > 0 {
        parts.push(plural(d.damaged_records, "damaged span"));
    }
    if d.missing_events > 0 {
        parts.push(format!(
            "{} the streams table counts are not in a readable block",
            plural(d.missing_events, "data event")
        ));
    }
    if let Some(why) = &d.unlisted {
        parts.push(why.clone());
    }
    parts.join("; ")
}

/// The seal's state in one line (the structure only: `verify` hashes the data).
fn seal_line(r: &crate::query::Report) -> String {
    let signed = r
        .signed_by
        .as_deref()
        .map_or_else(String::new, |fp| format!(", signed by {fp}"));
    match &r.verdict {
        Verdict::Intact { lossy } => format!(
            "intact{}{signed} (structure; mcpspy verify also hashes the data)",
            if *lossy { ", lossy" } else { "" }
        ),
        Verdict::NotFinished { commit, at } => {
            format!("intact up to commit {commit} at {at}, not finished{signed}")
        }
        Verdict::Altered => format!("BROKEN: {}", r.failures.first().map_or("", String::as_str)),
        Verdict::Unsealed => "none (made by an mcpspy without seals)".into(),
    }
}
