//! Go's crypto/tls, recorded with the real kernel programs: the Go MCP
//! client and server of tests/peers/go (standard library only, Streamable
//! HTTP over HTTP/2 over TLS, JSON and SSE responses, a tool result over
//! 1 MiB), built by Go 1.19 from Debian as they come (non-PIE, with symbols)
//! and as stripped PIEs. Both start after the recording began. `export`
//! must hold what each side logged: every message once, the right way, ids
//! paired, sizes exact. Needs root, BPF and scripts/setup.sh (golang-go).

use super::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (sent by the client, bytes) of each message a side logged.
type Msg = (bool, u64);

fn build(dir: &Path, source: &str, out: &str, pie: bool) -> PathBuf {
    let exe = dir.join(out);
    let mut cmd = Command::new("go");
    cmd.arg("build").arg("-o").arg(&exe);
    if pie {
        cmd.args(["-buildmode=pie", "-ldflags=-s -w"]);
    }
    // Each program is its own file and the message log they share.
    cmd.arg(format!("{ROOT}/tests/peers/go/{source}"))
        .arg(format!("{ROOT}/tests/peers/go/msglog.go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off");
    succeed(&mut cmd);
    exe
}

/// The Go server at `addr`, logging to d/server.jsonl, with d/tls's key.
fn go_server(exe: &Path, addr: &str, d: &Path, plain: bool) -> Reaped {
    Reaped(
        Command::new(exe)
            .args(["-addr", addr, "-log"])
            .arg(d.join("server.jsonl"))
            .args(plain.then_some("-plain"))
            .arg("-cert")
            .arg(d.join("tls/cert.pem"))
            .arg("-key")
            .arg(d.join("tls/key.pem"))
            .spawn()
            .unwrap(),
    )
}

fn logged(path: &Path) -> Vec<Msg> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let from_client = (v["peer"] == "client") == (v["dir"] == "send");
            (from_client, v["len"].as_u64().unwrap())
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What recording the Go pair left in `d`.
struct GoPair {
    capture: PathBuf,
    server_exe: PathBuf,
    client_exe: PathBuf,
    comm_s: String,
    comm_c: String,
    stderr: Vec<String>,
}

/// Builds the Go server and client into `d`, and records one session
/// between them (the client run with `client_args` too).
/// The pair over HTTPS (HTTP/2), or with `plain` over HTTP/1.1 without TLS.
/// What the Go pair speaks.
#[derive(Clone, Copy, PartialEq)]
enum Wire {
    /// HTTP/2 over TLS, as Go does by default.
    H2,
    /// HTTP/1.1 over TLS.
    Http1Tls,
    /// HTTP/1.1 without TLS.
    Plain,
}

fn record_go_pair(d: &Path, pie: bool, wire: Wire, client_args: &[&str]) -> GoPair {
    let plain = wire == Wire::Plain;
    let suffix = if pie { "-pie" } else { "" };
    let server_exe = build(d, "go_server.go", &format!("go-server{suffix}"), pie);
    let client_exe = build(d, "go_client.go", &format!("go-client{suffix}"), pie);
    succeed(Command::new(format!("{ROOT}/tests/peers/make_cert.sh")).arg(d.join("tls")));
    let cert = d.join("tls/cert.pem");
    let capture = d.join("capture.db");
    let comm_s = format!("go-server{suffix}");
    let comm_c = format!("go-client{suffix}");
    let rec = start_recorder(&capture, &["--comm", &comm_s, "--comm", &comm_c]);
    let addr = format!("127.0.0.1:{}", free_port());
    let server = go_server(&server_exe, &addr, d, plain);
    let scheme = if plain { "http" } else { "https" };
    // The client waits a moment first, as a long-lived program would: the
    // recorder probes a program when it sees it start.
    succeed(
        Command::new(&client_exe)
            .args(["-url", &format!("{scheme}://{addr}/mcp"), "-log"])
            .arg(d.join("client.jsonl"))
            .arg("-ca")
            .arg(&cert)
            .args(["-start-delay", "1s"])
            .args((wire != Wire::H2).then_some("-require-h2=false"))
            .args((wire == Wire::Http1Tls).then_some("-http1"))
            .args(client_args),
    );
    drop(server);
    let (_, stderr) = rec.stop();
    GoPair {
        capture,
        server_exe,
        client_exe,
        comm_s,
        comm_c,
        stderr,
    }
}

fn go_pair_decodes_as_logged(name: &str, pie: bool) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let d = dir.path();
    let GoPair {
        capture,
        server_exe,
        client_exe,
        comm_s,
        comm_c,
        stderr,
    } = record_go_pair(d, pie, Wire::H2, &[]);
    let client_log = logged(&d.join("client.jsonl"));
    let server_log = logged(&d.join("server.jsonl"));
    assert_eq!(client_log.len(), 10, "{name}");
    // The record names each Go binary it probed, and how it found crypto/tls.
    let info =
        String::from_utf8(succeed(Command::new(BIN).arg("info").arg(&capture)).stdout).unwrap();
    let found_by = if pie { "gopclntab" } else { "symtab" };
    for exe in [&server_exe, &client_exe] {
        let shown = format!("{}\",\"functions\"", exe.display());
        assert!(info.contains(&shown), "{name}: {info}");
    }
    assert!(
        info.contains(&format!("\"found_by\":\"{found_by}\"")),
        "{info}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("Go binary") && l.contains(&comm_c)),
        "{name}: {stderr:?}"
    );
    let out = succeed(Command::new(BIN).arg("export").arg(&capture)).stdout;
    let items: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut shown: Vec<Msg> = Vec::new();
    for i in &items {
        assert_ne!(i["type"], "flagged", "{name}: {i}");
        assert_eq!(i["transport_type"], "http", "{name}: {i}");
        assert_eq!(i["tcp_transport"]["tls"], true);
        let r = &i["records"];
        assert!(
            !r["writer"].is_null() && !r["reader"].is_null(),
            "{name}: {i}"
        );
        let sent = i["direction"] == "client->server";
        let (from, to) = if sent {
            (&comm_c, &comm_s)
        } else {
            (&comm_s, &comm_c)
        };
        assert_eq!(i["http_transport"]["comm"], from.as_str(), "{name}: {i}");
        assert_eq!(i["http_transport"]["peer_comm"], to.as_str(), "{name}: {i}");
        if i["type"] == "response" || i["type"] == "error" {
            assert!(!i["request"].is_null(), "{name}: unpaired {i}");
            assert_eq!(i["request"]["id"], i["id"]);
        }
        shown.push((sent, i["size_bytes"].as_u64().unwrap()));
    }
    let sizes = |m: &[Msg]| {
        let mut v = m.to_vec();
        v.sort();
        v
    };
    assert_eq!(
        sizes(&shown),
        sizes(&client_log),
        "{name}: the client's log"
    );
    assert_eq!(
        sizes(&shown),
        sizes(&server_log),
        "{name}: the server's log"
    );
    assert!(
        shown.iter().any(|m| !m.0 && m.1 > 1 << 20),
        "{name}: 1 MiB result"
    );
}

#[test]
fn go_pair_with_symbols_decodes_as_logged() {
    go_pair_decodes_as_logged("go_pair_with_symbols_decodes_as_logged", false);
}

#[test]
fn go_pair_stripped_pie_decodes_as_logged() {
    go_pair_decodes_as_logged("go_pair_stripped_pie_decodes_as_logged", true);
}

/// The official Python SDK client over HTTP/2 (libssl) against the Go
/// server (crypto/tls): the export holds every message the server logged,
/// once, the right way, both ends' copies.
#[test]
fn python_client_against_the_go_server_over_http2() {
    let name = "python_client_against_the_go_server_over_http2";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let d = dir.path();
    let server_exe = build(d, "go_server.go", "go-server", false);
    succeed(Command::new(format!("{ROOT}/tests/peers/make_cert.sh")).arg(d.join("tls")));
    let cert = d.join("tls/cert.pem");
    let capture = d.join("capture.db");
    let rec = start_recorder(&capture, &["--comm", "go-server", "--comm", "python3"]);
    let addr = format!("127.0.0.1:{}", free_port());
    let server = go_server(&server_exe, &addr, d, false);
    // The server waits for its client; the recorder probes it meanwhile.
    std::thread::sleep(std::time::Duration::from_secs(1));
    succeed(
        Command::new(venv_python())
            .arg(format!("{ROOT}/tests/peers/go/py_h2_client.py"))
            .arg(format!("https://{addr}/mcp"))
            .arg(&cert),
    );
    drop(server);
    rec.stop();
    let server_log = logged(&d.join("server.jsonl"));
    assert!(server_log.len() >= 10, "{server_log:?}");
    let out = succeed(Command::new(BIN).arg("export").arg(&capture)).stdout;
    let mut shown: Vec<Msg> = Vec::new();
    for l in String::from_utf8(out).unwrap().lines() {
        let i: Value = serde_json::from_str(l).unwrap();
        let r = &i["records"];
        assert!(!r["writer"].is_null() && !r["reader"].is_null(), "{i}");
        if i["type"] == "flagged" {
            // The SDK's GET for a stream of server messages, which the Go
            // server refuses (405): flagged as an HTTP error, nothing else.
            assert_eq!(i["flag"]["reason"], "http_error", "{i}");
            assert_eq!(i["http_transport"]["method"], "GET", "{i}");
            assert_eq!(i["http_transport"]["status"], 405, "{i}");
            continue;
        }
        assert!(!r["writer"].is_null() && !r["reader"].is_null(), "{i}");
        let sent = i["direction"] == "client->server";
        let from = if sent { "python3" } else { "go-server" };
        assert_eq!(i["http_transport"]["comm"], from, "{i}");
        shown.push((sent, i["size_bytes"].as_u64().unwrap()));
    }
    shown.sort();
    let mut want = server_log;
    want.sort();
    assert_eq!(shown, want);
}

/// MCP 2026-07-28 cancels a request over HTTP by closing its stream: the Go
/// client calls the slow tool and, once its event stream has begun, cancels
/// it; Go's HTTP/2 transport resets the stream (RST_STREAM, CANCEL).
#[test]
fn a_go_client_cancels_a_call_by_resetting_its_stream() {
    cancelled_call_is_named(
        "a_go_client_cancels_a_call_by_resetting_its_stream",
        Wire::H2,
        "reset",
    );
}

/// Over HTTP/1.1 the only way to close a response stream is to close the
/// connection: Go's transport does, the recorder sees the client's close
/// and the server's end of file, and the first of them cancels the call.
#[test]
fn a_go_client_cancels_a_call_by_closing_its_http1_connection() {
    cancelled_call_is_named(
        "a_go_client_cancels_a_call_by_closing_its_http1_connection",
        Wire::Plain,
        "closed",
    );
}

/// The same over TLS, whose plaintext the Go probes capture: the socket's
/// close ends the TLS stream above it.
#[test]
fn a_go_client_cancels_a_call_by_closing_its_https1_connection() {
    cancelled_call_is_named(
        "a_go_client_cancels_a_call_by_closing_its_https1_connection",
        Wire::Http1Tls,
        "closed",
    );
}

/// The export names the request the cancellation (flag `reason`) cancels,
/// by the id the client logged, once; and `check` does not count it as
/// unanswered.
fn cancelled_call_is_named(name: &str, wire: Wire, reason: &str) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let d = dir.path();
    let pair = record_go_pair(d, false, wire, &["-cancel-slow"]);
    // The client's log: one line per message, its text in `msg`.
    let sent: Vec<Value> = std::fs::read_to_string(d.join("client.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["dir"] == "send")
        .map(|v| serde_json::from_str(v["msg"].as_str().unwrap()).unwrap())
        .collect();
    let slow = sent
        .iter()
        .find(|m| m["params"]["name"] == "slow")
        .expect("the client logged its slow call");
    let items = export_items(&pair.capture, &[]);
    let request = items
        .iter()
        .find(|i| i["type"] == "request" && i["id"] == slow["id"])
        .expect("the slow call exported");
    let resets: Vec<&Value> = items
        .iter()
        .filter(|i| i["flag"]["reason"] == reason)
        .collect();
    assert_eq!(resets.len(), 1, "{name}: {resets:?}");
    assert_eq!(
        resets[0]["request"]["n"], request["n"],
        "{name}: {}",
        resets[0]
    );
    assert_eq!(resets[0]["request"]["id"], slow["id"]);
    assert!(items
        .iter()
        .all(|i| i["type"] != "response" || i["request"]["n"] != request["n"]));
    let findings = succeed(
        Command::new(BIN)
            .args(["check", "--format", "json", "--fail-on", "never"])
            .arg(&pair.capture),
    )
    .stdout;
    let pending = String::from_utf8(findings)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"protocol.pending\""))
        .count();
    assert_eq!(pending, 0, "{name}: the cancelled call is not pending");
}

/// The entry probes sit on Go's stack check, and a call whose stack must
/// grow runs that check twice: (*tls.Conn).Write called from every call
/// depth 0..400 on fresh goroutines (tests/peers/go/stack_writer.go) grows
/// the stack in some of them, and each write is still taken once. Without
/// the probe's test of the check's flags, some 300 of them come out twice
/// or three times.
#[test]
fn a_go_write_whose_stack_grows_is_taken_once() {
    let name = "a_go_write_whose_stack_grows_is_taken_once";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let d = dir.path();
    let exe = build(d, "stack_writer.go", "stack-writer", false);
    succeed(Command::new(format!("{ROOT}/tests/peers/make_cert.sh")).arg(d.join("tls")));
    let capture = d.join("capture.db");
    let rec = start_recorder(&capture, &["--comm", "stack-writer"]);
    succeed(
        Command::new(&exe)
            .arg("-cert")
            .arg(d.join("tls/cert.pem"))
            .arg("-key")
            .arg(d.join("tls/key.pem"))
            .args(["-depths", "400", "-start-delay", "1s"]),
    );
    rec.stop();
    let items = export_items(&capture, &[]);
    let mut ids: Vec<u64> = items
        .iter()
        .filter(|i| i["type"] == "request")
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..400).collect::<Vec<u64>>(), "{name}");
    // The close after the last request, which had no response, is all
    // else there is.
    assert!(
        items
            .iter()
            .all(|i| i["type"] == "request" || i["flag"]["reason"] == "closed"),
        "{name}: {items:#?}"
    );
}
