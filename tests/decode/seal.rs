//! Sealed captures and `mcpspy verify`: an untouched capture verifies; every
//! way of changing one after it was written is caught and named; readers
//! warn once and still read; and no reader changes the file.

use super::support::*;
use mcpspy::capture::{generate_key, SigningIdentity, BLOCK_TARGET};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Output;

fn mcpspy(args: &[&str]) -> Output {
    mcpspy_command().args(args).output().expect("run mcpspy")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A key pair in `dir`: (private key path, public key path).
fn keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    let (public, _) = generate_key(&key).unwrap();
    (key, public)
}

/// A signed capture of several blocks (a session, then enough large
/// messages to seal blocks), with a drop row and processes.
fn sealed_capture(path: &Path, key: &Path) -> PathBuf {
    let mut s = Synth::signed(path, Some(SigningIdentity::load(key).unwrap()));
    s.add_process(CLIENT);
    s.add_process(SERVER);
    let c2s = s.pipe();
    let s2c = s.pipe();
    s.send(CLIENT, SERVER, c2s, &request(0, "initialize", INIT_PARAMS));
    s.send(SERVER, CLIENT, s2c, &response(0, INIT_RESULT));
    let big = "x".repeat(BLOCK_TARGET / 3);
    for i in 1..=8 {
        s.send(
            CLIENT,
            SERVER,
            c2s,
            &request(
                i,
                "tools/call",
                &format!(r#"{{"name":"t","arguments":{{"a":"{big}"}}}}"#),
            ),
        );
        s.send(SERVER, CLIENT, s2c, &response(i, "{}"));
        s.tick();
        s.commit();
    }
    s.finish()
}

fn verify(cap: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["verify", cap.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = mcpspy(&args);
    (o.status.code(), out(&o))
}

/// Runs statements on the file; they must change something.
fn sql(cap: &Path, statement: &str) {
    let c = Connection::open(cap).unwrap();
    c.execute_batch(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    assert!(c.total_changes() > 0, "{statement} changed nothing");
}

/// A byte of a block's data flipped in place (the row's length unchanged).
fn flip_block_byte(cap: &Path) {
    let c = Connection::open(cap).unwrap();
    let data: Vec<u8> = c
        .query_row("SELECT data FROM blocks WHERE block_id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut d = data.clone();
    let at = d.len() / 2;
    d[at] ^= 0x01;
    c.execute("UPDATE blocks SET data = ?1 WHERE block_id = 2", [d])
        .unwrap();
}

#[test]
fn every_change_after_writing_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keys(dir.path(), "k.key");
    let (_, other_public) = keys(dir.path(), "other.key");
    let other_key = dir.path().join("other.key");
    let original = sealed_capture(&dir.path().join("orig.db"), &key);
    let foreign = sealed_capture(&dir.path().join("foreign.db"), &key);
    let blocks: i64 = Connection::open(&original)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM blocks", [], |r| r.get(0))
        .unwrap();
    assert!(blocks >= 3, "several blocks to swap and delete: {blocks}");
    let p = public.to_str().unwrap();
    let (code, text) = verify(&original, &["--key", p, "--deep"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(": intact\n") && text.contains("signed by     sha256:"),
        "{text}"
    );

    type Tamper = Box<dyn Fn(&Path)>;
    let foreign_path = foreign.clone();
    let other_key_path = other_key.clone();
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "a byte of a block's data",
            Box::new(flip_block_byte),
            "block 2",
        ),
        (
            "a meta value",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE meta SET value = '2026-03-01T11:00:00Z' WHERE key = 'started_at'",
                )
            }),
            "tables",
        ),
        (
            "a processes row",
            Box::new(|c| sql(c, "UPDATE processes SET comm = 'innocent' WHERE pid = 1000")),
            "tables",
        ),
        (
            "a streams row",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE streams SET bytes = bytes + 1 WHERE stream_id = 1",
                )
            }),
            "tables",
        ),
        (
            "a drop row",
            Box::new(|c| sql(c, "UPDATE drops SET ring_full = ring_full + 1")),
            "tables",
        ),
        (
            "a block deleted",
            Box::new(|c| {
                sql(
                    c,
                    "PRAGMA foreign_keys = OFF; DELETE FROM blocks WHERE block_id = 2",
                )
            }),
            "block",
        ),
        (
            "two blocks swapped",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE blocks SET data = (SELECT data FROM blocks WHERE block_id = 3) WHERE block_id = 2;",
                )
            }),
            "block 2",
        ),
        (
            "a block duplicated",
            Box::new(|c| {
                sql(
                    c,
                    "INSERT INTO blocks (first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data)
                     SELECT (SELECT MAX(first_seq + records) FROM blocks), records, first_ts_ns,
                            last_ts_ns, raw_bytes, data FROM blocks WHERE block_id = 2",
                )
            }),
            "not in the seal",
        ),
        (
            "a block of another capture appended",
            Box::new(move |c| {
                let f = foreign_path.to_str().unwrap().replace('\'', "''");
                sql(
                    c,
                    &format!(
                        "ATTACH '{f}' AS other;
                         INSERT INTO blocks (first_seq, records, first_ts_ns, last_ts_ns, raw_bytes, data)
                         SELECT (SELECT MAX(first_seq + records) FROM main.blocks), records,
                                first_ts_ns, last_ts_ns, raw_bytes, data
                         FROM other.blocks WHERE block_id = 1;"
                    ),
                )
            }),
            "not in the seal",
        ),
        (
            "record numbers rewritten",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE blocks SET first_seq = first_seq + 5 WHERE block_id >= 2",
                )
            }),
            "record",
        ),
        (
            "a commit deleted",
            Box::new(|c| sql(c, "DELETE FROM seal_commits WHERE commit_no = 1")),
            "commit 1",
        ),
        (
            "the manifest's signature replaced",
            Box::new(|c| sql(c, "UPDATE seal_manifest SET signature = randomblob(64)")),
            "signature",
        ),
        (
            "the manifest edited",
            Box::new(|c| {
                sql(
                    c,
                    "UPDATE seal_manifest SET manifest = CAST(replace(CAST(manifest AS TEXT), 'seal-1', 'seal-2') AS BLOB)",
                )
            }),
            "manifest",
        ),
        (
            "signed again with another key",
            Box::new(move |c| {
                let k = SigningIdentity::load(&other_key_path).unwrap();
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
            "signed by",
        ),
        (
            "the file truncated",
            Box::new(|c| {
                let len = std::fs::metadata(c).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(c).unwrap();
                f.set_len(len / 2).unwrap();
            }),
            "",
        ),
    ];
    for (name, tamper, needle) in cases {
        let copy = dir.path().join("tampered.db");
        std::fs::copy(&original, &copy).unwrap();
        tamper(&copy);
        let (code, text) = verify(&copy, &["--key", p]);
        assert_eq!(code, Some(1), "{name}: must fail:\n{text}");
        assert!(
            text.contains("first failure") || text.contains("damaged"),
            "{name}: {text}"
        );
        assert!(text.contains(needle), "{name}: names `{needle}`:\n{text}");
        assert!(!text.contains("panicked"), "{name}");
    }
    // A key that signed nothing here.
    let (code, text) = verify(&original, &["--key", other_public.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not by the key given"), "{text}");
}

#[test]
fn readers_warn_once_and_still_read_a_broken_seal() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keys(dir.path(), "k.key");
    let cap = sealed_capture(&dir.path().join("c.db"), &key);
    let clean = mcpspy(&["replay", cap.to_str().unwrap()]);
    assert!(clean.status.success());
    assert!(!out(&clean).contains("warning"), "{}", out(&clean));
    flip_block_byte(&cap);
    for args in [
        vec!["replay"],
        vec!["export"],
        vec!["query", "--summary"],
        vec!["query", "--method", "tools/call"],
    ] {
        let mut all = vec![args[0], cap.to_str().unwrap()];
        all.extend_from_slice(&args[1..]);
        let o = mcpspy(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("warning").count(), 1, "{args:?}: {err}");
        assert!(err.contains("does not match its seal"), "{args:?}: {err}");
        assert!(!o.stdout.is_empty(), "{args:?}: still read");
    }
    // A change to a table is seen at once, without reading the blocks.
    sql(
        &cap,
        "UPDATE meta SET value = '2026-03-01T11:00:00Z' WHERE key = 'started_at'",
    );
    let o = mcpspy(&["info", cap.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("seal         BROKEN"),
        "{}",
        out(&o)
    );
}

#[test]
fn unsealed_captures_are_never_called_intact() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/py_http.db");
    let (code, text) = verify(&fixture, &[]);
    assert_eq!(code, Some(1));
    assert!(text.contains("NOT SEALED"), "{text}");
    let (code, _) = verify(Path::new("/nonexistent/x.db"), &[]);
    assert_eq!(code, Some(2));
}

#[test]
fn the_report_is_also_json() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keys(dir.path(), "k.key");
    let cap = sealed_capture(&dir.path().join("c.db"), &key);
    let o = mcpspy(&[
        "verify",
        cap.to_str().unwrap(),
        "--json",
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"]["state"], "intact");
    assert!(v["signed_by"].as_str().unwrap().starts_with("sha256:"));
    assert!(v["vouched"]["capture id"].is_string());
}

#[test]
fn no_command_changes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keys(dir.path(), "k.key");
    let cap = sealed_capture(&dir.path().join("c.db"), &key);
    let c = cap.to_str().unwrap();
    let before = std::fs::read(&cap).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let files = listing(dir.path());
    for args in [
        vec!["verify", c, "--deep", "--key", public.to_str().unwrap()],
        vec!["info", c],
        vec!["replay", c, "-b"],
        vec!["query", c, "--summary"],
        vec!["export", c],
        vec!["show", c, "3"],
    ] {
        let o = mcpspy(&args);
        assert!(o.status.code().is_some(), "{args:?}");
        assert_eq!(
            std::fs::read(&cap).unwrap(),
            before,
            "{args:?} changed the file"
        );
        assert_eq!(listing(dir.path()), files, "{args:?} wrote beside the file");
    }
}
