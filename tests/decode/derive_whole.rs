//! `redact` knows every kept stream's row before it copies (it keeps or
//! leaves out streams whole), so it takes the blocks it leaves as they are
//! whole, without reading their records again. What it writes must be what
//! a writer given every record writes: the same blocks, block index,
//! streams table and seal digests.

use super::support::*;
use mcpspy::capture::{
    BlockFacts, BlockFilter, CaptureReader, CaptureWriter, CreateOptions, Record, Streams,
};
use mcpspy::event::{self, kind, EventHeader};
use rusqlite::types::Value;
use std::path::{Path, PathBuf};

const SECRET: &str = "AKIAQWERTYUIOPASDFGH";

/// A parent of several blocks and every kind of record: MCP over pipes,
/// a pipe of non-MCP lines (in the first blocks only), MCP over TLS whose
/// SSL*s learn their socket late and one before the other, an HTTP/1.1
/// connection that ends (END records), exec records and ticks; a secret
/// in one message.
fn parent(path: &Path) -> PathBuf {
    let mut s = Synth::new(path);
    let (c2s, s2c, noise) = (s.pipe(), s.pipe(), s.pipe());
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    let local = |port| ipv4([127, 0, 0, 1], port);
    let tls = Conn::of(s.tls(local(50010), local(8443), 1, 9));
    let http = Conn::new(&mut s, CLIENT, SERVER, 40001);
    for i in 1..=40u64 {
        let arg = if i == 25 { SECRET } else { "plain" };
        let params = format!(r#"{{"name":"t","arguments":{{"k":"{arg}"}}}}"#);
        s.send(CLIENT, SERVER, c2s, &request(i, "tools/call", &params));
        s.send(SERVER, CLIENT, s2c, &response(i, r#"{"content":[]}"#));
        if i <= 10 {
            s.send(CLIENT, SERVER, noise, "not a JSON-RPC line");
        }
        match i {
            3 => s.know_socket(9),
            6 => s.know_socket(1),
            _ => {}
        }
        tls.post(&mut s, &request(100 + i, "tools/list", "{}"));
        tls.ok(&mut s, &response(100 + i, r#"{"tools":[]}"#));
        if i % 5 == 0 {
            s.store([exec(i)]);
            s.tick();
        }
        if i % 7 == 0 || i % 11 == 0 {
            s.end_block();
        }
    }
    http.post(&mut s, &request(500, "ping", "{}"));
    http.ok(&mut s, &response(500, "{}"));
    s.end(CLIENT, http.c2s, true);
    s.end(SERVER, http.c2s, false);
    s.tick();
    s.finish()
}

/// The server's exec record, as the recorder stores one.
fn exec(i: u64) -> Vec<u8> {
    let args = b"mcp-server\0--port\08000\0";
    let h = EventHeader {
        kind: kind::EXEC,
        len: args.len() as u32,
        ts_ns: START_NS + i * 1_000_000,
        tgid: SERVER.pid,
        tid: SERVER.pid,
        ..Default::default()
    };
    event::encode(&h, args)
}

/// What a writer makes of the records it stores: the blocks, the block
/// index, the streams table, the seal's digest of each block, and whether
/// the file lists END records among its features.
fn tables(path: &Path) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT block_id, first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data \
         FROM blocks ORDER BY block_id",
        "SELECT * FROM block_streams ORDER BY block_id, stream_id",
        "SELECT * FROM streams ORDER BY stream_id",
        "SELECT block_id, digest FROM seal_blocks ORDER BY block_id",
        "SELECT value LIKE '%\"stream_ends\"%' FROM meta WHERE key = 'features'",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap();
        out.extend(rows.map(Result::unwrap));
        out.push(vec![Value::Text(format!("end of {sql}"))]);
    }
    out
}

/// The first row that differs, blobs shortened to their length.
fn same_tables(got: &[Vec<Value>], want: &[Vec<Value>], what: &str) {
    let short = |row: &Vec<Value>| -> Vec<String> {
        row.iter()
            .map(|v| match v {
                Value::Blob(b) => format!("blob of {}", b.len()),
                other => format!("{other:?}"),
            })
            .collect()
    };
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(short(g), short(w), "{what}: row {i}");
        assert!(g == w, "{what}: row {i}'s blob differs");
    }
    assert_eq!(got.len(), want.len(), "{what}: rows");
}

/// Stores `src`'s records again, its blocks ending where the source's do:
/// record by record, or (`whole`) given the streams table first and
/// taking each block whole.
fn store_again(src: &Path, dst: &Path, whole: bool) {
    let reader = CaptureReader::open(src).unwrap();
    let blocks = || {
        reader
            .blocks(&BlockFilter::default())
            .unwrap()
            .map(Result::unwrap)
    };
    let mut w = CaptureWriter::create(dst, &CreateOptions::default()).unwrap();
    if whole {
        let mut streams = Streams::default();
        for b in blocks() {
            for rec in b.records() {
                match rec.record {
                    Record::Event(ev) if ev.hdr.kind == kind::DATA => {
                        streams.note(&ev);
                    }
                    _ => {}
                }
            }
        }
        w.give_streams(streams).unwrap();
    }
    for b in blocks() {
        if whole {
            let mut facts = BlockFacts::new(&b.data);
            for rec in b.records() {
                facts.add(&rec.record);
            }
            assert!(w.take_block(&b.stored, &facts).unwrap());
            continue;
        }
        for rec in b.records() {
            match rec.record {
                Record::Tick { ts_ns } => w.push_tick(ts_ns).unwrap(),
                Record::KeyLog { ts_ns, line } => w.push_keylog(ts_ns, line).unwrap(),
                Record::End(ev) | Record::Event(ev) => {
                    let mut bytes = ev.hdr.to_bytes().to_vec();
                    bytes.extend_from_slice(ev.payload);
                    w.push_event(&bytes).unwrap();
                }
                Record::Damaged { reason, .. } => panic!("{reason}"),
            }
        }
        w.end_block(&b.data, &b.stored).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn a_block_taken_whole_is_stored_as_its_records_would_be() {
    let dir = tempfile::tempdir().unwrap();
    let p = parent(&dir.path().join("p.db"));
    let (pushed, taken) = (dir.path().join("a.db"), dir.path().join("b.db"));
    store_again(&p, &pushed, false);
    store_again(&p, &taken, true);
    let want = tables(&p);
    same_tables(&tables(&pushed), &want, "the reference is the parent again");
    same_tables(&tables(&taken), &want, "taken whole");
    // What the parent holds to be checked: several blocks, END records,
    // and TLS streams that learned their socket after their first records.
    let reader = CaptureReader::open(&p).unwrap();
    assert!(reader.blocks(&BlockFilter::default()).unwrap().count() >= 6);
    assert!(reader.lists_feature("stream_ends"));
    let streams = reader.streams().unwrap();
    assert_eq!(streams.iter().filter(|s| s.tls && s.ino != 0).count(), 4);
}

#[test]
fn a_redaction_writes_what_its_records_make() {
    let dir = tempfile::tempdir().unwrap();
    let p = parent(&dir.path().join("p.db"));
    let parent_blocks: Vec<Vec<u8>> = (CaptureReader::open(&p).unwrap())
        .blocks(&BlockFilter::default())
        .unwrap()
        .map(|b| b.unwrap().stored)
        .collect();
    for keep in [false, true] {
        let child = dir.path().join(format!("c-{keep}.db"));
        redact_ok(&p, &child, if keep { &["--keep-non-mcp"] } else { &[] });
        let again = dir.path().join(format!("again-{keep}.db"));
        store_again(&child, &again, false);
        same_tables(
            &tables(&child),
            &tables(&again),
            &format!("--keep-non-mcp {keep}"),
        );
        let reader = CaptureReader::open(&child).unwrap();
        let mut same = 0;
        for (i, b) in reader.blocks(&BlockFilter::default()).unwrap().enumerate() {
            let b = b.unwrap();
            assert!(memchr::memmem::find(&b.data, SECRET.as_bytes()).is_none());
            same += usize::from(b.stored == parent_blocks[i]);
        }
        // The blocks after the non-MCP lines and without the secret.
        assert!(same >= 3, "{same} blocks as the parent stored them");
        if !keep {
            let left_out = reader.streams().unwrap().len();
            assert!(left_out < CaptureReader::open(&p).unwrap().streams().unwrap().len());
        }
    }
}

/// The parent opened to be altered, its seal taken off (it would break):
/// an unsealed capture, as an mcpspy without a seal made them.
fn unsealed(p: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(p).unwrap();
    conn.execute(
        "UPDATE meta SET value = '[\"stream_ends\"]' WHERE key = 'features'",
        [],
    )
    .unwrap();
    conn
}

/// Stream incarnations and exec records are keyed by record number: a
/// capture whose records are not numbered in order (here an unsealed one
/// whose second block starts one record early) is refused, not redacted.
#[test]
fn records_numbered_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = parent(&dir.path().join("p.db"));
    let conn = unsealed(&p);
    conn.execute(
        "UPDATE blocks SET first_seq = first_seq - 1 WHERE block_id = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let child = dir.path().join("c.db");
    let out = redact(&p, &child, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not numbered in order"), "{stderr}");
    assert!(!child.exists());
}

/// A record of an optional feature this mcpspy does not know (tag 130,
/// which readers skip) is never searched: a block holding one is not taken
/// whole, so the record, and the secret in it, stay out of the child.
#[test]
fn a_block_with_records_this_reader_skips_is_not_taken_whole() {
    const HIDDEN: &[u8] = b"ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let dir = tempfile::tempdir().unwrap();
    let p = parent(&dir.path().join("p.db"));
    // The feature not listed: a listed one unknown to this mcpspy is
    // refused outright.
    let conn = unsealed(&p);
    let last: i64 = conn
        .query_row("SELECT max(block_id) FROM blocks", [], |r| r.get(0))
        .unwrap();
    let stored: Vec<u8> = conn
        .query_row("SELECT data FROM blocks WHERE block_id = ?1", [last], |r| {
            r.get(0)
        })
        .unwrap();
    let mut raw = zstd::stream::decode_all(&stored[..]).unwrap();
    raw.push(130);
    raw.extend_from_slice(&(HIDDEN.len() as u32).to_le_bytes());
    raw.extend_from_slice(HIDDEN);
    let stored = zstd::bulk::compress(&raw, 3).unwrap();
    conn.execute(
        "UPDATE blocks SET data = ?1, raw_bytes = ?2 WHERE block_id = ?3",
        rusqlite::params![stored, raw.len() as i64, last],
    )
    .unwrap();
    drop(conn);
    let child = dir.path().join("c.db");
    redact_ok(&p, &child, &[]);
    let reader = CaptureReader::open(&child).unwrap();
    for b in reader.blocks(&BlockFilter::default()).unwrap() {
        let b = b.unwrap();
        assert!(memchr::memmem::find(&b.data, HIDDEN).is_none());
        assert!(memchr::memmem::find(&b.data, SECRET.as_bytes()).is_none());
    }
}
