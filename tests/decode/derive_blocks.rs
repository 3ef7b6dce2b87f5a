//! A derived capture's blocks end where its parent's do, and a block the
//! derivation left as it was keeps the parent's compressed bytes: only the
//! blocks that hold a secret are compressed again (and hold no secret), and
//! only one plain zstd frame is taken as it is.

use super::support::*;
use mcpspy::capture::{BlockFilter, CaptureReader, CaptureWriter, CreateOptions, Record};

const SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

/// Blocks as (raw records, stored bytes).
fn blocks(path: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let reader = CaptureReader::open(path).unwrap();
    let all = reader.blocks(&BlockFilter::default()).unwrap();
    all.map(|b| b.unwrap())
        .map(|b| (b.data, b.stored))
        .collect()
}

fn holds(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

#[test]
fn blocks_a_redaction_left_alone_keep_their_compressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Synth::new(&dir.path().join("p.db"));
    let (c2s, s2c) = (s.pipe(), s.pipe());
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    // About 20 MiB of records (both copies of each line), in blocks that
    // end early at uneven places (the child's would fill to 4 MiB).
    let filler = "x".repeat(8 << 10);
    for i in 1..=1200u64 {
        let arg = if i == 600 { SECRET } else { "plain" };
        let params = format!(r#"{{"name":"t","arguments":{{"k":"{arg}","pad":"{filler}"}}}}"#);
        s.send(CLIENT, SERVER, c2s, &request(i, "tools/call", &params));
        s.send(SERVER, CLIENT, s2c, &response(i, r#"{"content":[]}"#));
        if i % 97 == 0 || i % 131 == 0 {
            s.end_block();
        }
    }
    s.tick();
    let parent = s.finish();
    let child = dir.path().join("c.db");
    redact_ok(&parent, &child, &[]);
    let verified = mcpspy_command().arg("verify").arg(&child).output().unwrap();
    assert!(verified.status.success(), "{verified:?}");

    let (p, c) = (blocks(&parent), blocks(&child));
    assert!(p.len() >= 20, "{} blocks", p.len());
    assert_eq!(
        p.len(),
        c.len(),
        "the child's blocks end where the parent's do"
    );
    let mut recompressed = 0;
    for (i, ((p_raw, p_stored), (c_raw, c_stored))) in p.iter().zip(&c).enumerate() {
        assert_eq!(
            p_raw.len(),
            c_raw.len(),
            "block {i}: same records, same lengths"
        );
        assert!(!holds(c_raw, SECRET), "block {i} holds the secret");
        if holds(p_raw, SECRET) {
            assert_ne!(c_raw, p_raw, "block {i}");
            assert_ne!(c_stored, p_stored, "block {i} was compressed anew");
            recompressed += 1;
        } else {
            assert_eq!(c_raw, p_raw, "block {i}");
            assert_eq!(c_stored, p_stored, "block {i} keeps its compressed bytes");
        }
    }
    assert!((1..=2).contains(&recompressed), "{recompressed}");
}

/// The writer's side, where the bytes differ: a block whose records are
/// its parent's is stored as the parent stored it (here compressed at
/// level 19, which the writer never uses), unless those bytes hold more
/// than one plain frame; any other block is compressed here.
#[test]
fn a_block_ended_as_its_parents_is_stored_as_the_parent_stored_it() {
    let dir = tempfile::tempdir().unwrap();
    let parent = typical_session(&dir.path().join("p.db"));
    let (raw, _) = blocks(&parent).swap_remove(0);
    let level19 = zstd::bulk::compress(&raw, 19).unwrap();
    let level3 = zstd::bulk::compress(&raw, 3).unwrap();
    assert_ne!(level19, level3);
    // A skippable frame (magic 0x184D2A50, then its length) after the frame.
    let mut hidden = level19.clone();
    hidden.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 6, 0, 0, 0]);
    hidden.extend_from_slice(b"secret");
    assert_eq!(zstd::stream::decode_all(&hidden[..]).unwrap(), raw);
    let path = dir.path().join("w.db");
    let mut w = CaptureWriter::create(&path, &CreateOptions::default()).unwrap();
    let reader = CaptureReader::open(&parent).unwrap();
    let first = reader.blocks(&BlockFilter::default()).unwrap().next();
    let block = first.unwrap().unwrap();
    let copy_block = |w: &mut CaptureWriter| {
        for rec in block.records() {
            match rec.record {
                Record::Tick { ts_ns } => w.push_tick(ts_ns).unwrap(),
                Record::End(ev) => w.push_event(&ev.hdr.to_bytes()).unwrap(),
                Record::Event(ev) => {
                    let mut bytes = ev.hdr.to_bytes().to_vec();
                    bytes.extend_from_slice(ev.payload);
                    w.push_event(&bytes).unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    };
    copy_block(&mut w);
    w.end_block(&raw, &level19).unwrap();
    copy_block(&mut w);
    w.end_block(&raw, &hidden).unwrap();
    w.push_tick(u64::MAX / 2).unwrap();
    w.end_block(&raw, &level19).unwrap();
    w.finish().unwrap();
    let written = blocks(&path);
    assert_eq!(written.len(), 3);
    assert_eq!(written[0], (raw.clone(), level19.clone()));
    assert_eq!(
        written[1],
        (raw, level3),
        "compressed here, the hidden frame left out"
    );
    assert_ne!(
        written[2].1, level19,
        "a block of other records is compressed here"
    );
    // A bare writer records no kernel counters, so only the blocks are asked of verify.
    let verified = mcpspy_command().arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        said.contains("ok  blocks chained in record order"),
        "{said}"
    );
}
