//! The OTLP exports as a collector reads them: the official OpenTelemetry
//! protobuf definitions decode what a test collector receives and the
//! OTLP/JSON file, and every span and metric must be what the conventions
//! and the JSONL export of the same capture say, for every capture in fixtures/.

use super::collector::{attr, decode_json, metrics, spans, Collector};
use super::support::*;
use super::{export, jsonl, mcpspy, s, stderr};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Exports `cap` to `collector` and to `file` (OTLP/JSON): both, read
/// with the official definitions, must be the same. What was received,
/// and what the export said.
fn sent_as_the_file_says(cap: &Path, collector: &Collector, file: &Path) -> (Vec<Value>, String) {
    let o = mcpspy(&[
        "export",
        s(cap),
        "--format",
        "otlp",
        "--endpoint",
        &collector.endpoint(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    export(cap, "otlp-json", file, &[]);
    let received = collector.received();
    assert_eq!(received, decode_json(file), "{}", cap.display());
    (received, stderr(&o))
}

/// What a collector receives over OTLP/HTTP is what the OTLP/JSON file
/// holds, both read with the official definitions; and the file's own
/// JSON says the same as its decoded form.
#[test]
fn a_collector_receives_what_the_otlp_json_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    for cap in fixtures() {
        let collector = Collector::start(dir.path(), &[]);
        let file = dir.path().join("x.otlp.jsonl");
        let _ = std::fs::remove_file(&file);
        let (from_file, said) = sent_as_the_file_says(&cap, &collector, &file);
        let sent = spans(&from_file).len();
        assert!(sent > 0, "{}", cap.display());
        assert!(said.contains(&format!("sent {sent} spans")), "{said}");
        let raw: Vec<Value> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| json!({"path": if l.contains("resourceSpans") { "/v1/traces" } else { "/v1/metrics" }, "request": serde_json::from_str::<Value>(l).unwrap()}))
            .collect();
        let (raw, decoded) = (spans(&raw), spans(&from_file));
        assert_eq!(raw.len(), decoded.len());
        for (r, d) in raw.iter().zip(&decoded) {
            for k in [
                "traceId",
                "spanId",
                "name",
                "kind",
                "startTimeUnixNano",
                "endTimeUnixNano",
                "attributes",
            ] {
                assert_eq!(r[k], d[k], "{}: {k}", cap.display());
            }
            assert_eq!(
                r["parentSpanId"],
                d.get("parentSpanId").cloned().unwrap_or(json!(""))
            );
        }
    }
}

/// Unix ns of a JSONL line's capture time `ts_ns`.
struct Clock(i128);

impl Clock {
    fn of(lines: &[Value]) -> Clock {
        let l = &lines[0];
        let wall = chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        Clock(i128::from(wall) - l["ts_ns"].as_i64().unwrap() as i128)
    }

    fn unix(&self, ts: &Value) -> String {
        (self.0 + ts.as_i64().unwrap() as i128).to_string()
    }
}

/// Spans and metrics as the conventions define them, from what the JSONL
/// export says of the same items.
#[test]
fn spans_and_metrics_follow_the_mcp_conventions() {
    let dir = tempfile::tempdir().unwrap();
    for cap in fixtures() {
        let file = dir.path().join("c.otlp.jsonl");
        let _ = std::fs::remove_file(&file);
        export(&cap, "otlp-json", &file, &[]);
        let decoded = decode_json(&file);
        let all = spans(&decoded);
        let lines = jsonl(&cap);
        let clock = Clock::of(&lines);
        let by_item: HashMap<(String, i64), &Value> = all
            .iter()
            .map(|sp| {
                (
                    (
                        attr(sp, "mcpspy.item.n").unwrap(),
                        sp["kind"].as_i64().unwrap(),
                    ),
                    sp,
                )
            })
            .collect();
        assert_eq!(by_item.len(), all.len(), "one span per item and side");
        let responses: HashMap<String, &Value> = lines
            .iter()
            .filter(|l| l["type"] == "response" || l["type"] == "error")
            .filter_map(|l| Some((l["request"]["n"].as_u64()?.to_string(), l)))
            .collect();
        let mut expected = 0;
        let mut client_durations = 0;
        for l in lines
            .iter()
            .filter(|l| l["type"] == "request" || l["type"] == "notification")
        {
            let n = l["n"].to_string();
            let at = format!("{} n={n}", cap.display());
            let method = l["method"].as_str().unwrap();
            let subject = l.get("subject").and_then(Value::as_str);
            let name = match (method, subject) {
                ("tools/call" | "prompts/get", Some(t)) => format!("{method} {t}"),
                _ => method.to_string(),
            };
            let response = responses.get(&n).filter(|_| l["type"] == "request");
            let mut ids = HashMap::new();
            for (kind, side, other) in [(3, "writer", "reader"), (2, "reader", "writer")] {
                let copy = &l["records"][side];
                if copy.is_null() {
                    assert!(
                        !by_item.contains_key(&(n.clone(), kind)),
                        "{at}: no {side}, no span"
                    );
                    continue;
                }
                expected += 1;
                let sp = by_item
                    .get(&(n.clone(), kind))
                    .unwrap_or_else(|| panic!("{at}: the {side}'s span"));
                assert_eq!(sp["name"], name.as_str(), "{at}");
                assert_eq!(attr(sp, "mcp.method.name").as_deref(), Some(method), "{at}");
                assert_eq!(
                    attr(sp, "process.pid"),
                    Some(copy["pid"].to_string()),
                    "{at}"
                );
                let transport = match l["transport_type"].as_str() {
                    Some("stdio") => Some("pipe".to_string()),
                    Some("http" | "tcp") => Some("tcp".to_string()),
                    _ => None,
                };
                assert_eq!(attr(sp, "network.transport"), transport, "{at}");
                let tool = (method == "tools/call").then(|| subject.unwrap().to_string());
                assert_eq!(attr(sp, "gen_ai.tool.name"), tool, "{at}");
                let op = (method == "tools/call").then(|| "execute_tool".to_string());
                assert_eq!(attr(sp, "gen_ai.operation.name"), op, "{at}");
                let prompt = (method == "prompts/get").then(|| subject.unwrap().to_string());
                assert_eq!(attr(sp, "gen_ai.prompt.name"), prompt, "{at}");
                let uri = matches!(
                    method,
                    "resources/read"
                        | "resources/subscribe"
                        | "resources/unsubscribe"
                        | "notifications/resources/updated"
                )
                .then(|| subject.unwrap().to_string());
                assert_eq!(attr(sp, "mcp.resource.uri"), uri, "{at}");
                assert_eq!(
                    attr(sp, "gen_ai.tool.call.arguments"),
                    None,
                    "{at}: content is opt-in"
                );
                assert_eq!(
                    attr(sp, "gen_ai.tool.call.result"),
                    None,
                    "{at}: content is opt-in"
                );
                let id = match &l["id"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    v => Some(v.to_string()),
                };
                assert_eq!(attr(sp, "jsonrpc.request.id"), id, "{at}");
                let start = clock.unix(&copy["ts_ns"]);
                assert_eq!(sp["startTimeUnixNano"], start.as_str(), "{at}");
                ids.insert(
                    kind,
                    (
                        sp["traceId"].clone(),
                        sp["spanId"].clone(),
                        sp["parentSpanId"].clone(),
                    ),
                );
                match response {
                    Some(r) => {
                        let end_copy = &r["records"][other];
                        let end = if end_copy.is_null() {
                            &r["ts_ns"]
                        } else {
                            &end_copy["ts_ns"]
                        };
                        let end = clock.unix(end).max(start.clone());
                        assert_eq!(
                            sp["endTimeUnixNano"].as_str().map(str::parse::<u128>),
                            Some(end.parse()),
                            "{at}"
                        );
                        assert_eq!(
                            attr(sp, "mcpspy.response.n"),
                            Some(r["n"].to_string()),
                            "{at}"
                        );
                        let (error_type, code) = match r["error"]["code"].as_i64() {
                            Some(c) => (Some(c.to_string()), Some(c.to_string())),
                            None if r["type"] == "error" => (Some("_OTHER".to_string()), None),
                            None if r.get("tool_error").is_some() => {
                                (Some("tool_error".to_string()), None)
                            }
                            None => (None, None),
                        };
                        assert_eq!(attr(sp, "error.type"), error_type, "{at}");
                        assert_eq!(attr(sp, "rpc.response.status_code"), code, "{at}");
                        let status = if error_type.is_some() {
                            json!(2)
                        } else {
                            Value::Null
                        };
                        assert_eq!(
                            sp["status"].get("code").cloned().unwrap_or(Value::Null),
                            status,
                            "{at}"
                        );
                        if let Some(m) = r["error"]["message"].as_str() {
                            assert_eq!(sp["status"]["message"], m, "{at}");
                        }
                        let session_id = r["http_transport"]["session_id"]
                            .as_str()
                            .or(l["http_transport"]["session_id"].as_str());
                        let protocol = attr(sp, "mcp.protocol.version");
                        let want = session_id
                            .filter(|_| protocol.as_deref().is_none_or(|p| p < "2026-07-28"));
                        assert_eq!(attr(sp, "mcp.session.id").as_deref(), want, "{at}");
                        if kind == 3 {
                            client_durations += 1;
                        }
                    }
                    None => {
                        // Notifications are instants; unanswered requests say so.
                        assert_eq!(sp["endTimeUnixNano"], sp["startTimeUnixNano"], "{at}");
                        let unanswered = (l["type"] == "request").then(|| "true".to_string());
                        assert_eq!(attr(sp, "mcpspy.unanswered"), unanswered, "{at}");
                    }
                }
            }
            // One trace; the client's span is the server's parent.
            if let (Some(c), Some(sv)) = (ids.get(&3), ids.get(&2)) {
                assert_eq!(c.0, sv.0, "{at}");
                if l["type"] == "request" {
                    assert_eq!(sv.2, c.1, "{at}: the server span's parent");
                }
            }
        }
        assert_eq!(all.len(), expected, "{}: no other spans", cap.display());
        // The histograms: one duration per answered client span, in the advised buckets.
        let ms = metrics(&decoded);
        let count = |name: &str| -> u64 {
            ms.iter()
                .filter(|m| m["name"] == name)
                .flat_map(|m| m["histogram"]["dataPoints"].as_array().unwrap().clone())
                .map(|p| {
                    let buckets: u64 = p["bucketCounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_str().unwrap().parse::<u64>().unwrap())
                        .sum();
                    let count: u64 = p["count"].as_str().unwrap().parse().unwrap();
                    assert_eq!(buckets, count);
                    assert_eq!(
                        p["explicitBounds"],
                        json!([
                            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
                            120.0, 300.0
                        ])
                    );
                    assert!(p["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(
                            |kv| kv["key"] != "mcp.session.id" && kv["key"] != "jsonrpc.request.id"
                        ));
                    count
                })
                .sum()
        };
        assert_eq!(
            count("mcp.client.operation.duration"),
            client_durations,
            "{}",
            cap.display()
        );
        assert!(ms.iter().all(|m| m["unit"] == "s"));
        let sessions = ms
            .iter()
            .filter(|m| m["name"].as_str().unwrap().ends_with("session.duration"))
            .count();
        assert!(sessions > 0, "{}: session durations", cap.display());
    }
}

/// Tool arguments and results only with --include-content, structured.
#[test]
fn tool_content_is_sent_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cap = typical_session(&dir.path().join("s.db"));
    let with = dir.path().join("with.jsonl");
    export(&cap, "otlp-json", &with, &["--include-content"]);
    let all = spans(&decode_json(&with));
    let call = |tool: &str| -> Vec<&Value> {
        all.iter()
            .filter(|sp| sp["name"] == format!("tools/call {tool}"))
            .collect()
    };
    let weather = call("get_weather");
    assert_eq!(weather.len(), 2, "client and server");
    for sp in &weather {
        let args = sp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == "gen_ai.tool.call.arguments")
            .unwrap();
        assert_eq!(
            args["value"]["kvlistValue"]["values"][0],
            json!({"key": "city", "value": {"stringValue": "Zürich 東京 🌦"}})
        );
        let result = sp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == "gen_ai.tool.call.result")
            .unwrap();
        assert_eq!(
            result["value"]["kvlistValue"]["values"][0]["key"],
            "content"
        );
    }
    // A failed call has its arguments but no result.
    for sp in call("nope") {
        assert!(attr(sp, "error.type").is_some());
        assert!(sp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv["key"] == "gen_ai.tool.call.arguments"));
        assert!(!sp["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv["key"] == "gen_ai.tool.call.result"));
    }
    let o = mcpspy(&["export", s(&cap), "--format", "jsonl", "--include-content"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A traceparent in params._meta: mcpspy's spans join that trace, under
/// the span that sent it; a notification about the request is its child.
#[test]
fn a_traceparent_in_meta_becomes_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traced.db");
    let mut sy = Synth::new(&path);
    let (c2s, s2c) = (sy.pipe(), sy.pipe());
    let meta = r#""_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=00f067aa0ba902b7","progressToken":"p1"}"#;
    sy.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    sy.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    sy.send(
        CLIENT,
        SERVER,
        c2s,
        &request(1, "tools/call", &format!(r#"{{"name":"t",{meta}}}"#)),
    );
    sy.send(
        SERVER,
        CLIENT,
        s2c,
        &notification(
            "notifications/progress",
            r#"{"progressToken":"p1","progress":1}"#,
        ),
    );
    sy.send(SERVER, CLIENT, s2c, &response(1, r#"{"content":[]}"#));
    sy.tick();
    let cap = sy.finish();
    let file = dir.path().join("t.jsonl");
    export(&cap, "otlp-json", &file, &[]);
    let all = spans(&decode_json(&file));
    let find = |name: &str, kind: i64| {
        all.iter()
            .find(|sp| sp["name"] == name && sp["kind"] == kind)
            .unwrap_or_else(|| panic!("{name} kind {kind}: {all:#?}"))
    };
    let (client, server) = (find("tools/call t", 3), find("tools/call t", 2));
    for sp in [client, server] {
        assert_eq!(sp["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sp["traceState"], "rojo=00f067aa0ba902b7");
        assert_eq!(sp["events"][0]["name"], "notifications/progress");
    }
    assert_eq!(client["parentSpanId"], "00f067aa0ba902b7");
    // Sampled, with a parent known to be remote.
    assert_eq!(client["flags"], 0x301);
    assert_eq!(server["parentSpanId"], client["spanId"]);
    // The progress, sent by the server while serving the call.
    let progress = find("notifications/progress", 3);
    assert_eq!(progress["traceId"], client["traceId"]);
    assert_eq!(progress["parentSpanId"], server["spanId"]);
    // initialize carried no context: a trace of its own, no parent.
    let init = find("initialize", 3);
    assert_ne!(init["traceId"], client["traceId"]);
    assert!(init.get("parentSpanId").is_none());
    // The same capture gives the same ids, every time.
    let again = dir.path().join("t2.jsonl");
    export(&cap, "otlp-json", &again, &[]);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn otlp_export_retries_a_busy_collector_and_fails_clearly_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let cap = typical_session(&dir.path().join("s.db"));
    // 503 twice: retried, and everything arrives.
    let busy = Collector::start(dir.path(), &["--fail-first", "2"]);
    sent_as_the_file_says(&cap, &busy, &dir.path().join("s.otlp.jsonl"));
    // A permanent refusal, and nobody listening: exit 2, said once.
    let refusing = Collector::start(dir.path(), &["--status", "400"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (endpoint, why) in [
        (refusing.endpoint(), "HTTP 400".to_string()),
        (
            format!("http://127.0.0.1:{port}"),
            format!("127.0.0.1:{port}"),
        ),
    ] {
        let o = mcpspy(&[
            "export",
            s(&cap),
            "--format",
            "otlp",
            "--endpoint",
            &endpoint,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&why) && !stderr(&o).contains("panicked"),
            "{}",
            stderr(&o)
        );
    }
    // Options that do not go together.
    for (args, why) in [
        (&["--format", "otlp"][..], "--endpoint"),
        (
            &["--format", "otlp", "--endpoint", "https://collector:4318"],
            "http://",
        ),
        (
            &["--format", "jsonl", "--endpoint", "http://127.0.0.1:1"],
            "--format otlp",
        ),
        (
            &[
                "--format",
                "parquet",
                "--include-content",
                "-o",
                "/dev/null",
            ],
            "--include-content",
        ),
    ] {
        let mut all = vec!["export", s(&cap)];
        all.extend_from_slice(args);
        let o = mcpspy(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    }
}

/// `mcp.session.id` comes from the Mcp-Session-Id header, and is never set
/// for a session of MCP 2026-07-28, which has no sessions.
#[test]
fn a_session_id_only_before_the_sessionless_revision() {
    let dir = tempfile::tempdir().unwrap();
    let discover = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#;
    let init = r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#;
    for (protocol, handshake, result, want) in [
        (
            "2025-06-18",
            request(0, "initialize", init),
            INIT_RESULT,
            Some("abc"),
        ),
        (
            "2026-07-28",
            request(0, "server/discover", discover),
            r#"{"supportedVersions":["2026-07-28"],"capabilities":{},"serverInfo":{"name":"s","version":"1"}}"#,
            None,
        ),
    ] {
        let mut sy = Synth::new(&dir.path().join(format!("{protocol}.db")));
        let c = Conn::new(&mut sy, CLIENT, SERVER, 40000);
        let headers = [
            JSON,
            ("Mcp-Session-Id", "abc"),
            ("MCP-Protocol-Version", protocol),
        ];
        let answer = [JSON, ("Mcp-Session-Id", "abc")];
        let call = request(1, "tools/call", r#"{"name":"t","arguments":{}}"#);
        for (ask, reply) in [(handshake, response(0, result)), (call, response(1, "{}"))] {
            c.request(
                &mut sy,
                &http_request("POST", "/mcp", &headers, ask.as_bytes()),
            );
            c.respond(
                &mut sy,
                &http_response("200 OK", &answer, reply.as_bytes(), true),
            );
        }
        sy.tick();
        let cap = sy.finish();
        let file = dir.path().join(format!("{protocol}.jsonl"));
        export(&cap, "otlp-json", &file, &[]);
        let all = spans(&decode_json(&file));
        assert_eq!(all.len(), 4, "{protocol}: two calls, both ends");
        for sp in &all {
            assert_eq!(attr(sp, "mcp.protocol.version").as_deref(), Some(protocol));
            assert_eq!(attr(sp, "mcp.session.id").as_deref(), want, "{protocol}");
            assert_eq!(attr(sp, "network.protocol.name").as_deref(), Some("http"));
            assert_eq!(attr(sp, "network.protocol.version").as_deref(), Some("1.1"));
            // Each side names the other end: the Host header's name, the ports.
            let (address, port) = match sp["kind"].as_i64() {
                Some(3) => ("server.address", ("server.port", "8000")),
                _ => ("client.address", ("client.port", "40000")),
            };
            assert_eq!(attr(sp, address).as_deref(), Some("127.0.0.1"));
            assert_eq!(attr(sp, port.0).as_deref(), Some(port.1));
        }
    }
}
