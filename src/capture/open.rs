//! Opening a capture to read it, from files the reader may not trust: it is
//! checked to be a regular file that this user can read, nothing beside it
//! is opened but a hot journal (a recorder killed mid-write, rolled back in
//! a private copy), SQLite opens it immutable (it writes no `-shm`, reads no
//! `-wal`), and what is wrong is said precisely: missing, not permitted,
//! not a capture, damaged, or of a newer major version.

use super::guard::Guard;
use super::reader::CaptureReader;
use super::schema::{self, APPLICATION_ID, MAJOR};
use super::CaptureError;
use crate::event::EVENT_VERSION;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

impl CaptureReader {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let io = |err: std::io::Error| CaptureError::Io {
            path: path.into(),
            err,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(CaptureError::NotACapture {
                    path: path.into(),
                    why: "not a regular file".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CaptureError::Missing(path.into()))
            }
            Err(err) => return Err(io(err)),
        }
        // Said of the file itself, before SQLite's "unable to open".
        std::fs::File::open(path).map_err(io)?;
        let mut notes = Vec::new();
        let (conn, rollback) = match side_files(path, &mut notes)? {
            Journal::Hot => {
                let (conn, dir) = open_rolled_back_copy(path)?;
                notes.push(format!(
                    "{} was left mid-write by an interrupted recording; reading it as of its last \
                     commit (the file is unchanged)",
                    path.display()
                ));
                (conn, Some(dir))
            }
            Journal::None => (open_checked(path, path)?, None),
        };
        let mut r = CaptureReader {
            conn,
            path: path.into(),
            name: None,
            _rollback_copy: rollback,
            notes,
            guard: RefCell::new(None),
            seal: std::cell::OnceCell::new(),
        };
        r.note_features();
        r.note_clock();
        r.note_missing_blocks();
        Ok(r)
    }

    /// Opens `path`, a copy of what the user named `name` (standard input):
    /// errors and notes speak of `name`.
    pub fn open_as(path: &Path, name: &Path) -> Result<Self, CaptureError> {
        let mut r = Self::open(path).map_err(|e| e.named(name))?;
        r.name = Some(name.to_path_buf());
        let (real, shown) = (path.display().to_string(), name.display().to_string());
        for note in &mut r.notes {
            *note = note.replace(&real, &shown);
        }
        Ok(r)
    }

    /// Names the optional features the file uses that this build does not
    /// know (they are ignored), and starts the seal's guard.
    fn note_features(&mut self) {
        let listed = schema::listed_features(&self.conn);
        if listed
            .as_deref()
            .is_some_and(|l| schema::lists(l, super::seal::FEATURE))
        {
            *self.guard.get_mut() = Guard::load(&self.conn);
        }
        match listed.as_deref().map(schema::unknown_features) {
            Some(Ok(unknown)) if !unknown.is_empty() => self.notes.push(format!(
                "{} uses features this mcpspy does not know ({}); they are ignored (a newer mcpspy reads them)",
                self.path.display(),
                unknown.join(", ")
            )),
            Some(Err(why)) => self.notes.push(format!("{}: {why}", self.path.display())),
            _ => {}
        }
    }

    /// Says when the file's clock or record version cannot be trusted:
    /// times are then shown as the kernel's, and records may be misread.
    fn note_clock(&mut self) {
        let Ok(meta) = self.meta() else { return };
        let started = meta.get("started_at").and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))
        });
        let anchor = meta
            .get("started_ktime_ns")
            .and_then(|s| s.trim().parse::<u64>().ok());
        if started.is_none() || anchor.is_none() {
            self.notes.push(format!(
                "{}: the capture records no usable start time (meta started_at, started_ktime_ns); \
                 times are shown as seconds since the recording host booted",
                self.path.display()
            ));
        }
        match meta.get("event_version").map(|v| v.trim().parse::<u32>()) {
            Some(Ok(v)) if v == EVENT_VERSION => {}
            None => {}
            Some(_) => self.notes.push(format!(
                "{}: records of event version {}, and this mcpspy reads version {EVENT_VERSION}: \
                 they may be misread",
                self.path.display(),
                meta.get("event_version").map_or("", String::as_str)
            )),
        }
    }
}

impl CaptureReader {
    /// Says when the streams table counts data events that no block lists
    /// (a block deleted): a reader would otherwise show less without a word.
    fn note_missing_blocks(&mut self) {
        let counted: Result<(i64, i64), _> = self.conn.query_row(
            "SELECT (SELECT COALESCE(SUM(events), 0) FROM streams),
                    (SELECT COALESCE(SUM(s.records), 0) FROM block_streams s
                       JOIN blocks b ON b.block_id = s.block_id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        if let Ok((streams, placed)) = counted {
            if streams > placed {
                self.notes.push(format!(
                    "{}: the streams table counts {} more data events than the blocks hold \
                     (a block was removed?); what follows lacks them",
                    self.path.display(),
                    streams - placed
                ));
            }
        }
    }
}

enum Journal {
    None,
    /// A recorder was killed inside a write: its rollback journal is there.
    Hot,
}

/// The files SQLite would look for beside the capture. Only a rollback
/// journal is ever read (in a private copy); one that is not a regular file
/// (a FIFO, a device) is refused, since opening it could hang or read a
/// stranger's device; a `-wal` or `-shm` is ignored and named.
fn side_files(path: &Path, notes: &mut Vec<String>) -> Result<Journal, CaptureError> {
    let side = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    let mut journal = Journal::None;
    for suffix in ["-journal", "-wal", "-shm"] {
        let p = side(suffix);
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_file() {
            // Not damage to the capture: it cannot be read safely here.
            return Err(CaptureError::Io {
                path: path.into(),
                err: std::io::Error::other(format!(
                    "{} beside it is not a regular file; it is not opened, and neither is the \
                     capture until it is moved away",
                    p.display()
                )),
            });
        }
        match suffix {
            "-journal" if m.len() > 0 => journal = Journal::Hot,
            "-journal" => {}
            _ => notes.push(format!(
                "{} beside the capture is ignored (captures never use one)",
                p.display()
            )),
        }
    }
    Ok(journal)
}

/// Opens `file` read-only and immutable, and checks that it is a capture
/// of this major version; errors speak of `shown`.
fn open_checked(file: &Path, shown: &Path) -> Result<Connection, CaptureError> {
    let uri = format!("file:{}?immutable=1", percent_encoded(file));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(shown, e))?;
    check_identity(&conn, shown)?;
    Ok(conn)
}

fn check_identity(conn: &Connection, shown: &Path) -> Result<(), CaptureError> {
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| classify(shown, e))?;
    if app_id != APPLICATION_ID {
        return Err(CaptureError::NotACapture {
            path: shown.into(),
            why: format!("SQLite application_id is {app_id:#x}, captures have {APPLICATION_ID:#x}"),
        });
    }
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(shown, e))?;
    if version != MAJOR {
        return Err(CaptureError::UnsupportedVersion {
            path: shown.into(),
            version,
        });
    }
    // The schema itself must read: a truncated file often fails only here.
    conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| classify(shown, e))?;
    Ok(())
}

/// What an SQLite error says about the file.
fn classify(path: &Path, e: rusqlite::Error) -> CaptureError {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::NotADatabase) => CaptureError::NotACapture {
            path: path.into(),
            why: "not an SQLite database".into(),
        },
        Some(ErrorCode::DatabaseCorrupt) => CaptureError::Damaged {
            path: path.into(),
            why: format!("the file is malformed or truncated ({e})"),
        },
        _ => CaptureError::Damaged {
            path: path.into(),
            why: e.to_string(),
        },
    }
}

/// The recorder was killed inside a write: the file has a hot journal.
/// Roll back a private copy, so that the file itself stays untouched.
fn open_rolled_back_copy(path: &Path) -> Result<(Connection, tempfile::TempDir), CaptureError> {
    let io = |err: std::io::Error| CaptureError::Io {
        path: path.into(),
        err,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let copy = dir.path().join("capture.db");
    std::fs::copy(path, &copy).map_err(io)?;
    let journal = PathBuf::from(format!("{}-journal", path.display()));
    std::fs::copy(&journal, dir.path().join("capture.db-journal")).map_err(io)?;
    {
        let rw = Connection::open(&copy).map_err(|e| classify(path, e))?;
        rw.query_row("PRAGMA user_version", [], |r| r.get::<_, i32>(0))
            .map_err(|e| CaptureError::Damaged {
                path: path.into(),
                why: format!("rolling back the interrupted write: {e}"),
            })?;
    }
    let conn = open_checked(&copy, path)?;
    Ok((conn, dir))
}

/// A path as an SQLite URI's path: every byte but unreserved ones and `/`
/// percent-encoded.
fn percent_encoded(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
