//! TLS in programs that export no OpenSSL symbols: Bun (npm `bun`), a
//! `bun build --compile` program and Claude Code link BoringSSL, which
//! record locates by its scan. Each exchange with the Python SDK's HTTPS
//! server is checked against what the server itself logged: every message
//! once, its size exact, every request paired with its response, the
//! client's end seen through the probes. Needs scripts/setup.sh
//! (tests/peers/tls-apps); Claude Code is optional there and its test is
//! skipped loudly without it.

use super::support::*;
use super::tls_programs::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python SDK's Streamable HTTP server over TLS (JSON responses), with
/// a CA of its own and a log of every message it received and sent.
pub struct HttpsServer {
    child: Child,
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
    pub ca: PathBuf,
}

impl HttpsServer {
    pub fn start(dir: &Path) -> HttpsServer {
        HttpsServer::launch(dir, &["--json-response"])
    }

    /// The same server answering with event streams.
    pub fn start_sse(dir: &Path) -> HttpsServer {
        HttpsServer::launch(dir, &[])
    }

    fn launch(dir: &Path, args: &[&str]) -> HttpsServer {
        let peers = Path::new(ROOT).join("tests/peers");
        let pki = dir.join("pki");
        succeed(Command::new(peers.join("make_pki.sh")).arg(&pki));
        let (info, log) = (dir.join("server.info.json"), dir.join("server.jsonl"));
        let child = Command::new(venv_python())
            .arg(peers.join("py_server.py"))
            .args(["--transport", "http"])
            .args(args)
            .arg("--certfile")
            .arg(pki.join("cert.pem"))
            .arg("--keyfile")
            .arg(pki.join("key.pem"))
            .arg("--info")
            .arg(&info)
            .arg("--wirelog")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting py_server.py");
        let deadline = Instant::now() + Duration::from_secs(30);
        let info: Value = loop {
            if let Some(v) = std::fs::read(&info)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                break v;
            }
            assert!(Instant::now() < deadline, "py_server.py never listened");
            std::thread::sleep(Duration::from_millis(100));
        };
        HttpsServer {
            child,
            url: info["url"].as_str().unwrap().to_string(),
            port: info["port"].as_u64().unwrap() as u16,
            log,
            ca: pki.join("ca.pem"),
        }
    }

    /// Stops the server; returns the messages it logged: (dir, kind, id, method, bytes).
    pub fn stop(mut self) -> Vec<Logged> {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "message")
            .map(|v| Logged {
                direction: if v["dir"] == "recv" {
                    "client->server"
                } else {
                    "server->client"
                },
                kind: v["kind"].as_str().unwrap().to_string(),
                id: v["id"].to_string(),
                method: v["method"].as_str().map(str::to_string),
                bytes: v["bytes"].as_u64().unwrap(),
            })
            .collect()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as the server logged it, or as the export shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Logged {
    pub direction: &'static str,
    pub kind: String,
    pub id: String,
    pub method: Option<String>,
    pub bytes: u64,
}

/// The export's items on the connections to `port`.
pub fn exported(capture: &Path, port: u16) -> Vec<Value> {
    let server = format!(":{port}");
    export_items(capture, &[])
        .into_iter()
        .filter(|v| {
            v["http_transport"]["server"]
                .as_str()
                .is_some_and(|s| s.ends_with(&server))
        })
        .collect()
}

/// The export holds exactly the messages the server logged (as multisets:
/// connections are independent), each response paired with its request,
/// and `client`'s end of each was seen (it wrote the requests, read the
/// responses) through its own probes. The client closing a request's
/// stream at its end (Claude Code's `subscriptions/listen`, which never
/// has a response) is an item of its own, `closed`, naming a request the
/// server got and never answered: no message.
pub fn assert_export_matches_log(name: &str, items: &[Value], logged: &[Logged], client: u32) {
    let mut want: Vec<Logged> = logged.to_vec();
    let closed = |v: &&Value| v["flag"]["reason"] == "closed";
    for c in items.iter().filter(closed) {
        let n = &c["request"]["n"];
        assert!(
            items.iter().any(|v| v["type"] == "request" && v["n"] == *n)
                && !items
                    .iter()
                    .any(|v| v["request"]["n"] == *n && v["type"] != "flagged"),
            "{name}: a close cancels only a request left without a response: {c}"
        );
    }
    let mut got: Vec<Logged> = items
        .iter()
        .filter(|v| !closed(v))
        .map(|v| {
            let kind = v["type"].as_str().unwrap().to_string();
            let answers = matches!(kind.as_str(), "response" | "error");
            Logged {
                direction: if v["direction"] == "client->server" {
                    "client->server"
                } else {
                    "server->client"
                },
                id: v["id"].to_string(),
                method: if answers {
                    v["request"]["method"].as_str().map(str::to_string)
                } else {
                    v["method"].as_str().map(str::to_string)
                },
                kind,
                bytes: v["size_bytes"].as_u64().unwrap(),
            }
        })
        .collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty(), "{name}: the server logged nothing");
    assert_eq!(got, want, "{name}: exported vs the server's log");
    for v in items {
        assert_eq!(v["truncated"], false, "{name}: {v}");
        let answers = matches!(v["type"].as_str(), Some("response" | "error"));
        if answers {
            assert_eq!(v["request"]["id"], v["id"], "{name}: paired: {v}");
        }
        let side = if v["direction"] == "client->server" {
            "writer"
        } else {
            "reader"
        };
        assert_eq!(
            v["records"][side]["pid"], client,
            "{name}: the client's end through its probes: {v}"
        );
    }
}

/// The BoringSSL entries of the `tls` meta, by path.
fn boringssl_probed(capture: &Path) -> BTreeMap<String, Value> {
    meta_json(capture, "tls")["probed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["boringssl"].is_null())
        .map(|t| {
            (
                t["path"].as_str().unwrap().to_string(),
                t["boringssl"].clone(),
            )
        })
        .collect()
}

/// Records one run of the fetch client under `program` (bun.exe, or a
/// compiled client) against the HTTPS server, and checks it.
fn fetch_client_is_recorded(name: &str, dir: &Path, client: &[PathBuf], env: &[(&str, &str)]) {
    let server = HttpsServer::start(dir);
    let capture = dir.join("capture.db");
    let cache = dir.join("cache");
    let mut renv = vec![("XDG_CACHE_HOME", cache.to_str().unwrap())];
    renv.extend_from_slice(env);
    let rec = start_recorder_env(&capture, &[], &renv);
    let child = Command::new(&client[0])
        .args(&client[1..])
        .arg(&server.url)
        .arg((1u32 << 20).to_string())
        .env("NODE_EXTRA_CA_CERTS", &server.ca)
        // Programs not on PATH are probed when their exec is seen: give it a moment.
        .env("PAUSE_MS", "1500")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the fetch client");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: the client failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1048"), "{name}: the 1 MiB call: {stdout}");
    let (_, stderr) = rec.stop();
    let port = server.port;
    let logged = server.stop();
    let program = std::fs::canonicalize(&client[0]).unwrap();
    let probed = boringssl_probed(&capture);
    let offsets = probed
        .get(program.to_str().unwrap())
        .unwrap_or_else(|| panic!("{name}: {} probed: {probed:?}", program.display()));
    // The offsets used are the scan's, and record said so.
    let scanned = scan(&program, Some(&cache));
    assert_eq!(scanned["scan"]["verdict"], "located", "{name}: {scanned}");
    assert_eq!(scanned["cached"], true, "{name}: record cached its scan");
    for f in ["ssl_write", "ssl_read"] {
        assert_eq!(offsets[f], scanned["scan"][f], "{name}: {f}");
        let off = offsets[f]["file_offset"].as_str().unwrap();
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("BoringSSL located") && l.contains(off)),
            "{name}: record names {f} at {off}: {stderr:?}"
        );
    }
    let items = exported(&capture, port);
    assert_export_matches_log(name, &items, &logged, pid);
    assert!(
        logged.iter().any(|m| m.bytes > 1 << 20),
        "{name}: a 1 MiB result"
    );
}

/// For a test of Bun: BPF, and bun (which the setup installs; missing, it
/// fails); then the test's turn and a folder.
fn bun_ready(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, tempfile::TempDir)> {
    if !bpf_available(name) {
        return None;
    }
    assert!(
        bun().exists(),
        "{name}: run scripts/setup.sh (tests/peers/tls-apps)"
    );
    Some((serial(), tempfile::tempdir().unwrap()))
}

/// Bun's fetch, probed from the start (bun is on the recorder's PATH).
#[test]
fn bun_fetch_over_https_through_boringssl() {
    let name = "bun_fetch_over_https_through_boringssl";
    let Some((_serial, dir)) = bun_ready(name) else {
        return;
    };
    let path = format!(
        "{}:{}",
        apps().join(".bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    fetch_client_is_recorded(
        name,
        dir.path(),
        &[bun(), fetch_client()],
        &[("PATH", &path)],
    );
}

/// The same client as one `bun build --compile` program: probed at its exec.
#[test]
fn compiled_bun_program_over_https_through_boringssl() {
    let name = "compiled_bun_program_over_https_through_boringssl";
    let Some((_serial, dir)) = bun_ready(name) else {
        return;
    };
    let program = dir.path().join("fetch-client");
    compile_fetch_client(&program);
    fetch_client_is_recorded(name, dir.path(), &[program], &[]);
}

/// Claude Code (a Bun build with its own BoringSSL) checks an HTTP MCP
/// server in `claude mcp list`: its discovery and tools/list, exported
/// whole and paired. claude is on the recorder's PATH, as where it is
/// installed: probed from the start.
#[test]
fn claude_code_mcp_list_over_https_through_boringssl() {
    let name = "claude_code_mcp_list_over_https_through_boringssl";
    if !bpf_available(name) {
        return;
    }
    if !claude().exists() {
        // Missing, it fails: only an explicit MCPSPY_SKIP_CLAUDE=1 skips it.
        assert!(
            std::env::var("MCPSPY_SKIP_CLAUDE").as_deref() == Ok("1"),
            "Claude Code is not installed ({}): run scripts/setup.sh, or set \
             MCPSPY_SKIP_CLAUDE=1 to skip this test",
            claude().display()
        );
        eprintln!(
            "\n*** SKIPPED {name}: Claude Code is not installed ({}) and MCPSPY_SKIP_CLAUDE=1 \
             ***\n",
            claude().display()
        );
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let server = HttpsServer::start(dir.path());
    let (home, bin) = (dir.path().join("home"), dir.path().join("bin"));
    std::fs::create_dir_all(home.join("project")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(claude(), bin.join("claude")).unwrap();
    let claude_cmd = |args: &[&str]| {
        let mut c = Command::new(bin.join("claude"));
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("NODE_EXTRA_CA_CERTS", &server.ca)
            .current_dir(home.join("project"));
        c
    };
    succeed(&mut claude_cmd(&[
        "mcp",
        "add",
        "--transport",
        "http",
        "spy",
        &server.url,
    ]));
    let capture = dir.path().join("capture.db");
    let cache = dir.path().join("cache");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let rec = start_recorder_env(
        &capture,
        &[],
        &[("XDG_CACHE_HOME", cache.to_str().unwrap()), ("PATH", &path)],
    );
    let child = claude_cmd(&["mcp", "list"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting claude mcp list");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("Connected"),
        "{name}: claude mcp list: {listed}"
    );
    let (_, stderr) = rec.stop();
    let port = server.port;
    let logged = server.stop();
    let program = std::fs::canonicalize(claude()).unwrap();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("BoringSSL located") && l.contains(program.to_str().unwrap())),
        "{name}: record names Claude Code's probes: {stderr:?}"
    );
    let methods: Vec<_> = logged.iter().filter_map(|m| m.method.as_deref()).collect();
    for m in ["server/discover", "tools/list"] {
        assert!(
            methods.contains(&m),
            "{name}: the server saw {m}: {methods:?}"
        );
    }
    let items = exported(&capture, port);
    assert_export_matches_log(name, &items, &logged, pid);
}

/// Programs that are not BoringSSL are never probed by the scan (Python
/// with the system libssl, Deno with rustls, node with OpenSSL's symbols),
/// and a BoringSSL the rules do not match is named but not probed.
#[test]
fn only_located_boringssl_is_probed() {
    let name = "only_located_boringssl_is_probed";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let damaged = damaged_bun(dir.path());
    let capture = dir.path().join("capture.db");
    let cache = dir.path().join("cache");
    let rec = start_recorder_env(
        &capture,
        &[],
        &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
    );
    succeed(Command::new("python3").args(["-c", "import ssl, time; time.sleep(1)"]));
    succeed(Command::new(deno()).args(["eval", "await new Promise(r => setTimeout(r, 1000))"]));
    succeed(Command::new("node").args(["-e", "setTimeout(() => {}, 1000)"]));
    // The damaged copy is only started: its exec is what record looks at.
    succeed(Command::new(&damaged).args(["-e", "await Bun.sleep(1500)"]));
    let (_, stderr) = rec.stop();
    let meta = meta_json(&capture, "tls");
    assert!(boringssl_probed(&capture).is_empty(), "{name}: {meta}");
    let damaged = damaged.to_str().unwrap();
    let named = |l: &str| {
        l.contains(damaged) && l.contains("looks like BoringSSL") && l.contains("not probed")
    };
    assert!(
        meta["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| named(e.as_str().unwrap())),
        "{name}: the capture names the damaged copy: {meta}"
    );
    assert!(
        stderr.iter().any(|l| named(l)),
        "{name}: record says so: {stderr:?}"
    );
    assert!(
        !meta["probed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["path"] == damaged),
        "{name}: {meta}"
    );
}
