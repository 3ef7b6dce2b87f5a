//! The conventions' four histograms: operation and session durations, as
//! the client and as the server saw them, aggregated per attribute set.

use super::semconv::{OPERATION_METRIC_KEYS, SESSION_METRIC_KEYS};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, Histogram, HistogramDataPoint, Metric,
};
use std::hash::{BuildHasher, Hash, Hasher};

/// The bucket boundaries the conventions advise for all four, seconds.
pub const BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    ClientOperation,
    ServerOperation,
    ClientSession,
    ServerSession,
}

impl Instrument {
    fn name(self) -> &'static str {
        match self {
            Instrument::ClientOperation => "mcp.client.operation.duration",
            Instrument::ServerOperation => "mcp.server.operation.duration",
            Instrument::ClientSession => "mcp.client.session.duration",
            Instrument::ServerSession => "mcp.server.session.duration",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Instrument::ClientOperation => {
                "The duration of the MCP request as observed on the sender, from the time it was sent until the response was received."
            }
            Instrument::ServerOperation => {
                "The duration of the MCP request as observed on the receiver, from the time it was received until the response was sent."
            }
            Instrument::ClientSession => "The duration of the MCP session as observed on the MCP client.",
            Instrument::ServerSession => "The duration of the MCP session as observed on the MCP server.",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Instrument::ClientOperation | Instrument::ServerOperation => OPERATION_METRIC_KEYS,
            Instrument::ClientSession | Instrument::ServerSession => SESSION_METRIC_KEYS,
        }
    }
}

struct Point {
    attributes: Vec<KeyValue>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: [u64; BOUNDS.len() + 1],
}

/// Cumulative histograms, in the order their attribute sets first came
/// (exports are reproducible). Looked up by a hash of the kept attributes,
/// so that recording a value allocates nothing once its set is known.
#[derive(Default)]
pub struct Metrics {
    points: Vec<(Instrument, Point)>,
    /// Seeded (foldhash, not SipHash): a hostile capture's attribute sets
    /// cannot be chosen to fill one bucket.
    by_hash: foldhash::HashMap<u64, Vec<usize>>,
    seed: foldhash::fast::RandomState,
    /// Which of a span's attributes are kept (reused from span to span).
    kept: Vec<usize>,
}

impl Metrics {
    /// One duration, with the attributes of its span (those the
    /// instrument keeps are picked out).
    pub fn record(&mut self, which: Instrument, span_attributes: &[KeyValue], seconds: f64) {
        let keys = which.keys();
        self.kept.clear();
        self.kept.extend(
            (0..span_attributes.len()).filter(|&i| keys.contains(&span_attributes[i].key.as_str())),
        );
        let kept = || self.kept.iter().map(|&i| &span_attributes[i]);
        let mut h = self.seed.build_hasher();
        which.hash(&mut h);
        for kv in kept() {
            kv.key.hash(&mut h);
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.hash(&mut h),
                Some(Value::IntValue(i)) => i.hash(&mut h),
                Some(Value::BoolValue(b)) => b.hash(&mut h),
                _ => {}
            }
        }
        let same = kept();
        let candidates = self.by_hash.entry(h.finish()).or_default();
        let found = candidates.iter().copied().find(|&i| {
            let (w, p) = &self.points[i];
            *w == which && p.attributes.iter().eq(same.clone())
        });
        let i = found.unwrap_or_else(|| {
            candidates.push(self.points.len());
            self.points.push((
                which,
                Point {
                    attributes: kept().cloned().collect(),
                    count: 0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    buckets: [0; BOUNDS.len() + 1],
                },
            ));
            self.points.len() - 1
        });
        let point = &mut self.points[i].1;
        point.count += 1;
        point.sum += seconds;
        point.min = point.min.min(seconds);
        point.max = point.max.max(seconds);
        point.buckets[BOUNDS.partition_point(|b| *b < seconds)] += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The histograms as they stand, over [start, now] (Unix ns).
    pub fn collect(&self, start: u64, now: u64) -> Vec<Metric> {
        let mut out: Vec<Metric> = Vec::new();
        let mut order: Vec<&(Instrument, Point)> = self.points.iter().collect();
        order.sort_by_key(|(which, _)| *which);
        for (which, p) in order {
            if out.last().is_none_or(|m| m.name != which.name()) {
                out.push(Metric {
                    name: which.name().to_string(),
                    description: which.description().to_string(),
                    unit: "s".to_string(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: Vec::new(),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                });
            }
            if let Some(Metric {
                data: Some(metric::Data::Histogram(h)),
                ..
            }) = out.last_mut()
            {
                h.data_points.push(HistogramDataPoint {
                    attributes: p.attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count: p.count,
                    sum: Some(p.sum),
                    bucket_counts: p.buckets.to_vec(),
                    explicit_bounds: BOUNDS.to_vec(),
                    min: Some(p.min),
                    max: Some(p.max),
                    ..Default::default()
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::attributes::List;
    use super::super::semconv::{METHOD, SERVER_PORT};
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_keys_are_picked() {
        let mut m = Metrics::default();
        let mut attrs = List::default();
        attrs.string(METHOD, "tools/call");
        attrs.string("mcp.session.id", "not kept");
        attrs.int(SERVER_PORT, 80);
        for s in [0.01, 0.011, 500.0] {
            m.record(Instrument::ClientOperation, attrs.as_slice(), s);
        }
        let out = m.collect(1, 2);
        assert_eq!(out.len(), 1);
        let Some(metric::Data::Histogram(h)) = &out[0].data else {
            panic!("a histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 3);
        assert_eq!(p.bucket_counts[0], 1);
        assert_eq!(p.bucket_counts[1], 1);
        assert_eq!(p.bucket_counts[14], 1);
        let keys: Vec<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, [METHOD, SERVER_PORT]);
        assert_eq!((p.min, p.max), (Some(0.01), Some(500.0)));
    }
}
