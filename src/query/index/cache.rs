//! Where indexes live, what they answer for, and when they go.

use super::{fail, IndexError, FORMAT};
use crate::query::{CaptureReader, Totals};
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What the index answers for: one capture, as it is now, decoded by this
/// build of mcpspy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The capture's canonical path.
    pub capture: PathBuf,
    pub(super) text: String,
}

impl Key {
    pub fn of(reader: &CaptureReader) -> Result<Key, IndexError> {
        let capture = std::fs::canonicalize(reader.path())?;
        let m = std::fs::metadata(&capture)?;
        let Totals {
            blocks,
            records,
            raw_bytes,
            compressed_bytes,
            ..
        } = reader.totals().map_err(fail)?;
        let text = format!(
            "capture={} dev={} ino={} size={} mtime={}.{:09} ctime={}.{:09} blocks={blocks} \
             records={records} raw_bytes={raw_bytes} compressed_bytes={compressed_bytes}; {}",
            capture.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            decoder_identity()
        );
        Ok(Key { capture, text })
    }
}

/// This build of mcpspy: its version and its executable's identity, so that
/// a rebuilt or upgraded decoder never reads an index an older one made.
fn decoder_identity() -> String {
    let exe = std::env::current_exe().and_then(std::fs::metadata);
    match exe {
        Ok(m) => format!(
            "mcpspy {} index {FORMAT} exe ino={} size={} mtime={}.{:09}",
            env!("CARGO_PKG_VERSION"),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        // Unknown build: a key that matches nothing, so nothing is reused.
        Err(e) => format!("mcpspy {} unknown executable ({e})", std::process::id()),
    }
}

/// The user's index folder: $XDG_CACHE_HOME/mcpspy, else ~/.cache/mcpspy.
pub fn cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("mcpspy"))
}

/// Where the index of `capture` (a canonical path) lives in `dir`.
pub fn path_in(dir: &Path, capture: &Path) -> PathBuf {
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let hash = capture
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let name: String = capture
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    dir.join(format!("{name}-{hash:016x}.index"))
}

/// Creates the index folder if needed (mode 0700: indexes show what
/// captures hold), and makes sure that only this user can write in it: an
/// index someone else could have put there is not trusted.
pub fn private_dir(dir: &Path) -> Result<(), IndexError> {
    let failed = |why: String| fail(format!("{}: {why}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(e.to_string()))?;
    let m = std::fs::metadata(dir).map_err(|e| failed(e.to_string()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(failed(format!(
            "owned by uid {} with mode {:o}; indexes are kept only in a folder that this user \
             (uid {me}) alone can write",
            m.uid(),
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes indexes whose capture is gone, and builds abandoned long ago.
pub fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = std::time::Duration::from_secs(86_400);
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".index") {
            continue;
        }
        let stale = if name.starts_with(".building-") {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > day)
        } else {
            capture_of(&path).is_some_and(|c| !c.exists())
        };
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The capture an index file was built for, if it reads as one.
fn capture_of(index: &Path) -> Option<PathBuf> {
    let conn = Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let key: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'key'", [], |r| r.get(0))
        .ok()?;
    let path = key.strip_prefix("capture=")?.split(" dev=").next()?;
    Some(PathBuf::from(path))
}
