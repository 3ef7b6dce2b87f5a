//! How to compress the records: block size, zstd level, dictionary.
//!
//! Reads the records of real captures and compresses them every way the
//! capture format could, printing a Markdown table: ratio, bytes per captured
//! payload byte, and compression and decompression speed (one core).
//!
//! cargo bench --bench compression -- [CAPTURE.db ...]   (default: fixtures/*.db)

use mcpspy::capture::{CaptureReader, Record};
use std::time::Instant;

fn main() {
    let mut files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if files.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "db"))
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        files = found;
    }
    if files.is_empty() {
        eprintln!("no captures given and none in fixtures/");
        std::process::exit(2);
    }
    // The records, framed as the file stores them, one after another.
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut payload = 0u64;
    for f in &files {
        let reader = CaptureReader::open(std::path::Path::new(f)).expect("a capture");
        for block in reader.blocks(&Default::default()).expect("blocks") {
            let block = block.expect("a readable block");
            for rec in block.records() {
                if let Record::Event(ev) = rec.record {
                    payload += ev.payload.len() as u64;
                    let mut framed = Vec::new();
                    mcpspy::capture::append_event(&mut framed, &ev.hdr, ev.payload);
                    records.push(framed);
                }
            }
        }
    }
    let raw: u64 = records.iter().map(|r| r.len() as u64).sum();
    println!(
        "Input: {} records, {} raw bytes ({} payload bytes) from {} capture(s): {}\n",
        records.len(),
        raw,
        payload,
        files.len(),
        files.join(", ")
    );
    println!("| blocks of | zstd level | dictionary | ratio raw/compressed | bytes per payload byte | compress MB/s | decompress MB/s |");
    println!("|---|---|---|---|---|---|---|");
    for &block in &[64usize << 10, 256 << 10, 1 << 20, 4 << 20] {
        for &level in &[1, 3, 9, 19] {
            row(&records, block, level, None, raw, payload);
        }
    }
    // A dictionary trained on the first records, for small blocks.
    let sample: Vec<&[u8]> = records.iter().take(2000).map(|r| r.as_slice()).collect();
    let sizes: Vec<usize> = sample.iter().map(|r| r.len()).collect();
    let joined: Vec<u8> = sample.concat();
    if let Ok(dict) = zstd::dict::from_continuous(&joined, &sizes, 64 << 10) {
        for &block in &[4usize << 10, 16 << 10, 64 << 10] {
            row(&records, block, 3, Some(&dict), raw, payload);
        }
    }
}

fn blocks(records: &[Vec<u8>], size: usize) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for r in records {
        let last = out.last_mut().expect("one block");
        if !last.is_empty() && last.len() + r.len() > size {
            out.push(Vec::new());
        }
        out.last_mut().expect("one block").extend_from_slice(r);
    }
    out
}

fn row(records: &[Vec<u8>], size: usize, level: i32, dict: Option<&[u8]>, raw: u64, payload: u64) {
    let input = blocks(records, size);
    let t = Instant::now();
    let compressed: Vec<Vec<u8>> = input
        .iter()
        .map(|b| match dict {
            Some(d) => zstd::bulk::Compressor::with_dictionary(level, d)
                .and_then(|mut c| c.compress(b))
                .expect("compress"),
            None => zstd::bulk::compress(b, level).expect("compress"),
        })
        .collect();
    let ct = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (c, b) in compressed.iter().zip(&input) {
        let back = match dict {
            Some(d) => zstd::bulk::Decompressor::with_dictionary(d)
                .and_then(|mut x| x.decompress(c, b.len()))
                .expect("decompress"),
            None => zstd::bulk::decompress(c, b.len()).expect("decompress"),
        };
        assert_eq!(back.len(), b.len());
    }
    let dt = t.elapsed().as_secs_f64();
    let total: u64 =
        compressed.iter().map(|c| c.len() as u64).sum::<u64>() + dict.map_or(0, |d| d.len() as u64);
    println!(
        "| {} KiB | {level} | {} | {:.1} | {:.4} | {:.0} | {:.0} |",
        size >> 10,
        dict.map_or("no".to_string(), |d| format!("{} KiB", d.len() >> 10)),
        raw as f64 / total as f64,
        total as f64 / payload.max(1) as f64,
        raw as f64 / ct / 1e6,
        raw as f64 / dt / 1e6,
    );
}
