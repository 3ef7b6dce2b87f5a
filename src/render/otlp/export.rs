//! Where OTLP goes: JSON lines (the collector's file format), or OTLP/HTTP
//! (protobuf) to a collector, either waiting for it (an export, which must
//! not lose anything: [`super::offloaded`]) or from a thread of its own
//! behind a bounded queue (a recording, which must never wait for the
//! network).

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Takes finished requests. A recording's exporter never returns an error.
pub trait Exporter {
    fn traces(&mut self, req: ExportTraceServiceRequest) -> io::Result<()>;
    fn metrics(&mut self, req: ExportMetricsServiceRequest) -> io::Result<()>;
    /// Everything handed over has gone (or is counted as not sent).
    fn finish(&mut self) -> io::Result<()>;
    /// A traces request it is done with, for its buffers to be reused.
    fn spent(&mut self) -> Option<ExportTraceServiceRequest> {
        None
    }
}

/// Writes or posts requests it is lent, and reports the first failure.
pub trait Destination {
    fn traces(&mut self, req: &ExportTraceServiceRequest) -> io::Result<()>;
    fn metrics(&mut self, req: &ExportMetricsServiceRequest) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

/// A destination the caller keeps, to read what it did afterwards.
impl<D: Destination + ?Sized> Destination for &mut D {
    fn traces(&mut self, req: &ExportTraceServiceRequest) -> io::Result<()> {
        (**self).traces(req)
    }

    fn metrics(&mut self, req: &ExportMetricsServiceRequest) -> io::Result<()> {
        (**self).metrics(req)
    }

    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

/// OTLP/JSON, one request a line: what the collector's file exporter
/// writes and its otlpjsonfile receiver reads.
pub struct JsonLines<W> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

impl<W: Write> Destination for JsonLines<W> {
    fn traces(&mut self, req: &ExportTraceServiceRequest) -> io::Result<()> {
        self.line(req)
    }

    fn metrics(&mut self, req: &ExportMetricsServiceRequest) -> io::Result<()> {
        self.line(req)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// How many spans (or metric requests) went, failed after every retry,
/// or were dropped because the queue was full or time ran out at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.dropped += other.dropped;
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub spans: Tally,
    /// Metric export requests.
    pub metrics: Tally,
}

/// Waits between attempts: 0.25 s, doubling, five retries (7.75 s in all).
const RETRIES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One request's limit, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One OTLP/HTTP endpoint (`http://host:4318`): posts protobuf to
/// `/v1/traces` and `/v1/metrics`, retrying what the protocol says may be
/// retried (429, 502, 503, 504, and a collector that cannot be reached).
pub struct Http {
    agent: ureq::Agent,
    traces_url: String,
    metrics_url: String,
    /// Once set (a recording's end), no retry goes past it.
    give_up_at: Arc<OnceLock<Instant>>,
    pub sent: Sent,
}

/// Why a post failed, and whether trying again may help.
struct Failure {
    retryable: bool,
    why: String,
}

impl Http {
    /// `endpoint` is a base URL; only `http://` (mcpspy has no TLS stack).
    pub fn new(endpoint: &str) -> Result<Http, String> {
        let base = endpoint.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(format!(
                "--endpoint {endpoint}: mcpspy sends OTLP over plain http:// only (no TLS); \
                 send to a collector on this host or network that forwards it"
            ));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        Ok(Http {
            agent,
            traces_url: format!("{base}/v1/traces"),
            metrics_url: format!("{base}/v1/metrics"),
            give_up_at: Arc::default(),
            sent: Sent::default(),
        })
    }

    /// Posts with retries; the number of items the collector rejected
    /// (a partial success), or why it failed.
    fn post(&self, url: &str, body: &[u8], rejected: fn(&[u8]) -> u64) -> Result<u64, String> {
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let err = match self.post_once(url, body, rejected) {
                Ok(n) => return Ok(n),
                Err(e) => e,
            };
            attempt += 1;
            let late = self
                .give_up_at
                .get()
                .is_some_and(|t| Instant::now() + wait > *t);
            if !err.retryable || attempt > RETRIES || late {
                return Err(err.why);
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
    }

    fn post_once(
        &self,
        url: &str,
        body: &[u8],
        rejected: fn(&[u8]) -> u64,
    ) -> Result<u64, Failure> {
        let mut resp = self
            .agent
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .send(body)
            .map_err(|e| Failure {
                retryable: true,
                why: format!("{url}: {e}"),
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.body_mut().read_to_vec().unwrap_or_default();
        match status {
            200..=299 => Ok(rejected(&bytes)),
            _ => Err(Failure {
                retryable: matches!(status, 429 | 502 | 503 | 504),
                why: format!("{url}: HTTP {status}"),
            }),
        }
    }

    /// Sends a traces request; counts its spans as sent or failed.
    fn send_traces(&mut self, req: &ExportTraceServiceRequest) -> Result<(), String> {
        let spans = span_count(req);
        let rejected = |b: &[u8]| {
            ExportTraceServiceResponse::decode(b)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans.max(0) as u64)
        };
        let result = self.post(&self.traces_url, &req.encode_to_vec(), rejected);
        tally(&mut self.sent.spans, spans, result)
    }

    fn send_metrics(&mut self, req: &ExportMetricsServiceRequest) -> Result<(), String> {
        let rejected = |b: &[u8]| {
            ExportMetricsServiceResponse::decode(b)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| u64::from(p.rejected_data_points > 0))
        };
        let result = self.post(&self.metrics_url, &req.encode_to_vec(), rejected);
        tally(&mut self.sent.metrics, 1, result)
    }
}

/// Counts `n` items by how their post ended.
fn tally(t: &mut Tally, n: u64, result: Result<u64, String>) -> Result<(), String> {
    match result {
        Ok(rejected) => {
            t.sent += n - rejected.min(n);
            t.failed += rejected.min(n);
            match rejected {
                0 => Ok(()),
                r => Err(format!("the collector rejected {r} of {n}")),
            }
        }
        Err(why) => {
            t.failed += n;
            Err(why)
        }
    }
}

fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// An export: every request waits for the collector; a failure ends it.
impl Destination for Http {
    fn traces(&mut self, req: &ExportTraceServiceRequest) -> io::Result<()> {
        self.send_traces(req).map_err(io::Error::other)
    }

    fn metrics(&mut self, req: &ExportMetricsServiceRequest) -> io::Result<()> {
        self.send_metrics(req).map_err(io::Error::other)
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Queued {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// Requests queued beyond this are dropped (and counted): a recording
/// never waits for the network.
const QUEUE: usize = 4096;
/// Spans merged into one post when many wait.
const MERGE_SPANS: u64 = 512;
/// How long the end of a recording waits for what is still queued.
const GRACE: Duration = Duration::from_secs(5);

/// OTLP/HTTP from a thread of its own, behind a bounded queue.
pub struct Background {
    queue: Option<SyncSender<Queued>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Sent>>,
    give_up_at: Arc<OnceLock<Instant>>,
}

/// What a background exporter has done so far, readable after it moved
/// into the recording.
#[derive(Clone)]
pub struct Report(Arc<Mutex<Sent>>);

impl Report {
    pub fn sent(&self) -> Sent {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }
}

impl Background {
    pub fn start(http: Http) -> io::Result<Background> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Mutex::new(Sent::default()));
        let for_thread = Arc::clone(&shared);
        let give_up_at = Arc::clone(&http.give_up_at);
        let thread = std::thread::Builder::new()
            .name("mcpspy-otlp".into())
            .spawn(move || send_loop(http, rx, for_thread))?;
        Ok(Background {
            queue: Some(tx),
            thread: Some(thread),
            shared,
            give_up_at,
        })
    }

    pub fn report(&self) -> Report {
        Report(Arc::clone(&self.shared))
    }

    fn enqueue(&mut self, q: Queued) {
        let Some(tx) = &self.queue else { return };
        if let Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) = tx.try_send(q) {
            count_dropped(&self.shared, &q);
        }
    }
}

fn count_dropped(shared: &Mutex<Sent>, q: &Queued) {
    if let Ok(mut s) = shared.lock() {
        match q {
            Queued::Traces(r) => s.spans.dropped += span_count(r),
            Queued::Metrics(_) => s.metrics.dropped += 1,
        }
    }
}

impl Exporter for Background {
    fn traces(&mut self, req: ExportTraceServiceRequest) -> io::Result<()> {
        self.enqueue(Queued::Traces(req));
        Ok(())
    }

    fn metrics(&mut self, req: ExportMetricsServiceRequest) -> io::Result<()> {
        self.enqueue(Queued::Metrics(req));
        Ok(())
    }

    /// Gives what is queued a few seconds to go, then counts the rest as dropped.
    fn finish(&mut self) -> io::Result<()> {
        let _ = self.give_up_at.set(Instant::now() + GRACE);
        self.queue = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn send_loop(mut http: Http, rx: Receiver<Queued>, shared: Arc<Mutex<Sent>>) {
    let mut next = None;
    while let Some(first) = next.take().or_else(|| rx.recv().ok()) {
        if http.give_up_at.get().is_some_and(|t| Instant::now() >= *t) {
            count_dropped(&shared, &first);
            continue;
        }
        match first {
            Queued::Metrics(m) => {
                let _ = http.send_metrics(&m);
            }
            Queued::Traces(mut t) => {
                // Spans queued one by one go out together.
                while span_count(&t) < MERGE_SPANS {
                    match rx.try_recv() {
                        Ok(Queued::Traces(more)) => merge(&mut t, more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let _ = http.send_traces(&t);
            }
        }
        let done = std::mem::take(&mut http.sent);
        if let Ok(mut s) = shared.lock() {
            s.spans.add(done.spans);
            s.metrics.add(done.metrics);
        }
    }
}

/// Appends `more`'s spans to `into` (both have one resource and scope).
fn merge(into: &mut ExportTraceServiceRequest, more: ExportTraceServiceRequest) {
    for rs in more.resource_spans {
        for ss in rs.scope_spans {
            match into
                .resource_spans
                .first_mut()
                .and_then(|r| r.scope_spans.first_mut())
            {
                Some(target) => target.spans.extend(ss.spans),
                None => return,
            }
        }
    }
}
