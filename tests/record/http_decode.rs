//! HTTP, SSE and HTTPS sessions between real peers, recorded with the real
//! kernel programs and decoded: `export` must hold what the client itself
//! logged as sent and received (tests/peers/wirelog.py), every message once,
//! the right way, ids paired, sizes equal to the JSON text, and a tool
//! result of at least 1 MiB whole. Needs root, BPF and scripts/setup.sh;
//! skipped loudly only where BPF cannot load.

use super::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One message as the client logged it, or as the export shows it:
/// (sent by the client, kind, method, id, bytes).
type Msg = (bool, String, Option<String>, Option<String>, u64);

/// The client's pid, the server's, and the messages the client logged.
fn logged(peer_dir: &Path) -> (u32, u32, Vec<Msg>) {
    let log = ["client.jsonl", "node_client.jsonl"]
        .iter()
        .map(|f| peer_dir.join(f))
        .find(|p| p.exists())
        .expect("a client log");
    let (mut client, mut server, mut msgs) = (0, 0, Vec::new());
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["event"].as_str() {
            Some("start") => client = v["pid"].as_u64().unwrap() as u32,
            Some("peer") => server = v["pid"].as_u64().unwrap() as u32,
            Some("message") => msgs.push((
                v["dir"] == "sent",
                v["kind"].as_str().unwrap().to_string(),
                v["method"].as_str().map(str::to_string),
                (!v["id"].is_null()).then(|| v["id"].to_string()),
                v["bytes"].as_u64().unwrap(),
            )),
            _ => {}
        }
    }
    (client, server, msgs)
}

/// Runs one http_session.py case while recording; returns the capture and
/// the peers' folder.
fn record(dir: &Path, args: &[&str], live: bool) -> (std::path::PathBuf, String) {
    let capture = dir.join("capture.db");
    let peer = dir.join("peer");
    let mut rec_args = vec!["--comm", "python3", "--comm", "node"];
    if live {
        rec_args.insert(0, "--live");
    }
    let rec = start_recorder(&capture, &rec_args);
    succeed(
        Command::new(venv_python())
            .arg(format!("{ROOT}/tests/peers/http_session.py"))
            .arg("--out")
            .arg(&peer)
            .args(args),
    );
    let (stdout, _) = rec.stop();
    (capture, stdout)
}

fn export(capture: &Path, pid: u32) -> Vec<Value> {
    let out = succeed(
        Command::new(BIN)
            .args(["export", "--pid", &pid.to_string()])
            .arg(capture),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The export of one recorded session matches the client's log.
fn session_decodes_as_logged(name: &str, args: &[&str], tls: bool) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let (capture, _) = record(dir.path(), args, false);
    let (client, server, logged) = logged(&dir.path().join("peer"));
    assert!(client != 0 && server != 0 && logged.len() > 10, "{name}");
    let items = export(&capture, client);
    let flagged: Vec<&Value> = items.iter().filter(|i| i["type"] == "flagged").collect();
    assert!(flagged.is_empty(), "{name}: damage: {flagged:#?}");
    let mut shown: Vec<Msg> = Vec::new();
    let by_n: BTreeMap<u64, &Value> = items
        .iter()
        .map(|i| (i["n"].as_u64().unwrap(), i))
        .collect();
    for i in &items {
        assert_eq!(i["transport_type"], "http", "{name}: {i}");
        let h = &i["http_transport"];
        let sent = i["direction"] == "client->server";
        // The right way: the client sent what went client → server.
        let (from, to) = if sent {
            (client, server)
        } else {
            (server, client)
        };
        assert_eq!(h["pid"], from, "{name}: {i}");
        assert_eq!(h["peer_pid"], to, "{name}: both ends named: {i}");
        assert_eq!(h["is_request"], sent, "{name}");
        assert_eq!(i["tcp_transport"]["tls"], tls, "{name}");
        let r = &i["records"];
        assert!(
            !r["writer"].is_null() && !r["reader"].is_null(),
            "{name}: one item from both ends' copies: {i}"
        );
        assert_eq!(i["session"]["client"]["pid"], client, "{name}");
        // Ids paired: a response names its request, which is in the export.
        if matches!(i["type"].as_str(), Some("response" | "error")) {
            let req = &i["request"];
            assert!(!req.is_null(), "{name}: unanswered response {i}");
            assert_eq!(req["id"], i["id"], "{name}");
            let asked = by_n[&req["n"].as_u64().unwrap()];
            assert_eq!(asked["type"], "request");
            assert_ne!(asked["direction"], i["direction"]);
            assert!(i["latency_ms"].as_f64().is_some());
        }
        shown.push((
            sent,
            i["type"].as_str().unwrap().to_string(),
            i["method"].as_str().map(str::to_string),
            (!i["id"].is_null()).then(|| i["id"].to_string()),
            i["size_bytes"].as_u64().unwrap(),
        ));
    }
    // Every message once, compared as multisets each way: a client's
    // concurrent requests go out on several connections, which may carry
    // them in another order than the one it logged them in (and the
    // server answers in an order of its own).
    let one_way = |m: &Vec<Msg>, sent: bool| {
        let mut v: Vec<Msg> = m.iter().filter(|x| x.0 == sent).cloned().collect();
        v.sort();
        v
    };
    assert_eq!(
        one_way(&shown, true),
        one_way(&logged, true),
        "{name}: sent"
    );
    assert_eq!(
        one_way(&shown, false),
        one_way(&logged, false),
        "{name}: received"
    );
    // Within one connection, requests keep the order they were sent in:
    // HTTP/1.1 sends one after the other.
    let mut last_sent: BTreeMap<u64, u64> = BTreeMap::new();
    for i in items.iter().filter(|i| i["direction"] == "client->server") {
        let conn = i["http_transport"]["connection"].as_u64().unwrap_or(0);
        let n = i["n"].as_u64().unwrap();
        if let Some(prev) = last_sent.insert(conn, n) {
            assert!(prev < n, "{name}: connection {conn} out of order");
        }
    }
    // A tool result of at least 1 MiB arrived whole.
    let big = items
        .iter()
        .find(|i| i["type"] == "response" && i["size_bytes"].as_u64().unwrap() >= 1 << 20);
    let big = big.unwrap_or_else(|| panic!("{name}: no 1 MiB result"));
    assert_eq!(big["truncated"], false);
    assert_eq!(big["method"], "tools/call");
    // One session, spread over the connections the client opened.
    let sessions: std::collections::BTreeSet<String> = items
        .iter()
        .map(|i| i["session"]["id"].to_string())
        .collect();
    assert_eq!(sessions.len(), 1, "{name}: {sessions:?}");
}

#[test]
fn python_streamable_http_sse_responses_decode_as_logged() {
    session_decodes_as_logged(
        "python_streamable_http_sse_responses_decode_as_logged",
        &["--peers", "py", "--mode", "legacy", "--blob", "1048576"],
        false,
    );
}

#[test]
fn python_streamable_http_json_responses_decode_as_logged() {
    session_decodes_as_logged(
        "python_streamable_http_json_responses_decode_as_logged",
        &[
            "--peers",
            "py",
            "--json-response",
            "--mode",
            "legacy",
            "--blob",
            "1048576",
        ],
        false,
    );
}

#[test]
fn python_streamable_https_decodes_as_logged() {
    session_decodes_as_logged(
        "python_streamable_https_decodes_as_logged",
        &["--peers", "py", "--tls", "--blob", "1048576"],
        true,
    );
}

#[test]
fn python_streamable_https_json_responses_decode_as_logged() {
    session_decodes_as_logged(
        "python_streamable_https_json_responses_decode_as_logged",
        &[
            "--peers",
            "py",
            "--tls",
            "--json-response",
            "--mode",
            "legacy",
            "--blob",
            "1048576",
        ],
        true,
    );
}

#[test]
fn python_legacy_sse_transport_decodes_as_logged() {
    session_decodes_as_logged(
        "python_legacy_sse_transport_decodes_as_logged",
        &["--peers", "py", "--transport", "sse", "--blob", "1048576"],
        false,
    );
}

#[test]
fn node_server_everything_streamable_http_decodes_as_logged() {
    session_decodes_as_logged(
        "node_server_everything_streamable_http_decodes_as_logged",
        &["--peers", "node", "--echo-size", "1048576"],
        false,
    );
}

#[test]
fn node_server_everything_https_decodes_as_logged() {
    session_decodes_as_logged(
        "node_server_everything_https_decodes_as_logged",
        &["--peers", "node", "--tls", "--echo-size", "1048576"],
        true,
    );
}

/// `record --live` prints, while recording an HTTPS session, exactly what
/// `replay` prints of the file.
#[test]
fn live_view_of_https_equals_replay() {
    let Some((_serial, dir)) = bpf_test("live_view_of_https_equals_replay") else {
        return;
    };
    let (capture, live) = record(dir.path(), &["--peers", "node", "--tls"], true);
    let replay = succeed(Command::new(BIN).arg("replay").arg(&capture));
    let replay = String::from_utf8(replay.stdout).unwrap();
    assert!(
        live.contains("https 127.0.0.1:") && live.contains("POST /mcp REQ initialize"),
        "{live}"
    );
    assert_eq!(live, replay);
}

#[test]
fn python_streamable_https_over_http2_decodes_as_logged() {
    session_decodes_as_logged(
        "python_streamable_https_over_http2_decodes_as_logged",
        &["--peers", "py", "--tls", "--http2", "--blob", "1048576"],
        true,
    );
}

#[test]
fn python_streamable_https_over_http2_json_responses_decode_as_logged() {
    session_decodes_as_logged(
        "python_streamable_https_over_http2_json_responses_decode_as_logged",
        &[
            "--peers",
            "py",
            "--tls",
            "--http2",
            "--json-response",
            "--mode",
            "legacy",
            "--blob",
            "1048576",
        ],
        true,
    );
}
