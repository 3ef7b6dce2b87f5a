//! `query --summary`: tables per method (and tool) and per session.

use super::{clean, latency, WallClock};
use crate::query::{
    DropRow, Flow, Implementation, Item, Kind, Peer, SessionSummary, Sink, Transport,
};
use comfy_table::{presets, CellAlignment, Table};
use std::collections::BTreeMap;
use std::io::{self, Write};

#[derive(Default)]
struct MethodRow {
    /// Requests and notifications.
    count: u64,
    responses: u64,
    errors: u64,
    /// tools/call results with isError.
    tool_errors: u64,
    latencies: Vec<u64>,
    bytes: u64,
}

#[derive(Default)]
struct SessionRow {
    messages: u64,
    flagged: u64,
    first: u64,
    last: u64,
}

/// Accumulates the items shown, then writes the tables to `out` (a sink).
pub struct Summary<W> {
    out: W,
    clock: WallClock,
    /// The capture's drop ledger: losses per session.
    drops: Vec<DropRow>,
    methods: BTreeMap<(String, String), MethodRow>,
    sessions: BTreeMap<u64, SessionRow>,
    /// Damage outside any session, by reason.
    loose_flags: BTreeMap<&'static str, u64>,
}

impl<W: Write> Sink for Summary<W> {
    fn needs_text(&self) -> bool {
        false
    }

    fn item(&mut self, item: &Item<'_>, text_len: u64) -> io::Result<Flow> {
        self.add(item, text_len);
        Ok(Flow::Continue)
    }

    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        let tables = self.render(sessions);
        self.out.write_all(tables.as_bytes())?;
        self.out.flush()
    }
}

impl<W: Write> Summary<W> {
    pub fn new(clock: WallClock, drops: Vec<DropRow>, out: W) -> Self {
        Summary {
            out,
            clock,
            drops,
            methods: BTreeMap::new(),
            sessions: BTreeMap::new(),
            loose_flags: BTreeMap::new(),
        }
    }

    /// An item, and the size of its text (which may not be at hand).
    fn add(&mut self, item: &Item<'_>, text_len: u64) {
        if let Some(s) = item.session {
            let row = self.sessions.entry(s.id).or_insert_with(|| SessionRow {
                first: item.ts_ns,
                last: item.ts_ns,
                ..Default::default()
            });
            row.first = row.first.min(item.ts_ns);
            row.last = row.last.max(item.ts_ns);
            match item.kind {
                Kind::Flagged(_) => row.flagged += 1,
                _ => row.messages += 1,
            }
        }
        let key = match &item.kind {
            Kind::Flagged(f) => {
                if item.session.is_none() {
                    *self.loose_flags.entry(f.reason.code()).or_default() += 1;
                }
                return;
            }
            k => (
                k.method()
                    .unwrap_or("(response to an unseen request)")
                    .to_string(),
                k.subject()
                    .filter(|_| k.method() == Some("tools/call"))
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        let row = self.methods.entry(key).or_default();
        row.bytes += text_len;
        match &item.kind {
            Kind::Request { .. } | Kind::Notification { .. } => row.count += 1,
            Kind::Response { tool_error, .. } => {
                row.responses += 1;
                row.tool_errors += u64::from(*tool_error);
            }
            Kind::Error { .. } => {
                row.responses += 1;
                row.errors += 1;
            }
            Kind::Flagged(_) => {}
        }
        if let Some(l) = item.kind.latency_ns() {
            row.latencies.push(l);
        }
    }

    /// The two tables (and a line on damage outside sessions).
    fn render(&mut self, sessions: &[SessionSummary]) -> String {
        let (drops, clock) = (&self.drops, &self.clock);
        let mut methods = new_table(&[
            "method",
            "tool",
            "count",
            "responses",
            "errors",
            "tool errors",
            "p50",
            "p95",
            "max",
            "bytes",
        ]);
        for ((method, tool), row) in &mut self.methods {
            row.latencies.sort_unstable();
            let pct = |p: f64| percentile(&row.latencies, p).map_or("-".into(), latency);
            methods.add_row(vec![
                clean(method).into_owned(),
                clean(tool).into_owned(),
                row.count.to_string(),
                row.responses.to_string(),
                row.errors.to_string(),
                row.tool_errors.to_string(),
                pct(0.50),
                pct(0.95),
                row.latencies.last().map_or("-".into(), |&l| latency(l)),
                row.bytes.to_string(),
            ]);
        }
        right_align(&mut methods, 2..10);
        let mut table = new_table(&[
            "session",
            "transport",
            "client",
            "server",
            "protocol",
            "messages",
            "flagged",
            "first",
            "last",
            "drops",
        ]);
        for (id, row) in &self.sessions {
            let Some(s) = sessions.iter().find(|s| s.id == *id) else {
                continue;
            };
            let lost: u64 = drops
                .iter()
                .filter(|d| d.start_ktime_ns <= row.last && d.end_ktime_ns >= row.first)
                .map(DropRow::losses)
                .sum();
            let (client, server) = match (s.client, s.server) {
                (None, None) => (s.ends[0], s.ends[1]),
                pair => pair,
            };
            table.add_row(vec![
                id.to_string(),
                s.transport.map_or("-".into(), |t| transport_name(&t, s)),
                end(client, s.client_info.as_ref()),
                end(server, s.server_info.as_ref()),
                clean(s.protocol_version.as_deref().unwrap_or("-")).into_owned(),
                row.messages.to_string(),
                row.flagged.to_string(),
                clock.local_datetime(row.first),
                clock.local_datetime(row.last),
                lost.to_string(),
            ]);
        }
        right_align(&mut table, 5..7);
        right_align(&mut table, 9..10);
        let mut out = format!("{methods}\n{table}\n");
        // Capabilities as exchanged (raw JSON), for the sessions shown.
        let mut caps = new_table(&["session", "client capabilities", "server capabilities"]);
        let mut any = false;
        for s in sessions
            .iter()
            .filter(|s| self.sessions.contains_key(&s.id))
        {
            if s.client_capabilities.is_some() || s.server_capabilities.is_some() {
                any = true;
                caps.add_row(vec![
                    s.id.to_string(),
                    clean(s.client_capabilities.as_deref().unwrap_or("-")).into_owned(),
                    clean(s.server_capabilities.as_deref().unwrap_or("-")).into_owned(),
                ]);
            }
        }
        if any {
            out.push_str(&format!("{caps}\n"));
        }
        if !self.loose_flags.is_empty() {
            let parts: Vec<String> = self
                .loose_flags
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            out.push_str(&format!("outside any session: {}\n", parts.join(", ")));
        }
        out
    }
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn right_align(t: &mut Table, cols: std::ops::Range<usize>) {
    for c in cols {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The transport; for HTTP, the server, the session id when there is one,
/// and how many connections carried the session.
fn transport_name(t: &Transport, s: &SessionSummary) -> String {
    let name = match t {
        Transport::Pipe { .. } => "pipe",
        Transport::Unix { .. } => "unix",
        Transport::Tcp { tls: true, .. } => "tls",
        Transport::Tcp { .. } => "tcp",
        Transport::Http { tls: true, .. } => "https",
        Transport::Http { .. } => "http",
        Transport::Other { .. } => "other",
    };
    let Some(h) = &s.http else {
        return name.to_string();
    };
    let mut out = format!("{name} {}", clean(h.host.as_deref().unwrap_or("?")));
    if let Some(id) = &h.session_id {
        out.push_str(&format!("\nsession {}", clean(id)));
    }
    out.push_str(&format!(
        "\n{} connection{}{}",
        h.connections,
        if h.connections == 1 { "" } else { "s" },
        if h.deleted { ", deleted" } else { "" }
    ));
    out
}

fn end(p: Option<Peer>, info: Option<&Implementation>) -> String {
    let mut s = match p {
        Some(p) => format!("{}[{}]", clean(&p.comm()), p.pid),
        None => "?".to_string(),
    };
    if let Some(i) = info {
        for part in [&i.name, &i.version].into_iter().flatten() {
            s.push(' ');
            s.push_str(&clean(part));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&[7], 0.95), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
