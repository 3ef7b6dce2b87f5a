//! The tamper battery: every way of changing a sealed capture after it was
//! written must give `verify` exit 1 and name what failed, and the
//! untouched capture must give 0. Run on a synthetic capture, the sealed
//! fixture, and a fresh recording of a real session (tests/record).

use mcpspy::capture::SigningIdentity;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Output};

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn verify(cap: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mcpspy"))
        .arg("verify")
        .arg(cap)
        .args(extra)
        .output()
        .expect("run mcpspy");
    (o.status.code(), out(&o))
}

/// Runs statements on the file; they must change something.
pub fn sql(cap: &Path, statement: &str) {
    let c = Connection::open(cap).unwrap();
    c.execute_batch(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    assert!(c.total_changes() > 0, "{statement} changed nothing");
}

/// The capture's block ids, in record order.
fn block_ids(cap: &Path) -> Vec<i64> {
    let c = Connection::open(cap).unwrap();
    let mut stmt = c
        .prepare("SELECT block_id FROM blocks ORDER BY first_seq")
        .unwrap();
    let ids = stmt.query_map([], |r| r.get(0)).unwrap();
    ids.collect::<Result<_, _>>().unwrap()
}

/// A byte of a block's data flipped in place (the row's length unchanged).
pub fn flip_block_byte(cap: &Path) {
    let id = block_ids(cap)[0];
    let c = Connection::open(cap).unwrap();
    let mut d: Vec<u8> = c
        .query_row("SELECT data FROM blocks WHERE block_id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    let at = d.len() / 2;
    d[at] ^= 0x01;
    c.execute(
        "UPDATE blocks SET data = ?1 WHERE block_id = ?2",
        rusqlite::params![d, id],
    )
    .unwrap();
}

/// `original` is sealed and signed with the key whose public half is
/// `public`; `foreign` is another sealed capture; `other_key` another
/// private key. Tampered copies go to `scratch`. Returns the cases applied:
/// swapping two blocks needs a capture of two blocks or more.
pub fn every_change_is_caught(
    original: &Path,
    public: &Path,
    foreign: &Path,
    other_key: &Path,
    scratch: &Path,
) -> Vec<&'static str> {
    let p = public.to_str().unwrap();
    let (code, text) = verify(original, &["--key", p, "--deep"]);
    assert_eq!(code, Some(0), "untouched: {text}");
    assert!(text.contains("signed by     sha256:"), "{text}");
    let ids = block_ids(original);
    let (first, last) = (ids[0], *ids.last().unwrap());
    type Tamper = Box<dyn Fn(&Path)>;
    let foreign = foreign.to_str().unwrap().replace('\'', "''");
    let other_key = other_key.to_path_buf();
    let mut cases: Vec<(&str, Tamper, String)> = vec![
        (
            "a byte of a block's data",
            Box::new(flip_block_byte),
            format!("block {first}"),
        ),
        (
            "a meta value",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE meta SET value = '2026-03-01T11:00:00Z' WHERE key = 'started_at'",
                )
            }),
            "tables".into(),
        ),
        (
            "a processes row",
            Box::new(|c| sql(c, "UPDATE processes SET comm = 'innocent' WHERE rowid = 1")),
            "tables".into(),
        ),
        (
            "a streams row",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE streams SET bytes = bytes + 1 WHERE stream_id = 1",
                )
            }),
            "tables".into(),
        ),
        (
            "a drop row",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE drops SET ring_full = ring_full + 1 WHERE rowid = 1",
                )
            }),
            "tables".into(),
        ),
        (
            "a block deleted",
            Box::new(move |c| {
                sql(
                    c,
                    &format!(
                        "PRAGMA foreign_keys = OFF; DELETE FROM blocks WHERE block_id = {first}"
                    ),
                )
            }),
            "block".into(),
        ),
        (
            "a block duplicated",
            Box::new(move |c| {
                sql(
                    c,
                    &format!(
                        "INSERT INTO blocks (first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data)
                         SELECT (SELECT MAX(first_seq + records) FROM blocks), records, first_ts_ns,
                                last_ts_ns, raw_bytes, data FROM blocks WHERE block_id = {first}"
                    ),
                )
            }),
            "not in the seal".into(),
        ),
        (
            "a block of another capture appended",
            Box::new(move |c| {
                sql(
                    c,
                    &format!(
                        "ATTACH '{foreign}' AS other;
                         INSERT INTO main.blocks (first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data)
                         SELECT (SELECT MAX(first_seq + records) FROM main.blocks), records,
                                first_ts_ns, last_ts_ns, raw_bytes, data
                         FROM other.blocks ORDER BY first_seq LIMIT 1;"
                    ),
                )
            }),
            "not in the seal".into(),
        ),
        (
            "record numbers rewritten",
            Box::new(move |c| {
                sql(
                    c,
                    &format!("UPDATE blocks SET first_seq = first_seq + 5 WHERE block_id = {last}"),
                )
            }),
            "record".into(),
        ),
        (
            "a commit deleted",
            Box::new(|c| sql(c, "DELETE FROM seal_commits WHERE commit_no = 1")),
            "commit 1".into(),
        ),
        (
            "the manifest's signature replaced",
            Box::new(|c| sql(c, "UPDATE seal_manifest SET signature = randomblob(64)")),
            "signature".into(),
        ),
        (
            "the manifest edited",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE seal_manifest SET manifest = CAST(replace(CAST(manifest AS TEXT), 'seal-1', 'seal-2') AS BLOB)",
                )
            }),
            "manifest".into(),
        ),
        (
            "signed again with another key",
            Box::new(move |c| {
                let k = SigningIdentity::load(&other_key).unwrap();
                let conn = Connection::open(c).unwrap();
                let m: Vec<u8> = conn
                    .query_row("SELECT manifest FROM seal_manifest", [], |r| r.get(0))
                    .unwrap();
                conn.execute(
                    "UPDATE seal_manifest SET signature = ?1, public_key = ?2",
                    rusqlite::params![&k.sign(&m)[..], &k.public_key()[..]],
                )
                .unwrap();
            }),
            "signed by".into(),
        ),
        (
            "the file truncated",
            Box::new(|c| {
                let len = std::fs::metadata(c).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(c).unwrap();
                f.set_len(len / 2).unwrap();
            }),
            "the file is malformed or truncated".into(),
        ),
    ];
    if ids.len() >= 2 {
        cases.push((
            "two blocks swapped",
            Box::new(move |c| {
                sql(
                    c,
                    &format!(
                        "UPDATE blocks SET data = (SELECT data FROM blocks WHERE block_id = {last}) \
                         WHERE block_id = {first}"
                    ),
                )
            }),
            format!("block {first}"),
        ));
    }
    let applied = cases.iter().map(|c| c.0).collect();
    for (name, tamper, needle) in cases {
        let copy = scratch.join("tampered.db");
        std::fs::copy(original, &copy).unwrap();
        let _ =
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        tamper(&copy);
        let (code, text) = verify(&copy, &["--key", p]);
        assert_eq!(code, Some(1), "{name}: must fail:\n{text}");
        assert!(text.contains("first failure"), "{name}: {text}");
        assert!(text.contains(&needle), "{name}: names `{needle}`:\n{text}");
        assert!(!text.contains("panicked"), "{name}");
    }
    applied
}
