//! `mcpspy scan-tls`: the BoringSSL scan as record runs it, without root.
//! Needs scripts/setup.sh (tests/peers/tls-apps: Bun, Deno).

use super::tls_programs::*;
use std::path::PathBuf;
use std::process::Command;

/// Bun is located; a second scan comes from the cache with the same answer;
/// a `bun build --compile` program (same BuildID, same code) gets the same
/// offsets from its own scan.
#[test]
fn bun_is_located_cached_and_its_compiled_programs_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = scan(&bun(), Some(&cache));
    assert_eq!(first["scan"]["verdict"], "located", "{first}");
    assert_eq!(first["cached"], false);
    let again = scan(&bun(), Some(&cache));
    assert_eq!(again["cached"], true);
    assert_eq!(again["scan"], first["scan"]);
    let program = dir.path().join("compiled");
    compile_fetch_client(&program);
    let compiled = scan(&program, None);
    assert_eq!(compiled["scan"], first["scan"], "same code, same offsets");
}

/// Programs without BoringSSL are never located: OpenSSL inside node, Deno's
/// rustls, Python, the openssl tool, mcpspy itself (which holds the path it
/// looks for, but no code that loads it).
#[test]
fn what_is_not_boringssl_is_absent() {
    let mut programs = vec![PathBuf::from(env!("CARGO_BIN_EXE_mcpspy")), deno()];
    // scripts/setup.sh installs all three (node runs the npm peers).
    for p in ["node", "python3", "openssl"] {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!path.is_empty(), "{p} is not on PATH: run scripts/setup.sh");
        programs.push(std::fs::canonicalize(path).unwrap());
    }
    for p in programs {
        assert!(p.exists(), "{}: run scripts/setup.sh", p.display());
        let v = scan(&p, None);
        assert_eq!(v["scan"]["verdict"], "absent", "{}: {v}", p.display());
    }
}

/// A BoringSSL built position-independent and stripped (the one gRPC's
/// wheel links into its Python extension, from PyPI): its error reports
/// load the source path RIP-relative, and the scan locates the functions by
/// them. (That the offsets are SSL_write's and SSL_read's was checked with
/// perf's uprobes on a TLS gRPC call: the located SSL_write received the
/// HTTP/2 preface in plaintext; see the closing note of issue 16.)
#[test]
fn a_position_independent_boringssl_is_located() {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let so = std::fs::read_dir(&venv)
        .expect("run scripts/setup.sh (.venv)")
        .filter_map(Result::ok)
        .map(|d| d.path().join("site-packages/grpc/_cython"))
        .find(|p| p.exists())
        .and_then(|d| {
            std::fs::read_dir(d)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("cygrpc"))
                })
        })
        .expect("gRPC's extension: run scripts/setup.sh (grpcio in tests/peers/requirements.lock)");
    let v = scan(&so, None);
    assert_eq!(v["scan"]["verdict"], "located", "{v}");
    assert!(
        v["scan"]["library"]
            .as_str()
            .unwrap()
            .ends_with("ssl/ssl_lib.cc"),
        "{v}"
    );
    let offsets: std::collections::BTreeSet<_> = ["ssl_write", "ssl_read", "ssl_new"]
        .iter()
        .map(|f| v["scan"][f]["file_offset"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(offsets.len(), 3, "three functions: {v}");
}

/// A BoringSSL that the rules do not match is named as such, and nothing
/// is located, so nothing would be attached.
#[test]
fn a_boringssl_the_rules_do_not_match_is_named_not_located() {
    let dir = tempfile::tempdir().unwrap();
    let v = scan(&damaged_bun(dir.path()), None);
    assert_eq!(v["scan"]["verdict"], "unlocated", "{v}");
    assert!(v["scan"]["library"]
        .as_str()
        .unwrap()
        .ends_with("ssl/ssl_lib.cc"));
    assert!(
        v["scan"]["why"].as_str().unwrap().contains("SSL_read"),
        "{v}"
    );
}

/// What is not a file is refused, saying why: missing, or a folder.
#[test]
fn scan_tls_refuses_what_is_not_a_file() {
    for (path, why) in [
        ("/nonexistent/program", "No such file or directory"),
        ("/usr", "not a file"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpspy"))
            .args(["scan-tls", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{path}: {err}");
    }
}
