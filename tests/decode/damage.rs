//! Damaged captures: every kind of damage is a flagged item in the right
//! place, one copy fills what the other lost, and the messages after the
//! damage are still decoded.

use super::support::*;
use mcpspy::capture::BLOCK_TARGET;
use mcpspy::decode::DecodeOptions;
use std::path::Path;

fn kinds(items: &[Seen]) -> Vec<String> {
    items
        .iter()
        .map(|i| match (&i.flag, &i.method) {
            (Some((reason, _)), _) => format!("!{reason}"),
            (None, Some(m)) => format!("{} {m}", i.kind),
            (None, None) => i.kind.clone(),
        })
        .collect()
}

fn both_copies(i: &Seen) -> bool {
    !i.writer_seqs.is_empty() && !i.reader_seqs.is_empty()
}

#[test]
fn bad_lines_are_flagged_once_and_the_next_line_resynchronises() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("c.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(1, "tools/list", "{}"));
    s.send(CLIENT, SERVER, c2s, "this is not json");
    let mut utf8 = br#"{"jsonrpc":"2.0","method":"x","params":{"a":""#.to_vec();
    utf8.extend_from_slice(b"\xff\xfe\"}}\n");
    s.write(CLIENT, c2s, &utf8);
    s.drain(SERVER, c2s, 4096);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    s.send(CLIENT, SERVER, c2s, &deep);
    s.send(CLIENT, SERVER, c2s, r#"{"not":"jsonrpc"}"#);
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(2, "tools/call", r#"{"name":"t"}"#),
    );
    let (items, _) = decode_file(&s.finish());
    assert_eq!(
        kinds(&items),
        vec![
            "request tools/list",
            "!invalid_json",
            "!invalid_utf8",
            "!too_deep",
            "!not_jsonrpc",
            "request tools/call"
        ]
    );
    // Flagged once, with both copies' records, in the session, with offsets.
    for i in &items {
        assert!(both_copies(i), "{i:?}");
        assert_eq!(i.session, Some(1));
    }
    let bad = &items[1];
    assert_eq!(bad.text, "this is not json");
    assert_eq!(bad.writer_off, Some(items[0].text.len() as u64 + 1));
    assert!(items[2].flag.as_ref().unwrap().1.contains("byte"));
}

/// The reader's copy of a message is missing (its record was lost, or the
/// kernel could not read the reader's buffer): the writer's fills it.
#[test]
fn a_read_the_capture_lost_or_could_not_read_is_filled_from_the_writer() {
    type Damage = fn(&mut Synth, ChanId, usize) -> usize;
    let cases: [(&str, Damage); 2] = [
        ("lost", |s, c, n| s.read_lost(SERVER, c, n)),
        ("unreadable", |s, c, n| s.read_failed(SERVER, c, n)),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Synth::new(&dir.path().join("r.db"));
        let c2s = s.pipe();
        s.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
        s.write(
            CLIENT,
            c2s,
            format!("{}\n", request(2, "tools/list", "{}")).as_bytes(),
        );
        damage(&mut s, c2s, 4096);
        s.send(CLIENT, SERVER, c2s, &request(3, "ping", "{}"));
        let (items, _) = decode_file(&s.finish());
        assert_eq!(
            kinds(&items),
            vec!["request ping", "request tools/list", "request ping"],
            "{name}"
        );
        let filled = &items[1];
        assert!(
            !filled.writer_seqs.is_empty() && filled.reader_seqs.is_empty(),
            "{name}"
        );
        // The reader is still named: the channel has one reader.
        assert_eq!(
            (filled.from, filled.to),
            (Some(CLIENT.pid), Some(SERVER.pid)),
            "{name}"
        );
        assert!(both_copies(&items[2]), "{name}");
    }
}

#[test]
fn a_write_the_capture_lost_is_filled_from_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("w.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    s.write_lost(
        CLIENT,
        c2s,
        format!("{}\n", request(2, "tools/list", "{}")).as_bytes(),
    );
    // The reader takes the lost message and the next one in one read.
    s.write(
        CLIENT,
        c2s,
        format!("{}\n", request(3, "ping", "{}")).as_bytes(),
    );
    s.drain(SERVER, c2s, 4096);
    let (mut items, _) = decode_file(&s.finish());
    // Only the reader's copy of the lost write exists: it is timed by the
    // read, which came after the next write.
    assert_eq!(
        kinds(&items),
        vec!["request ping", "request ping", "request tools/list"]
    );
    items.swap(1, 2);
    assert!(items[1].writer_seqs.is_empty() && !items[1].reader_seqs.is_empty());
    assert_eq!(
        (items[1].from, items[1].to),
        (Some(CLIENT.pid), Some(SERVER.pid))
    );
    assert!(both_copies(&items[2]));
    // The reader's copy holds the time it was read.
    assert!(items[1].ts_ns > items[2].ts_ns);
}

#[test]
fn a_drop_on_both_sides_is_one_gap_and_decoding_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("g.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(1, "tools/call", r#"{"name":"a"}"#),
    );
    let lost = format!("{}\n", request(2, "tools/call", r#"{"name":"b"}"#));
    s.write_lost(CLIENT, c2s, lost.as_bytes());
    s.read_lost(SERVER, c2s, 4096);
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(3, "tools/call", r#"{"name":"c"}"#),
    );
    s.send(SERVER, CLIENT, s2c, &response(2, "{}"));
    s.send(SERVER, CLIENT, s2c, &response(3, "{}"));
    let (items, _) = decode_file(&s.finish());
    assert_eq!(
        kinds(&items),
        vec![
            "request tools/call",
            "!lost",
            "request tools/call",
            "response",
            "response tools/call"
        ]
    );
    let gap = &items[1];
    assert_eq!(
        gap.flag.as_ref().unwrap().1,
        format!(
            "{} bytes lost: records missing from the capture",
            lost.len()
        )
    );
    assert_eq!(gap.writer_off, Some(items[0].text.len() as u64 + 1));
    assert!(gap.truncated);
    // The response to the lost request is shown, unpaired; the next pairs.
    assert_eq!(items[3].answers, None);
    assert_eq!(items[4].answers, Some(items[2].n));
}

#[test]
fn a_stream_whose_first_records_were_lost_starts_with_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("s.db"));
    let c2s = s.pipe();
    s.write_lost(CLIENT, c2s, b"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n");
    s.read_lost(SERVER, c2s, 4096);
    s.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    let (items, _) = decode_file(&s.finish());
    assert_eq!(kinds(&items), vec!["!lost", "request ping"]);
    assert_eq!(items[0].writer_off, Some(0));
}

#[test]
fn reads_split_and_join_messages_freely() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("j.db"));
    let c2s = s.pipe();
    // Three messages in one write, read 7 bytes at a time.
    let three: String = (1..=3)
        .map(|i| format!("{}\n", request(i, "ping", "{}")))
        .collect();
    s.write(CLIENT, c2s, three.as_bytes());
    s.drain(SERVER, c2s, 7);
    // One message in three writes, read in one go.
    let one = format!("{}\n", request(4, "tools/list", "{}"));
    let (a, rest) = one.as_bytes().split_at(10);
    let (b, c) = rest.split_at(20);
    for part in [a, b, c] {
        s.write(CLIENT, c2s, part);
    }
    s.drain(SERVER, c2s, 65536);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(
        kinds(&items),
        vec![
            "request ping",
            "request ping",
            "request ping",
            "request tools/list"
        ]
    );
    assert!(items.iter().all(both_copies));
    assert_eq!(
        items[0].writer_seqs, items[2].writer_seqs,
        "one write held all three"
    );
    assert!(items[1].reader_seqs.len() >= 6, "many reads made each one");
    assert_eq!(items[3].writer_seqs.len(), 3);
    assert_eq!(items[3].text, one.trim_end());
}

#[test]
fn records_out_of_offset_order_are_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("o.db"));
    let c2s = s.pipe();
    // Two threads write; the second call's record arrives first.
    let first = s.call_records(
        CLIENT,
        c2s,
        true,
        format!("{}\n", request(1, "ping", "{}")).as_bytes(),
    );
    let second = s.call_records(
        CLIENT,
        c2s,
        true,
        format!("{}\n", request(2, "ping", "{}")).as_bytes(),
    );
    s.store(second);
    s.store(first);
    let both = format!(
        "{}\n{}\n",
        request(1, "ping", "{}"),
        request(2, "ping", "{}")
    );
    let recs = s.call_records(SERVER, c2s, false, both.as_bytes());
    s.store(recs);
    let (items, _) = decode_file(&s.finish());
    let ids: Vec<_> = items.iter().map(|i| i.id.clone().unwrap()).collect();
    assert_eq!(ids, vec!["1", "2"]);
    assert!(items.iter().all(both_copies));
}

#[test]
fn a_message_cut_by_the_end_of_the_capture_is_truncated_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("t.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    let half = &request(2, "tools/call", r#"{"name":"long"}"#)[..30];
    s.write(CLIENT, c2s, half.as_bytes());
    s.drain(SERVER, c2s, 4096);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(kinds(&items), vec!["request ping", "!truncated"]);
    let cut = &items[1];
    assert!(cut.truncated && both_copies(cut));
    assert_eq!(cut.text, half);
    assert!(cut.flag.as_ref().unwrap().1.contains("capture ended"));
}

#[test]
fn a_call_the_kernel_cut_short_is_filled_from_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let msgs: String = (1..=3)
        .map(|i| format!("{}\n", request(i, "ping", "{}")))
        .collect();
    let mut s = Synth::new(&dir.path().join("k.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(0, "ping", "{}"));
    // The writer's record kept only the first 10 bytes of the call.
    s.write_truncated(CLIENT, c2s, msgs.as_bytes(), 10);
    s.drain(SERVER, c2s, 4096);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(kinds(&items), vec!["request ping"; 4]);
    assert!(items.iter().all(|i| !i.reader_seqs.is_empty()));

    // Without the reader's copy, the cut is shown, then decoding goes on.
    let mut s = Synth::new(&dir.path().join("k2.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(0, "ping", "{}"));
    s.write_truncated(CLIENT, c2s, msgs.as_bytes(), 10);
    s.read_lost(SERVER, c2s, 4096);
    s.send(CLIENT, SERVER, c2s, &request(4, "ping", "{}"));
    let (items, _) = decode_file(&s.finish());
    assert_eq!(
        kinds(&items),
        vec!["request ping", "!truncated", "!lost", "request ping"]
    );
    assert_eq!(items[1].text, &msgs[..10]);
    assert!(items[2]
        .flag
        .as_ref()
        .unwrap()
        .1
        .contains("only part of the call"));
    assert_eq!(items[3].id.as_deref(), Some("4"));
}

#[test]
fn a_slow_reader_does_not_make_a_message_appear_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("l.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(
        CLIENT,
        SERVER,
        c2s,
        &request(1, "tools/call", r#"{"name":"slow"}"#),
    );
    // The server is busy for 2 s; the client's next message waits in the pipe.
    s.write(
        CLIENT,
        c2s,
        format!(
            "{}\n",
            notification("notifications/cancelled", r#"{"requestId":1}"#)
        )
        .as_bytes(),
    );
    for _ in 0..20 {
        s.advance(100_000_000);
        s.tick();
    }
    s.send(SERVER, CLIENT, s2c, &response(1, "{}"));
    s.drain(SERVER, c2s, 4096);
    let (items, _) = decode_file(&s.finish());
    assert_eq!(
        kinds(&items),
        vec![
            "request tools/call",
            "notification notifications/cancelled",
            "response tools/call"
        ]
    );
    // Shown when its hold ran out, named with the channel's reader.
    assert_eq!(items[1].to, Some(SERVER.pid));
    assert_eq!(items[1].refers_to, Some(items[0].n));
}

#[test]
fn only_one_side_recorded_still_shows_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("o.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    for i in 0..3 {
        s.write(
            CLIENT,
            c2s,
            format!("{}\n", request(i, "tools/list", "{}")).as_bytes(),
        );
        s.read_lost(SERVER, c2s, 4096);
        s.write_lost(SERVER, s2c, format!("{}\n", response(i, "{}")).as_bytes());
        s.read(CLIENT, s2c, 4096);
    }
    let (items, sessions) = decode_file(&s.finish());
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|i| i.to.is_none() || i.from.is_none()));
    assert_eq!(sessions.len(), 1);
    assert_eq!(items[1].answers, Some(items[0].n));
    assert_eq!(items[0].direction.as_deref(), Some("ClientToServer"));
}

#[test]
fn overlong_lines_are_cut_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("m.db"));
    let c2s = s.pipe();
    let long = request(1, "ping", &format!(r#"{{"pad":"{}"}}"#, "y".repeat(5000)));
    s.send(CLIENT, SERVER, c2s, &long);
    s.send(CLIENT, SERVER, c2s, &request(2, "ping", "{}"));
    let path = s.finish();
    let opts = DecodeOptions {
        max_line: 1000,
        ..DecodeOptions::default()
    };
    let (items, _) = decode_file_with(&path, opts);
    assert_eq!(kinds(&items), vec!["!too_long", "request ping"]);
    assert_eq!(items[0].text.len(), 1000);
    assert!(items[0]
        .flag
        .as_ref()
        .unwrap()
        .1
        .contains(&format!("{} more bytes", long.len() - 1000)));
}

/// Copies waiting for a counterpart that never comes, in a capture whose
/// clock never moves, are let go once they hold too much: memory stays
/// bounded by the limit, not by the capture.
#[test]
fn held_copies_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("h.db"));
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(0, "ping", "{}"));
    for i in 1..=200 {
        // The reader is recorded, then stops reading; the clock stands still.
        s.write(
            CLIENT,
            c2s,
            format!("{}\n", request(i, "ping", "{}")).as_bytes(),
        );
        s.now -= 10_000;
    }
    s.send(SERVER, CLIENT, s2c, &response(0, "{}"));
    let path = s.finish();
    let reader = mcpspy::capture::CaptureReader::open(&path).unwrap();
    let mut dec = mcpspy::decode::Decoder::new(DecodeOptions {
        max_held: 2000,
        ..DecodeOptions::default()
    });
    let mut before_finish = 0;
    for block in reader.blocks(&Default::default()).unwrap() {
        for rec in block.unwrap().records() {
            dec.push(&rec, &mut |_| before_finish += 1);
        }
    }
    let mut after = 0;
    dec.finish(&mut |_| after += 1);
    assert_eq!(before_finish + after, 202);
    // What is left is what the limits allow: about 2000 bytes of copies
    // waiting in the channel and 2000 waiting to be put in time order.
    let line = request(100, "ping", "{}").len();
    assert!(
        after * line <= 2 * 2000 + 2 * line,
        "{after} items were still held at the end"
    );
    assert!(before_finish >= 100);
}

/// A capture whose file is damaged: an unreadable block, a record that does
/// not parse. Messages in the other blocks still decode.
#[test]
fn damaged_blocks_and_records_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("b.db"));
    let c2s = s.pipe();
    let pad = "z".repeat(4000);
    // Each message is stored twice (writer and reader): enough for four blocks.
    let n = 4 * BLOCK_TARGET as u64 / 8192;
    for i in 0..n {
        s.send(
            CLIENT,
            SERVER,
            c2s,
            &request(i, "ping", &format!(r#"{{"pad":"{pad}"}}"#)),
        );
    }
    let path = s.finish();
    corrupt(&path);
    let (items, _) = decode_file(&path);
    let k = kinds(&items);
    assert!(k.contains(&"!unreadable_block".to_string()), "{k:?}");
    assert!(k.contains(&"!damaged_record".to_string()), "{k:?}");
    assert!(k.contains(&"!lost".to_string()), "{k:?}");
    let pings = k.iter().filter(|k| *k == "request ping").count();
    assert!(pings as u64 > n / 4 && (pings as u64) < n, "{pings} of {n}");
    // The last messages, after the damage, are whole.
    let last = (n - 1).to_string();
    assert_eq!(items.last().unwrap().id.as_deref(), Some(last.as_str()));
}

/// Replaces block 2 with garbage and appends a broken record to block 1.
fn corrupt(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let blocks: i64 = conn
        .query_row("SELECT COUNT(*) FROM blocks", [], |r| r.get(0))
        .unwrap();
    assert!(blocks >= 3, "need several blocks, have {blocks}");
    conn.execute(
        "UPDATE blocks SET data = x'0badf00d' WHERE block_id = 2",
        [],
    )
    .unwrap();
    let (data, raw, records): (Vec<u8>, i64, i64) = conn
        .query_row(
            "SELECT data, raw_bytes, records FROM blocks WHERE block_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut raw_data = zstd::bulk::decompress(&data, raw as usize).unwrap();
    raw_data.extend_from_slice(&[1, 3, 0, 0, 0, 0xde, 0xad, 0xbe]);
    let packed = zstd::bulk::compress(&raw_data, 3).unwrap();
    conn.execute(
        "UPDATE blocks SET data = ?1, raw_bytes = ?2, records = ?3 WHERE block_id = 1",
        rusqlite::params![packed, raw_data.len() as i64, records + 1],
    )
    .unwrap();
}

/// Records whose offsets, sizes or times no recording reaches (near 2^64)
/// are flagged as damaged, never wrapped into a wrong answer; the stream
/// goes on decoding.
#[test]
fn offsets_near_the_top_of_u64_are_flagged_not_wrapped() {
    use mcpspy::event::{encode, RawEvent};
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("o.db"));
    let c2s = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(1, "ping", "{}"));
    let crafted: [fn(&mut mcpspy::event::EventHeader); 4] = [
        |h| h.stream_off = u64::MAX - 2,
        |h| h.call_len = u64::MAX,
        |h| h.call_off = u64::MAX,
        |h| h.ts_ns = u64::MAX - 1,
    ];
    for craft in crafted {
        let recs = s.call_records(CLIENT, c2s, true, b"{\"jsonrpc\":\"2.0\"}\n");
        let recs: Vec<Vec<u8>> = recs
            .iter()
            .map(|r| {
                let ev = RawEvent::parse(r).unwrap();
                let mut h = ev.hdr;
                craft(&mut h);
                encode(&h, ev.payload)
            })
            .collect();
        s.store(recs);
    }
    let path = s.finish();
    let (items, _) = decode_file(&path);
    let flags: Vec<&(String, String)> = items.iter().filter_map(|i| i.flag.as_ref()).collect();
    let damaged: Vec<_> = flags.iter().filter(|f| f.0 == "damaged_record").collect();
    assert_eq!(damaged.len(), 4, "{flags:?}");
    for f in &damaged {
        assert!(f.1.contains("no recording reaches it"), "{f:?}");
    }
    assert!(
        items
            .iter()
            .all(|i| !i.text.contains("18446744073709551615") && i.ts_ns < 1 << 62),
        "nothing wraps: {items:?}"
    );
    let k = kinds(&items);
    assert_eq!(
        k.iter().filter(|k| *k == "request ping").count(),
        1,
        "{k:?}"
    );
}

/// Many streams each holding a long open line: the total held is bounded.
/// The largest lines are cut (flagged where they were cut), and every
/// captured byte still reaches the output.
#[test]
fn what_all_streams_hold_together_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("t.db"));
    let chans: Vec<_> = (0..16).map(|_| s.pipe()).collect();
    let piece = "x".repeat(4096);
    let mut written = 0;
    for (i, &c) in chans.iter().enumerate() {
        let head = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping","params":{{"p":""#);
        s.write(CLIENT, c, head.as_bytes());
        written += head.len();
    }
    // Every line grows to 32 KiB, side by side.
    for _ in 0..8 {
        for &c in &chans {
            s.write(CLIENT, c, piece.as_bytes());
            written += piece.len();
        }
    }
    for &c in &chans {
        s.write(CLIENT, c, b"\"}}\n");
        written += 3;
    }
    let path = s.finish();
    let whole = decode_file(&path).0;
    let k = kinds(&whole);
    assert_eq!(
        k.iter().filter(|k| *k == "request ping").count(),
        16,
        "{k:?}"
    );
    let (cut, _) = decode_file_with(
        &path,
        DecodeOptions {
            max_total_held: 128 << 10,
            ..DecodeOptions::default()
        },
    );
    let limits = cut
        .iter()
        .filter(|i| {
            i.flag
                .as_ref()
                .is_some_and(|f| f.1.contains("memory limit"))
        })
        .count();
    assert!(limits > 0, "{:?}", kinds(&cut));
    let shown: usize = cut.iter().map(|i| i.text.len()).sum();
    assert_eq!(shown, written, "every captured byte is shown once");
}

/// Past the most streams the decoder follows, records are counted and
/// flagged (once at the first, once with the totals), never decoded silently.
#[test]
fn streams_past_the_limit_are_counted_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("m.db"));
    for i in 0..40 {
        let c = s.pipe();
        s.send(CLIENT, SERVER, c, &request(i, "ping", "{}"));
    }
    let path = s.finish();
    let (items, _) = decode_file_with(
        &path,
        DecodeOptions {
            max_streams: 30,
            ..DecodeOptions::default()
        },
    );
    let k = kinds(&items);
    // Each pipe is two streams (the write and the read): 15 pipes decode.
    assert_eq!(
        k.iter().filter(|k| *k == "request ping").count(),
        15,
        "{k:?}"
    );
    let flags: Vec<&String> = items
        .iter()
        .filter_map(|i| i.flag.as_ref().map(|f| &f.1))
        .filter(|d| {
            d.contains("the decoder follows at most 30") || d.contains("past the decoder's 30")
        })
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(flags[1].starts_with("50 records"), "{flags:?}");
}
