//! What users of tcpdump, tshark and ripgrep reach for: `-r`, `-c`, `-`,
//! exit codes 0/1/2, display filters on replay, times that cannot be misread,
//! summaries that fit, `show`, completions, a man page, `--color`, plurals.

use super::support::*;
use super::{mcpspy, s, session, stderr, stdout};
use std::io::Write;
use std::process::Stdio;

#[test]
fn readers_take_r_and_stop_after_c() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let all = mcpspy(&["replay", s(&cap)]);
    let with_r = mcpspy(&["replay", "-r", s(&cap)]);
    assert!(all.status.success());
    assert_eq!(all.stdout, with_r.stdout);
    for cmd in ["replay", "query", "export"] {
        let o = mcpspy(&[cmd, "-r", s(&cap), "-c", "3"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 3, "{cmd}");
    }
    let info = mcpspy(&["info", "-r", s(&cap)]);
    assert!(stdout(&info).contains("records"), "{}", stderr(&info));
}

#[test]
fn replay_takes_the_display_filters_of_query() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    for args in [
        &["--method", "tools/call"][..],
        &["--errors"],
        &["--session", "1", "--min-latency", "50ms"],
    ] {
        let mut r = vec!["replay", s(&cap)];
        r.extend_from_slice(args);
        let mut q = vec!["query", s(&cap), "--no-index"];
        q.extend_from_slice(args);
        let (r, q) = (mcpspy(&r), mcpspy(&q));
        assert!(!r.stdout.is_empty(), "{args:?}");
        assert_eq!(r.stdout, q.stdout, "{args:?}");
    }
}

#[test]
fn exit_codes_say_matched_nothing_or_error() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    for cmd in ["replay", "query", "export"] {
        let some = mcpspy(&[cmd, s(&cap), "--method", "tools/call"]);
        assert_eq!(some.status.code(), Some(0), "{cmd}");
        let none = mcpspy(&[cmd, s(&cap), "--method", "no/such"]);
        assert_eq!(none.status.code(), Some(1), "{cmd}");
        assert_eq!(stderr(&none), "mcpspy: no message matched\n", "{cmd}");
        assert!(none.stdout.is_empty());
        let bad = mcpspy(&[cmd, s(&cap), "--since", "not a time"]);
        assert_eq!(bad.status.code(), Some(2), "{cmd}");
    }
    let help = mcpspy(&["--help"]);
    assert!(stdout(&help).contains("EXIT CODES"), "{}", stdout(&help));
}

#[test]
fn every_subcommand_has_examples() {
    for cmd in [
        "record",
        "info",
        "replay",
        "query",
        "export",
        "show",
        "completions",
        "man",
    ] {
        let o = mcpspy(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd}");
        assert!(stdout(&o).contains("EXAMPLES:"), "{cmd}: {}", stdout(&o));
    }
}

#[test]
fn a_capture_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let want = mcpspy(&["replay", s(&cap)]).stdout;
    let mut child = mcpspy_command()
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&cap).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, want);
    // Errors name what the user gave, never the temporary copy.
    let mut child = mcpspy_command()
        .args(["info", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not a capture")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("mcpspy: -: not an mcpspy capture"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn times_are_shown_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let first = |args: &[&str]| {
        let mut a = vec!["replay", s(&cap), "-c", "1"];
        a.extend_from_slice(args);
        let o = mcpspy(&a);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o).split(' ').next().unwrap().to_string()
    };
    // The synthetic capture starts at 2026-03-01T12:00:00Z; TZ=UTC.
    assert_eq!(first(&[]), "12:00:00.001");
    assert_eq!(first(&["--utc"]), "12:00:00.001");
    assert_eq!(first(&["-t", "ad"]), "2026-03-01");
    assert_eq!(first(&["-t", "r"]), "0.001");
    assert_eq!(first(&["-t", "e"]), "1772366400.001");
    // Local time follows TZ; --utc does not.
    let local = mcpspy_command()
        .env("TZ", "Asia/Tokyo")
        .args(["replay", s(&cap), "-c", "1"])
        .output()
        .unwrap();
    assert!(
        stdout(&local).starts_with("21:00:00.001"),
        "{}",
        stdout(&local)
    );
    let utc = mcpspy_command()
        .env("TZ", "Asia/Tokyo")
        .args(["replay", s(&cap), "-c", "1", "--utc"])
        .output()
        .unwrap();
    assert!(stdout(&utc).starts_with("12:00:00.001"), "{}", stdout(&utc));
}

#[test]
fn a_capture_across_midnight_shows_dates_and_refuses_ambiguous_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("night.db");
    let mut syn = Synth::new(&path);
    let c2s = syn.pipe();
    // From 12:00 on 1 March to 12:00:05 on 2 March.
    syn.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    syn.advance(24 * 3600 * 1_000_000_000 + 5_000_000_000);
    syn.send(CLIENT, SERVER, c2s, &request(2, "ping", "{}"));
    let cap = syn.finish();
    let o = mcpspy(&["replay", s(&cap)]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("2026-03-01 12:00:00.001"), "{lines:?}");
    assert!(lines[1].starts_with("2026-03-02 12:00:05"), "{lines:?}");
    let o = mcpspy(&["replay", s(&cap), "--since", "12:00:01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ambiguous"), "{}", stderr(&o));
    let o = mcpspy(&["replay", s(&cap), "--since", "2026-03-02 00:00"]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn since_and_until_take_every_form_and_must_be_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let count = |args: &[&str]| {
        let mut a = vec!["query", s(&cap), "--no-index"];
        a.extend_from_slice(args);
        let o = mcpspy(&a);
        (o.status.code(), stdout(&o).lines().count(), stderr(&o))
    };
    let all = count(&[]).1;
    // The big result came 100 ms after the rest began: 9 messages after.
    assert_eq!(count(&["--since", "+100ms"]).1, 9);
    assert_eq!(count(&["--since", "2026-03-01 12:00:00.100"]).1, 9);
    assert_eq!(count(&["--since", "1772366400.100"]).1, 9);
    assert_eq!(count(&["--since", "-1h"]).1, all);
    let (code, _, err) = count(&["--since", "12:00:01", "--until", "12:00"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is after --until"), "{err}");
    let (code, _, err) = count(&["--min-latency", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("needs a unit"), "{err}");
    let o = mcpspy(&["record", "--duration", "5", "-w", "/nonexistent/x.db"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs a unit") || stderr(&o).contains("needs root"));
}

#[test]
fn summaries_fit_the_terminal_and_can_be_scripted() {
    let dir = tempfile::tempdir().unwrap();
    let cap = http_session_capture(dir.path());
    let fitted = mcpspy_command()
        .env("COLUMNS", "80")
        .args(["query", s(&cap), "--summary"])
        .output()
        .unwrap();
    let text = stdout(&fitted);
    assert!(!text.is_empty(), "{}", stderr(&fitted));
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
    assert!(!text.contains("capabilities"));
    let wide = mcpspy_command()
        .env("COLUMNS", "80")
        .args(["query", s(&cap), "--summary", "--wide"])
        .output()
        .unwrap();
    assert!(stdout(&wide).contains("server capabilities"));
    assert!(stdout(&wide).lines().any(|l| l.chars().count() > 80));
    let json = mcpspy(&["query", s(&cap), "--summary", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let calls = v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "tools/call")
        .unwrap();
    assert_eq!(calls["count"], 1);
    assert!(calls["bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["sessions"][0]["session"], 1);
    let csv = mcpspy(&["query", s(&cap), "--summary", "--format", "csv"]);
    let text = stdout(&csv);
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("method,tool,count,"), "{header}");
    assert!(
        text.contains("\nsession,transport,client,server,"),
        "{text}"
    );
    // Bytes for people in the table.
    assert!(stdout(&fitted).contains(" B ") || stdout(&fitted).contains("KiB"));
}

/// Streamable HTTP between two processes: a session with a server header.
fn http_session_capture(dir: &std::path::Path) -> std::path::PathBuf {
    let mut syn = Synth::new(&dir.join("http.db"));
    let c = Conn::new(&mut syn, CLIENT, SERVER, 40100);
    let init = request(0, "initialize", INIT_PARAMS);
    c.request(
        &mut syn,
        &http_request(
            "POST",
            "/mcp",
            &[JSON, ("Authorization", "Bearer t0ken")],
            init.as_bytes(),
        ),
    );
    let result = response(0, INIT_RESULT);
    c.respond(
        &mut syn,
        &http_response(
            "200 OK",
            &[JSON, ("Mcp-Session-Id", "s-1")],
            result.as_bytes(),
            true,
        ),
    );
    let call = request(
        1,
        "tools/call",
        r#"{"name":"get_weather","arguments":{"city":"Zürich"}}"#,
    );
    c.request(
        &mut syn,
        &http_request(
            "POST",
            "/mcp",
            &[JSON, ("Mcp-Session-Id", "s-1")],
            call.as_bytes(),
        ),
    );
    let r = response(1, r#"{"content":[{"type":"text","text":"sunny"}]}"#);
    c.respond(
        &mut syn,
        &http_response("200 OK", &[JSON], r.as_bytes(), true),
    );
    syn.finish()
}

#[test]
fn show_prints_one_message_its_counterpart_headers_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let cap = http_session_capture(dir.path());
    // Item 3 is the tools/call request; 4 its response.
    let o = mcpspy(&["show", s(&cap), "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "item 3  request  tools/call (get_weather)",
        "POST /mcp HTTP/1.1",
        "Mcp-Session-Id: s-1",
        "\"city\": \"Zürich\"",
        "── its response ──",
        "item 4  response  tools/call (get_weather)",
        "HTTP/1.1 200 OK",
        "records",
        "writer  pid",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    // By JSON-RPC id, and the request first.
    let by_id = mcpspy(&["show", s(&cap), "--id", "1"]);
    assert_eq!(by_id.stdout, o.stdout);
    // From the response: the request it answers comes second.
    let resp = stdout(&mcpspy(&["show", s(&cap), "4"]));
    assert!(resp.contains("── the request it answers ──"), "{resp}");
    assert!(
        resp.contains("answers      item 3 (tools/call, id 1)"),
        "{resp}"
    );
    // Nothing there: exit 1.
    let none = mcpspy(&["show", s(&cap), "99"]);
    assert_eq!(none.status.code(), Some(1));
    let bad = mcpspy(&["show", s(&cap), "abc"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn completions_and_man_page_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let o = mcpspy(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = stdout(&o);
        assert!(text.contains("replay") && text.contains("since"), "{shell}");
    }
    let man = stdout(&mcpspy(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH mcpspy"),
        "{man:.200}"
    );
    assert!(man.contains("record") && man.contains("EXIT CODES"));
}

#[test]
fn color_is_chosen_with_color() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let always = mcpspy(&["replay", s(&cap), "--color", "always"]);
    assert!(stdout(&always).contains("\u{1b}["));
    let never = mcpspy(&["--color", "never", "replay", s(&cap)]);
    assert!(!stdout(&never).contains("\u{1b}["));
    let auto = mcpspy(&["replay", s(&cap)]);
    assert!(!stdout(&auto).contains("\u{1b}["), "not a terminal");
}

#[test]
fn counts_are_in_the_right_number() {
    let dir = tempfile::tempdir().unwrap();
    let cap = session(dir.path());
    let o = mcpspy(&["info", s(&cap)]);
    let text = stdout(&o);
    assert!(text.contains(", 1 block)"), "{text}");
    assert!(!text.contains("1 blocks"), "{text}");
}

#[test]
fn recording_without_privileges_says_what_it_needs_in_one_sentence() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n*** SKIPPED recording_without_privileges...: needs root to drop to nobody ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = dir.path().join("x.db");
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_mcpspy"))
        .args(["record", "-w", s(&out)])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs root") && err.contains("CAP_BPF"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is created");
}

/// JSON that is not JSON-RPC (another program's output on a pipe that
/// looked like MCP) is counted per writer at the end of the console view;
/// `-v` lists it, and the export keeps it, flagged.
#[test]
fn non_mcp_json_is_counted_per_process_unless_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.db");
    let mut syn = Synth::new(&path);
    let c2s = syn.pipe();
    let noise = syn.pipe();
    syn.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    for i in 0..3 {
        syn.send(
            SERVER,
            CLIENT,
            noise,
            &format!("{{\"id\":{i},\"tool_output\":\"x\"}}"),
        );
    }
    let cap = syn.finish();
    let o = mcpspy(&["replay", s(&cap)]);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("ping"), "{lines:?}");
    assert!(
        lines[1].contains("non-MCP JSON") && lines[1].ends_with("mcp-server[2000] 3"),
        "{lines:?}"
    );
    let o = mcpspy(&["replay", s(&cap), "-v"]);
    let flagged = stdout(&o)
        .lines()
        .filter(|l| l.contains("NOT_JSONRPC"))
        .count();
    assert_eq!(flagged, 3, "{}", stdout(&o));
    assert!(!stdout(&o).contains("non-MCP JSON not shown"));
    let o = mcpspy(&["export", s(&cap)]);
    let flagged = stdout(&o)
        .lines()
        .filter(|l| l.contains("\"not_jsonrpc\""))
        .count();
    assert_eq!(flagged, 3, "{}", stdout(&o));
}
