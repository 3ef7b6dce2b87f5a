//! The OTLP export writes each span over one of a request sent before (its
//! strings and lists reused), and each request's facts over a finished
//! one's: on every fixture, with one operation a request so that nearly
//! every span is written over another, the requests equal those of spans
//! made afresh, content included; and in a session whose operations differ,
//! none carries what the one before had.

use super::support::*;
use mcpspy::capture::CaptureReader;
use mcpspy::query::{self, IndexUse, Quiet, Selection};
use mcpspy::render::otlp::{Exporter, Options, Otlp};
use mcpspy::render::WallClock;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::io;
use std::path::Path;

/// Keeps each request as its JSON; gives the traces back to be reused, or not.
struct Lines {
    json: Vec<String>,
    give_back: bool,
    spent: Vec<ExportTraceServiceRequest>,
    /// Requests the sink took back.
    taken: usize,
}

impl Exporter for Lines {
    fn traces(&mut self, req: ExportTraceServiceRequest) -> io::Result<()> {
        self.json.push(serde_json::to_string(&req)?);
        if self.give_back {
            self.spent.push(req);
        }
        Ok(())
    }

    fn metrics(&mut self, req: ExportMetricsServiceRequest) -> io::Result<()> {
        self.json.push(serde_json::to_string(&req)?);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn spent(&mut self) -> Option<ExportTraceServiceRequest> {
        let req = self.spent.pop();
        self.taken += usize::from(req.is_some());
        req
    }
}

fn export(path: &Path, give_back: bool, content: bool) -> (Vec<String>, usize) {
    let reader = CaptureReader::open(path).unwrap();
    let meta = reader.meta().unwrap();
    let lines = Lines {
        json: Vec::new(),
        give_back,
        spent: Vec::new(),
        taken: 0,
    };
    let opts = Options {
        content,
        batch: 1,
        metrics_every_ns: None,
    };
    let mut sink = Otlp::new(lines, opts, WallClock::from_meta(&meta), &meta);
    let sel = Selection::default();
    query::run(&reader, &sel, &mut sink, IndexUse::Never, &mut Quiet).unwrap();
    let lines = sink.into_exporter();
    (lines.json, lines.taken)
}

/// A session whose spans differ from one to the next: a remote parent with
/// a trace state, its progress, then a plain call and an error.
fn varied(path: &Path) -> std::path::PathBuf {
    let mut s = Synth::new(path);
    let (c2s, s2c) = (s.pipe(), s.pipe());
    let meta = r#""_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=00f067aa0ba902b7","progressToken":"p1"}"#;
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    let traced = format!(r#"{{"name":"t","arguments":{{"a":[1,{{"b":null}}]}},{meta}}}"#);
    s.send(CLIENT, SERVER, c2s, &request(1, "tools/call", &traced));
    let progress = r#"{"progressToken":"p1","progress":1}"#;
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &notification("notifications/progress", progress),
    );
    s.send(SERVER, CLIENT, s2c, &response(1, r#"{"content":[]}"#));
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(2, "tools/call", r#"{"name":"u"}"#),
    );
    s.send(
        SERVER,
        CLIENT,
        s2c,
        &response(2, r#"{"content":[],"isError":true}"#),
    );
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(3, "resources/read", r#"{"uri":"x:/y"}"#),
    );
    s.send(SERVER, CLIENT, s2c, &error(3, -32002, "not found"));
    s.send(CLIENT, SERVER, c2s, &request(4, "tools/list", "{}"));
    s.send(SERVER, CLIENT, s2c, &response(4, r#"{"tools":[]}"#));
    s.tick();
    s.finish()
}

#[test]
fn spans_written_over_others_equal_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut reused = 0;
    for path in fixtures()
        .into_iter()
        .chain([varied(&dir.path().join("v.db"))])
    {
        for content in [false, true] {
            let (fresh, _) = export(&path, false, content);
            let (over, n) = export(&path, true, content);
            assert_eq!(fresh.len(), over.len(), "{}", path.display());
            for (i, (a, b)) in fresh.iter().zip(&over).enumerate() {
                assert_eq!(a, b, "{} request {i}, content {content}", path.display());
            }
            reused += n;
        }
    }
    assert!(reused > 100, "only {reused} requests were written over");
}

/// Every span of an export's requests.
fn spans(json: &[String]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for line in json {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

#[test]
fn no_operation_carries_what_the_one_before_had() {
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = export(&varied(&dir.path().join("v.db")), true, true);
    let all = spans(&json);
    let named = |name: &str| -> Vec<&serde_json::Value> {
        let found: Vec<_> = all.iter().filter(|s| s["name"] == name).collect();
        assert_eq!(found.len(), 2, "{name}: both sides");
        found
    };
    let keys = |s: &serde_json::Value| -> Vec<String> {
        let list = s["attributes"].as_array().unwrap();
        list.iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect()
    };
    for s in named("tools/call t") {
        assert_eq!(s["traceState"], "rojo=00f067aa0ba902b7");
        assert_eq!(s["events"][0]["name"], "notifications/progress");
        assert!(keys(s).contains(&"gen_ai.tool.call.arguments".to_string()));
    }
    for s in named("tools/call u") {
        assert_eq!(s["traceState"], "", "{s}");
        assert_eq!(s["events"], serde_json::json!([]), "{s}");
        assert_ne!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736", "{s}");
        assert!(
            !keys(s).contains(&"gen_ai.tool.call.arguments".to_string()),
            "{s}"
        );
        assert!(
            keys(s).contains(&"error.type".to_string()),
            "a tool error: {s}"
        );
    }
    for s in named("resources/read") {
        assert!(keys(s).contains(&"error.type".to_string()), "{s}");
        assert!(keys(s).contains(&"mcp.resource.uri".to_string()), "{s}");
    }
    for s in named("tools/list") {
        assert!(s["status"].is_null(), "{s}");
        for k in [
            "error.type",
            "gen_ai.tool.name",
            "mcp.resource.uri",
            "rpc.response.status_code",
        ] {
            assert!(!keys(s).contains(&k.to_string()), "{k} in {s}");
        }
    }
}
