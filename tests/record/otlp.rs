//! `record --otlp-endpoint`: spans streamed to a collector while recording,
//! the very spans an export of the finished file gives; and a collector that
//! is down or slow, which must never stall the capture: the file is whole,
//! and every span is counted as sent, failed or dropped. Needs root and BPF.

use super::collector::{decode_json, metrics, spans, Collector};
use super::support::*;
use mcpspy::capture::CaptureReader;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The spans `export --format otlp-json` gives of a capture, decoded.
fn exported_spans(capture: &Path) -> Vec<Value> {
    let file = capture.with_extension("otlp.jsonl");
    succeed(
        Command::new(BIN)
            .args(["export", "--format", "otlp-json", "-o"])
            .arg(&file)
            .arg(capture),
    );
    spans(&decode_json(&file))
}

/// The capture's `otlp_export` fact: (sent, failed, dropped) spans.
fn kept_counts(capture: &Path) -> (u64, u64, u64) {
    let meta = CaptureReader::open(capture).unwrap().meta().unwrap();
    let features: Vec<String> = serde_json::from_str(&meta["features"]).unwrap();
    assert!(
        features.contains(&"otlp_export".to_string()),
        "{features:?}"
    );
    let fact: Value = serde_json::from_str(&meta["otlp_export"]).unwrap();
    let n = |k: &str| fact["spans"][k].as_u64().unwrap();
    (n("sent"), n("failed"), n("dropped"))
}

fn by_id(mut spans: Vec<Value>) -> Vec<Value> {
    spans.sort_by(|a, b| a["spanId"].as_str().cmp(&b["spanId"].as_str()));
    spans
}

#[test]
fn a_recording_streams_the_spans_its_export_gives() {
    let Some((_serial, dir)) = bpf_test("a_recording_streams_the_spans_its_export_gives") else {
        return;
    };
    let collector = Collector::start(dir.path(), &[]);
    let capture = dir.path().join("streamed.db");
    let endpoint = collector.endpoint();
    let rec = start_recorder(
        &capture,
        &["--live", "--otlp-endpoint", &endpoint, "--comm", "python3"],
    );
    succeed(
        Command::new(venv_python())
            .arg(format!("{ROOT}/tests/peers/py_client.py"))
            .args(["--mode", "legacy", "--blob", "200000", "--out"])
            .arg(dir.path().join("peer")),
    );
    let (live, stderr) = rec.stop();
    let want = by_id(exported_spans(&capture));
    assert!(want.len() > 20, "a whole session: {} spans", want.len());
    let received = collector.received();
    assert_eq!(by_id(spans(&received)), want);
    assert!(
        metrics(&received)
            .iter()
            .any(|m| m["name"] == "mcp.client.operation.duration"),
        "the metrics went too"
    );
    let n = want.len() as u64;
    assert_eq!(kept_counts(&capture), (n, 0, 0));
    let said = stderr.iter().find(|l| l.contains("OTLP to")).unwrap();
    assert!(
        said.contains(&format!("{n} spans sent, 0 failed, 0 dropped")),
        "{said}"
    );
    // The live view shares the decoder and is what it was.
    let replay = succeed(Command::new(BIN).arg("replay").arg(&capture));
    assert_eq!(live, String::from_utf8(replay.stdout).unwrap());
    // A feature this mcpspy knows: shown, and no note.
    let info = succeed(Command::new(BIN).arg("info").arg(&capture));
    assert!(!String::from_utf8_lossy(&info.stderr).contains("features"));
    assert!(String::from_utf8_lossy(&info.stdout)
        .contains(&format!("sent to OTLP {{\"endpoint\":\"{endpoint}\"")));
}

#[test]
fn a_collector_down_or_slow_never_stalls_the_capture() {
    let Some((_serial, dir)) = bpf_test("a_collector_down_or_slow_never_stalls_the_capture") else {
        return;
    };
    let slow = Collector::start(dir.path(), &["--delay", "2"]);
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    const ROUND_TRIPS: u64 = 10_000;
    for (label, endpoint) in [
        ("down", format!("http://127.0.0.1:{nobody}")),
        ("slow", slow.endpoint()),
    ] {
        let capture = dir.path().join(format!("{label}.db"));
        let rec = start_recorder(
            &capture,
            &["--otlp-endpoint", &endpoint, "--comm", "python3"],
        );
        succeed(
            Command::new(venv_python())
                .arg(format!("{ROOT}/bench/workloads/echo_pair.py"))
                .args(["--messages", &ROUND_TRIPS.to_string()]),
        );
        let stopping = Instant::now();
        let (_, stderr) = rec.stop();
        // The end waits 5 s at most for the queue, and one post's timeout.
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "{label}: record took {:?} to stop",
            stopping.elapsed()
        );
        // Nothing is lost from the capture.
        let summary = succeed(
            Command::new(BIN)
                .args(["query", "--summary", "--format", "json", "--no-index"])
                .arg(&capture),
        );
        let summary: Value = serde_json::from_slice(&summary.stdout).unwrap();
        // (A few early responses may be paired with no request: the
        // decoder's, the same without a collector; they are still here.)
        let sum = |k: &str| -> u64 {
            summary["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[k].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum("count"), ROUND_TRIPS, "{label}: every request");
        assert_eq!(sum("responses"), ROUND_TRIPS, "{label}: every response");
        // Every span is counted, none twice.
        let total = exported_spans(&capture).len() as u64;
        assert_eq!(total, 2 * ROUND_TRIPS, "{label}: both ends of every call");
        let (sent, failed, dropped) = kept_counts(&capture);
        assert_eq!(
            sent + failed + dropped,
            total,
            "{label}: {sent} {failed} {dropped}"
        );
        assert!(
            dropped > 0,
            "{label}: the queue overflowed: {sent} {failed} {dropped}"
        );
        match label {
            "down" => assert_eq!(sent, 0, "{label}"),
            _ => assert!(sent > 0, "{label}: the slow collector got some"),
        }
        let said = stderr.iter().find(|l| l.contains("OTLP to")).unwrap();
        assert!(said.contains(&format!("{dropped} dropped")), "{said}");
    }
}
