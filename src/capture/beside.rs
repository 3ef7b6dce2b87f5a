//! Files beside a capture: what SQLite keeps next to it, and the
//! half-made files of recorders that were killed.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Removes what SQLite keeps beside the file at `path` (a journal, a WAL),
/// before a new file takes its place: SQLite would apply an old journal to
/// the new file.
pub fn remove_side_files(path: &Path) -> Result<()> {
    for suffix in ["-journal", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    Ok(())
}

/// Removes the half-made files (`.mcpspy-PID-*.db.part`) of recorders that
/// were killed while they made their file: their PID no longer runs.
pub(super) fn remove_orphans(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.ends_with(".db.part"))
            .and_then(|n| {
                n.strip_prefix(".mcpspy-")?
                    .split('-')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
