//! Sealed captures and `mcpspy verify`: an untouched capture verifies; every
//! way of changing one after it was written is caught and named; readers
//! warn once and still read; and no reader changes the file.

use super::support::*;
use mcpspy::capture::{generate_key, SigningIdentity, BLOCK_TARGET};
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

use super::tamper::{self, verify};

/// A byte of a block's data flipped in place.
fn flip_block_byte(cap: &Path) {
    tamper::flip_block_byte(cap)
}

fn sql(cap: &Path, statement: &str) {
    tamper::sql(cap, statement)
}

#[test]
fn every_change_after_writing_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keys(dir.path(), "k.key");
    let (other_key, other_public) = keys(dir.path(), "other.key");
    let original = sealed_capture(&dir.path().join("orig.db"), &key);
    let foreign = sealed_capture(&dir.path().join("foreign.db"), &key);
    let scratch = tempfile::tempdir().unwrap();
    let applied =
        tamper::every_change_is_caught(&original, &public, &foreign, &other_key, scratch.path());
    assert!(applied.contains(&"two blocks swapped"), "{applied:?}");
    // A key that signed nothing here.
    let (code, text) = verify(&original, &["--key", other_public.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not by the key given"), "{text}");
}

/// The sealed fixture, recorded from a real session by fixtures/record.sh.
#[test]
fn the_sealed_fixture_verifies_and_every_change_to_it_is_caught() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keys(dir.path(), "k.key");
    let (other_key, _) = keys(dir.path(), "other.key");
    let foreign = sealed_capture(&dir.path().join("foreign.db"), &key);
    tamper::every_change_is_caught(
        &root.join("py_stdio_sealed.db"),
        &root.join("py_stdio_sealed.key.pub"),
        &foreign,
        &other_key,
        dir.path(),
    );
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
        // The seal's warning once (the flipped byte may also damage the
        // block, which is a warning of its own).
        assert_eq!(
            err.matches("does not match its seal").count(),
            1,
            "{args:?}: {err}"
        );
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
        assert!(o.status.success(), "{args:?}: {}", out(&o));
        assert!(!o.stdout.is_empty(), "{args:?} said nothing");
        assert_eq!(
            std::fs::read(&cap).unwrap(),
            before,
            "{args:?} changed the file"
        );
        assert_eq!(listing(dir.path()), files, "{args:?} wrote beside the file");
    }
}
