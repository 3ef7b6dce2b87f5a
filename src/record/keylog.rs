//! `record --keylog FILE`: follows TLS key logs (SSLKEYLOGFILE's NSS format)
//! while recording and hands each line to the store, where readers find the
//! secrets that open the TLS 1.3 ciphertext recorded beside them.
//!
//! The files are read before each batch of records is handed on: a program
//! writes a connection's secrets before it sends or reads that connection's
//! data, so every line reaches the file ahead of the records it opens. What
//! a file holds when recording starts belongs to connections that began
//! before (whose ciphertext is not captured), and is not kept: those are
//! past sessions' secrets. A file may appear later, grow, be truncated, or
//! be replaced (a new file at the path is read from its start); the lines
//! that do not parse are counted, never kept.

use crate::event::keylog::{parse_line, Line, MAX_LINE};
use crate::event::Batch;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Bytes read from one file per poll at most: a runaway file cannot stall
/// the drain (the rest is read at the next polls).
const MAX_READ: u64 = 1 << 20;

/// One followed file.
struct Followed {
    path: PathBuf,
    file: Option<File>,
    /// The open file's inode: another at the path is a new file.
    ino: u64,
    pos: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
    /// The partial line is too long to be a key log line: skip to its end.
    skipping: bool,
    kept: u64,
    rejected: u64,
    /// Why the file could not be opened, the last time.
    error: Option<String>,
}

pub struct KeyLogs {
    files: Vec<Followed>,
}

impl KeyLogs {
    /// Follows `paths` from their current ends (a missing file from its start,
    /// once it appears).
    pub fn new(paths: &[PathBuf]) -> KeyLogs {
        let mut logs = KeyLogs {
            files: paths
                .iter()
                .map(|p| Followed {
                    path: p.clone(),
                    file: None,
                    ino: 0,
                    pos: 0,
                    partial: Vec::new(),
                    skipping: false,
                    kept: 0,
                    rejected: 0,
                    error: None,
                })
                .collect(),
        };
        for f in &mut logs.files {
            if f.open() {
                f.pos = f
                    .file
                    .as_ref()
                    .and_then(|f| f.metadata().ok())
                    .map_or(0, |m| m.len());
            }
        }
        logs
    }

    /// Appends the lines written since the last poll to `batch`; true when
    /// what [`KeyLogs::describe`] says changed.
    pub fn poll(&mut self, batch: &mut Batch, ts_ns: u64) -> bool {
        let mut changed = false;
        for f in &mut self.files {
            let before = (f.kept, f.rejected, f.error.clone());
            f.poll(batch, ts_ns);
            changed |= before != (f.kept, f.rejected, f.error.clone());
        }
        changed
    }

    /// What was followed, for the capture's `keylog` meta.
    pub fn describe(&self) -> String {
        let files: Vec<_> = self
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "path": f.path.display().to_string(),
                    "lines_kept": f.kept,
                    "lines_rejected": f.rejected,
                    "error": f.error,
                })
            })
            .collect();
        serde_json::json!({ "files": files }).to_string()
    }
}

impl Followed {
    /// Opens the file at the path; false (and why, kept) if it cannot be.
    fn open(&mut self) -> bool {
        match open_regular(&self.path) {
            Ok((file, ino)) => {
                self.file = Some(file);
                self.ino = ino;
                self.pos = 0;
                self.partial.clear();
                self.skipping = false;
                self.error = None;
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    fn poll(&mut self, batch: &mut Batch, ts_ns: u64) {
        // A new file at the path (deleted and made again, renamed over).
        let replaced = std::fs::metadata(&self.path)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .is_ok_and(|ino| self.file.is_some() && ino != self.ino);
        if (self.file.is_none() || replaced) && !self.open() {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        // Truncated (or replaced by a shorter file): read it from its start.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.pos {
            self.pos = 0;
            self.partial.clear();
            self.skipping = false;
        }
        if len == self.pos || file.seek(SeekFrom::Start(self.pos)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = file.take(MAX_READ).read_to_end(&mut buf) else {
            return;
        };
        self.pos += n as u64;
        let mut rest = &buf[..];
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let (piece, after) = (&rest[..nl], &rest[nl + 1..]);
            rest = after;
            if std::mem::take(&mut self.skipping) {
                self.partial.clear();
                self.rejected += 1;
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(piece);
            self.keep(batch, ts_ns, &line);
        }
        if !self.skipping {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
            }
        }
    }

    fn keep(&mut self, batch: &mut Batch, ts_ns: u64, line: &[u8]) {
        match parse_line(line) {
            Ok(Line::Secret { .. } | Line::Other) => {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                batch.push_keylog(ts_ns, line);
                self.kept += 1;
            }
            Ok(Line::Blank) => {}
            Err(_) => self.rejected += 1,
        }
    }
}

/// Opens the key log (a regular file only: whoever can write the path could
/// have put a FIFO there) and names its inode.
fn open_regular(path: &std::path::Path) -> Result<(File, u64), String> {
    use std::os::unix::fs::MetadataExt;
    let file = crate::event::open_regular(path).map_err(|e| e.to_string())?;
    let ino = file.metadata().map_err(|e| e.to_string())?.ino();
    Ok((file, ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Recorded;
    use std::io::Write;

    fn lines(batch: &Batch) -> Vec<String> {
        batch
            .iter()
            .filter_map(|r| match r {
                Recorded::KeyLog { line, .. } => Some(String::from_utf8_lossy(line).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_are_kept_as_they_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.log");
        let mut logs = KeyLogs::new(std::slice::from_ref(&path));
        let mut batch = Batch::default();
        logs.poll(&mut batch, 1); // not there yet
        assert!(batch.is_empty());
        assert!(logs.describe().contains("No such file"));
        // A FIFO is refused, not waited on.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string, and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut fifos = KeyLogs::new(&[fifo]);
        fifos.poll(&mut batch, 1);
        assert!(fifos.describe().contains("not a regular file"));
        let line = format!(
            "SERVER_TRAFFIC_SECRET_0 {} {}",
            "cd".repeat(32),
            "02".repeat(32)
        );
        let mut f = File::create(&path).unwrap();
        write!(f, "# comment\nnot a key line\n{}", &line[..20]).unwrap();
        logs.poll(&mut batch, 2);
        assert!(lines(&batch).is_empty(), "half a line waits");
        writeln!(f, "{}", &line[20..]).unwrap();
        writeln!(f, "{}", "X".repeat(MAX_LINE * 3)).unwrap();
        logs.poll(&mut batch, 3);
        assert_eq!(lines(&batch), vec![line.clone()]);
        let d: serde_json::Value = serde_json::from_str(&logs.describe()).unwrap();
        assert_eq!(d["files"][0]["lines_kept"], 1);
        assert_eq!(d["files"][0]["lines_rejected"], 2);
        // Written anew from the start: read again from there.
        let mut f = File::create(&path).unwrap();
        writeln!(f, "{line}").unwrap();
        let mut again = Batch::default();
        logs.poll(&mut again, 4);
        assert_eq!(lines(&again), vec![line.clone()]);
        // Replaced by another file (longer than what was read): read from its start.
        let other = dir.path().join("other.log");
        let mut g = File::create(&other).unwrap();
        writeln!(g, "{line}\n{line}\n{line}").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let mut third = Batch::default();
        logs.poll(&mut third, 5);
        assert_eq!(lines(&third).len(), 3);
        // A file that is there when recording starts: only what comes after.
        let mut late = KeyLogs::new(std::slice::from_ref(&path));
        let mut none = Batch::default();
        late.poll(&mut none, 6);
        assert!(
            lines(&none).is_empty(),
            "past sessions' secrets are not kept"
        );
        writeln!(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap(),
            "{line}"
        )
        .unwrap();
        late.poll(&mut none, 7);
        assert_eq!(lines(&none), vec![line]);
    }
}
