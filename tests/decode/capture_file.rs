//! The capture file on its own: round trips, indexes, crash safety, bad input.
//! Root-free: records are made with event::encode.

use mcpspy::capture::BLOCK_TARGET;
use mcpspy::capture::{BlockFilter, CaptureReader, CaptureWriter, CreateOptions, Record};
use mcpspy::event::{encode, fd_kind, kind, EventHeader};
use std::path::Path;

fn data_event(pid: u32, ino: u64, ts: u64, off: u64, payload: &[u8]) -> Vec<u8> {
    encode(
        &EventHeader {
            kind: kind::DATA,
            call: 2,
            direction: 1,
            fd_kind: fd_kind::PIPE,
            tgid: pid,
            tid: pid,
            ino,
            ts_ns: ts,
            stream_off: off,
            call_len: payload.len() as u64,
            ..Default::default()
        },
        payload,
    )
}

/// Writes `n` 1 KiB events of two streams; commits after `commit_after`.
fn write_capture(path: &Path, n: u64) {
    let mut w = CaptureWriter::create(path, &CreateOptions::default()).unwrap();
    let line = [b'x'; 1024];
    for i in 0..n {
        w.push_event(&data_event(
            10 + (i % 2) as u32,
            7,
            1_000 + i,
            (i / 2) * 1024,
            &line,
        ))
        .unwrap();
        if i % 1000 == 999 {
            w.push_tick(1_000 + i).unwrap();
        }
    }
    w.finish().unwrap();
}

fn all_seqs(r: &CaptureReader, f: &BlockFilter) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for b in r.blocks(f).unwrap() {
        for rec in b.unwrap().records() {
            if let Record::Event(ev) = rec.record {
                out.push((rec.seq, ev.hdr.tgid));
            }
        }
    }
    out
}

#[test]
fn round_trip_in_order_with_stream_and_time_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    // Enough 1 KiB records for five blocks.
    let n = 5 * BLOCK_TARGET as u64 / 1024;
    write_capture(&path, n);
    let r = CaptureReader::open(&path).unwrap();
    let seqs = all_seqs(&r, &BlockFilter::default());
    assert_eq!(seqs.len() as u64, n);
    // Numbered in file order, ticks included in the numbering.
    assert!(seqs.windows(2).all(|w| w[0].0 < w[1].0));
    let t = r.totals().unwrap();
    assert_eq!(t.data_events, n);
    assert_eq!(t.records, n + n / 1000);
    assert_eq!(t.streams, 2);
    assert!(t.blocks >= 5, "{n} records of 1 KiB span five blocks");
    assert_eq!(t.payload_bytes, n * 1024);

    // A time range reads only the blocks that overlap it.
    let late = BlockFilter {
        ktime_range: Some((1_000 + n - 100, 1_000 + n - 1)),
        ..Default::default()
    };
    let some = all_seqs(&r, &late);
    assert!(
        !some.is_empty() && (some.len() as u64) < n / 2,
        "{} records",
        some.len()
    );
    assert!(some.iter().any(|(s, _)| *s >= n - 100));

    // A stream filter keeps the blocks holding that stream.
    let streams = r.streams().unwrap();
    assert_eq!(streams.len(), 2);
    let one = BlockFilter {
        streams: Some(vec![streams[0].stream_id]),
        ..Default::default()
    };
    assert!(all_seqs(&r, &one)
        .iter()
        .any(|(_, pid)| *pid == streams[0].pid));
}

#[test]
fn readers_refuse_what_is_not_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.db");
    std::fs::write(&text, "hello").unwrap();
    assert!(CaptureReader::open(&text)
        .err()
        .unwrap()
        .to_string()
        .contains("not an mcpspy capture"));
    let empty = dir.path().join("e.db");
    std::fs::write(&empty, "").unwrap();
    assert!(CaptureReader::open(&empty).is_err());
    let future = dir.path().join("f.db");
    write_capture(&future, 1);
    rusqlite::Connection::open(&future)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(CaptureReader::open(&future)
        .err()
        .unwrap()
        .to_string()
        .contains("version 99"));
}

#[test]
fn damaged_block_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    write_capture(&path, 3 * BLOCK_TARGET as u64 / 1024);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE blocks SET data = zeroblob(100) WHERE block_id = (SELECT MIN(block_id) FROM blocks)",
            [],
        )
        .unwrap();
    let r = CaptureReader::open(&path).unwrap();
    let results: Vec<_> = r.blocks(&BlockFilter::default()).unwrap().collect();
    assert!(results.len() >= 3, "{} blocks", results.len());
    assert!(results[0]
        .as_ref()
        .is_err_and(|e| e.records > 0 && e.why.contains("zstd")));
    assert!(
        results[1..].iter().all(|b| b.is_ok()),
        "later blocks still read"
    );
}

/// Plays a recorder killed inside a write: run as a child of this test binary.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var("MCPSPY_CRASH_WRITER") else {
        return; // only meaningful as the child of the test below
    };
    let path = Path::new(&path);
    let mut w = CaptureWriter::create(path, &CreateOptions::default()).unwrap();
    w.set_meta("marker", "committed").unwrap();
    w.push_event(&data_event(1, 1, 1, 0, b"{\"committed\":true}\n"))
        .unwrap();
    w.finish().unwrap();
    // A second writer appends blocks; a small page cache makes SQLite write
    // into the file before the commit, as a long commit does. Then it dies.
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA cache_size = 10; BEGIN").unwrap();
    for i in 0..50 {
        c.execute(
            "INSERT INTO blocks (first_seq, records, raw_bytes, data) VALUES (?1, 1, 1, randomblob(100000))",
            [i + 1],
        )
        .unwrap();
    }
    // SAFETY: _exit ends the process at once, as SIGKILL would: no rollback, no close.
    unsafe { libc::_exit(0) };
}

#[test]
fn interrupted_write_is_read_as_of_the_last_commit_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "capture_file::crash_writer_child", "--nocapture"])
        .env("MCPSPY_CRASH_WRITER", &path)
        .status()
        .unwrap();
    assert!(status.success());
    let journal = dir.path().join("crashed.db-journal");
    assert!(journal.exists(), "the child died inside a transaction");
    let before = (
        std::fs::read(&path).unwrap(),
        std::fs::read(&journal).unwrap(),
    );

    let r = CaptureReader::open(&path).unwrap();
    assert!(
        r.notes.iter().any(|n| n.contains("interrupted")),
        "{:?}",
        r.notes
    );
    assert_eq!(r.meta().unwrap()["marker"], "committed");
    let seqs = all_seqs(&r, &BlockFilter::default());
    assert_eq!(seqs, vec![(0, 1)], "exactly the committed record");
    drop(r);
    let after = (
        std::fs::read(&path).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    assert!(
        before == after,
        "reading must not modify the capture or its journal"
    );
}

/// The format grows as schema/README.md says: a file of this major version
/// with an optional feature this build does not know (a table, a record
/// tag, its name in `meta.features`) reads, the feature named and skipped;
/// another major version is refused with a clear message.
#[test]
fn files_with_unknown_optional_features_read_and_newer_majors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grown.db");
    let mut w = CaptureWriter::create(&path, &CreateOptions::default()).unwrap();
    w.push_event(&data_event(1, 1, 10, 0, b"{\"a\":1}\n"))
        .unwrap();
    w.set_meta("features", r#"["frobnication"]"#).unwrap();
    w.finish().unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE frobs (x INTEGER)").unwrap();
    // An optional record (tag 200) between the event and a tick, in a block of its own.
    let mut raw = Vec::new();
    raw.push(200u8);
    raw.extend_from_slice(&4u32.to_le_bytes());
    raw.extend_from_slice(b"frob");
    raw.push(2u8);
    raw.extend_from_slice(&8u32.to_le_bytes());
    raw.extend_from_slice(&99u64.to_le_bytes());
    let data = zstd::bulk::compress(&raw, 3).unwrap();
    c.execute(
        "INSERT INTO blocks (first_seq, records, raw_bytes, data) VALUES (1, 2, ?1, ?2)",
        rusqlite::params![raw.len() as i64, data],
    )
    .unwrap();
    drop(c);
    let r = CaptureReader::open(&path).unwrap();
    assert!(
        r.notes.iter().any(|n| n.contains("frobnication")),
        "{:?}",
        r.notes
    );
    let mut seen = Vec::new();
    for b in r.blocks(&BlockFilter::default()).unwrap() {
        for rec in b.unwrap().records() {
            seen.push((
                rec.seq,
                format!("{:?}", rec.record)
                    .chars()
                    .take(5)
                    .collect::<String>(),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![(0, "Event".into()), (2, "Tick ".into())],
        "the optional record is skipped and keeps its number"
    );
    drop(r);

    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 2).unwrap();
    drop(c);
    let e = CaptureReader::open(&path)
        .err()
        .expect("major 2 is refused");
    let msg = e.to_string();
    assert!(
        msg.contains("major version 2") && msg.contains("newer mcpspy"),
        "{msg}"
    );
}
