//! Recording with the real kernel programs: pipes and unix socket pairs carry
//! exactly known bytes, and the capture must hold every one of them, per
//! stream, in order. Needs root and BPF; skipped loudly elsewhere.

use super::support::*;
use mcpspy::event::{fd_kind, Direction};
use std::path::Path;
use std::process::Command;

struct Workload {
    writer: u32,
    reader: u32,
    wrote: Vec<u8>,
    read: Vec<u8>,
}

fn run_pipe_pair(dir: &Path, args: &[&str]) -> Workload {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/workloads/pipe_pair.py");
    let out = succeed(Command::new("python3").arg(script).arg(dir).args(args));
    let text = String::from_utf8(out.stdout).unwrap();
    let pid_of = |role: &str| -> u32 {
        text.lines()
            .find_map(|l| l.strip_prefix(role))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {role} line in {text:?}"))
    };
    Workload {
        writer: pid_of("writer "),
        reader: pid_of("reader "),
        wrote: std::fs::read(dir.join("write.bin")).unwrap(),
        read: std::fs::read(dir.join("read.bin")).unwrap(),
    }
}

/// Records the workload and checks both sides' bytes, whole and in order.
fn record_and_check(name: &str, args: &[&str], expect_kind: u8) {
    record_and_check_with(name, &[], args, expect_kind)
}

fn record_and_check_with(name: &str, record_args: &[&str], args: &[&str], expect_kind: u8) {
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let capture = dir.path().join("capture.db");
    let rec = start_recorder(&capture, record_args);
    let w = run_pipe_pair(dir.path(), args);
    let (_, log) = rec.stop();
    eprintln!("{name}: {}", log.join("\n"));
    assert_eq!(w.wrote, w.read, "the workload itself lost bytes");

    let all = streams(&capture);
    for (pid, direction, want) in [
        (w.writer, Direction::Write, &w.wrote),
        (w.reader, Direction::Read, &w.read),
    ] {
        let found = find_stream(&all, pid, direction);
        assert_eq!(
            found.len(),
            1,
            "{name}: one {direction:?} stream of pid {pid}, got {found:?}"
        );
        let (key, s) = found[0];
        assert!(s.gaps.is_empty(), "{name}: gaps {:?}", s.gaps);
        assert!(
            s.marked_start,
            "{name}: the first record of pid {pid} {direction:?} is marked"
        );
        assert_eq!(s.fd_kind, expect_kind, "{name}: descriptor kind");
        assert_same_bytes(&format!("{name}: pid {pid} {direction:?}"), &s.bytes, want);
        if expect_kind == fd_kind::UNIX {
            assert_ne!(s.peer_ino, 0, "{name}: unix sockets name their peer");
            assert_ne!(s.peer_ino, key.ino);
        }
    }
    // Writer and reader name the same channel: one pipe inode, or each other's socket.
    let wk = find_stream(&all, w.writer, Direction::Write)[0];
    let rk = find_stream(&all, w.reader, Direction::Read)[0];
    if expect_kind == fd_kind::PIPE {
        assert_eq!(wk.0.ino, rk.0.ino, "{name}: both ends see one pipe inode");
    } else {
        assert_eq!(wk.1.peer_ino, rk.0.ino);
        assert_eq!(rk.1.peer_ino, wk.0.ino);
    }
}

#[test]
fn small_messages_on_a_pipe() {
    record_and_check(
        "small_messages_on_a_pipe",
        &["--message-bytes", "10", "200", "3000", "70000"],
        fd_kind::PIPE,
    );
}

#[test]
fn one_mib_and_sixteen_mib_messages_arrive_whole() {
    record_and_check(
        "one_mib_and_sixteen_mib_messages_arrive_whole",
        &[
            "--message-bytes",
            "1048576",
            "16777216",
            "--read-chunk",
            "65536",
        ],
        fd_kind::PIPE,
    );
}

#[test]
fn message_in_many_small_writes_and_reads() {
    record_and_check(
        "message_in_many_small_writes_and_reads",
        &[
            "--message-bytes",
            "300",
            "500",
            "--write-chunk",
            "7",
            "--read-chunk",
            "5",
            "--pause-ms",
            "1",
        ],
        fd_kind::PIPE,
    );
}

#[test]
fn stdio_over_a_unix_socket_pair() {
    record_and_check(
        "stdio_over_a_unix_socket_pair",
        &["--socketpair", "--message-bytes", "50", "100000", "20"],
        fd_kind::UNIX,
    );
}

/// The reader's last reads, taken after the writer closed its end of the
/// socket pair (the peer is gone by then), are captured and still name the
/// peer, even when they begin inside a message.
#[test]
fn reads_after_the_writer_closed_a_unix_socket() {
    record_and_check(
        "reads_after_the_writer_closed_a_unix_socket",
        &[
            "--socketpair",
            "--close-before-last",
            "--read-chunk",
            "4096",
            "--message-bytes",
            "50",
            "100000",
        ],
        fd_kind::UNIX,
    );
}

/// Every attach rung that loads here captures the same bytes.
#[test]
fn each_attach_rung_captures_everything() {
    for rung in ["tp-btf", "raw-tp", "tracepoint"] {
        record_and_check_with(
            &format!("each_attach_rung_captures_everything[{rung}]"),
            &["--attach", rung],
            &[
                "--message-bytes",
                "10",
                "5000",
                "100000",
                "--write-chunk",
                "4096",
            ],
            fd_kind::PIPE,
        );
    }
}

/// A message written and read one byte per call is captured whole, both
/// ends: each end's first bytes are held until they decide that they start
/// JSON-RPC, and then are the stream's first record.
#[test]
fn a_message_written_and_read_one_byte_at_a_time() {
    record_and_check(
        "a_message_written_and_read_one_byte_at_a_time",
        &[
            "--message-bytes",
            "20",
            "300",
            "--write-chunk",
            "1",
            "--read-chunk",
            "1",
            "--pause-ms",
            "1",
        ],
        fd_kind::PIPE,
    );
}

/// Text that begins with `{` but is no JSON-RPC, read one byte per call (a
/// program reading a script or a heredoc from a pipe), starts no stream:
/// the first byte alone decides nothing.
#[test]
fn json_read_one_byte_at_a_time_is_not_taken_for_json_rpc() {
    let name = "json_read_one_byte_at_a_time_is_not_taken_for_json_rpc";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let capture = dir.path().join("capture.db");
    let rec = start_recorder(&capture, &["--comm", "byte-reader"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/workloads/byte_reader.py"
    );
    let text = "{\"a\": 1, \"b\": [1, 2]}\n[{\"c\": 3}]\n{\n  \"d\": {}\n}\n";
    let mut child = Command::new("python3")
        .args([script, "byte-reader"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.ends_with(&format!(" {}\n", text.len())),
        "{name}: {said}"
    );
    rec.stop();
    let all = streams(&capture);
    assert!(all.is_empty(), "{name}: {all:?}");
}

/// Two processes write their lines into one pipe in 16-byte pieces, in
/// turns (tests/workloads/two_writers.py): the reader's lines are shown as
/// read, flagged `interleaved` with each writer's pieces, and the writers'
/// lines as written, marked; a line written whole afterwards pairs as ever.
#[test]
fn two_writers_on_one_pipe_are_shown_as_the_reader_received_them() {
    let name = "two_writers_on_one_pipe_are_shown_as_the_reader_received_them";
    let Some((_serial, dir)) = bpf_test(name) else {
        return;
    };
    let capture = dir.path().join("capture.db");
    let rec = start_recorder(&capture, &["--comm", "two-writers"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/workloads/two_writers.py"
    );
    let out = succeed(Command::new("python3").args([
        script,
        dir.path().to_str().unwrap(),
        "two-writers",
        "--chunk",
        "16",
        "--lines",
        "3",
        "--whole",
        "1",
    ]));
    rec.stop();
    let said = String::from_utf8(out.stdout).unwrap();
    let pids: Vec<u64> = said
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [reader, a, b] = pids[..] else {
        panic!("{name}: {said}")
    };
    let read = std::fs::read(dir.path().join("reader.bin")).unwrap();
    let wrote = |pid: u64| std::fs::read(dir.path().join(format!("writer-{pid}.bin"))).unwrap();
    // Each writer's lines: (start offset, text) in its own stream.
    let lines = |bytes: Vec<u8>| {
        let mut at = 0u64;
        let mut v = Vec::new();
        for l in bytes.split_inclusive(|&c| c == b'\n') {
            v.push((at, String::from_utf8(l[..l.len() - 1].to_vec()).unwrap()));
            at += l.len() as u64;
        }
        v
    };
    let (lines_a, lines_b) = (lines(wrote(a)), lines(wrote(b)));
    assert_eq!((lines_a.len(), lines_b.len()), (4, 3), "{name}");

    let items: Vec<serde_json::Value> = export_items(&capture, &[])
        .into_iter()
        .filter(|i| {
            i["records"]["reader"]["pid"] == reader
                || i["records"]["writer"]["pid"] != serde_json::Value::Null
        })
        .collect();
    // The writers' lines: each once, as written, from its writer; all but
    // A's last (written whole, alone) marked interleaved.
    let mut requests: Vec<(u64, u64, bool, bool)> = items
        .iter()
        .filter(|i| i["type"] == "request")
        .map(|i| {
            let w = &i["records"]["writer"];
            (
                w["pid"].as_u64().unwrap(),
                w["offset"].as_u64().unwrap(),
                i["interleaved"] == true,
                i["records"]["reader"]["pid"] == reader,
            )
        })
        .collect();
    requests.sort_unstable();
    let mut want: Vec<(u64, u64, bool, bool)> = lines_a
        .iter()
        .enumerate()
        .map(|(n, (at, _))| (a, *at, n < 3, n == 3))
        .chain(lines_b.iter().map(|(at, _)| (b, *at, true, false)))
        .collect();
    want.sort_unstable();
    assert_eq!(requests, want, "{name}");

    // What the reader read: every line, in its order, the whole line last
    // paired with A's; the others flagged, naming their writers' pieces.
    let mut read_lines: Vec<(u64, String, &serde_json::Value)> = items
        .iter()
        .filter(|i| i["records"]["reader"]["pid"] == reader)
        .map(|i| {
            let r = &i["records"]["reader"];
            let text = match i["text"].as_str() {
                Some(t) => t.to_string(),
                None => lines_a[3].1.clone(),
            };
            (r["offset"].as_u64().unwrap(), text, i)
        })
        .collect();
    read_lines.sort_by_key(|l| l.0);
    let joined: String = read_lines.iter().map(|l| format!("{}\n", l.1)).collect();
    assert_eq!(joined.as_bytes(), &read[..], "{name}");
    let flagged = &read_lines[..read_lines.len() - 1];
    assert!(flagged.len() >= 3, "{name}: {flagged:?}");
    let mut pieces: Vec<(u64, u64, u64)> = Vec::new();
    for (_, _, item) in flagged {
        assert_eq!(item["flag"]["reason"], "interleaved", "{name}: {item}");
        for w in item["flag"]["writers"].as_array().unwrap() {
            pieces.push((
                w["pid"].as_u64().unwrap(),
                w["offset"].as_u64().unwrap(),
                w["end"].as_u64().unwrap(),
            ));
        }
    }
    // The pieces tile the text of every interleaved line of each writer.
    pieces.sort_unstable();
    let mut tiles: Vec<(u64, u64, u64)> = Vec::new();
    for (pid, start, end) in pieces {
        match tiles.last_mut() {
            Some(t) if t.0 == pid && t.2 == start => t.2 = end,
            _ => tiles.push((pid, start, end)),
        }
    }
    let mut want: Vec<(u64, u64, u64)> = lines_a[..3]
        .iter()
        .map(|(at, t)| (a, *at, at + t.len() as u64))
        .chain(lines_b.iter().map(|(at, t)| (b, *at, at + t.len() as u64)))
        .collect();
    want.sort_unstable();
    assert_eq!(tiles, want, "{name}");
    assert!(
        flagged.iter().any(|(_, _, i)| {
            let w = i["flag"]["writers"].as_array().unwrap();
            w.iter().any(|p| p["pid"] == a) && w.iter().any(|p| p["pid"] == b)
        }),
        "{name}: no line names both writers"
    );
}
