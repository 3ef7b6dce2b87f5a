//! Real MCP peers from the registries, recorded with the real kernel
//! programs, checked against an independent ground truth: strace's copy of
//! every byte each process wrote and read. Needs root, BPF and
//! scripts/setup.sh; skipped loudly only where BPF cannot load.

use super::support::*;
use std::collections::BTreeSet;
use std::process::Command;

/// Records `args` and checks that every MCP stream of the session (a pipe or
/// socket stream whose bytes start like JSON) is in the capture, byte for
/// byte, per stream and in order, and that nothing else of theirs is.
fn session_matches_truth(name: &str, args: &[&str]) -> usize {
    let Some((_serial, dir)) = bpf_test(name) else {
        return 0;
    };
    let capture = dir.path().join("capture.db");
    // "{OUT}" in the peer's arguments: its own log folder.
    let out = dir.path().join("peer");
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{OUT}", out.to_str().unwrap()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rec = start_recorder(&capture, &[]);
    let truth = run_with_truth(&dir.path().join("truth"), &args);
    rec.stop();

    let captured = streams(&capture);
    let mcp: Vec<&TruthStream> = truth
        .iter()
        .filter(|t| (t.kind == "pipe" || t.kind == "unix") && starts_like_json(&t.bytes))
        .collect();
    assert!(
        mcp.len() >= 4,
        "{name}: a session has two streams each way: {mcp:?}"
    );
    for t in &mcp {
        let key = StreamKey {
            pid: t.tgid,
            ino: t.inode,
            direction: t.direction,
            tls: false,
            incarnation: 0,
        };
        let got = captured.get(&key).unwrap_or_else(|| {
            panic!(
                "{name}: stream {key:?} ({} bytes) missing; captured: {:?}",
                t.bytes.len(),
                captured.keys().collect::<Vec<_>>()
            )
        });
        assert!(
            got.gaps.is_empty(),
            "{name}: {key:?} has gaps {:?}",
            got.gaps
        );
        assert_same_bytes(&format!("{name}: {key:?}"), &got.bytes, &t.bytes);
    }
    // Nothing but MCP streams of these processes was captured.
    let pids: BTreeSet<u32> = truth.iter().map(|t| t.tgid).collect();
    let expected: BTreeSet<StreamKey> = mcp
        .iter()
        .map(|t| StreamKey {
            pid: t.tgid,
            ino: t.inode,
            direction: t.direction,
            tls: false,
            incarnation: 0,
        })
        .collect();
    for key in captured.keys().filter(|k| pids.contains(&k.pid)) {
        assert!(expected.contains(key), "{name}: unexpected stream {key:?}");
    }
    mcp.iter().map(|t| t.bytes.len()).sum()
}

/// A real Python SDK session recorded with --sign: it verifies, and every
/// change to it is caught (tests/decode/tamper.rs).
#[test]
fn a_signed_recording_of_a_real_session_resists_tampering() {
    let Some((_serial, dir)) = bpf_test("a_signed_recording_of_a_real_session_resists_tampering")
    else {
        return;
    };
    let key = dir.path().join("k.key");
    let (public, _) = mcpspy::capture::generate_key(&key).unwrap();
    let other = dir.path().join("o.key");
    mcpspy::capture::generate_key(&other).unwrap();
    let mut recorded = Vec::new();
    for name in ["a.db", "b.db"] {
        let capture = dir.path().join(name);
        let rec = start_recorder(
            &capture,
            &["--sign", key.to_str().unwrap(), "--comm", "python3"],
        );
        let python = venv_python();
        succeed(Command::new(&python).arg(py("py_client.py")).args([
            "--out",
            dir.path().join(format!("peer-{name}")).to_str().unwrap(),
            "--mode",
            "legacy",
        ]));
        rec.stop();
        recorded.push(capture);
    }
    let scratch = tempfile::tempdir().unwrap();
    super::tamper::every_change_is_caught(
        &recorded[0],
        &public,
        &recorded[1],
        &other,
        scratch.path(),
    );
}

fn py(script: &str) -> String {
    format!("{ROOT}/tests/peers/{script}")
}

#[test]
fn python_sdk_stdio_session_with_1_and_16_mib_results() {
    let python = venv_python();
    let bytes = session_matches_truth(
        "python_sdk_stdio_session_with_1_and_16_mib_results",
        &[
            python.to_str().unwrap(),
            &py("py_client.py"),
            "--out",
            "{OUT}",
            "--mode",
            "legacy",
            "--blob",
            "1048576",
            "--blob",
            "16777216",
        ],
    );
    assert!(
        bytes == 0 || bytes > 2 * (17 << 20),
        "both copies of both blobs: {bytes}"
    );
}

#[test]
fn python_sdk_stdio_session_2026_discover_mode() {
    let python = venv_python();
    session_matches_truth(
        "python_sdk_stdio_session_2026_discover_mode",
        &[
            python.to_str().unwrap(),
            &py("py_client.py"),
            "--out",
            "{OUT}",
        ],
    );
}

#[test]
fn python_sdk_stdio_over_a_unix_socket_pair() {
    let python = venv_python();
    session_matches_truth(
        "python_sdk_stdio_over_a_unix_socket_pair",
        &[
            python.to_str().unwrap(),
            &py("py_client.py"),
            "--out",
            "{OUT}",
            "--transport",
            "socketpair",
            "--mode",
            "legacy",
        ],
    );
}

#[test]
fn raw_pair_tiny_writes_and_reads() {
    let python = venv_python();
    session_matches_truth(
        "raw_pair_tiny_writes_and_reads",
        &[
            python.to_str().unwrap(),
            &py("raw_pair.py"),
            "--out",
            "{OUT}",
            "--write-chunk",
            "7",
            "--read-chunk",
            "5",
        ],
    );
}

#[test]
fn node_sdk_client_with_server_everything() {
    session_matches_truth(
        "node_sdk_client_with_server_everything",
        &[
            "node",
            &py("node_client.mjs"),
            "--out",
            "{OUT}",
            "--echo-size",
            "1048576",
        ],
    );
}

/// `record --live` prints, while recording, exactly what `replay` prints of
/// the file it wrote.
#[test]
fn live_view_equals_replay_of_the_file() {
    let Some((_serial, dir)) = bpf_test("live_view_equals_replay_of_the_file") else {
        return;
    };
    let capture = dir.path().join("live.db");
    let python = venv_python();
    let rec = start_recorder(&capture, &["--live", "--comm", "python3", "--comm", "node"]);
    for args in [
        vec![
            py("py_client.py"),
            "--mode".into(),
            "legacy".into(),
            "--blob".into(),
            "200000".into(),
        ],
        vec![py("py_client.py")],
    ] {
        succeed(
            std::process::Command::new(&python)
                .args(&args)
                .arg("--out")
                .arg(dir.path().join("peer")),
        );
    }
    let (live, _) = rec.stop();
    let replay = succeed(std::process::Command::new(BIN).arg("replay").arg(&capture));
    let replay = String::from_utf8(replay.stdout).unwrap();
    assert!(
        live.lines().count() > 50,
        "both sessions shown live: {live}"
    );
    assert!(live.contains("REQ initialize") && live.contains("REQ server/discover"));
    assert_eq!(live, replay);
}

/// A multi-round call of MCP 2026-07-28 between the Python SDK's client and
/// server over stdio: the client's log says which retry echoed which
/// response's `requestState` (a sealed state the server minted); the
/// export links the same requests, by id, as rounds 1 to 3 of one call.
#[test]
fn python_sdk_multi_round_call_is_one_call_with_its_rounds() {
    use serde_json::Value;
    let Some((_serial, dir)) = bpf_test("python_sdk_multi_round_call_is_one_call_with_its_rounds")
    else {
        return;
    };
    let capture = dir.path().join("capture.db");
    let out = dir.path().join("peer");
    let rec = start_recorder(&capture, &["--comm", "python3"]);
    succeed(
        Command::new(venv_python())
            .arg(py("py_client.py"))
            .args(["--out", out.to_str().unwrap()]),
    );
    rec.stop();

    // The truth: the client's requests of `confirm`, and which earlier
    // response gave the state each one echoes.
    let log: Vec<Value> = std::fs::read_to_string(out.join("client.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["event"] == "message")
        .map(|v| serde_json::from_str(v["text"].as_str().unwrap()).unwrap())
        .collect();
    let calls: Vec<&Value> = log
        .iter()
        .filter(|m| m["method"] == "tools/call" && m["params"]["name"] == "confirm")
        .collect();
    assert_eq!(calls.len(), 3, "the scenario makes three rounds: {calls:?}");
    for pair in calls.windows(2) {
        let answer = log
            .iter()
            .find(|m| m["id"] == pair[0]["id"] && m.get("result").is_some())
            .expect("each round answered");
        assert_eq!(answer["result"]["resultType"], "input_required");
        assert_eq!(
            answer["result"]["requestState"],
            pair[1]["params"]["requestState"]
        );
    }

    // The export: the same requests, by id, as one call's rounds.
    let exported: Vec<Value> =
        String::from_utf8(succeed(Command::new(BIN).arg("export").arg(&capture)).stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let requests: Vec<&Value> = exported
        .iter()
        .filter(|i| i["type"] == "request" && i["subject"] == "confirm")
        .collect();
    let ids: Vec<&Value> = requests.iter().map(|i| &i["id"]).collect();
    assert_eq!(ids, calls.iter().map(|c| &c["id"]).collect::<Vec<_>>());
    let first = requests[0]["n"].as_u64().unwrap();
    let round = |call: u64, round: u32| serde_json::json!({"call": call, "round": round});
    assert!(requests[0].get("round").is_none());
    assert_eq!(requests[1]["round"], round(first, 2));
    assert_eq!(requests[2]["round"], round(first, 3));
    for (k, request) in requests.iter().enumerate() {
        let response = exported
            .iter()
            .find(|i| i["type"] == "response" && i["request"]["n"] == request["n"])
            .expect("each round's response exported");
        assert_eq!(response["id"], request["id"]);
        assert_eq!(response["round"], round(first, k as u32 + 1));
    }
}
