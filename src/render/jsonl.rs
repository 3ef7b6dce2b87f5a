//! JSONL export: one object per item (schema: docs/jsonl.md).

use super::WallClock;
use crate::query::{
    CopyInfo, Direction, Flow, HttpMeta, Item, Kind, Peer, ProcessRow, RequestRef, SessionSummary,
    Sink, Transport,
};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;

/// JSONL, written to `out` (a sink).
pub struct Jsonl<W> {
    out: W,
    clock: WallClock,
    /// (second, "YYYY-MM-DDTHH:MM:SS") of the last timestamp written.
    second: Option<(i64, String)>,
    buf: Vec<u8>,
    /// Each process's cgroup path and container id, where the capture has them.
    cgroups: HashMap<u32, (String, Option<String>)>,
}

impl<W: Write> Sink for Jsonl<W> {
    fn process(&mut self, row: &ProcessRow) {
        // Rows come in the order they were seen: the last one of a pid stands.
        if let Some((_, path)) = &row.cgroup {
            self.cgroups
                .insert(row.pid, (path.clone(), row.container_id.clone()));
        }
    }

    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        self.buf.clear();
        self.object(item);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _sessions: &[SessionSummary]) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Jsonl<W> {
    pub fn new(clock: WallClock, out: W) -> Self {
        Jsonl {
            out,
            clock,
            second: None,
            buf: Vec::with_capacity(4096),
            cgroups: HashMap::new(),
        }
    }

    /// The writer, once the output is complete.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn key(&mut self, k: &str) {
        self.buf.push(b',');
        self.buf.push(b'"');
        self.raw(k);
        self.raw("\":");
    }

    fn string(&mut self, s: &str) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, s);
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw("null"),
        }
    }

    /// Integers and floats as serde_json writes them (no `fmt` machinery).
    fn number(&mut self, n: impl serde::Serialize) {
        let _ = serde_json::to_writer(&mut self.buf, &n);
    }

    /// A captured JSON value, byte for byte; a value spread over lines
    /// (possible in HTTP bodies) is joined so that the record stays one line.
    fn json(&mut self, raw: Option<&str>) {
        match raw {
            None => self.raw("null"),
            Some(r) if memchr::memchr2(b'\n', b'\r', r.as_bytes()).is_none() => self.raw(r),
            Some(r) => minify_into(r, &mut self.buf),
        }
    }

    fn timestamp(&mut self, ts_ns: u64) {
        let Some(t) = self.clock.utc(ts_ns) else {
            return self.raw("null");
        };
        let secs = t.timestamp();
        if self.second.as_ref().is_none_or(|(s, _)| *s != secs) {
            self.second = Some((secs, t.format("%Y-%m-%dT%H:%M:%S").to_string()));
        }
        if let Some((_, prefix)) = &self.second {
            let _ = write!(self.buf, "\"{prefix}.{:09}Z\"", t.timestamp_subsec_nanos());
        }
    }

    fn peer(&mut self, p: Option<Peer>) {
        match p {
            Some(p) => {
                self.raw("{\"pid\":");
                self.number(p.pid);
                self.raw(",\"comm\":");
                self.string(&p.comm());
                // Written from the table beside the buffer (fields borrowed
                // apart): no copy of the strings per item.
                if let Some((cgroup, container)) = self.cgroups.get(&p.pid) {
                    let buf = &mut self.buf;
                    buf.extend_from_slice(b",\"cgroup\":");
                    let _ = serde_json::to_writer(&mut *buf, cgroup);
                    buf.extend_from_slice(b",\"container_id\":");
                    let _ = serde_json::to_writer(&mut *buf, container);
                }
                self.raw("}");
            }
            None => self.raw("null"),
        }
    }

    fn request_ref(&mut self, r: &RequestRef) {
        self.raw("{\"n\":");
        self.number(r.n);
        self.raw(",\"id\":");
        self.json(Some(&r.id));
        self.raw(",\"method\":");
        self.string(&r.method);
        if let Some(s) = &r.subject {
            self.raw(",\"subject\":");
            self.string(s);
        }
        self.raw(",\"ts_ns\":");
        self.number(r.ts_ns);
        self.raw("}");
    }

    fn copy(&mut self, c: &Option<CopyInfo<'_>>) {
        let Some(c) = c else {
            return self.raw("null");
        };
        self.raw("{");
        self.place(c.stream.tgid, c.fd, c.start, c.end);
        self.raw(",\"ts_ns\":");
        self.number(c.last_ts);
        self.raw(",\"seqs\":[");
        for (i, s) in c.seqs.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.number(s);
        }
        self.raw("]}");
    }

    /// A byte range of one process's stream: `"pid":…,"fd":…,"offset":…,"end":…`.
    fn place(&mut self, pid: u32, fd: u32, start: u64, end: u64) {
        self.raw("\"pid\":");
        self.number(pid);
        self.raw(",\"fd\":");
        self.number(fd);
        self.raw(",\"offset\":");
        self.number(start);
        self.raw(",\"end\":");
        self.number(end);
    }

    fn object(&mut self, item: &Item<'_>) {
        self.raw("{\"n\":");
        self.number(item.n);
        self.key("timestamp");
        self.timestamp(item.ts_ns);
        self.key("ts_ns");
        self.number(item.ts_ns);
        self.key("transport_type");
        self.opt_string(item.transport.as_ref().map(Transport::family));
        self.key("stdio_transport");
        match item.transport {
            Some(Transport::Pipe { ino }) => self.stdio(item, "pipe", ino, None),
            Some(Transport::Unix { ino, peer_ino }) => {
                self.stdio(item, "unix", ino, Some(peer_ino))
            }
            _ => self.raw("null"),
        }
        let meta = item.http.and_then(|h| h.meta);
        let tcp = match item.transport {
            Some(Transport::Tcp { tls, from, to }) => Some((tls, from, to)),
            Some(Transport::Http {
                tls,
                client: Some(c),
                server: Some(s),
            }) => meta.map(|m| {
                if m.is_request {
                    (tls, c, s)
                } else {
                    (tls, s, c)
                }
            }),
            _ => None,
        };
        if let Some((tls, from, to)) = tcp {
            self.key("tcp_transport");
            self.raw("{\"from\":");
            self.string(&from.to_string());
            self.raw(",\"to\":");
            self.string(&to.to_string());
            self.raw(",\"tls\":");
            self.raw(if tls { "true" } else { "false" });
            self.raw("}");
        }
        if let (Some(Transport::Http { client, server, .. }), Some(h)) = (item.transport, item.http)
        {
            self.key("http_transport");
            self.http(item, h.connection, meta, client, server);
        }
        let (kind, id, params, result, error) = match &item.kind {
            Kind::Request { id, params, .. } => ("request", Some(id.get()), *params, None, None),
            Kind::Notification { params, .. } => ("notification", None, *params, None, None),
            Kind::Response { id, result, .. } => {
                ("response", Some(id.get()), None, Some(*result), None)
            }
            Kind::Error { id, error, .. } => {
                ("error", id.map(|i| i.get()), None, None, Some(*error))
            }
            Kind::Flagged(_) => ("flagged", None, None, None, None),
        };
        self.key("type");
        self.string(kind);
        self.key("id");
        self.json(id);
        self.key("method");
        self.opt_string(item.kind.method());
        self.key("params");
        self.json(params.map(|r| r.get()));
        self.key("result");
        self.json(result.map(|r| r.get()));
        self.key("error");
        self.json(error.map(|r| r.get()));
        self.key("direction");
        self.opt_string(item.direction.map(|d| match d {
            Direction::ClientToServer => "client->server",
            Direction::ServerToClient => "server->client",
        }));
        self.key("session");
        match item.session {
            Some(s) => {
                self.raw("{\"id\":");
                self.number(s.id);
                self.raw(",\"client\":");
                self.peer(s.client);
                self.raw(",\"server\":");
                self.peer(s.server);
                self.raw("}");
            }
            None => self.raw("null"),
        }
        if let Some(subject) = item.kind.subject() {
            self.key("subject");
            self.string(subject);
        }
        if let Some(r) = item.kind.round() {
            self.key("round");
            self.raw("{\"call\":");
            self.number(r.call);
            self.raw(",\"round\":");
            self.number(r.round);
            self.raw("}");
        }
        match &item.kind {
            Kind::Response { answers, .. } | Kind::Error { answers, .. } => {
                self.key("request");
                match answers {
                    Some(r) => self.request_ref(r),
                    None => self.raw("null"),
                }
                self.key("latency_ms");
                match item.kind.latency_ns() {
                    Some(ns) => self.number(ns as f64 / 1e6),
                    None => self.raw("null"),
                }
                if let Kind::Response {
                    tool_error: true, ..
                } = item.kind
                {
                    self.key("tool_error");
                    self.raw("true");
                }
            }
            kind => {
                if let Some(r) = kind.linked() {
                    self.key("request");
                    self.request_ref(r);
                }
            }
        }
        if let Kind::Flagged(flag) = &item.kind {
            self.key("flag");
            self.raw("{\"reason\":");
            self.string(flag.reason.code());
            self.raw(",\"detail\":");
            self.string(&flag.detail);
            self.raw(",\"stream_bytes\":");
            self.number(flag.len);
            if !flag.writers.is_empty() {
                self.raw(",\"writers\":[");
                for (i, w) in flag.writers.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    self.raw("{");
                    self.place(w.peer.pid, w.fd, w.start, w.end);
                    self.raw(",\"comm\":");
                    self.string(&w.peer.comm());
                    self.raw("}");
                }
                self.raw("]");
            }
            self.raw("}");
            self.key("text");
            self.string(&String::from_utf8_lossy(item.text));
        }
        self.key("size_bytes");
        self.number(item.text.len());
        self.key("truncated");
        self.raw(if item.truncated { "true" } else { "false" });
        if let Some(b) = item.batch {
            self.key("batch");
            self.raw("{\"index\":");
            self.number(b.index);
            self.raw(",\"size\":");
            self.number(b.len);
            self.raw("}");
        }
        if item.copies_differ {
            self.key("copies_differ");
            self.raw("true");
        }
        if item.interleaved {
            self.key("interleaved");
            self.raw("true");
        }
        self.key("records");
        self.raw("{\"writer\":");
        self.copy(&item.writer);
        self.raw(",\"reader\":");
        self.copy(&item.reader);
        self.raw("}}");
    }

    fn stdio(&mut self, item: &Item<'_>, kind: &str, ino: u64, peer_ino: Option<u64>) {
        self.raw("{\"from_pid\":");
        self.opt_number(item.from.map(|p| p.pid));
        self.raw(",\"from_comm\":");
        self.opt_string(item.from.as_ref().map(Peer::comm).as_deref());
        self.raw(",\"to_pid\":");
        self.opt_number(item.to.map(|p| p.pid));
        self.raw(",\"to_comm\":");
        self.opt_string(item.to.as_ref().map(Peer::comm).as_deref());
        self.raw(",\"fd_kind\":");
        self.string(kind);
        self.raw(",\"ino\":");
        self.number(ino);
        if let Some(p) = peer_ino {
            self.raw(",\"peer_ino\":");
            self.number(p);
        }
        self.raw("}");
    }

    fn http(
        &mut self,
        item: &Item<'_>,
        connection: u64,
        meta: Option<&HttpMeta>,
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
    ) {
        self.raw("{\"pid\":");
        self.opt_number(item.from.map(|p| p.pid));
        self.raw(",\"comm\":");
        self.opt_string(item.from.as_ref().map(Peer::comm).as_deref());
        self.raw(",\"peer_pid\":");
        self.opt_number(item.to.map(|p| p.pid));
        self.raw(",\"peer_comm\":");
        self.opt_string(item.to.as_ref().map(Peer::comm).as_deref());
        self.raw(",\"connection\":");
        self.number(connection);
        self.raw(",\"client\":");
        self.opt_string(client.map(|a| a.to_string()).as_deref());
        self.raw(",\"server\":");
        self.opt_string(server.map(|a| a.to_string()).as_deref());
        self.raw(",\"host\":");
        self.opt_string(meta.and_then(|m| m.host.as_deref()));
        self.raw(",\"is_request\":");
        match meta {
            Some(m) => self.raw(if m.is_request { "true" } else { "false" }),
            None => self.raw("null"),
        }
        self.raw(",\"method\":");
        self.opt_string(meta.and_then(|m| m.method.as_deref()));
        self.raw(",\"path\":");
        self.opt_string(meta.and_then(|m| m.path.as_deref()));
        self.raw(",\"status\":");
        match meta.and_then(|m| m.status) {
            Some(s) => self.number(s),
            None => self.raw("null"),
        }
        self.raw(",\"session_id\":");
        self.opt_string(meta.and_then(|m| m.session_id.as_deref()));
        self.raw(",\"protocol_version\":");
        self.opt_string(meta.and_then(|m| m.protocol_version.as_deref()));
        self.raw(",\"sse\":");
        self.raw(if meta.is_some_and(|m| m.sse) {
            "true"
        } else {
            "false"
        });
        self.raw("}");
    }

    fn opt_number(&mut self, n: Option<u32>) {
        match n {
            Some(n) => self.number(n),
            None => self.raw("null"),
        }
    }
}

/// Drops the whitespace between JSON tokens (never inside strings).
fn minify_into(json: &str, out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::minify_into;

    #[test]
    fn minify_keeps_strings() {
        let mut v = Vec::new();
        minify_into("{\n  \"a b\": [1, \"x\\\" y\"]\r\n}", &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), r#"{"a b":[1,"x\" y"]}"#);
    }
}
