//! Every input the fuzzers found (fuzz/regressions/TARGET/*), and the seeds
//! they start from (the fixtures, whole and block by block), replayed
//! through the fuzz targets' harness on stable Rust: none may panic.

use super::fuzz_harness;
use mcpspy::capture::{BlockFilter, CaptureReader};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, which must exist: a folder moved or misnamed would
/// otherwise replay nothing and pass.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    found.retain(|p| p.is_file() && !p.ends_with(".gitkeep"));
    found.sort();
    found
}

/// What the fuzzers found for `target`, in the folder cargo fuzz writes.
fn findings(target: &str) -> Vec<PathBuf> {
    files_in(&root().join("fuzz/regressions").join(target))
}

fn fixtures() -> Vec<PathBuf> {
    let mut f = files_in(&root().join("fixtures"));
    f.retain(|p| p.extension().is_some_and(|e| e == "db"));
    assert!(f.len() >= 5, "the fixtures are the seeds: {f:?}");
    f
}

#[test]
fn the_block_target_survives_its_seeds_and_findings() {
    let mut blocks = 0;
    for f in fixtures() {
        let reader = CaptureReader::open(&f).unwrap();
        let items: u64 = reader
            .blocks(&BlockFilter::default())
            .unwrap()
            .map(|b| {
                blocks += 1;
                fuzz_harness::block(&b.unwrap().data)
            })
            .sum();
        assert!(items > 0, "{}: the harness decodes the seed", f.display());
    }
    assert!(blocks >= 5, "{blocks} seed blocks");
    // The block fuzzer has found at least the timeout kept there.
    let found = findings("block");
    assert!(
        !found.is_empty(),
        "fuzz/regressions/block lost its findings"
    );
    for p in found {
        fuzz_harness::block(&std::fs::read(&p).unwrap());
    }
}

#[test]
fn the_capture_target_survives_its_seeds_and_findings() {
    for f in fixtures() {
        let items = fuzz_harness::capture(&std::fs::read(&f).unwrap());
        assert!(items > 0, "{}: the harness reads the seed", f.display());
    }
    // None found so far: the folder must still be there to replay them.
    for p in findings("capture") {
        fuzz_harness::capture(&std::fs::read(&p).unwrap());
    }
}

/// The TLS framer on hostile bytes: the key log fixture's block (key log
/// lines, ciphertext, hellos) with bytes flipped, cut short and repeated,
/// 600 times from a fixed seed; the harness must neither panic, hang nor
/// hold unbounded memory, and the unmutated block decodes its messages.
#[test]
fn the_tls_framer_survives_mutations_of_a_key_log_capture() {
    let reader = CaptureReader::open(&root().join("fixtures/deno_h2_keylog.db")).unwrap();
    let seed: Vec<u8> = reader
        .blocks(&BlockFilter::default())
        .unwrap()
        .flat_map(|b| b.unwrap().data.to_vec())
        .collect();
    assert!(fuzz_harness::block(&seed) >= 10);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for round in 0..600 {
        let mut data = seed.clone();
        match round % 3 {
            0 => {
                for _ in 0..1 + next(8) {
                    let at = next(data.len());
                    data[at] ^= 1 << next(8);
                }
            }
            1 => data.truncate(next(data.len())),
            _ => {
                let (from, len) = (next(data.len()), 1 + next(4096));
                let piece = data[from..(from + len).min(data.len())].to_vec();
                let at = next(data.len());
                data.splice(at..at, piece);
            }
        }
        fuzz_harness::block(&data);
    }
}
