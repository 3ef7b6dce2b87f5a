//! How a recording starts, ends and fails: signals, --duration, SIGKILL, a
//! flooded ring, filters, file safety. Needs root and BPF; skipped loudly elsewhere.

use super::support::*;
use super::tamper::verify;
use mcpspy::capture::CaptureReader;
use mcpspy::event::{counter, Direction};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

const PIPE_PAIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/workloads/pipe_pair.py");

fn info(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN).arg("info").arg(path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Ids of the ping messages in a written stream.
fn ids_in(bytes: &[u8]) -> Vec<u64> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("whole JSON lines");
            v["id"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn sigkill_leaves_a_file_with_everything_before_the_last_commit() {
    let Some((_serial, dir)) =
        bpf_test("sigkill_leaves_a_file_with_everything_before_the_last_commit")
    else {
        return;
    };
    let capture = dir.path().join("killed.db");
    let rec = start_recorder(&capture, &[]);
    let mut ticker = Ticker::start(&["--seconds", "5", "--interval-ms", "10"]);
    let started = Instant::now();
    let mut sent: Vec<(u64, Instant)> = Vec::new();
    while started.elapsed() < Duration::from_millis(3200) {
        sent.push((
            ticker.next_sent().expect("the ticker runs 5 s"),
            Instant::now(),
        ));
    }
    let killed_at = Instant::now();
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(rec.pid() as i32, libc::SIGKILL) };
    drop(rec);
    let writer = ticker.writer;
    ticker.stop();

    let (code, text, err) = info(&capture);
    assert_eq!(code, 0, "info after SIGKILL: {err}");
    assert!(
        text.contains("did not finish"),
        "info says the recording was cut: {text}"
    );
    let all = streams(&capture);
    let found = find_stream(&all, writer, Direction::Write);
    assert_eq!(found.len(), 1, "the writer's stream is in the file");
    let ids = ids_in(&found[0].1.bytes);
    // Commits happen at least once a second: all sent 1.5 s before the kill is there.
    let must: Vec<u64> = sent
        .iter()
        .filter(|(_, t)| killed_at.duration_since(*t) > Duration::from_millis(1500))
        .map(|(id, _)| *id)
        .collect();
    assert!(
        must.len() > 50,
        "the workload ran long enough ({} messages)",
        must.len()
    );
    assert_eq!(&ids[..must.len()], &must[..], "ids in order, none missing");
    let (code, text) = verify(&capture, &["--deep"]);
    assert_eq!(code, Some(1), "not finished is not intact: {text}");
    assert!(
        text.contains("intact up to commit") && text.contains("not finished"),
        "a killed recording is cut short, never altered: {text}"
    );
}

/// SIGKILL at moments spread over a recording's first seconds: whenever it
/// dies, what it committed verifies as cut short, never as altered.
#[test]
fn a_recording_killed_at_any_moment_verifies_as_cut_short() {
    let Some((_serial, dir)) = bpf_test("a_recording_killed_at_any_moment_verifies_as_cut_short")
    else {
        return;
    };
    let mut ticker = Ticker::start(&["--seconds", "30", "--interval-ms", "2"]);
    for (i, after_ms) in [1300u64, 1750, 2100, 2900, 3400].into_iter().enumerate() {
        let capture = dir.path().join(format!("killed-{i}.db"));
        let rec = start_recorder(&capture, &[]);
        std::thread::sleep(Duration::from_millis(after_ms));
        let _ = ticker.next_sent();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(rec.pid() as i32, libc::SIGKILL) };
        drop(rec);
        let (code, text) = verify(&capture, &[]);
        assert_eq!(code, Some(1), "kill {i} after {after_ms} ms: {text}");
        assert!(
            text.contains("intact up to commit") && text.contains("not finished"),
            "kill {i} after {after_ms} ms: {text}"
        );
    }
    ticker.stop();
}

/// Moments in [lo, hi) ms, different on every run (the seed is printed).
fn random_moments(n: usize, lo: u64, hi: u64) -> Vec<u64> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("random moments seeded with {x}");
    (0..n)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + x % (hi - lo)
        })
        .collect()
}

/// The README's promise: a SIGKILL loses at most the last second. Killed at
/// random moments, every message sent more than a second before is in the file.
#[test]
fn sigkill_at_random_moments_loses_at_most_one_second() {
    let Some((_serial, dir)) = bpf_test("sigkill_at_random_moments_loses_at_most_one_second")
    else {
        return;
    };
    for (i, after_ms) in random_moments(6, 1100, 3000).into_iter().enumerate() {
        let capture = dir.path().join(format!("killed-{i}.db"));
        let rec = start_recorder(&capture, &["--no-tls"]);
        let mut ticker = Ticker::start(&["--seconds", "10", "--interval-ms", "5"]);
        let started = Instant::now();
        let mut sent: Vec<(u64, Instant)> = Vec::new();
        while started.elapsed() < Duration::from_millis(after_ms) {
            // Stamped when read, just after it left: never earlier than the send.
            sent.push((ticker.next_sent().expect("the ticker runs"), Instant::now()));
        }
        let killed_at = Instant::now();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(rec.pid() as i32, libc::SIGKILL) };
        drop(rec);
        let writer = ticker.writer;
        ticker.stop();
        let must: Vec<u64> = sent
            .iter()
            .filter(|(_, t)| killed_at.duration_since(*t) > Duration::from_secs(1))
            .map(|(id, _)| *id)
            .collect();
        let all = streams(&capture);
        let ids = find_stream(&all, writer, Direction::Write)
            .first()
            .map(|(_, s)| ids_in(&s.bytes))
            .unwrap_or_default();
        assert!(
            ids.len() >= must.len() && ids[..must.len()] == must[..],
            "kill {i} after {after_ms} ms: {} messages sent over a second before, {} in the file",
            must.len(),
            ids.len()
        );
    }
}

/// `mcpspy record -o capture`, its messages to nowhere: a recorder the
/// test kills.
fn quiet_recorder(capture: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .arg("record")
        .arg("-o")
        .arg(capture)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Killed while it starts (50 times 1 to 20 ms after launch, 10 times up
/// to 1 s, and once as soon as its file is there), the recorder leaves
/// either no file or one that the readers open: never a half-made file,
/// and the next recorder clears the half-made files of dead ones.
#[test]
fn killed_while_starting_leaves_no_file_or_a_capture() {
    let Some((_serial, dir)) = bpf_test("killed_while_starting_leaves_no_file_or_a_capture") else {
        return;
    };
    let mut made = 0;
    let mut moments = random_moments(50, 1, 21);
    moments.extend(random_moments(10, 21, 1000));
    for (i, after_ms) in moments.into_iter().enumerate() {
        let capture = dir.path().join(format!("start-{i}.db"));
        let mut child = quiet_recorder(&capture);
        std::thread::sleep(Duration::from_millis(after_ms));
        let _ = child.kill();
        let _ = child.wait();
        if capture.exists() {
            made += 1;
            let (code, _, err) = info(&capture);
            assert_eq!(
                code, 0,
                "kill {i} after {after_ms} ms left a file info rejects: {err}"
            );
        }
    }
    eprintln!("{made} of 60 killed recorders had made their file");
    // A control: killed as soon as its file is there, a recorder leaves a
    // file info opens.
    let capture = dir.path().join("start-control.db");
    let mut child = quiet_recorder(&capture);
    let began = Instant::now();
    while !capture.exists()
        && child.try_wait().unwrap().is_none()
        && began.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(capture.exists(), "the control recorder made no file");
    let (code, _, err) = info(&capture);
    assert_eq!(code, 0, "killed once its file was there: {err}");
    // The next recorder in the folder clears what the killed ones half
    // made, and a half-made file of a process that no longer runs (planted,
    // so that the clearing is exercised whatever the kills left); not that
    // of a process that still runs.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let planted = dir.path().join(format!(".mcpspy-{dead}-planted.db.part"));
    let alive = dir
        .path()
        .join(format!(".mcpspy-{}-alive.db.part", std::process::id()));
    for p in [&planted, &alive] {
        std::fs::write(p, b"half made").unwrap();
    }
    let parts = |d: &std::path::Path| -> Vec<_> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().ends_with(".part"))
            .collect()
    };
    eprintln!(
        "half-made files before the next recorder: {:?}",
        parts(dir.path())
    );
    succeed(
        Command::new(BIN)
            .args(["record", "--no-tls", "--duration", "10ms", "-o"])
            .arg(dir.path().join("after.db")),
    );
    assert!(
        alive.exists(),
        "a running process's half-made file was removed"
    );
    std::fs::remove_file(&alive).unwrap();
    let left = parts(dir.path());
    assert!(left.is_empty(), "half-made files left: {left:?}");
}

#[test]
fn sigterm_and_duration_end_cleanly() {
    let Some((_serial, dir)) = bpf_test("sigterm_and_duration_end_cleanly") else {
        return;
    };
    let a = dir.path().join("term.db");
    let rec = start_recorder(&a, &[]);
    let (_, log) = rec.stop_with(libc::SIGTERM);
    assert!(
        log.iter().any(|l| l.contains("ended by signal SIGTERM")),
        "{log:?}"
    );
    let meta = CaptureReader::open(&a).unwrap().meta().unwrap();
    assert_eq!(meta["end_reason"], "signal SIGTERM");
    assert!(meta.contains_key("ended_at"));

    let b = dir.path().join("duration.db");
    let t = Instant::now();
    let out = succeed(
        Command::new(BIN)
            .args(["record", "--duration", "1.5s", "-o"])
            .arg(&b),
    );
    assert!(t.elapsed() >= Duration::from_millis(1500));
    let meta = CaptureReader::open(&b).unwrap().meta().unwrap();
    assert_eq!(meta["end_reason"], "duration");
    assert_eq!(meta["attach_rung"], "tp_btf", "the best rung loads here");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("mcpspy: recorded "),
        "one-line summary: {summary}"
    );
}

#[test]
fn file_is_private_and_never_overwritten_without_force() {
    let Some((_serial, dir)) = bpf_test("file_is_private_and_never_overwritten_without_force")
    else {
        return;
    };
    let path = dir.path().join("c.db");
    std::fs::write(&path, b"precious").unwrap();
    let out = Command::new(BIN)
        .args(["record", "--duration", "200ms", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    succeed(
        Command::new(BIN)
            .args(["record", "--duration", "200ms", "--force", "-o"])
            .arg(&path),
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(info(&path).0, 0);

    // Under sudo the file belongs to the user who ran sudo.
    let owned = dir.path().join("owned.db");
    succeed(
        Command::new(BIN)
            .args(["record", "--duration", "200ms", "-o"])
            .arg(&owned)
            .env("SUDO_UID", "65534")
            .env("SUDO_GID", "65534"),
    );
    let meta = std::fs::metadata(&owned).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

#[test]
fn flooded_tiny_ring_counts_every_lost_byte() {
    let Some((_serial, dir)) = bpf_test("flooded_tiny_ring_counts_every_lost_byte") else {
        return;
    };
    let capture = dir.path().join("flood.db");
    // Only the workload is recorded, so that every count below is its own.
    let rec = start_recorder(&capture, &["--ring-size", "64K", "--comm", "mcpspy-flood"]);
    succeed(
        Command::new("python3")
            .arg(PIPE_PAIR)
            .arg(dir.path())
            .args([
                "--message-bytes",
                "8000000",
                "8000000",
                "--name",
                "mcpspy-flood",
            ]),
    );
    rec.stop();
    let wrote = std::fs::read(dir.path().join("write.bin")).unwrap().len() as u64;

    let reader = CaptureReader::open(&capture).unwrap();
    let drops = reader.drops().unwrap();
    let lost_records: u64 = drops.iter().map(|d| d.counts[counter::RING_FULL]).sum();
    let lost_bytes: u64 = drops
        .iter()
        .map(|d| d.counts[counter::RING_FULL_BYTES])
        .sum();
    assert!(lost_records > 0, "a 64 KiB ring cannot carry 16 MB at once");
    // Every byte the two processes moved is either in the file or counted lost.
    let all = streams(&capture);
    let captured: u64 = all.values().map(|s| s.bytes.len() as u64).sum();
    assert_eq!(
        captured + lost_bytes,
        2 * wrote,
        "captured + counted losses = moved"
    );
    // Losses show in the data itself: as gaps in stream offsets.
    assert!(all.values().any(|s| !s.gaps.is_empty()));
    let (code, text, _) = info(&capture);
    assert_eq!(code, 0);
    assert!(
        text.contains(&format!(
            "drops        {lost_records} records lost to a full ring"
        )),
        "{text}"
    );
    // Intact, lossy: the seal holds, the losses are listed, the gaps in the
    // streams are the ones the ledger counts.
    let (code, text) = verify(&capture, &["--deep"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(": intact, lossy"), "{text}");
    assert!(text.contains("lost to a full ring"), "{text}");
    assert!(
        text.contains("the gaps in stream offsets are losses the ledger records"),
        "{text}"
    );
    let (code, _) = verify(&capture, &["--fail-on-loss"]);
    assert_eq!(code, Some(1));
}

#[test]
fn comm_and_pid_filters_select_processes() {
    let Some((_serial, dir)) = bpf_test("comm_and_pid_filters_select_processes") else {
        return;
    };
    let capture = dir.path().join("filtered.db");
    let rec = start_recorder(&capture, &["--comm", "mcpspy-keep"]);
    let run = |name: &str| {
        let mut t = Ticker::start(&["--seconds", "0.3", "--name", name]);
        while t.next_sent().is_some() {}
        let writer = t.writer;
        t.stop();
        writer
    };
    let kept = run("mcpspy-keep");
    let skipped = run("mcpspy-skip");
    rec.stop();
    let all = streams(&capture);
    assert!(
        all.keys().all(|k| k.pid != skipped),
        "filtered-out process captured"
    );
    assert!(
        all.keys().any(|k| k.pid == kept),
        "selected process missing"
    );
    assert!(all.values().all(|s| s.comm == "mcpspy-keep"));

    // --pid: a process already running when the recording starts.
    let ticker = Ticker::start(&["--seconds", "3", "--interval-ms", "20"]);
    let (writer, reader) = (ticker.writer, ticker.reader);
    let capture = dir.path().join("by_pid.db");
    let rec = start_recorder(&capture, &["--pid", &writer.to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    rec.stop();
    ticker.stop();
    let all = streams(&capture);
    assert!(all.keys().any(|k| k.pid == writer), "selected pid missing");
    assert!(
        all.keys().all(|k| k.pid == writer),
        "only the selected pid: {:?}",
        all.keys()
    );
    assert!(!all.keys().any(|k| k.pid == reader));
    // Joined mid-stream, every captured write is still a whole message.
    let s = &find_stream(&all, writer, Direction::Write)[0].1;
    assert!(ids_in(&s.bytes).windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn info_rejects_files_that_are_not_captures() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite at all, just text").unwrap();
    let (code, _, err) = info(&junk);
    assert_eq!(code, 2);
    assert!(err.contains("not an mcpspy capture"), "{err}");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let (code, _, err) = info(&other);
    assert_eq!(code, 2);
    assert!(err.contains("application_id"), "{err}");

    let (code, _, err) = info(&dir.path().join("missing.db"));
    assert_eq!(code, 2);
    assert!(err.contains("no such file"), "{err}");
}
