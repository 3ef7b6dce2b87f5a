//! `query --summary`: tables per method (and tool) and per session, as
//! text fitted to the terminal, or as CSV or JSON for scripts.

use super::size::human_bytes;
use super::{clean, latency, WallClock};
use crate::query::{
    DropRow, Flow, Implementation, Item, Kind, Peer, SessionSummary, Sink, Transport,
};
use comfy_table::{presets, CellAlignment, ContentArrangement, Row, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// What the tables are written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// How the tables are written (the command line's --format, --wide).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub format: Format,
    /// Cells in full and the capabilities table, whatever the width.
    pub wide: bool,
    /// The terminal's width, when there is one to fit.
    pub width: Option<u16>,
}

#[derive(Default)]
struct MethodAcc {
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
struct SessionAcc {
    messages: u64,
    flagged: u64,
    first: u64,
    last: u64,
}

/// One row of the method table; CSV and JSON take it as it is.
#[derive(Serialize)]
struct MethodRow {
    method: String,
    tool: String,
    count: u64,
    responses: u64,
    errors: u64,
    tool_errors: u64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    max_ms: Option<f64>,
    bytes: u64,
}

/// One row of the session table.
#[derive(Serialize)]
struct SessionRow {
    session: u64,
    transport: String,
    client: String,
    server: String,
    protocol: String,
    messages: u64,
    flagged: u64,
    first: String,
    last: String,
    drops: u64,
    client_capabilities: Option<String>,
    server_capabilities: Option<String>,
}

/// Accumulates the items shown, then writes the tables to `out` (a sink).
pub struct Summary<W> {
    out: W,
    clock: WallClock,
    layout: Layout,
    /// The capture's drop ledger: losses per session.
    drops: Vec<DropRow>,
    methods: BTreeMap<(String, String), MethodAcc>,
    sessions: BTreeMap<u64, SessionAcc>,
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
        let methods = self.method_rows();
        let sessions = self.session_rows(sessions);
        let text = match self.layout.format {
            Format::Table => self.tables(&methods, &sessions),
            Format::Csv => csv_tables(&methods, &sessions)?,
            Format::Json => {
                let all = serde_json::json!({
                    "methods": methods,
                    "sessions": sessions,
                    "outside_sessions": self.loose_flags,
                });
                format!("{all}\n")
            }
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

impl<W: Write> Summary<W> {
    pub fn new(clock: WallClock, drops: Vec<DropRow>, layout: Layout, out: W) -> Self {
        Summary {
            out,
            clock,
            layout,
            drops,
            methods: BTreeMap::new(),
            sessions: BTreeMap::new(),
            loose_flags: BTreeMap::new(),
        }
    }

    /// An item, and the size of its text (which may not be at hand).
    fn add(&mut self, item: &Item<'_>, text_len: u64) {
        if let Some(s) = item.session {
            let row = self.sessions.entry(s.id).or_insert_with(|| SessionAcc {
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

    fn method_rows(&mut self) -> Vec<MethodRow> {
        let ms = |ns: Option<u64>| ns.map(|v| v as f64 / 1e6);
        self.methods
            .iter_mut()
            .map(|((method, tool), acc)| {
                acc.latencies.sort_unstable();
                MethodRow {
                    method: method.clone(),
                    tool: tool.clone(),
                    count: acc.count,
                    responses: acc.responses,
                    errors: acc.errors,
                    tool_errors: acc.tool_errors,
                    p50_ms: ms(percentile(&acc.latencies, 0.50)),
                    p95_ms: ms(percentile(&acc.latencies, 0.95)),
                    max_ms: ms(acc.latencies.last().copied()),
                    bytes: acc.bytes,
                }
            })
            .collect()
    }

    fn session_rows(&self, sessions: &[SessionSummary]) -> Vec<SessionRow> {
        let text = self.layout.format == Format::Table;
        let time = |ts: u64| {
            if text {
                self.clock.local_datetime(ts)
            } else {
                self.clock
                    .utc(ts)
                    .map_or_else(|| ts.to_string(), |t| t.to_rfc3339())
            }
        };
        let mut rows = Vec::new();
        for (id, acc) in &self.sessions {
            let Some(s) = sessions.iter().find(|s| s.id == *id) else {
                continue;
            };
            let drops: u64 = self
                .drops
                .iter()
                .filter(|d| d.start_ktime_ns <= acc.last && d.end_ktime_ns >= acc.first)
                .map(DropRow::losses)
                .sum();
            let (client, server) = match (s.client, s.server) {
                (None, None) => (s.ends[0], s.ends[1]),
                pair => pair,
            };
            rows.push(SessionRow {
                session: *id,
                transport: s
                    .transport
                    .map_or("-".into(), |t| transport_name(&t, s, text)),
                client: end(client, s.client_info.as_ref()),
                server: end(server, s.server_info.as_ref()),
                protocol: clean(s.protocol_version.as_deref().unwrap_or("-")).into_owned(),
                messages: acc.messages,
                flagged: acc.flagged,
                first: time(acc.first),
                last: time(acc.last),
                drops,
                client_capabilities: s.client_capabilities.clone(),
                server_capabilities: s.server_capabilities.clone(),
            });
        }
        rows
    }

    /// The tables as text, fitted to the width (unless wide).
    fn tables(&self, methods: &[MethodRow], sessions: &[SessionRow]) -> String {
        let dash = |v: Option<f64>| v.map_or("-".into(), |ms| latency((ms * 1e6) as u64));
        let mut m = self.new_table(&[
            "method", "tool", "count", "resp", "errors", "tool err", "p50", "p95", "max", "bytes",
        ]);
        for r in methods {
            self.add_row(
                &mut m,
                vec![
                    clean(&r.method).into_owned(),
                    clean(&r.tool).into_owned(),
                    r.count.to_string(),
                    r.responses.to_string(),
                    r.errors.to_string(),
                    r.tool_errors.to_string(),
                    dash(r.p50_ms),
                    dash(r.p95_ms),
                    dash(r.max_ms),
                    human_bytes(r.bytes),
                ],
            );
        }
        right_align(&mut m, 2..10);
        let mut s = self.new_table(&[
            "session",
            "transport",
            "client",
            "server",
            "protocol",
            "msgs",
            "flagged",
            "first",
            "last",
            "drops",
        ]);
        for r in sessions {
            self.add_row(
                &mut s,
                vec![
                    r.session.to_string(),
                    r.transport.clone(),
                    r.client.clone(),
                    r.server.clone(),
                    r.protocol.clone(),
                    r.messages.to_string(),
                    r.flagged.to_string(),
                    r.first.clone(),
                    r.last.clone(),
                    r.drops.to_string(),
                ],
            );
        }
        right_align(&mut s, 5..7);
        right_align(&mut s, 9..10);
        let mut out = format!("{m}\n{s}\n");
        let caps: Vec<&SessionRow> = sessions
            .iter()
            .filter(|r| r.client_capabilities.is_some() || r.server_capabilities.is_some())
            .collect();
        if self.layout.wide && !caps.is_empty() {
            let mut c = self.new_table(&["session", "client capabilities", "server capabilities"]);
            for r in caps {
                let cap = |v: &Option<String>| clean(v.as_deref().unwrap_or("-")).into_owned();
                self.add_row(
                    &mut c,
                    vec![
                        r.session.to_string(),
                        cap(&r.client_capabilities),
                        cap(&r.server_capabilities),
                    ],
                );
            }
            out.push_str(&format!("{c}\n"));
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

    fn new_table(&self, header: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.force_no_tty();
        if let (Some(width), false) = (self.layout.width, self.layout.wide) {
            t.set_width(width);
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_truncation_indicator("…");
        }
        t.set_header(header.to_vec());
        t
    }

    /// A row of one line: what does not fit the width is cut (unless wide).
    fn add_row(&self, t: &mut Table, cells: Vec<String>) {
        let mut row = Row::from(cells);
        if self.layout.width.is_some() && !self.layout.wide {
            row.max_height(1);
        }
        t.add_row(row);
    }
}

/// The two tables as CSV, one after the other, a blank line between.
fn csv_tables(methods: &[MethodRow], sessions: &[SessionRow]) -> io::Result<String> {
    let mut out = Vec::new();
    for (i, part) in [csv_of(methods)?, csv_of(sessions)?]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend(part);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn csv_of<T: Serialize>(rows: &[T]) -> io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(io::Error::other)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
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
/// and how many connections carried the session (one item a line in text).
fn transport_name(t: &Transport, s: &SessionSummary, text: bool) -> String {
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
    let sep = if text { "\n" } else { "; " };
    let mut out = format!("{name} {}", clean(h.host.as_deref().unwrap_or("?")));
    if let Some(id) = &h.session_id {
        out.push_str(&format!("{sep}session {}", clean(id)));
    }
    out.push_str(&format!(
        "{sep}{}{}",
        super::plural(h.connections, "connection"),
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
