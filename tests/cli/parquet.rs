//! The Parquet export as real engines read it: DuckDB and ClickHouse
//! (chDB, its embedded build) query the files in their own SQL, and must
//! find what mcpspy's own views of the same capture say (query --summary,
//! the JSONL export), for every capture in fixtures/.

use super::collector::peer;
use super::support::*;
use super::{export, jsonl, ok, s};
use mcpspy::capture::CaptureReader;
use mcpspy::render::CaptureId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn engine(question: &str, engine: &str, files: &[PathBuf]) -> Value {
    let mut args = vec![question, "--engine", engine];
    args.extend(files.iter().map(|f| s(f)));
    serde_json::from_str(&peer("engines.py", &args)).unwrap()
}

fn capture_id(cap: &Path) -> String {
    CaptureId::from_meta(&CaptureReader::open(cap).unwrap().meta().unwrap()).id
}

#[test]
fn duckdb_and_clickhouse_count_what_query_summary_counts() {
    let dir = tempfile::tempdir().unwrap();
    for cap in fixtures() {
        let file = dir.path().join("x.parquet");
        let _ = std::fs::remove_file(&file);
        export(&cap, "parquet", &file, &[]);
        let summary: Value =
            serde_json::from_str(&ok(&["query", s(&cap), "--summary", "--format", "json"]))
                .unwrap();
        let sessions: Vec<Value> = summary["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!({"session": s["session"], "messages": s["messages"], "flagged": s["flagged"]}))
            .collect();
        let want = json!({
            "methods": summary["methods"],
            "sessions": sessions,
            "outside_sessions": summary["outside_sessions"],
        });
        assert!(!want["methods"].as_array().unwrap().is_empty());
        for e in ["duckdb", "chdb"] {
            let got = engine("summary", e, std::slice::from_ref(&file));
            assert_eq!(got, want, "{e} on {}", cap.display());
        }
    }
}

/// Every row holds what the JSONL line of the same item holds, typed.
#[test]
fn parquet_rows_hold_what_the_jsonl_lines_hold() {
    let dir = tempfile::tempdir().unwrap();
    for cap in fixtures() {
        let file = dir.path().join("rows.parquet");
        let _ = std::fs::remove_file(&file);
        export(&cap, "parquet", &file, &[]);
        let lines = jsonl(&cap);
        let rows = engine("rows", "duckdb", std::slice::from_ref(&file));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), lines.len(), "{}", cap.display());
        let id = capture_id(&cap);
        for (r, l) in rows.iter().zip(&lines) {
            let at = format!("{} n={}", cap.display(), l["n"]);
            assert_eq!(r["capture_id"], id.as_str(), "{at}");
            for (col, field) in [
                ("n", "n"),
                ("ts_ns", "ts_ns"),
                ("type", "type"),
                ("method", "method"),
                ("direction", "direction"),
                ("size_bytes", "size_bytes"),
                ("truncated", "truncated"),
            ] {
                assert_eq!(r[col], l[field], "{at}: {col}");
            }
            let wall = chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_nanos_opt();
            assert_eq!(r["timestamp_ns"].as_i64(), wall, "{at}");
            let subject = l.get("subject").cloned().unwrap_or(Value::Null);
            assert_eq!(r["subject"], subject, "{at}");
            let tool = if l["method"] == "tools/call" {
                subject
            } else {
                Value::Null
            };
            assert_eq!(r["tool"], tool, "{at}");
            let id: Value = r["id"]
                .as_str()
                .map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
            assert_eq!(id, l["id"], "{at}");
            assert_eq!(r["session"], l["session"]["id"], "{at}");
            assert_eq!(r["transport"], l["transport_type"], "{at}");
            let from = match l["transport_type"].as_str() {
                Some("stdio") => &l["stdio_transport"]["from_pid"],
                Some("http") => &l["http_transport"]["pid"],
                _ => &r["from_pid"],
            };
            assert_eq!(&r["from_pid"], from, "{at}");
            assert_eq!(
                r["http_session_id"], l["http_transport"]["session_id"],
                "{at}"
            );
            assert_eq!(r["request_n"], l["request"]["n"], "{at}");
            match l["latency_ms"].as_f64() {
                Some(ms) => assert_eq!(r["latency_ns"].as_u64().unwrap() as f64 / 1e6, ms, "{at}"),
                None => assert!(r["latency_ns"].is_null(), "{at}"),
            }
            assert_eq!(r["tool_error"], l.get("tool_error").is_some(), "{at}");
            assert_eq!(r["error_code"], l["error"]["code"], "{at}");
            assert_eq!(r["flag_reason"], l["flag"]["reason"], "{at}");
            for side in ["writer", "reader"] {
                let c = &l["records"][side];
                assert_eq!(r[format!("{side}_pid")], c["pid"], "{at}");
                assert_eq!(r[format!("{side}_ts_ns")], c["ts_ns"], "{at}");
                let seqs = c.get("seqs").cloned().unwrap_or(json!([]));
                assert_eq!(r[format!("{side}_seqs")], seqs, "{at}");
            }
            let message = r["message"].as_str().unwrap();
            if l["type"] == "flagged" {
                assert_eq!(message, l["text"].as_str().unwrap(), "{at}");
            } else {
                assert_eq!(
                    message.len() as u64,
                    l["size_bytes"].as_u64().unwrap(),
                    "{at}"
                );
                let v: Value = serde_json::from_str(message).unwrap();
                assert_eq!(
                    v.get("params").unwrap_or(&Value::Null),
                    &l["params"],
                    "{at}"
                );
            }
        }
    }
}

/// The columns as the engines type them, and as docs/parquet.md lists them.
#[test]
fn engines_read_typed_columns_and_the_schema_is_documented() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.parquet");
    export(
        &typical_session(&dir.path().join("s.db")),
        "parquet",
        &file,
        &[],
    );
    let types = |e| -> HashMap<String, String> {
        engine("columns", e, std::slice::from_ref(&file))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().into(),
                    c["type"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (duck, ch) = (types("duckdb"), types("chdb"));
    for (col, d, c) in [
        (
            "timestamp",
            "TIMESTAMPTZ_NS",
            "Nullable(DateTime64(9, 'UTC'))",
        ),
        ("n", "UBIGINT", "UInt64"),
        ("capture_id", "VARCHAR", "String"),
        ("latency_ns", "UBIGINT", "Nullable(UInt64)"),
        ("tool_error", "BOOLEAN", "Bool"),
        ("error_code", "BIGINT", "Nullable(Int64)"),
        ("http_status", "USMALLINT", "Nullable(UInt16)"),
        ("writer_seqs", "UBIGINT[]", "Array(Nullable(UInt64))"),
        ("message", "VARCHAR", "String"),
    ] {
        assert_eq!(duck[col], d, "duckdb {col}");
        assert_eq!(ch[col], c, "chdb {col}");
    }
    let read: Vec<String> = engine("columns", "duckdb", std::slice::from_ref(&file))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/parquet.md"))
            .unwrap();
    let documented: Vec<String> = doc
        .lines()
        .filter_map(|l| {
            l.strip_prefix("| `")?
                .split_once('`')
                .map(|(n, _)| n.to_string())
        })
        .collect();
    assert_eq!(
        read, documented,
        "docs/parquet.md lists every column, in order"
    );
}

#[test]
fn parquet_files_of_many_hosts_union_into_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let recorded: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("synthetic"))
        .collect();
    assert!(recorded.len() >= 5);
    let mut files = Vec::new();
    let mut want = Vec::new();
    for cap in &recorded {
        let file = dir
            .path()
            .join(cap.with_extension("parquet").file_name().unwrap());
        export(cap, "parquet", &file, &[]);
        files.push(file);
        let lines = jsonl(cap);
        want.push(json!({
            "capture_id": capture_id(cap),
            "rows": lines.len(),
            "n_min": lines[0]["n"],
            "n_max": lines[lines.len() - 1]["n"],
        }));
    }
    want.sort_by(|a, b| a["capture_id"].as_str().cmp(&b["capture_id"].as_str()));
    for e in ["duckdb", "chdb"] {
        let got = engine("captures", e, &files);
        assert_eq!(got, Value::Array(want.clone()), "{e}");
    }
    assert_eq!(want.len(), recorded.len(), "one capture id per recording");
}
