//! OTLP export (docs/otlp.md): each request and its response as spans and
//! duration metrics, as the OpenTelemetry semantic conventions for MCP
//! define them; [`semconv`] maps an item to the conventions' attributes,
//! [`metrics`] aggregates the histograms, and [`export`] takes the finished
//! requests to a file or a collector.
//!
//! A span is `mcp.client` (kind CLIENT) when the sender's copy of the
//! request was captured, `mcp.server` (kind SERVER) when the receiver's
//! was: both when both ends were on the host. Span and trace ids are
//! derived from the capture's id and the item's number, so that an export
//! is reproducible; a `traceparent` in `params._meta` gives the trace and
//! the parent instead, joining the traces instrumented peers send.

mod attributes;
mod export;
mod metrics;
mod offloaded;
mod semconv;

pub use export::{Background, Destination, Exporter, Http, JsonLines, Report, Sent, Tally};
pub use offloaded::Offloaded;

use super::{sha256, CaptureId, WallClock};
use crate::query::{CopyInfo, Direction, Flag, Flow, Item, Kind, ProcessRow, SessionSummary, Sink};
use attributes::List;
use metrics::{Instrument, Metrics};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use semconv::{Network, Outcome, Remote};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;

/// How the sink batches and what it includes.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `gen_ai.tool.call.arguments` and `.result` (opt-in: captured content).
    pub content: bool,
    /// Spans per traces request.
    pub batch: usize,
    /// Send the metrics every so often (capture time, ns), not only at the end.
    pub metrics_every_ns: Option<u64>,
}

/// Requests waiting for a response at most; beyond, the oldest is given
/// up as unanswered, so that memory stays bounded.
const MAX_PENDING: usize = 1 << 16;
/// Finished requests kept for their buffers.
const SPARE_PENDING: usize = 64;
/// W3C trace flags: sampled (every span mcpspy makes is sent).
const SAMPLED: u32 = 0x01;
/// Span flags: whether the parent is remote is known, and it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The OTLP sink.
pub struct Otlp<E> {
    exporter: E,
    opts: Options,
    /// Unix ns at kernel time 0 (the capture's clock pair), if it has one.
    unix_at_zero: Option<i128>,
    resource: Resource,
    /// The capture's id as key material for span and trace ids.
    key: [u64; 3],
    /// pid → executable name and command line.
    processes: BTreeMap<u32, (Option<String>, Option<String>)>,
    pending: BTreeMap<u64, Pending>,
    spans: Vec<Span>,
    /// Spans the exporter is done with, and finished requests: their
    /// buffers are written over by the next (see [`attributes`]).
    spare_spans: Vec<Span>,
    spare_pending: Vec<Pending>,
    metrics: Metrics,
    /// Which sides of each session were captured (client, server).
    sides: BTreeMap<u64, (bool, bool)>,
    /// Capture times of the first and last item, and of the last metrics sent.
    first_ts: Option<u64>,
    last_ts: u64,
    metrics_sent_ts: u64,
}

/// A request waiting for its response.
#[derive(Default)]
struct Pending {
    name: String,
    /// What both sides' spans carry.
    attributes: List,
    network: Network,
    trace_id: [u8; 16],
    remote: Option<Remote>,
    direction: Option<Direction>,
    /// The sender's and the receiver's copy: (completed at, pid).
    client: Option<(u64, u32)>,
    server: Option<(u64, u32)>,
    protocol: Option<String>,
    session_id: Option<String>,
    events: Vec<Event>,
    /// A tools/call: its result is content too.
    tool_call: bool,
    arguments: Option<AnyValue>,
}

/// Which end of an operation a span describes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl<E: Exporter> Otlp<E> {
    pub fn new(
        exporter: E,
        opts: Options,
        clock: WallClock,
        meta: &BTreeMap<String, String>,
    ) -> Self {
        let capture = CaptureId::from_meta(meta);
        let digest = sha256(capture.id.as_bytes());
        let word =
            |i: usize| u64::from_le_bytes(digest[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Otlp {
            exporter,
            opts,
            unix_at_zero: clock
                .utc(0)
                .and_then(|t| t.timestamp_nanos_opt())
                .map(i128::from),
            resource: semconv::resource(meta, &capture),
            key: [word(0), word(1), word(2)],
            processes: BTreeMap::new(),
            pending: BTreeMap::new(),
            spans: Vec::new(),
            spare_spans: Vec::new(),
            spare_pending: Vec::new(),
            metrics: Metrics::default(),
            sides: BTreeMap::new(),
            first_ts: None,
            last_ts: 0,
            metrics_sent_ts: 0,
        }
    }

    /// The exporter, once the output is complete.
    pub fn into_exporter(self) -> E {
        self.exporter
    }

    fn trace_id(&self, n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&mix(self.key[0] ^ n).to_be_bytes());
        id[8..].copy_from_slice(&mix(self.key[1] ^ n).to_be_bytes());
        id
    }

    /// Unique per item and side: the mix is a bijection.
    fn span_id(&self, n: u64, side: Side) -> [u8; 8] {
        let input = n << 1 | u64::from(side == Side::Server);
        mix(self.key[2] ^ input).max(1).to_be_bytes()
    }

    fn unix_ns(&self, ts_ns: u64) -> io::Result<u64> {
        self.unix_at_zero
            .and_then(|zero| u64::try_from(zero + i128::from(ts_ns)).ok())
            .ok_or_else(|| {
                io::Error::other(
                    "the capture records no wall-clock start (meta started_at, started_ktime_ns): OTLP needs times",
                )
            })
    }

    /// The process attributes of one end.
    fn process_attributes(&self, pid: u32, out: &mut List) {
        out.int(semconv::PROCESS_PID, i64::from(pid));
        if let Some((exe, cmd)) = self.processes.get(&pid) {
            if let Some(e) = exe {
                out.string(semconv::PROCESS_EXECUTABLE_NAME, e);
            }
            if let Some(c) = cmd {
                out.string(semconv::PROCESS_COMMAND_LINE, c);
            }
        }
    }

    fn request(&mut self, item: &Item<'_>) -> io::Result<()> {
        let Kind::Request {
            id,
            method,
            params,
            subject,
            ..
        } = &item.kind
        else {
            return Ok(());
        };
        let mut p = self.start_pending(item, (method, subject.as_deref(), Some(id)));
        p.remote = semconv::remote_parent(*params);
        p.trace_id = p
            .remote
            .as_ref()
            .map_or_else(|| self.trace_id(item.n), |r| r.trace_id);
        let (protocol, session_id) = semconv::session_facts(item);
        overwrite_text(&mut p.protocol, protocol);
        overwrite_text(&mut p.session_id, session_id);
        p.tool_call = *method == "tools/call";
        p.arguments = (self.opts.content && p.tool_call)
            .then(|| params.and_then(|p| semconv::member(p, "arguments")))
            .flatten();
        self.pending.insert(item.n, p);
        if self.pending.len() > MAX_PENDING {
            if let Some((n, oldest)) = self.pending.pop_first() {
                self.unanswered(n, oldest)?;
            }
        }
        Ok(())
    }

    fn response(&mut self, item: &Item<'_>) -> io::Result<()> {
        // A response whose request was not read has no span.
        let Some(mut p) = item.kind.answers().and_then(|r| self.pending.remove(&r.n)) else {
            return Ok(());
        };
        let request_n = item.kind.answers().map_or(0, |r| r.n);
        let outcome = Outcome::of(&item.kind);
        let (protocol, session_id) = semconv::session_facts(item);
        let attributes = &mut p.attributes;
        semconv::session(
            protocol.or(p.protocol.as_deref()),
            session_id.or(p.session_id.as_deref()),
            attributes,
        );
        attributes.int(semconv::RESPONSE_N, item.n as i64);
        outcome.push(attributes);
        if let (true, Some(args)) = (self.opts.content, &p.arguments) {
            attributes.any(semconv::TOOL_ARGUMENTS, args.clone());
        }
        // The result only of a call that succeeded, as the conventions say.
        if let (
            true,
            true,
            Kind::Response {
                result,
                tool_error: false,
                ..
            },
        ) = (self.opts.content, p.tool_call, &item.kind)
        {
            let value = serde_json::from_str(result.get()).unwrap_or(serde_json::Value::Null);
            attributes.any(semconv::TOOL_RESULT, semconv::structured(&value));
        }
        let status = outcome.error_type.as_ref().map(|_| Status {
            code: status::StatusCode::Error as i32,
            message: outcome.message.clone().unwrap_or_default(),
        });
        let end = |copy: Option<CopyInfo<'_>>| copy.map_or(item.ts_ns, |c| c.last_ts);
        let ends = [end(item.reader), end(item.writer)];
        let made = self.spans_of(request_n, &p, ends)?;
        for span in &mut self.spans[made] {
            let seconds = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            let which = match span.kind() {
                SpanKind::Client => Instrument::ClientOperation,
                _ => Instrument::ServerOperation,
            };
            self.metrics
                .record(which, &span.attributes, seconds as f64 / 1e9);
            span.status.clone_from(&status);
        }
        self.recycle(p);
        Ok(())
    }

    /// A request's or notification's facts, written over a finished
    /// request's buffers: what is not set here is set by the caller.
    fn start_pending(
        &mut self,
        item: &Item<'_>,
        message: (&str, Option<&str>, Option<&RawValue>),
    ) -> Pending {
        let mut p = self.spare_pending.pop().unwrap_or_default();
        p.network = semconv::message_attributes(item, message, &mut p.attributes, &mut p.name);
        p.direction = item.direction;
        p.client = item.writer.map(|c| (c.last_ts, c.stream.tgid));
        p.server = item.reader.map(|c| (c.last_ts, c.stream.tgid));
        (p.protocol, p.session_id, p.remote) = (None, None, None);
        p.events.clear();
        p.tool_call = false;
        p.arguments = None;
        p
    }

    /// Keeps a finished request's buffers, without its content.
    fn recycle(&mut self, mut p: Pending) {
        if self.spare_pending.len() < SPARE_PENDING {
            p.arguments = None;
            p.events.clear();
            self.spare_pending.push(p);
        }
    }

    /// The spans of an operation's captured sides, each ending at its end
    /// of `ends` (client, server), with the request's attributes: where
    /// they are in `self.spans`.
    fn spans_of(&mut self, n: u64, p: &Pending, ends: [u64; 2]) -> io::Result<Range<usize>> {
        let first = self.spans.len();
        let sides = [(Side::Client, p.client), (Side::Server, p.server)];
        for ((side, start), end) in sides.into_iter().zip(ends) {
            if let Some((start, pid)) = start {
                let span = self.span(n, side, p, pid, (start, end.max(start)))?;
                self.spans.push(span);
            }
        }
        Ok(first..self.spans.len())
    }

    /// One side's span of an operation, over `times` (capture ns), written
    /// over a spare span. Every field is named, so that none keeps a value
    /// of the span it was.
    fn span(
        &mut self,
        n: u64,
        side: Side,
        p: &Pending,
        pid: u32,
        (start_ts, end_ts): (u64, u64),
    ) -> io::Result<Span> {
        let times = (self.unix_ns(start_ts)?, self.unix_ns(end_ts)?);
        // The client's span is the server's parent; the client's own parent
        // is the remote span its message named.
        let local_parent =
            (side == Side::Server && p.client.is_some()).then(|| self.span_id(n, Side::Client));
        let (parent, parent_flags) = match (local_parent, &p.remote) {
            (Some(id), r) => (Some(id), trace_flags(r) | HAS_IS_REMOTE),
            (None, Some(r)) => (
                Some(r.span_id),
                trace_flags(&p.remote) | HAS_IS_REMOTE | IS_REMOTE,
            ),
            (None, None) => (None, SAMPLED | HAS_IS_REMOTE),
        };
        let mut span = self.spare_spans.pop().unwrap_or_default();
        let Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
        } = &mut span;
        overwrite(trace_id, &p.trace_id);
        overwrite(span_id, &self.span_id(n, side));
        trace_state.clear();
        trace_state.push_str(p.remote.as_ref().map_or("", |r| r.state.as_str()));
        overwrite(parent_span_id, parent.as_ref().map_or(&[], |id| &id[..]));
        *flags = parent_flags;
        name.clear();
        name.push_str(&p.name);
        *kind = match side {
            Side::Client => SpanKind::Client,
            Side::Server => SpanKind::Server,
        } as i32;
        (*start_time_unix_nano, *end_time_unix_nano) = times;
        let mut list = List::over(std::mem::take(attributes));
        list.extend(p.attributes.as_slice());
        match side {
            Side::Client => p.network.client_side(&mut list),
            Side::Server => p.network.server_side(&mut list),
        }
        self.process_attributes(pid, &mut list);
        *attributes = list.into_vec();
        *dropped_attributes_count = 0;
        events.clone_from(&p.events);
        *dropped_events_count = 0;
        links.clear();
        *dropped_links_count = 0;
        *status = None;
        Ok(span)
    }

    /// A request that never got its response: its spans, of no length,
    /// marked unanswered, and no duration.
    fn unanswered(&mut self, n: u64, mut p: Pending) -> io::Result<()> {
        semconv::session(
            p.protocol.as_deref(),
            p.session_id.as_deref(),
            &mut p.attributes,
        );
        p.attributes.boolean(semconv::UNANSWERED, true);
        let starts = [p.client, p.server].map(|s| s.map_or(0, |(ts, _)| ts));
        self.spans_of(n, &p, starts)?;
        self.recycle(p);
        Ok(())
    }

    /// An HTTP/2 stream reset or an HTTP/1.1 close that cancels a request
    /// still waiting (MCP 2026-07-28): an event named by the flag's reason
    /// on that request's spans, as a `notifications/cancelled` is one.
    fn cancelled(&mut self, item: &Item<'_>, flag: &Flag) -> io::Result<()> {
        let Some(r) = &flag.cancels else {
            return Ok(());
        };
        let when = self.unix_ns(item.ts_ns)?;
        if let Some(req) = self.pending.get_mut(&r.n) {
            req.events
                .push(event(when, flag.reason.code().to_string(), item.n));
        }
        Ok(())
    }

    /// A notification: spans of its own (an instant on each captured end),
    /// and, when it concerns a request still waiting (progress,
    /// cancellation), an event on that request's spans and a child of them.
    fn notification(&mut self, item: &Item<'_>) -> io::Result<()> {
        let Kind::Notification {
            method,
            params,
            subject,
            refers_to,
        } = &item.kind
        else {
            return Ok(());
        };
        let mut p = self.start_pending(item, (method, subject.as_deref(), None));
        let (protocol, session_id) = semconv::session_facts(item);
        semconv::session(protocol, session_id, &mut p.attributes);
        let when = self.unix_ns(item.ts_ns)?;
        let request = refers_to.and_then(|r| Some((r.n, self.pending.get_mut(&r.n)?)));
        let parent = match request {
            Some((req_n, req)) => {
                req.events.push(event(when, method.to_string(), item.n));
                // Sent by the request's receiver (progress: the other way)
                // or by its sender (cancellation: the same way).
                let by_receiver =
                    matches!((item.direction, req.direction), (Some(a), Some(b)) if a != b);
                let (side, captured) = if by_receiver {
                    (Side::Server, req.server.is_some())
                } else {
                    (Side::Client, req.client.is_some())
                };
                p.trace_id = req.trace_id;
                p.remote.clone_from(&req.remote);
                captured.then_some((req_n, side))
            }
            None => {
                p.remote = semconv::remote_parent(*params);
                p.trace_id = p
                    .remote
                    .as_ref()
                    .map_or_else(|| self.trace_id(item.n), |r| r.trace_id);
                None
            }
        };
        let instants = [p.client, p.server].map(|s| s.map_or(0, |(ts, _)| ts));
        let made = self.spans_of(item.n, &p, instants)?;
        if let Some((req_n, req_side)) = parent {
            let id = self.span_id(req_n, req_side);
            let flags = trace_flags(&p.remote) | HAS_IS_REMOTE;
            for span in &mut self.spans[made] {
                if span.kind() == SpanKind::Client {
                    overwrite(&mut span.parent_span_id, &id);
                    span.flags = flags;
                }
            }
        }
        self.recycle(p);
        Ok(())
    }

    /// Which ends of its session an item shows were captured.
    fn note_sides(&mut self, item: &Item<'_>) {
        let (Some(s), Some(d)) = (item.session, item.direction) else {
            return;
        };
        let sides = self.sides.entry(s.id).or_default();
        let (sender, receiver) = match d {
            Direction::ClientToServer => (&mut sides.0, &mut sides.1),
            Direction::ServerToClient => (&mut sides.1, &mut sides.0),
        };
        *sender |= item.writer.is_some();
        *receiver |= item.reader.is_some();
    }

    fn send_spans(&mut self) -> io::Result<()> {
        if self.spans.is_empty() {
            return Ok(());
        }
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(self.opts.batch));
        self.exporter.traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(semconv::scope()),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })?;
        self.take_spent();
        Ok(())
    }

    /// Takes back what the exporter is done with: spans to write over.
    fn take_spent(&mut self) {
        while let Some(req) = self.exporter.spent() {
            let room = (2 * self.opts.batch).saturating_sub(self.spare_spans.len());
            let spans = req.resource_spans.into_iter().flat_map(|r| r.scope_spans);
            self.spare_spans
                .extend(spans.flat_map(|s| s.spans).take(room));
        }
    }

    fn send_metrics(&mut self) -> io::Result<()> {
        let Some(first) = self.first_ts else {
            return Ok(());
        };
        if self.metrics.is_empty() {
            return Ok(());
        }
        let metrics = self
            .metrics
            .collect(self.unix_ns(first)?, self.unix_ns(self.last_ts)?);
        self.metrics_sent_ts = self.last_ts;
        self.exporter.metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(semconv::scope()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })?;
        // Metrics requests come back too (and are freed here).
        self.take_spent();
        Ok(())
    }

    /// The session-duration metrics, from the sessions as they ended.
    fn sessions(&mut self, sessions: &[SessionSummary]) {
        for s in sessions {
            let Some(&(client, server)) = self.sides.get(&s.id) else {
                continue;
            };
            let mut attributes = List::default();
            if let Some(p) = &s.protocol_version {
                attributes.string(semconv::PROTOCOL_VERSION, p);
            }
            let network = s.transport.map(|t| {
                Network::of_transport(&t, s.http.as_ref().and_then(|h| h.host.as_deref()))
            });
            let network = network.unwrap_or_default();
            network.common(&mut attributes);
            let seconds = s.last_ts.saturating_sub(s.first_ts) as f64 / 1e9;
            if server {
                self.metrics
                    .record(Instrument::ServerSession, attributes.as_slice(), seconds);
            }
            if client {
                network.client_side(&mut attributes);
                self.metrics
                    .record(Instrument::ClientSession, attributes.as_slice(), seconds);
            }
        }
    }
}

impl<E: Exporter> Sink for Otlp<E> {
    fn process(&mut self, row: &ProcessRow) {
        let exe = row
            .exe
            .as_deref()
            .map(|e| e.rsplit('/').next().unwrap_or(e).to_string());
        let cmd = row
            .cmdline
            .as_deref()
            .and_then(|c| serde_json::from_str::<Vec<String>>(c).ok())
            .map(|args| args.join(" "));
        self.processes.insert(row.pid, (exe, cmd));
    }

    fn item(&mut self, item: &Item<'_>, _text_len: u64) -> io::Result<Flow> {
        self.first_ts.get_or_insert(item.ts_ns);
        self.last_ts = self.last_ts.max(item.ts_ns);
        self.note_sides(item);
        match &item.kind {
            Kind::Request { .. } => self.request(item)?,
            Kind::Notification { .. } => self.notification(item)?,
            Kind::Response { .. } | Kind::Error { .. } => self.response(item)?,
            Kind::Flagged(flag) => self.cancelled(item, flag)?,
        }
        if self.spans.len() >= self.opts.batch {
            self.send_spans()?;
        }
        if let Some(every) = self.opts.metrics_every_ns {
            if self.last_ts.saturating_sub(self.metrics_sent_ts) >= every {
                self.send_metrics()?;
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, sessions: &[SessionSummary]) -> io::Result<()> {
        while let Some((n, p)) = self.pending.pop_first() {
            self.unanswered(n, p)?;
        }
        self.sessions(sessions);
        self.send_spans()?;
        self.send_metrics()?;
        self.exporter.finish()
    }
}

/// An event on a request's spans: a message `n` that concerns it.
fn event(time_unix_nano: u64, name: String, n: u64) -> Event {
    let mut attributes = List::default();
    attributes.int(semconv::ITEM_N, n as i64);
    Event {
        time_unix_nano,
        name,
        attributes: attributes.into_vec(),
        ..Default::default()
    }
}

/// `to` holds `from`, in its own buffer.
fn overwrite(to: &mut Vec<u8>, from: &[u8]) {
    to.clear();
    to.extend_from_slice(from);
}

fn overwrite_text(to: &mut Option<String>, from: Option<&str>) {
    match (to.as_mut(), from) {
        (Some(t), Some(f)) => {
            t.clear();
            t.push_str(f);
        }
        (_, f) => *to = f.map(str::to_string),
    }
}

fn trace_flags(remote: &Option<Remote>) -> u32 {
    remote.as_ref().map_or(SAMPLED, |r| u32::from(r.flags))
}

/// splitmix64's finaliser: a bijection on u64 that scatters its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
