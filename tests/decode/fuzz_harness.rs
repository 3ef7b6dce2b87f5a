//! What the fuzz targets (fuzz/) run on each input, shared with the
//! regression test that replays every input they found on stable Rust.
//! Nothing here may panic, hang or hold unbounded memory, whatever the bytes.

use mcpspy::capture::{CaptureReader, Records, VerifyOptions};
use mcpspy::decode::{DecodeOptions, Decoder};
use mcpspy::query::{self, IndexUse, Overview, Quiet, Selection};
use mcpspy::render::jsonl::Jsonl;
use mcpspy::render::WallClock;

/// Small limits, so that crafted inputs reach them quickly.
fn tight() -> DecodeOptions {
    DecodeOptions {
        max_line: 4096,
        max_held: 16 << 10,
        max_total_held: 64 << 10,
        max_streams: 64,
        ..DecodeOptions::default()
    }
}

/// The bytes are a block's decompressed data: its records, decoded with
/// the default limits and with tight ones, and written as JSONL. Returns
/// the items written.
pub fn block(data: &[u8]) -> u64 {
    let mut items = 0;
    for opts in [DecodeOptions::default(), tight()] {
        let mut dec = Decoder::new(opts);
        let mut out = Jsonl::new(WallClock::default(), std::io::sink());
        let mut take = |item: &mcpspy::decode::Item<'_>| {
            items += 1;
            let _ = mcpspy::query::Sink::item(&mut out, item, item.text.len() as u64);
        };
        for rec in Records::new(data, 0) {
            dec.push(&rec, &mut take);
        }
        dec.finish(&mut take);
    }
    items
}

/// The bytes are a capture file: opened, described, read whole, and
/// verified deeply, as a stranger's file would be. Returns the items read.
pub fn capture(bytes: &[u8]) -> u64 {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("fuzzed.db");
    std::fs::write(&path, bytes).expect("write the input");
    let Ok(reader) = CaptureReader::open(&path) else {
        return 0;
    };
    let _ = Overview::of(&reader);
    let clock = reader
        .meta()
        .map(|m| WallClock::from_meta(&m))
        .unwrap_or_default();
    let mut out = Jsonl::new(clock, std::io::sink());
    let read = query::run(
        &reader,
        &Selection::default(),
        &mut out,
        IndexUse::Never,
        &mut Quiet,
    );
    let _ = reader.verify(&VerifyOptions {
        data: true,
        deep: true,
        key: None,
    });
    read.map_or(0, |o| o.matched)
}
