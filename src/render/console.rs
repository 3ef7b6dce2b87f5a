//! The console view: one line per message, the same live and on replay.
//!
//! ```text
//! 12:34:56.789 python[12345] → node[12346] REQ tools/call (get_weather) Run one of the server's tools
//! 12:34:56.901 node[12346] → python[12345] RESP OK tools/call (get_weather) 112.3ms
//! 12:34:57.002 python3[12] → python3[34] http 127.0.0.1:8000 POST /mcp REQ tools/call (echo) Run one of the server's tools
//! 12:34:57.004 python3[34] → python3[12] http 127.0.0.1:8000 200 sse RESP OK tools/call (echo) 1.9ms
//! ```
//!
//! HTTP lines name the scheme and server, then for a message in a request
//! the method and target, for one in a response the status (after the
//! request, unless it was a POST), and `sse` for an event of an event stream.

use super::{clean, clean_bytes, push_decimal, push_latency, TimeFormat, WallClock};
use crate::query::{
    error_name, method_about, CopyInfo, FlagReason, Flow, HttpMeta, Item, Kind, Peer, Sink,
    Transport,
};
use std::io::{self, Write};

#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleStyle {
    /// ANSI colours.
    pub color: bool,
    /// Print each message's JSON text under its line.
    pub body: bool,
    pub time: TimeFormat,
    /// Show non-MCP JSON item by item, not only as a count per process at the end.
    pub verbose: bool,
}

/// The console view, written to `out` (a sink).
pub struct Console<W> {
    out: W,
    clock: WallClock,
    style: ConsoleStyle,
    line: String,
    time: String,
    /// The last second formatted (see WallClock::push_time).
    second: Option<(i64, String)>,
    /// Non-MCP JSON not shown, per writing process (pid, comm).
    hidden: std::collections::BTreeMap<Option<(u32, String)>, u64>,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
const CYAN: &str = "\x1b[36m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BOLD_RED: &str = "\x1b[1;31m";

impl<W: Write> Sink for Console<W> {
    fn needs_text(&self) -> bool {
        self.style.body
    }

    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        // JSON that is not JSON-RPC, outside any batch: other programs' JSON on
        // a pipe that looked like MCP. Counted here, kept in the file and the export.
        let non_mcp = matches!(&item.kind, Kind::Flagged(f) if f.reason == FlagReason::NotJsonRpc)
            && item.batch.is_none();
        if non_mcp && !self.style.verbose {
            let writer = item.from.map(|p| (p.pid, p.comm().into_owned()));
            *self.hidden.entry(writer).or_default() += 1;
            return Ok(Flow::Continue);
        }
        self.write(item)?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _sessions: &[crate::query::SessionSummary]) -> io::Result<()> {
        if !self.hidden.is_empty() {
            let counts: Vec<String> = self
                .hidden
                .iter()
                .map(|(p, n)| match p {
                    Some((pid, comm)) => format!("{}[{pid}] {n}", clean(comm)),
                    None => format!("an unknown process {n}"),
                })
                .collect();
            writeln!(
                self.out,
                "-- non-MCP JSON not shown (in the file and the export; -v shows it), items by writer: {}",
                counts.join(", ")
            )?;
        }
        self.out.flush()
    }
}

impl<W: Write> Console<W> {
    pub fn new(clock: WallClock, style: ConsoleStyle, out: W) -> Self {
        Console {
            out,
            clock,
            style,
            line: String::with_capacity(256),
            time: String::with_capacity(16),
            second: None,
            hidden: Default::default(),
        }
    }

    /// Writes the item's line (and with `body`, its text).
    pub fn write(&mut self, item: &Item<'_>) -> io::Result<()> {
        self.line.clear();
        self.format(item);
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())?;
        if self.style.body && !item.text.is_empty() {
            self.out.write_all(clean_bytes(item.text).as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn paint(&mut self, color: &str, text: &str) {
        if self.style.color {
            self.line.push_str(color);
            self.line.push_str(text);
            self.line.push_str(RESET);
        } else {
            self.line.push_str(text);
        }
    }

    fn format(&mut self, item: &Item<'_>) {
        let mut time = std::mem::take(&mut self.time);
        time.clear();
        self.clock
            .push_time(self.style.time, item.ts_ns, &mut self.second, &mut time);
        self.paint(DIM, &time);
        self.time = time;
        self.line.push(' ');
        if item.from.is_some() || item.to.is_some() {
            match &item.kind {
                // A line several writers' pieces made: each of them.
                Kind::Flagged(f) if item.from.is_none() && !f.writers.is_empty() => {
                    let mut seen: Vec<Peer> = Vec::new();
                    for w in &f.writers {
                        if !seen.contains(&w.peer) {
                            if !seen.is_empty() {
                                self.line.push('+');
                            }
                            push_peer(&mut self.line, Some(w.peer));
                            seen.push(w.peer);
                        }
                    }
                }
                _ => push_peer(&mut self.line, item.from),
            }
            self.line.push_str(" → ");
            push_peer(&mut self.line, item.to);
            self.line.push(' ');
        }
        if let (Some(Transport::Http { tls, server, .. }), Some(meta)) =
            (item.transport, item.http.and_then(|h| h.meta))
        {
            push_http(&mut self.line, tls, server, meta);
            self.line.push(' ');
        }
        match &item.kind {
            Kind::Request {
                method, subject, ..
            } => {
                self.paint(CYAN, "REQ");
                self.method(method, subject.as_deref());
            }
            Kind::Notification {
                method,
                subject,
                refers_to,
                ..
            } => {
                self.paint(YELLOW, "NOTIFY");
                self.line.push(' ');
                self.line.push_str(&clean(method));
                if let Some(s) = subject {
                    self.line.push(' ');
                    self.line.push_str(&clean(s));
                }
                if let Some(r) = refers_to {
                    self.line.push_str(" (for ");
                    self.line.push_str(&clean(&r.method));
                    if let Some(s) = &r.subject {
                        self.line.push(' ');
                        self.line.push_str(&clean(s));
                    }
                    self.line.push_str(&format!(" #{})", r.n));
                }
                self.describe(method);
            }
            Kind::Response {
                answers,
                latency_ns,
                id,
                tool_error,
                ..
            } => {
                if *tool_error {
                    self.paint(RED, "RESP TOOL ERROR");
                } else {
                    self.paint(GREEN, "RESP OK");
                }
                self.answered(
                    answers.map(|a| (&*a.method, a.subject.as_deref())),
                    id.get(),
                    *latency_ns,
                );
            }
            Kind::Error {
                code,
                message,
                answers,
                latency_ns,
                id,
                ..
            } => {
                self.paint(RED, "ERR");
                self.line.push(' ');
                self.line
                    .push_str(&clean(message.as_deref().unwrap_or("(no message)")));
                match code {
                    Some(c) => match error_name(*c) {
                        Some(name) => self.line.push_str(&format!(" (code {c} {name})")),
                        None => self.line.push_str(&format!(" (code {c})")),
                    },
                    None => self.line.push_str(" (no code)"),
                }
                let id = id.map_or("null", |i| i.get());
                self.answered(
                    answers.map(|a| (&*a.method, a.subject.as_deref())),
                    id,
                    *latency_ns,
                );
            }
            Kind::Flagged(flag) => {
                let label = format!("!! {}", flag.reason.code().to_uppercase());
                self.paint(BOLD_RED, &label);
                self.line.push(' ');
                self.line.push_str(&clean(&flag.detail));
                if let Some(place) = place(item) {
                    self.line.push_str(&place);
                }
                if flag.reason == FlagReason::Unsupported && !item.text.is_empty() {
                    self.line.push_str(": ");
                    self.line.push_str(&clean_bytes(item.text));
                }
            }
        }
        if let Some(b) = item.batch {
            self.line
                .push_str(&format!(" [batch {}/{}]", b.index + 1, b.len));
        }
        if let Some(r) = item.kind.round() {
            self.line
                .push_str(&format!(" [round {} of call #{}]", r.round, r.call));
        }
        if item.copies_differ {
            self.line.push_str(" [reader's copy differs]");
        }
        if item.interleaved {
            self.line
                .push_str(" [read in pieces, mixed with another writer's]");
        }
    }

    fn method(&mut self, method: &str, subject: Option<&str>) {
        self.line.push(' ');
        self.line.push_str(&clean(method));
        if let Some(s) = subject {
            self.line.push_str(" (");
            self.line.push_str(&clean(s));
            self.line.push(')');
        }
        self.describe(method);
    }

    fn describe(&mut self, method: &str) {
        match method_about(method) {
            Some(about) => {
                self.line.push(' ');
                self.line.push_str(about);
            }
            None => self.line.push_str(" (not an MCP method)"),
        }
    }

    fn answered(
        &mut self,
        request: Option<(&str, Option<&str>)>,
        id: &str,
        latency_ns: Option<u64>,
    ) {
        match request {
            Some((method, subject)) => {
                self.line.push(' ');
                self.line.push_str(&clean(method));
                if let Some(s) = subject {
                    self.line.push_str(" (");
                    self.line.push_str(&clean(s));
                    self.line.push(')');
                }
            }
            None => {
                self.line.push_str(" to unseen request ");
                self.line.push_str(&clean(id));
            }
        }
        if let Some(ns) = latency_ns {
            self.line.push(' ');
            push_latency(&mut self.line, ns);
        }
    }
}

/// `http 127.0.0.1:8000 POST /mcp`, `https example.org 200 sse`.
fn push_http(line: &mut String, tls: bool, server: Option<std::net::SocketAddr>, m: &HttpMeta) {
    line.push_str(if tls { "https " } else { "http " });
    match (&m.host, server) {
        (Some(host), _) => line.push_str(&clean(host)),
        (None, Some(addr)) => line.push_str(&addr.to_string()),
        (None, None) => line.push('?'),
    }
    let request = |line: &mut String| {
        if let (Some(method), Some(path)) = (&m.method, &m.path) {
            line.push(' ');
            line.push_str(&clean(method));
            line.push(' ');
            line.push_str(&clean(path));
        }
    };
    if m.is_request || m.method.as_deref() != Some("POST") {
        request(line);
    }
    if let Some(status) = m.status {
        line.push_str(&format!(" {status}"));
    }
    if m.sse {
        line.push_str(" sse");
    }
}

fn push_peer(line: &mut String, p: Option<Peer>) {
    match p {
        Some(p) => {
            line.push_str(&clean(&p.comm()));
            line.push('[');
            push_decimal(line, u64::from(p.pid), 1);
            line.push(']');
        }
        None => line.push('?'),
    }
}

/// Where damage sits: the transport and each copy's stream offset.
fn place(item: &Item<'_>) -> Option<String> {
    let copy = |label: &str, c: &CopyInfo<'_>| {
        format!(
            "{label} pid {} fd {} offset {}",
            c.stream.tgid, c.fd, c.start
        )
    };
    let mut parts = Vec::new();
    if let Some(t) = &item.transport {
        parts.push(match t {
            Transport::Pipe { ino } => format!("pipe {ino}"),
            Transport::Unix { ino, .. } => format!("unix socket {ino}"),
            Transport::Tcp { tls, from, to } => {
                format!("{} {from} → {to}", if *tls { "tls" } else { "tcp" })
            }
            Transport::Http {
                tls,
                client,
                server,
            } => {
                let end =
                    |a: &Option<std::net::SocketAddr>| a.map_or("?".to_string(), |a| a.to_string());
                let scheme = if *tls { "https" } else { "http" };
                match item.http {
                    Some(h) => format!(
                        "{scheme} connection {} {} ↔ {}",
                        h.connection,
                        end(client),
                        end(server)
                    ),
                    None => format!("{scheme} {} ↔ {}", end(client), end(server)),
                }
            }
            Transport::Other { ino } => format!("file {ino}"),
        });
    }
    if let Some(c) = &item.writer {
        parts.push(copy("writer", c));
    }
    if let Some(c) = &item.reader {
        parts.push(copy("reader", c));
    }
    (!parts.is_empty()).then(|| format!(" [{}]", parts.join(", ")))
}
