//! replay, query and export as a user runs them: exit codes, filters,
//! output files, colour, closed pipes, and a capture that stays untouched.

mod check;
mod collector;
mod hostile;
mod manners;
mod otlp;
mod parquet;
mod scan_tls;
mod setup;
#[path = "../decode/support.rs"]
mod support;
mod tls_programs;

use mcpspy::capture::BLOCK_TARGET;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

fn mcpspy(args: &[&str]) -> Output {
    mcpspy_command().args(args).output().expect("run mcpspy")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn session(dir: &Path) -> PathBuf {
    typical_session(&dir.join("s.db"))
}

/// Makes a FIFO at `path`.
fn mkfifo(path: impl AsRef<std::ffi::OsStr>) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs mcpspy and insists that it succeeded; its stdout.
pub fn ok(args: &[&str]) -> String {
    let o = mcpspy(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

pub fn export(cap: &Path, format: &str, out: &Path, more: &[&str]) {
    let mut args = vec!["export", s(cap), "--format", format, "-o", s(out)];
    args.extend_from_slice(more);
    ok(&args);
}

pub fn jsonl(cap: &Path) -> Vec<serde_json::Value> {
    ok(&["export", s(cap)])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn files_that_are_not_captures_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    let sqlite = dir.path().join("other.db");
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let missing = dir.path().join("missing.db");
    let cases = [
        (&text, "not an mcpspy capture"),
        (&sqlite, "not an mcpspy capture"),
        (&missing, "no such file"),
    ];
    for (file, why) in cases {
        for cmd in [
            vec!["replay", s(file)],
            vec!["query", s(file), "--summary"],
            vec!["export", s(file), "--format", "jsonl"],
        ] {
            let o = mcpspy(&cmd);
            assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(why), "{cmd:?}: {}", stderr(&o));
            assert!(!stderr(&o).contains("panicked"));
            assert!(o.stdout.is_empty());
        }
    }
    let o = mcpspy(&["replay", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn replay_prints_one_line_per_message_and_bodies_with_b() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let plain = mcpspy(&["replay", s(&cap)]);
    assert!(plain.status.success());
    let lines: Vec<String> = stdout(&plain).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 18);
    assert_eq!(
        lines[0],
        "12:00:00.001 python3[1000] → mcp-server[2000] REQ initialize Open a session: versions, identities, capabilities"
    );
    assert!(lines[11].starts_with("12:00:00.102 mcp-server[2000] → python3[1000] ERR Unknown tool: nope (code -32602) tools/call (nope) "));
    assert!(!stdout(&plain).contains('\x1b'), "no colour when piped");
    let body = mcpspy(&["replay", s(&cap), "-b"]);
    let b: Vec<String> = stdout(&body).lines().map(str::to_string).collect();
    assert_eq!(b.len(), 36);
    assert_eq!(b[0], lines[0]);
    assert_eq!(b[1], request(0, "initialize", INIT_PARAMS));
    // Another time zone moves the clock, nothing else.
    let o = Command::new(env!("CARGO_BIN_EXE_mcpspy"))
        .args(["replay", s(&cap)])
        .env("TZ", "Asia/Tokyo")
        .output()
        .unwrap();
    assert!(stdout(&o).starts_with("21:00:00.001 python3[1000]"));
}

/// Colour needs a terminal and no NO_COLOR; `script` provides the terminal.
#[test]
fn colour_only_on_a_terminal_without_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` (util-linux) is not installed; colour on a TTY untested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let run = |no_color: bool| {
        let cmd = format!("{} replay {}", env!("CARGO_BIN_EXE_mcpspy"), s(&cap));
        let mut c = Command::new("script");
        c.args(["-qfec", &cmd, "/dev/null"]).env("TZ", "UTC");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        stdout(&c.output().unwrap())
    };
    let tty = run(false);
    assert!(tty.contains("\x1b[36mREQ\x1b[0m"), "{tty}");
    let plain = run(true);
    assert!(plain.contains("REQ initialize") && !plain.contains('\x1b'));
}

#[test]
fn export_writes_jsonl_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let to_stdout = mcpspy(&["export", s(&cap), "--format", "jsonl"]);
    assert!(to_stdout.status.success());
    let out = dir.path().join("out.jsonl");
    let o = mcpspy(&["export", s(&cap), "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), to_stdout.stdout);
    // Every line is a JSON object with the documented fields.
    for line in stdout(&to_stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in [
            "timestamp",
            "transport_type",
            "stdio_transport",
            "type",
            "id",
            "method",
            "params",
            "result",
            "error",
            "direction",
            "session",
            "size_bytes",
            "truncated",
            "records",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
    }
    std::fs::write(&out, "keep me").unwrap();
    let refused = mcpspy(&["export", s(&cap), "-o", s(&out)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let forced = mcpspy(&["export", s(&cap), "-o", s(&out), "--force"]);
    assert!(forced.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), to_stdout.stdout);
    // Nothing is left behind beside the output.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// The lines `query` prints; it exits 0 when something matched, and 1 with
/// a note when nothing did.
fn query_lines(cap: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["query", s(cap)];
    all.extend_from_slice(args);
    let o = mcpspy(&all);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    let want = if lines.is_empty() { 1 } else { 0 };
    assert_eq!(o.status.code(), Some(want), "{args:?}: {}", stderr(&o));
    if lines.is_empty() {
        assert_eq!(stderr(&o), "mcpspy: no message matched\n", "{args:?}");
    }
    lines
}

#[test]
fn query_filters_combine() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let calls = query_lines(&cap, &["--method", "tools/call"]);
    assert_eq!(
        calls.len(),
        5,
        "3 requests, a response, an error: {calls:#?}"
    );
    assert!(calls.iter().all(|l| l.contains("tools/call")));
    let weather = query_lines(&cap, &["--tool", "get_weather"]);
    assert_eq!(weather.len(), 2);
    assert!(weather[1].contains("RESP OK tools/call (get_weather)"));
    // Errors: the error response and the request that got it.
    let errors = query_lines(&cap, &["--errors"]);
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("REQ tools/call (nope)") && errors[1].contains("ERR Unknown tool"));
    let slow = query_lines(&cap, &["--min-latency", "50ms"]);
    assert_eq!(slow.len(), 2, "{slow:#?}");
    assert!(query_lines(&cap, &["--min-latency", "2s"]).is_empty());
    assert!(query_lines(&cap, &["--errors", "--tool", "get_weather"]).is_empty());
    assert_eq!(query_lines(&cap, &["--pid", "2000"]).len(), 18);
    assert!(query_lines(&cap, &["--pid", "4242"]).is_empty());
    assert_eq!(query_lines(&cap, &["--comm", "mcp-server"]).len(), 18);
    assert_eq!(query_lines(&cap, &["--session", "1"]).len(), 18);
    assert!(query_lines(&cap, &["--session", "2"]).is_empty());
    assert_eq!(query_lines(&cap, &["--transport", "stdio"]).len(), 18);
    assert!(query_lines(&cap, &["--transport", "http"]).is_empty());
    // Times: the big result came 100 ms after the rest began.
    let late = query_lines(&cap, &["--since", "12:00:00.100"]);
    assert_eq!(late.len(), 9);
    let early = query_lines(&cap, &["--until", "2026-03-01T12:00:00.050Z"]);
    assert_eq!(early.len(), 9);
    let window = query_lines(&cap, &["--since", "12:00", "--until", "12:00:00.102"]);
    assert_eq!(window.len(), 10);
    let notify = query_lines(
        &cap,
        &["--method", "notifications/progress", "--method", "ping"],
    );
    assert_eq!(notify.len(), 3);
}

#[test]
fn bad_filter_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    for (args, needle) in [
        (vec!["--since", "25:99"], "--since: `25:99` is not a time"),
        (
            vec!["--until", "yesterday"],
            "--until: `yesterday` is not a time",
        ),
        (
            vec!["--min-latency", "fast"],
            "--min-latency: `fast` is not a duration",
        ),
    ] {
        for cmd in ["query", "export"] {
            let mut all = vec![cmd, s(&cap)];
            all.extend_from_slice(&args);
            let o = mcpspy(&all);
            assert_eq!(o.status.code(), Some(2), "{all:?}");
            assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
        }
    }
}

#[test]
fn summary_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let o = mcpspy(&["query", s(&cap), "--summary"]);
    let t = stdout(&o);
    let row = t
        .lines()
        .find(|l| l.contains("get_weather"))
        .expect("a row for the tool");
    let cells: Vec<&str> = row.split('┆').map(str::trim).collect();
    assert_eq!(cells[0].trim_start_matches('│').trim(), "tools/call");
    assert_eq!(&cells[2..6], &["1", "1", "0", "0"]);
    assert_eq!(cells[6], "100.4ms");
    let sessions = t.lines().find(|l| l.contains("test-client 1.2.3")).unwrap();
    assert!(sessions.contains("test-server 9.8.7") && sessions.contains("2025-06-18"));
    // Filters narrow the tables too.
    let o = mcpspy(&["query", s(&cap), "--summary", "--tool", "nope"]);
    let t = stdout(&o);
    assert!(t.contains("nope") && !t.contains("get_weather") && !t.contains("initialize"));
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s2 = Synth::new(&dir.path().join("big.db"));
    let c2s = s2.pipe();
    for i in 0..20_000 {
        s2.send(CLIENT, SERVER, c2s, &request(i, "ping", "{}"));
    }
    let cap = s2.finish();
    // A rule that finds something in every request: a line each in the listing.
    let rules = dir.path().join("ping.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"ping\"\nkind = \"value\"\npattern = 'ping'\n\
         examples = [ { text = 'a ping', secret = 'ping' } ]\nkeep = ['pong']\n",
    )
    .unwrap();
    let dry = ["redact", s(&cap), "--dry-run", "--rules", s(&rules)];
    for args in [&["replay", s(&cap)][..], &["export", s(&cap)], &dry] {
        let cmd = args.join(" ");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpspy"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{cmd}: {:?} {}", o.status, stderr(&o));
        assert!(stderr(&o).is_empty(), "{cmd}: {}", stderr(&o));
    }
}

#[test]
fn reading_never_changes_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let before = std::fs::read(&cap).unwrap();
    let mtime = std::fs::metadata(&cap).unwrap().modified().unwrap();
    for args in [
        vec!["replay", s(&cap), "-b"],
        vec!["query", s(&cap), "--summary", "--errors"],
        vec!["export", s(&cap)],
    ] {
        assert!(mcpspy(&args).status.success());
    }
    assert_eq!(std::fs::read(&cap).unwrap(), before);
    assert_eq!(std::fs::metadata(&cap).unwrap().modified().unwrap(), mtime);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no journal or index beside the capture");
}

#[test]
fn an_unreadable_block_is_reported_and_the_rest_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s2 = Synth::new(&dir.path().join("d.db"));
    let c2s = s2.pipe();
    let pad = "p".repeat(4000);
    // Each message is stored twice (writer and reader): enough for three blocks.
    for i in 0..3 * BLOCK_TARGET as u64 / 8000 {
        s2.send(
            CLIENT,
            SERVER,
            c2s,
            &request(i, "ping", &format!(r#"{{"p":"{pad}"}}"#)),
        );
    }
    let cap = s2.finish();
    rusqlite::Connection::open(&cap)
        .unwrap()
        .execute("UPDATE blocks SET data = x'00' WHERE block_id = 2", [])
        .unwrap();
    // Read, but not as if whole: exit 1 and a warning.
    let o = mcpspy(&["replay", s(&cap)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is damaged: the read met 1 damaged place"),
        "{}",
        stderr(&o)
    );
    let out = stdout(&o);
    assert!(out.contains("!! UNREADABLE_BLOCK block 2"), "{out}");
    assert!(out.lines().last().unwrap().contains("REQ ping"));
    // A filter that hides the damage still says it is there, from the
    // decoder and from the index alike.
    for index in [&["--no-index"][..], &[]] {
        let o = mcpspy(&[&["query", s(&cap), "--method", "ping"], index].concat());
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(!stdout(&o).contains("UNREADABLE_BLOCK"));
        assert!(
            stderr(&o).contains("1 of them not shown by the filters"),
            "{index:?}: {}",
            stderr(&o)
        );
    }
    let o = mcpspy(&["info", s(&cap)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("damage       1 unreadable block ("),
        "{}",
        stdout(&o)
    );
    // A block removed outright is said too, by readers and by info.
    rusqlite::Connection::open(&cap)
        .unwrap()
        .execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM blocks WHERE block_id = 3;")
        .unwrap();
    let o = mcpspy(&["replay", s(&cap)]);
    assert!(
        stderr(&o).contains("more data events than the blocks hold"),
        "{}",
        stderr(&o)
    );
    let o = mcpspy(&["info", s(&cap)]);
    assert!(
        stdout(&o).contains("the streams table counts are not in a readable block"),
        "{}",
        stdout(&o)
    );
}

/// A capture whose recorder died before noting the wall clock: times are
/// shown on the kernel's clock, and clock times cannot be asked for.
#[test]
fn a_capture_without_a_start_time_shows_kernel_time() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    rusqlite::Connection::open(&cap)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'started_at'", [])
        .unwrap();
    let o = mcpspy(&["replay", s(&cap)]);
    assert!(stdout(&o).starts_with("1.001 python3[1000] → mcp-server[2000] REQ initialize"));
    let o = mcpspy(&["export", s(&cap)]);
    let first: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(first["timestamp"].is_null());
    assert_eq!(first["ts_ns"], 1_001_000_000u64);
    let o = mcpspy(&["query", s(&cap), "--since", "12:00"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no start time"), "{}", stderr(&o));
}

#[test]
fn export_to_a_fifo_writes_into_it_and_leaves_it_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let want = mcpspy(&["export", s(&cap)]).stdout;
    assert!(!want.is_empty());
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // As with /dev/null: a temporary file renamed over it would replace it.
    for force in [false, true] {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut args = vec!["export", s(&cap), "-o", s(&fifo)];
        if force {
            args.push("--force");
        }
        let o = mcpspy(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(reader.join().unwrap(), want);
        let kind = std::fs::metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "--force {force}: still a FIFO");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary file left beside it");
}
