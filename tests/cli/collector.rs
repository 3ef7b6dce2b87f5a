//! OTLP as a collector sees it: the test collector of tests/peers/otlp_collector.py,
//! which decodes what it receives with the official OpenTelemetry protobuf
//! definitions, and its reader of OTLP/JSON files. Shared by the export
//! tests (tests/cli) and the recording tests (tests/record).
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The test setup's Python (scripts/setup.sh makes it).
pub fn venv_python() -> PathBuf {
    let p = Path::new(ROOT).join(".venv/bin/python3");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first",
        p.display()
    );
    p
}

/// Runs a script of tests/peers with the venv's Python; its stdout.
pub fn peer(script: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .arg(Path::new(ROOT).join("tests/peers").join(script))
        .args(args)
        .output()
        .expect("running a test peer");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A running test collector on 127.0.0.1; stopped when dropped.
pub struct Collector {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl Collector {
    /// `args`: --delay S, --fail-first N, --status CODE.
    pub fn start(dir: &Path, args: &[&str]) -> Collector {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let nth = STARTED.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("collector-{nth}.jsonl"));
        let mut child = Command::new(venv_python())
            .arg(Path::new(ROOT).join("tests/peers/otlp_collector.py"))
            .arg("serve")
            .arg("--out")
            .arg(&out)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the test collector");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the collector's first line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the collector said {line:?}"));
        Collector { child, port, out }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it received so far: {path, request} per post, decoded.
    pub fn received(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OTLP/JSON lines file read with the official definitions.
pub fn decode_json(file: &Path) -> Vec<Value> {
    json_lines(&peer(
        "otlp_collector.py",
        &["decode-json", file.to_str().unwrap()],
    ))
}

/// The spans of decoded requests, in order.
pub fn spans(requests: &[Value]) -> Vec<Value> {
    flatten(
        requests,
        "/v1/traces",
        ["resourceSpans", "scopeSpans", "spans"],
    )
}

/// The metrics of decoded requests, in order.
pub fn metrics(requests: &[Value]) -> Vec<Value> {
    flatten(
        requests,
        "/v1/metrics",
        ["resourceMetrics", "scopeMetrics", "metrics"],
    )
}

/// The innermost list of the requests to `path`: resource, scope, items.
fn flatten(requests: &[Value], path: &str, keys: [&str; 3]) -> Vec<Value> {
    let list = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    requests
        .iter()
        .filter(|r| r["path"] == path)
        .flat_map(|r| list(&r["request"], keys[0]))
        .flat_map(|outer| list(&outer, keys[1]))
        .flat_map(|middle| list(&middle, keys[2]))
        .collect()
}

/// An attribute's value as text: a string, an integer (OTLP/JSON writes
/// them as strings) or a boolean; None when absent.
pub fn attr(span: &Value, key: &str) -> Option<String> {
    let value = span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?
        .get("value")?;
    ["stringValue", "intValue", "boolValue"]
        .iter()
        .find_map(|k| value.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}
