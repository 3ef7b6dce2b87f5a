//! The TLS programs of tests/peers/tls-apps (scripts/setup.sh) and the BoringSSL
//! scan's answers about them; shared by the cli and record tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcpspy");

pub fn apps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tls-apps/node_modules")
}

pub fn bun() -> PathBuf {
    let bun = apps().join("bun/bin/bun.exe");
    assert!(bun.exists(), "run scripts/setup.sh (tests/peers/tls-apps)");
    bun
}

pub fn deno() -> PathBuf {
    apps().join("@deno/linux-x64-glibc/deno")
}

pub fn claude() -> PathBuf {
    apps().join("@anthropic-ai/claude-code-linux-x64/claude")
}

pub fn fetch_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fetch_client.mjs")
}

/// scan-tls's answer for `program`, with `cache` as the cache folder (None: --no-cache).
pub fn scan(program: &Path, cache: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new(BIN);
    match cache {
        Some(c) => cmd.env("XDG_CACHE_HOME", c).arg("scan-tls"),
        None => cmd.args(["scan-tls", "--no-cache"]),
    };
    let out = cmd.arg(program).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A copy of Bun with int3 over the first 16 bytes of SSL_read (as the scan
/// found it): still BoringSSL to the eye, but its SSL_read no longer reaches
/// its own error reports.
pub fn damaged_bun(dir: &Path) -> PathBuf {
    let found = scan(&bun(), None);
    let off = found["scan"]["ssl_read"]["file_offset"].as_str().unwrap();
    let off = usize::from_str_radix(off.trim_start_matches("0x"), 16).unwrap();
    let mut bytes = std::fs::read(bun()).unwrap();
    bytes[off..off + 16].fill(0xcc);
    let path = dir.join("bun-damaged");
    std::fs::write(&path, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The bun `build --compile` of the fetch client, at `program`.
pub fn compile_fetch_client(program: &Path) {
    let built = Command::new(bun())
        .args(["build", "--compile"])
        .arg(fetch_client())
        .arg("--outfile")
        .arg(program)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}
