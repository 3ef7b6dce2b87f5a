//! Recording exactly what the user names: a command and what it starts
//! (`record -- CMD`), a process tree (`--follow`), a cgroup (`--cgroup`,
//! `--container`), while unrelated JSON-RPC traffic runs beside it. Real
//! Python SDK sessions, checked against the client's own log of its wire.

use super::support::*;
use mcpspy::capture::CaptureReader;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn client_script() -> String {
    format!("{ROOT}/tests/peers/py_client.py")
}

/// What the client's wire log says: its pid, its server's pid, and each
/// message as (direction, kind, bytes).
struct ClientLog {
    client: u32,
    server: u32,
    messages: Vec<(String, String, u64)>,
}

fn client_log(out: &Path) -> ClientLog {
    let text = std::fs::read_to_string(out.join("client.jsonl")).expect("the client's log");
    let mut log = ClientLog {
        client: 0,
        server: 0,
        messages: Vec::new(),
    };
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let pid = v["pid"].as_u64().unwrap_or(0) as u32;
        match (v["event"].as_str(), v["role"].as_str()) {
            (Some("start"), _) => log.client = pid,
            (Some("peer"), Some("server")) => log.server = pid,
            (Some("message"), _) => log.messages.push((
                if v["dir"] == "sent" {
                    "client->server"
                } else {
                    "server->client"
                }
                .to_string(),
                v["kind"].as_str().unwrap().to_string(),
                v["bytes"].as_u64().unwrap(),
            )),
            _ => {}
        }
    }
    assert!(log.client > 0 && log.server > 0, "pids in the log: {text}");
    log.messages.sort();
    log
}

/// The capture holds the session the log describes, every message once, between
/// the logged client and server; and no stream of any other process.
fn holds_exactly_the_session(capture: &Path, log: &ClientLog, others: &[u32]) {
    let items = export_items(capture, &[]);
    let mut got: Vec<(String, String, u64)> = items
        .iter()
        .map(|i| {
            assert_eq!(i["session"]["client"]["pid"], log.client, "{i}");
            assert_eq!(i["session"]["server"]["pid"], log.server, "{i}");
            // Each session peer with the cgroup it was in (the JSONL's).
            for peer in ["client", "server"] {
                assert!(i["session"][peer]["cgroup"].is_string(), "{i}");
            }
            (
                i["direction"].as_str().unwrap().to_string(),
                i["type"].as_str().unwrap().to_string(),
                i["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, log.messages, "the session, message for message");
    let pids: BTreeSet<u32> = streams(capture).keys().map(|k| k.pid).collect();
    assert_eq!(
        pids,
        BTreeSet::from([log.client, log.server]),
        "streams of the session's processes only (others running: {others:?})"
    );
}

#[test]
fn command_form_records_the_command_and_its_children_only() {
    let Some((_serial, dir)) = bpf_test("command_form_records_the_command_and_its_children_only")
    else {
        return;
    };
    let capture = dir.path().join("command.db");
    let out = dir.path().join("peer");
    // Unrelated JSON-RPC on the host all along: a default recording takes it.
    let beside = Ticker::start(&["--seconds", "60", "--interval-ms", "10"]);
    let python = venv_python();
    let rec = start_recorder(
        &capture,
        &[
            "--no-tls",
            "--",
            python.to_str().unwrap(),
            &client_script(),
            "--out",
            out.to_str().unwrap(),
            "--mode",
            "legacy",
        ],
    );
    let (code, _, err) = rec.wait();
    let others = [beside.writer, beside.reader];
    beside.stop();
    assert_eq!(code, Some(0), "the client's exit code: {err:?}");
    assert!(
        err.iter()
            .any(|l| l.contains("ended by command exited (0)")),
        "{err:?}"
    );
    holds_exactly_the_session(&capture, &client_log(&out), &others);
    let info = succeed(Command::new(BIN).arg("info").arg(&capture));
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("py_client.py"),
        "info names the command: {info}"
    );
}

#[test]
fn command_form_runs_as_the_sudo_user_and_returns_its_exit_code() {
    let Some((_serial, dir)) =
        bpf_test("command_form_runs_as_the_sudo_user_and_returns_its_exit_code")
    else {
        return;
    };
    let capture = dir.path().join("code.db");
    let mut cmd = Command::new(BIN);
    cmd.env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .args(["record", "--no-tls", "-o"])
        .arg(&capture)
        .args(["--", "sh", "-c", "id -u; id -g; exit 7"]);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["65534", "65534"]);
    // The file is the sudo user's too.
    assert_eq!(std::fs::metadata(&capture).unwrap().uid(), 65534);
}

#[test]
fn follow_takes_a_shell_and_what_it_starts_later() {
    let Some((_serial, dir)) = bpf_test("follow_takes_a_shell_and_what_it_starts_later") else {
        return;
    };
    let capture = dir.path().join("follow.db");
    let out = dir.path().join("peer");
    let beside = Ticker::start(&["--seconds", "60", "--interval-ms", "10"]);
    let python = venv_python();
    // The shell waits for a line, then runs the client, which starts its server.
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(r#"read go && "$0" "$@" --mode legacy"#)
        .arg(&python)
        .arg(client_script())
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let rec = start_recorder(&capture, &["--no-tls", "--follow", &shell.id().to_string()]);
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"go\n")
        .expect("starting the client");
    assert!(shell.wait().unwrap().success(), "the client's session");
    rec.stop();
    let others = [beside.writer, beside.reader];
    beside.stop();
    holds_exactly_the_session(&capture, &client_log(&out), &others);
}

/// A cgroup made for the test, removed when dropped.
struct TestCgroup(std::path::PathBuf);

impl TestCgroup {
    fn new(below: &str) -> TestCgroup {
        let root = mcpspy::record::cgroup2_root()
            .expect("cgroup v2")
            .join(format!("mcpspy-test-{}", std::process::id()));
        let dir = root.join(below);
        std::fs::create_dir_all(&dir).expect("creating a cgroup");
        TestCgroup(root)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Deepest first; a cgroup goes once its processes are gone.
        let mut dirs = vec![self.0.clone()];
        let mut i = 0;
        while i < dirs.len() {
            for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Records with `scope`, while one ticker runs inside `inner` and one outside;
/// returns the capture's stream pids and the inside ticker's pids.
fn record_inside_and_out(
    dir: &Path,
    name: &str,
    scope: &[&str],
    inner: &Path,
) -> (std::path::PathBuf, BTreeSet<u32>, [u32; 2], [u32; 2]) {
    let capture = dir.join(name);
    let mut args = vec!["--no-tls"];
    args.extend_from_slice(scope);
    let rec = start_recorder(&capture, &args);
    let mut inside = Ticker::start_in_cgroup(inner, &["--seconds", "1.5", "--interval-ms", "10"]);
    let mut outside = Ticker::start(&["--seconds", "1.5", "--interval-ms", "10"]);
    while inside.next_sent().is_some() {}
    while outside.next_sent().is_some() {}
    let (i, o) = (
        [inside.writer, inside.reader],
        [outside.writer, outside.reader],
    );
    inside.stop();
    outside.stop();
    rec.stop();
    let pids = streams(&capture).keys().map(|k| k.pid).collect();
    (capture, pids, i, o)
}

#[test]
fn cgroup_and_container_scope_take_only_their_processes() {
    let Some((_serial, dir)) = bpf_test("cgroup_and_container_scope_take_only_their_processes")
    else {
        return;
    };
    // A cgroup named as docker names a container's, one level below ours.
    let id = "3f2a6b1c9d0e".repeat(5) + "abcd";
    let cg = TestCgroup::new(&format!("docker-{id}.scope"));
    let inner = cg.0.join(format!("docker-{id}.scope"));

    // --cgroup names the parent: processes of cgroups below it are in scope.
    let (capture, pids, inside, outside) = record_inside_and_out(
        dir.path(),
        "cgroup.db",
        &["--cgroup", cg.0.to_str().unwrap()],
        &inner,
    );
    assert!(pids.contains(&inside[0]), "the writer inside: {pids:?}");
    assert!(
        pids.iter().all(|p| inside.contains(p)),
        "only inside: {pids:?} (outside {outside:?})"
    );
    let reader = CaptureReader::open(&capture).unwrap();
    let inner_id = std::fs::metadata(&inner).unwrap().ino();
    let rows = reader.processes().unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        let (cgroup_id, path) = row.cgroup.clone().expect("each process's cgroup");
        assert_eq!(cgroup_id, inner_id, "{row:?}");
        assert!(path.ends_with(&format!("/docker-{id}.scope")), "{path}");
        assert_eq!(row.container_id.as_deref(), Some(id.as_str()));
    }
    let info = succeed(Command::new(BIN).arg("info").arg(&capture));
    assert!(String::from_utf8_lossy(&info.stdout)
        .contains(&format!("mcpspy-test-{}", std::process::id())));
    let (code, text) = super::tamper::verify(&capture, &[]);
    assert_eq!(
        code,
        Some(0),
        "the cgroups table is sealed and intact: {text}"
    );

    // Recorded whole, the readers select by container and by cgroup.
    let (capture, pids, inside, outside) = record_inside_and_out(dir.path(), "all.db", &[], &inner);
    assert!(
        pids.contains(&outside[0]) && pids.contains(&inside[0]),
        "{pids:?}"
    );
    let cg_path = format!("/mcpspy-test-{}", std::process::id());
    for filter in [["--container", &id[..12]], ["--cgroup", &cg_path]] {
        let items = export_items(&capture, &filter);
        assert!(!items.is_empty(), "{filter:?}");
        for i in &items {
            let from = i["stdio_transport"]["from_pid"].as_u64().unwrap() as u32;
            assert!(inside.contains(&from), "{filter:?}: {i}");
            assert!(
                i["session"]["client"].is_null(),
                "pings open no session: {i}"
            );
        }
    }
    let everything = export_items(&capture, &[]);
    assert!(everything
        .iter()
        .any(|i| outside.contains(&(i["stdio_transport"]["from_pid"].as_u64().unwrap() as u32))));

    // --container by the first 12 digits of its id.
    let (_, pids, inside, outside) = record_inside_and_out(
        dir.path(),
        "container.db",
        &["--container", &id[..12]],
        &inner,
    );
    assert!(pids.contains(&inside[0]), "the writer inside: {pids:?}");
    assert!(
        pids.iter().all(|p| inside.contains(p)),
        "only inside: {pids:?} (outside {outside:?})"
    );
}

#[test]
fn scope_of_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("none.db");
    for args in [
        vec!["--pid", "4194305"],
        vec!["--follow", "4194305"],
        vec!["--cgroup", "/sys/fs/cgroup/mcpspy-no-such-cgroup"],
        vec!["--cgroup", "/tmp"],
        vec!["--container", "0123456789abcdef"],
        vec!["--container", "xyz"],
    ] {
        let out = Command::new(BIN)
            .arg("record")
            .arg("-o")
            .arg(&capture)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[0]),
            "{args:?}: the message names the option: {err}"
        );
        assert!(!capture.exists(), "{args:?}: nothing is created");
    }
}
