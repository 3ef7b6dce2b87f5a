//! `mcpspy show`: one message in full, for people. Its JSON pretty-printed,
//! what it answers or what answered it, the two processes as /proc named
//! them, the HTTP head it travelled in, and the raw records it came from.

use super::{clean, clean_bytes, latency, TimeFormat, WallClock};
use crate::query::{
    method_about, CopyInfo, Flow, Item, Kind, Peer, ProcessRow, SessionSummary, Sink, Transport,
};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes each item it is given in full (a sink).
pub struct Detail<W> {
    out: W,
    clock: WallClock,
    time: TimeFormat,
    processes: Vec<ProcessRow>,
    /// A line written before each item (what it is to the one before).
    pub heading: Option<String>,
}

impl<W: Write> Detail<W> {
    pub fn new(clock: WallClock, time: TimeFormat, processes: Vec<ProcessRow>, out: W) -> Self {
        Detail {
            out,
            clock,
            time,
            processes,
            heading: None,
        }
    }

    fn render(&self, item: &Item<'_>) -> String {
        let mut s = String::new();
        if let Some(h) = &self.heading {
            let _ = writeln!(s, "\n── {h} ──");
        }
        let (what, method, subject) = match &item.kind {
            Kind::Request {
                method, subject, ..
            } => ("request", Some(*method), subject.as_deref()),
            Kind::Notification {
                method, subject, ..
            } => ("notification", Some(*method), subject.as_deref()),
            Kind::Response { tool_error, .. } => (
                if *tool_error {
                    "response (the tool failed: isError)"
                } else {
                    "response"
                },
                item.kind.method(),
                item.kind.subject(),
            ),
            Kind::Error { .. } => ("error response", item.kind.method(), item.kind.subject()),
            Kind::Flagged(_) => ("flagged", None, None),
        };
        let _ = write!(s, "item {}  {what}", item.n);
        if let Some(m) = method {
            let _ = write!(s, "  {}", clean(m));
        }
        if let Some(sub) = subject {
            let _ = write!(s, " ({})", clean(sub));
        }
        s.push('\n');
        if let Some(about) = method.and_then(method_about) {
            let _ = writeln!(s, "             {about}");
        }
        let mut time = String::new();
        self.clock
            .push_time(self.time, item.ts_ns, &mut None, &mut time);
        field(&mut s, "time", &time);
        for (label, peer) in [("from", item.from), ("to", item.to)] {
            if let Some(p) = peer {
                field(&mut s, label, &self.process(p, item.ts_ns));
            }
        }
        if let Some(sess) = item.session {
            field(&mut s, "session", &session(sess));
        }
        match &item.kind {
            Kind::Request { id, .. } | Kind::Response { id, .. } => {
                field(&mut s, "id", &clean(id.get()));
            }
            Kind::Error {
                id: Some(id),
                code,
                message,
                ..
            } => {
                field(&mut s, "id", &clean(id.get()));
                let err = format!(
                    "{} {}",
                    code.map_or("-".to_string(), |c| c.to_string()),
                    clean(message.as_deref().unwrap_or(""))
                );
                field(&mut s, "error", &err);
            }
            Kind::Flagged(f) => {
                field(
                    &mut s,
                    "flag",
                    &format!("{}: {}", f.reason.code(), clean(&f.detail)),
                );
            }
            _ => {}
        }
        if let Some(a) = item.kind.answers() {
            let after = item.kind.latency_ns().map(latency).unwrap_or_default();
            let line = format!(
                "item {} ({}, id {}), sent {after} before",
                a.n,
                clean(&a.method),
                clean(&a.id)
            );
            field(&mut s, "answers", &line);
        }
        if let Some(t) = &item.transport {
            field(&mut s, "transport", &transport(t, item));
        }
        let mut flags = Vec::new();
        if item.truncated {
            flags.push("truncated: the text is not the whole message");
        }
        if item.copies_differ {
            flags.push("the writer's and the reader's copies differ (the writer's is shown)");
        }
        if item.interleaved {
            flags.push(
                "interleaved: the reader received this line in pieces, mixed with another writer's",
            );
        }
        let batch = item
            .batch
            .map(|b| format!("element {} of {} in a batch", b.index + 1, b.len));
        flags.extend(batch.as_deref());
        if !flags.is_empty() {
            field(&mut s, "notes", &flags.join("; "));
        }
        if let Some(head) = item
            .http
            .and_then(|h| h.meta)
            .and_then(|m| m.head.as_deref())
        {
            s.push_str("\nHTTP\n");
            for line in head.lines() {
                let _ = writeln!(s, "  {}", clean(line));
            }
        }
        let _ = writeln!(s, "\nJSON ({} bytes)", item.text.len());
        for line in pretty(item.text).lines() {
            let _ = writeln!(s, "  {}", clean(line));
        }
        s.push_str("\nrecords\n");
        for (label, c) in [("writer", item.writer), ("reader", item.reader)] {
            match c {
                Some(c) => {
                    let _ = writeln!(s, "  {label:<7} {}", copy(&c));
                }
                None => {
                    let _ = writeln!(s, "  {label:<7} not captured");
                }
            }
        }
        s
    }

    /// A process as the kernel named it, and as /proc described it then.
    fn process(&self, p: Peer, ts: u64) -> String {
        let mut out = format!("{}[{}]", clean(&p.comm()), p.pid);
        let row = self
            .processes
            .iter()
            .filter(|r| r.pid == p.pid && r.seen_ts_ns <= ts)
            .max_by_key(|r| r.seen_ts_ns)
            .or_else(|| self.processes.iter().find(|r| r.pid == p.pid));
        if let Some(r) = row {
            if let Some(exe) = &r.exe {
                let _ = write!(out, "  {}", clean(exe));
            }
            let args: Option<Vec<String>> = r
                .cmdline
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok());
            if let Some(args) = args {
                let _ = write!(out, "\n             {}", clean(&args.join(" ")));
            }
            if let Some((_, cgroup)) = &r.cgroup {
                let _ = write!(out, "\n             cgroup {}", clean(cgroup));
            }
            if let Some(id) = &r.container_id {
                let _ = write!(out, "  container {id}");
            }
        }
        out
    }
}

impl<W: Write> Sink for Detail<W> {
    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        let text = self.render(item);
        self.out.write_all(text.as_bytes())?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _sessions: &[SessionSummary]) -> io::Result<()> {
        self.out.flush()
    }
}

fn field(s: &mut String, label: &str, value: &str) {
    let _ = writeln!(s, "{label:<12} {value}");
}

fn session(s: &SessionSummary) -> String {
    let mut out = format!("{}", s.id);
    if let Some(v) = &s.protocol_version {
        let _ = write!(out, ", protocol {}", clean(v));
    }
    if let Some(h) = s.handshake {
        let _ = write!(out, ", opened by {h}");
    }
    if let Some(id) = s.http.as_ref().and_then(|h| h.session_id.as_deref()) {
        let _ = write!(out, ", Mcp-Session-Id {}", clean(id));
    }
    out
}

fn transport(t: &Transport, item: &Item<'_>) -> String {
    let mut out = match t {
        Transport::Pipe { ino } => format!("pipe (inode {ino})"),
        Transport::Unix { ino, peer_ino } => format!("unix socket (inodes {ino}, {peer_ino})"),
        Transport::Tcp { tls, from, to } => {
            format!("{} {from} → {to}", if *tls { "tls" } else { "tcp" })
        }
        Transport::Http {
            tls,
            client,
            server,
        } => {
            let end = |a: &Option<std::net::SocketAddr>| a.map_or("?".into(), |a| a.to_string());
            let scheme = if *tls { "https" } else { "http" };
            format!("{scheme}, client {}, server {}", end(client), end(server))
        }
        Transport::Other { ino } => format!("file (inode {ino})"),
    };
    if let Some(h) = item.http {
        let _ = write!(out, ", connection {}", h.connection);
    }
    out
}

fn copy(c: &CopyInfo<'_>) -> String {
    let seqs: Vec<String> = c.seqs.iter().map(u64::to_string).collect();
    format!(
        "pid {} fd {}, stream bytes {}..{}, records {}",
        c.stream.tgid,
        c.fd,
        c.start,
        c.end,
        seqs.join(" ")
    )
}

/// The JSON text indented, keys in their captured order; text that is not
/// JSON (damage) as it is, on one line, made safe for the terminal.
fn pretty(text: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => clean_bytes(text).into_owned(),
    }
}
