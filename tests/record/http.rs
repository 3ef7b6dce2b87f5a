//! HTTP, SSE and HTTPS between real peers, recorded with the real kernel
//! programs. Plain HTTP is checked byte for byte against strace's copy of
//! every TCP byte; TLS plaintext against what the clients logged as sent and
//! received, and the two ends against each other. Needs root, BPF and
//! scripts/setup.sh; skipped loudly only where BPF cannot load.

use super::support::*;
use mcpspy::event::Direction;
use std::collections::BTreeMap;
use std::path::Path;

/// Runs an http_session.py case while recording; returns the capture's
/// streams, the strace truth and the peer's log folder.
fn record_session(
    dir: &Path,
    args: &[&str],
    with_truth: bool,
) -> (BTreeMap<StreamKey, Stream>, Vec<TruthStream>) {
    record_session_env(dir, args, with_truth, &[])
}

/// The same, with the recorder's environment extended by `env`.
fn record_session_env(
    dir: &Path,
    args: &[&str],
    with_truth: bool,
    env: &[(&str, &str)],
) -> (BTreeMap<StreamKey, Stream>, Vec<TruthStream>) {
    let capture = dir.join("capture.db");
    let peer = dir.join("peer");
    let python = venv_python();
    let session = format!("{ROOT}/tests/peers/http_session.py");
    let mut cmd: Vec<&str> = vec![python.to_str().unwrap(), &session, "--out"];
    let peer_s = peer.to_str().unwrap().to_string();
    cmd.push(&peer_s);
    cmd.extend_from_slice(args);
    let rec = start_recorder_env(&capture, &[], env);
    let truth = if with_truth {
        run_with_truth(&dir.join("truth"), &cmd)
    } else {
        succeed(std::process::Command::new(cmd[0]).args(&cmd[1..]));
        Vec::new()
    };
    rec.stop();
    (streams(&capture), truth)
}

/// Every TCP stream of the session, both ends, is in the capture byte for byte.
fn plain_http_matches_truth(name: &str, args: &[&str], at_least: usize) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let (captured, truth) = record_session(dir.path(), args, true);
    let tcp: Vec<&TruthStream> = truth.iter().filter(|t| t.kind == "tcp").collect();
    assert!(
        tcp.len() >= 4,
        "{name}: client and server, both directions: {tcp:?}"
    );
    let mut biggest = 0;
    for t in tcp {
        let (lport, rport) = t.tcp_ports().expect("strace names TCP endpoints");
        let found: Vec<&Stream> = captured
            .iter()
            .filter(|(k, s)| {
                k.pid == t.tgid
                    && k.direction == t.direction
                    && !k.tls
                    && s.tcp.as_ref().is_some_and(|e| e.1 == lport && e.3 == rport)
            })
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name}: {} {:?} {:?}",
            t.tgid,
            t.direction,
            t.target
        );
        let s = found[0];
        assert!(s.gaps.is_empty(), "{name}: gaps {:?}", s.gaps);
        // Both directions of one socket are streams of their own, each marked.
        assert!(
            s.marked_start,
            "{name}: {} {:?} start is marked",
            t.target, t.direction
        );
        assert_same_bytes(
            &format!("{name}: {} {:?}", t.target, t.direction),
            &s.bytes,
            &t.bytes,
        );
        biggest = biggest.max(t.bytes.len());
    }
    assert!(
        biggest >= at_least,
        "{name}: the big result crossed the wire ({biggest})"
    );
}

#[test]
fn python_streamable_http_sse_responses() {
    plain_http_matches_truth(
        "python_streamable_http_sse_responses",
        &["--peers", "py", "--blob", "1048576"],
        1 << 20,
    );
}

#[test]
fn python_streamable_http_json_responses() {
    plain_http_matches_truth(
        "python_streamable_http_json_responses",
        &[
            "--peers",
            "py",
            "--json-response",
            "--mode",
            "legacy",
            "--blob",
            "1048576",
        ],
        1 << 20,
    );
}

#[test]
fn python_legacy_sse_transport() {
    plain_http_matches_truth(
        "python_legacy_sse_transport",
        &["--peers", "py", "--transport", "sse", "--blob", "1048576"],
        1 << 20,
    );
}

#[test]
fn node_server_everything_streamable_http() {
    plain_http_matches_truth(
        "node_server_everything_streamable_http",
        &["--peers", "node", "--echo-size", "1048576"],
        1 << 20,
    );
}

/// The texts a client logged as sent and received (tests/peers/wirelog.py).
fn logged(peer_dir: &Path) -> (u32, u32, Vec<String>, Vec<String>) {
    let log = ["client.jsonl", "node_client.jsonl"]
        .iter()
        .map(|f| peer_dir.join(f))
        .find(|p| p.exists())
        .expect("a client log");
    let (mut client, mut server, mut sent, mut recv) = (0, 0, Vec::new(), Vec::new());
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["event"].as_str() {
            Some("start") => client = v["pid"].as_u64().unwrap() as u32,
            Some("peer") => server = v["pid"].as_u64().unwrap() as u32,
            Some("message") => {
                let text = v["text"].as_str().unwrap().to_string();
                if v["dir"] == "sent" {
                    sent.push(text);
                } else {
                    recv.push(text);
                }
            }
            _ => {}
        }
    }
    (client, server, sent, recv)
}

fn plaintext(captured: &BTreeMap<StreamKey, Stream>, pid: u32, d: Direction) -> Vec<&Stream> {
    captured
        .iter()
        .filter(|(k, _)| k.pid == pid && k.direction == d && k.tls)
        .map(|(_, s)| s)
        .collect()
}

/// TLS: the plaintext of both ends is captured through the OpenSSL probes,
/// tied to the TCP connection, and holds every message the client logged.
fn https_plaintext_is_captured(name: &str, args: &[&str]) {
    // A kernel with uprobe_multi links (6.6+) names their type in its BTF.
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    let multi = btf.windows(22).any(|w| w == b"bpf_uprobe_multi_link\0");
    let links = if multi { "uprobe_multi" } else { "perf_event" };
    https_plaintext_is_captured_with(name, args, links, &[]);
}

/// The same, the probes attached as `links` says (the meta's `tls`).
fn https_plaintext_is_captured_with(name: &str, args: &[&str], links: &str, env: &[(&str, &str)]) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let (captured, _) = record_session_env(dir.path(), args, false, env);
    let tls = meta_json(&dir.path().join("capture.db"), "tls");
    assert_eq!(tls["links"], links, "{name}: {tls}");
    let (client, server, sent, recv) = logged(&dir.path().join("peer"));
    assert!(client != 0 && server != 0 && !sent.is_empty() && !recv.is_empty());
    let haystack = |pid, d| -> String {
        plaintext(&captured, pid, d)
            .iter()
            .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
            .collect()
    };
    let client_out = haystack(client, Direction::Write);
    let client_in = haystack(client, Direction::Read);
    for text in &sent {
        assert!(
            client_out.contains(text.as_str()),
            "{name}: sent {text:.200}"
        );
    }
    for text in &recv {
        assert!(
            client_in.contains(text.as_str()),
            "{name}: received {text:.200}"
        );
    }
    assert!(
        recv.iter().any(|t| t.len() >= 1 << 20),
        "{name}: a 1 MiB result"
    );
    // Each TLS stream knows its TCP connection, and the far end saw the same bytes.
    let server_in: Vec<&Stream> = plaintext(&captured, server, Direction::Read);
    for s in plaintext(&captured, client, Direction::Write) {
        assert!(s.gaps.is_empty());
        let (_, lport, _, rport) = s.tcp.clone().expect("TLS stream tied to its socket");
        let far = server_in
            .iter()
            .find(|f| f.tcp.as_ref().is_some_and(|e| e.1 == rport && e.3 == lport))
            .unwrap_or_else(|| panic!("{name}: server end of port {lport}"));
        assert!(
            far.bytes == s.bytes,
            "{name}: both ends of port {lport} agree"
        );
    }
}

#[test]
fn python_https_client_and_server() {
    https_plaintext_is_captured(
        "python_https_client_and_server",
        &["--peers", "py", "--tls", "--blob", "1048576"],
    );
}

/// Kernels before 6.6 have no uprobe_multi links: one perf-event uprobe
/// per function captures the same.
#[test]
fn python_https_through_perf_event_uprobes() {
    https_plaintext_is_captured_with(
        "python_https_through_perf_event_uprobes",
        &["--peers", "py", "--tls", "--blob", "1048576"],
        "perf_event",
        &[("MCPSPY_UPROBE_MULTI", "0")],
    );
}

#[test]
fn python_https_legacy_sse() {
    https_plaintext_is_captured(
        "python_https_legacy_sse",
        &[
            "--peers",
            "py",
            "--tls",
            "--transport",
            "sse",
            "--blob",
            "1048576",
        ],
    );
}

#[test]
fn node_https_client_and_server_everything() {
    https_plaintext_is_captured(
        "node_https_client_and_server_everything",
        &["--peers", "node", "--tls", "--echo-size", "1048576"],
    );
}

/// A connection's last bytes, written as the peer's reset closes the socket
/// (how an SSE response often ends), are captured under the connection's own
/// endpoints, on every rung.
#[test]
fn last_write_as_the_peer_resets_is_captured() {
    let name = "last_write_as_the_peer_resets_is_captured";
    if !bpf_available(name) {
        return;
    }
    let _serial = serial();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/workloads/tcp_reset_tail.py"
    );
    for rung in ["tp-btf", "raw-tp", "tracepoint"] {
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("capture.db");
        let rec = start_recorder(&capture, &["--attach", rung]);
        let out = succeed(std::process::Command::new("python3").arg(script));
        rec.stop();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // TCP_CLOSE: the reset was handled inside the last write, the case under test.
        assert_eq!(report["state_after_tail"], 7, "{name} {rung}: {report}");
        let pid = report["pid"].as_u64().unwrap() as u32;
        let port = report["port"].as_u64().unwrap() as u16;
        let captured = streams(&capture);
        let server_writes: Vec<&Stream> = captured
            .iter()
            .filter(|(k, s)| {
                k.pid == pid
                    && k.direction == Direction::Write
                    && s.tcp.as_ref().is_some_and(|e| e.1 == port)
            })
            .map(|(_, s)| s)
            .collect();
        assert_eq!(server_writes.len(), 1, "{name} {rung}: {captured:?}");
        assert!(server_writes[0].gaps.is_empty());
        assert_same_bytes(
            &format!("{name} {rung}"),
            &server_writes[0].bytes,
            report["written"].as_str().unwrap().as_bytes(),
        );
    }
}

/// MCP 2026-07-28 cancels a request over HTTP by closing its response
/// stream; over HTTP/1.1 that is closing the connection. A client on the
/// system's OpenSSL (Python's http.client) calls the Python SDK server's
/// slow tool over HTTPS and closes the connection after the first event:
/// the socket's close ends the TLS stream the probes captured, and the
/// export names the call it cancels, once.
#[test]
fn a_python_https_client_cancels_a_call_by_closing_its_connection() {
    let name = "a_python_https_client_cancels_a_call_by_closing_its_connection";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let d = dir.path();
    let capture = d.join("capture.db");
    let rec = start_recorder(&capture, &["--comm", "python3"]);
    let server = super::tls_apps::HttpsServer::start_sse(d);
    let sent = d.join("client.jsonl");
    succeed(
        std::process::Command::new(venv_python())
            .arg(format!("{ROOT}/tests/peers/cancel_client.py"))
            .arg(&server.url)
            .arg(&server.ca)
            .arg(&sent),
    );
    // The server sees the close, and stops the call, before it stops.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logged = server.stop();
    rec.stop();
    assert!(
        logged.iter().any(|m| m.id == "2" && m.kind == "request"),
        "{name}: the server got the slow call: {logged:?}"
    );
    assert!(
        !logged
            .iter()
            .any(|m| m.id == "2" && (m.kind == "response" || m.kind == "error")),
        "{name}: the server answered the cancelled call: {logged:?}"
    );
    let items = export_items(&capture, &[]);
    let call = items
        .iter()
        .find(|i| i["type"] == "request" && i["id"] == 2)
        .unwrap_or_else(|| panic!("{name}: the slow call exported: {items:#?}"));
    let closed: Vec<_> = items
        .iter()
        .filter(|i| i["flag"]["reason"] == "closed")
        .collect();
    assert_eq!(closed.len(), 1, "{name}: {closed:#?}");
    assert_eq!(
        closed[0]["request"]["n"], call["n"],
        "{name}: {:#}",
        closed[0]
    );
    assert_eq!(
        closed[0]["tcp_transport"]["tls"], true,
        "{name}: {:#}",
        closed[0]
    );
}
