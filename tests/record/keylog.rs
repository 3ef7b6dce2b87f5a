//! TLS through key logs (`record --keylog`): Deno (npm `@deno/linux-x64-glibc`)
//! uses rustls, which has no symbols to probe, and writes SSLKEYLOGFILE.
//! The recorder keeps its ciphertext and the key log; the export must hold
//! what the server logged, every message once, paired, sizes exact, and a
//! key log that does not match must show "TLS, no keys", never content.

use super::support::*;
use super::tls_apps::{assert_export_matches_log, exported, HttpsServer};
use super::tls_programs::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// For a test of Deno: BPF, and deno (which the setup installs; missing, it fails).
fn deno_ready(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, tempfile::TempDir)> {
    let ready = bpf_test(name)?;
    assert!(
        deno().exists(),
        "{name}: run scripts/setup.sh (tests/peers/tls-apps)"
    );
    Some(ready)
}

/// `record --keylog K -- deno run fetch_client.mjs URL SIZE`: the command
/// form sets SSLKEYLOGFILE=K for Deno; its HTTPS exchange with the Python
/// SDK's server (HTTP/1.1, a 1 MiB result) is exported as the server logged it.
#[test]
fn deno_over_https_is_read_through_its_key_log() {
    let name = "deno_over_https_is_read_through_its_key_log";
    let Some((_serial, dir)) = deno_ready(name) else {
        return;
    };
    let dir = dir.path();
    let server = HttpsServer::start(dir);
    let (capture, keys) = (dir.join("capture.db"), dir.join("keys.log"));
    let ca = server.ca.to_str().unwrap().to_string();
    let deno_dir = dir.join("deno");
    let size = (1u32 << 20).to_string();
    let rec = start_recorder_env(
        &capture,
        &[
            "--keylog",
            keys.to_str().unwrap(),
            "--",
            deno().to_str().unwrap(),
            "run",
            "--allow-net",
            "--allow-env",
            "--allow-read",
            fetch_client().to_str().unwrap(),
            &server.url,
            &size,
        ],
        &[("DENO_CERT", &ca), ("DENO_DIR", deno_dir.to_str().unwrap())],
    );
    let (code, _, stderr) = rec.wait();
    assert_eq!(
        code,
        Some(0),
        "{name}: deno or the recorder failed: {stderr:?}"
    );
    let port = server.port;
    let logged = server.stop();
    assert!(keys.exists(), "{name}: Deno wrote no key log");
    let meta = meta_json(&capture, "keylog");
    assert!(
        meta["files"][0]["lines_kept"].as_u64().unwrap() >= 4,
        "{name}: {meta}"
    );
    let items = exported(&capture, port);
    let client = items[0]["records"]["writer"]["pid"].as_u64().unwrap() as u32;
    assert_eq!(items[0]["http_transport"]["comm"], "deno", "{name}");
    for v in &items {
        assert_eq!(v["tcp_transport"]["tls"], true, "{name}: {v}");
    }
    assert_export_matches_log(name, &items, &logged, client);
    assert!(
        logged.iter().any(|m| m.bytes > 1 << 20),
        "{name}: a 1 MiB result"
    );
    // Deno's TLS library is not probed: the key log is what opened it.
    assert!(
        !meta_json(&capture, "tls")["probed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["path"].as_str().unwrap().contains("deno")),
        "{name}"
    );
}

/// The messages the Go server logged: (sent by the client, length).
fn go_logged(path: &Path) -> Vec<(bool, u64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["dir"] == "recv", v["len"].as_u64().unwrap())
        })
        .collect()
}

/// Deno (HTTP/2 through its key log) and the Go server (through its
/// crypto/tls probes), both recorded: every message the server logged is
/// exported once, from both ends' copies, paired, and over HTTP/2.
#[test]
fn deno_and_the_go_server_over_http2_are_each_message_once() {
    let name = "deno_and_the_go_server_over_http2_are_each_message_once";
    let Some((_serial, dir)) = deno_ready(name) else {
        return;
    };
    let dir = dir.path();
    let (capture, keys, out) = (dir.join("capture.db"), dir.join("keys.log"), dir.join("s"));
    let rec = start_recorder(
        &capture,
        &[
            "--keylog",
            keys.to_str().unwrap(),
            "--comm",
            "deno",
            "--comm",
            "go-server",
        ],
    );
    let script = Path::new(ROOT).join("tests/peers/deno_session.sh");
    succeed(Command::new(script).arg(&out).arg(&keys).arg("300000"));
    rec.stop();
    let mut want = go_logged(&out.join("server.jsonl"));
    let items = export_items(&capture, &[]);
    let mut got: Vec<(bool, u64)> = items
        .iter()
        .map(|v| {
            (
                v["direction"] == "client->server",
                v["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert!(want.iter().any(|m| m.1 > 300_000), "{name}: {want:?}");
    assert_eq!(got, want, "{name}: exported vs the server's log");
    for v in &items {
        assert_eq!(v["truncated"], false, "{name}: {v}");
        let r = &v["records"];
        assert!(
            r["writer"].is_object() && r["reader"].is_object(),
            "{name}: both ends' copies: {v}"
        );
        let comms = [
            &v["http_transport"]["comm"],
            &v["http_transport"]["peer_comm"],
        ];
        assert!(
            comms.contains(&&Value::from("deno")) && comms.contains(&&Value::from("go-server")),
            "{name}: {v}"
        );
        if matches!(v["type"].as_str(), Some("response" | "error")) {
            assert_eq!(v["request"]["id"], v["id"], "{name}: paired: {v}");
        }
    }
    let show = succeed(Command::new(BIN).arg("show").arg(&capture).arg("1")).stdout;
    let show = String::from_utf8_lossy(&show);
    assert!(show.contains("HTTP/2.0"), "{name}: {show}");
}

/// A key log that holds no secrets of the recorded connection (another
/// run's), or one that never appears, opens nothing: Deno's streams are
/// flagged not_decrypted, in both directions, and no message is shown.
#[test]
fn a_key_log_that_does_not_match_or_is_missing_shows_tls_no_keys() {
    let name = "a_key_log_that_does_not_match_or_is_missing_shows_tls_no_keys";
    let Some((_serial, dir)) = deno_ready(name) else {
        return;
    };
    let dir = dir.path();
    let session = Path::new(ROOT).join("tests/peers/deno_session.sh");
    // Another connection's secrets.
    let stale = dir.join("other-run.keys");
    succeed(
        Command::new(&session)
            .arg(dir.join("warmup"))
            .arg(&stale)
            .arg("1000"),
    );
    for case in ["stale", "missing"] {
        let capture = dir.join(format!("{case}.db"));
        let followed = dir.join(format!("{case}.keys"));
        let rec = start_recorder(
            &capture,
            &["--keylog", followed.to_str().unwrap(), "--comm", "deno"],
        );
        // The other run's lines appear once recording has started (what a
        // file holds before is not kept), so they are in the capture.
        if case == "stale" {
            std::fs::copy(&stale, &followed).unwrap();
        }
        // Deno writes this run's secrets elsewhere.
        let run = dir.join(case);
        succeed(
            Command::new(&session)
                .arg(&run)
                .arg(run.join("keys"))
                .arg("1000"),
        );
        rec.stop();
        let items = export_items(&capture, &[]);
        assert!(
            items.iter().all(|v| v["flag"]["reason"] == "not_decrypted"),
            "{name} ({case}): nothing but not_decrypted: {items:?}"
        );
        let directions: std::collections::BTreeSet<_> = items
            .iter()
            .map(|v| v["tcp_transport"]["from"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            directions.len(),
            2,
            "{name} ({case}): both directions: {items:?}"
        );
        assert!(
            items.iter().all(|v| v["flag"]["detail"]
                .as_str()
                .unwrap()
                .starts_with("TLS, no keys")),
            "{name} ({case}): {items:?}"
        );
        let meta = meta_json(&capture, "keylog");
        if case == "stale" {
            assert!(
                meta["files"][0]["lines_kept"].as_u64().unwrap() >= 4,
                "{name}: {meta}"
            );
        } else {
            assert!(
                meta["files"][0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("No such file"),
                "{name}: {meta}"
            );
        }
    }
}

/// TLS 1.2 and 1.3 from OpenSSL through its key log: Python's http.client
/// (the system libssl, which honours SSLKEYLOGFILE) posts an initialize
/// with TLS capped at 1.2, then one at 1.3; `--no-tls` leaves libssl
/// unprobed, so only the ciphertext and the key log carry them. Both
/// exchanges are exported as the server logged them.
#[test]
fn tls12_and_tls13_from_openssl_are_read_through_its_key_log() {
    let name = "tls12_and_tls13_from_openssl_are_read_through_its_key_log";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let dir = dir.path();
    let server = HttpsServer::start(dir);
    let (capture, keys) = (dir.join("capture.db"), dir.join("keys.log"));
    let client = r#"
import http.client, json, ssl, sys
url, ca = sys.argv[1], sys.argv[2]
host, port = url.split("//")[1].split("/")[0].split(":")
for cap in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.maximum_version = cap
    c = http.client.HTTPSConnection(host, int(port), context=ctx)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "http.client " + cap.name, "version": "1"}}})
    c.request("POST", "/mcp", body, {"content-type": "application/json",
                                     "accept": "application/json, text/event-stream"})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["result"], r.status
    assert c.sock.version() == cap.name.replace("_", "."), c.sock.version()
    c.close()
"#;
    let rec = start_recorder(
        &capture,
        &[
            "--no-tls",
            "--keylog",
            keys.to_str().unwrap(),
            "--",
            "python3",
            "-c",
            client,
            &server.url,
            server.ca.to_str().unwrap(),
        ],
    );
    let (code, _, stderr) = rec.wait();
    assert_eq!(
        code,
        Some(0),
        "{name}: the client or the recorder failed: {stderr:?}"
    );
    let port = server.port;
    let logged = server.stop();
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(
        text.contains("CLIENT_RANDOM ") && text.contains("CLIENT_TRAFFIC_SECRET_0 "),
        "{name}: a TLS 1.2 and a TLS 1.3 key log line: {text}"
    );
    let items = exported(&capture, port);
    assert_eq!(items.len(), 4, "{name}: {items:?}");
    let client = items[0]["records"]["writer"]["pid"].as_u64().unwrap() as u32;
    assert_export_matches_log(name, &items, &logged, client);
    let names: Vec<_> = items
        .iter()
        .filter_map(|v| v["params"]["clientInfo"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["http.client TLSv1_2", "http.client TLSv1_3"],
        "{name}"
    );
}
