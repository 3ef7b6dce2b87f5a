//! An export's requests written or posted on a second thread
//! (render/offload.rs), while the reading thread decodes and builds the
//! next spans. Each request comes back, for its spans to be written over
//! by the next (or freed where they were made: thousands of small strings
//! freed on the other thread cost glibc's allocator more than the encoding
//! saved).

use super::export::{Destination, Exporter};
use crate::render::offload::Offload;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::io;
use std::sync::mpsc::{self, Receiver};
use std::thread::Scope;

enum Request {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// The exporter of an export: its destination lives on a thread of the
/// caller's scope, and its first error is what the next call returns.
pub struct Offloaded<'scope> {
    offload: Offload<'scope, Request>,
    /// Requests the destination is done with.
    done: Receiver<Request>,
}

impl<'scope> Offloaded<'scope> {
    pub fn start<'env, D: Destination + Send + 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        mut destination: D,
    ) -> io::Result<Self> {
        let (back, done) = mpsc::channel();
        let offload = Offload::start(scope, move |req: Option<Request>| {
            let Some(req) = req else {
                return destination.finish();
            };
            match &req {
                Request::Traces(t) => destination.traces(t)?,
                Request::Metrics(m) => destination.metrics(m)?,
            }
            // The reader may have stopped; then the request is freed here.
            let _ = back.send(req);
            Ok(())
        })?;
        Ok(Offloaded { offload, done })
    }

    fn send(&mut self, req: Request) -> io::Result<()> {
        self.offload.send(req)
    }
}

impl Exporter for Offloaded<'_> {
    fn traces(&mut self, req: ExportTraceServiceRequest) -> io::Result<()> {
        self.send(Request::Traces(req))
    }

    fn metrics(&mut self, req: ExportMetricsServiceRequest) -> io::Result<()> {
        self.send(Request::Metrics(req))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.offload.finish()
    }

    fn spent(&mut self) -> Option<ExportTraceServiceRequest> {
        // Metrics requests are few: they are freed here.
        self.done.try_iter().find_map(|r| match r {
            Request::Traces(t) => Some(t),
            Request::Metrics(_) => None,
        })
    }
}
