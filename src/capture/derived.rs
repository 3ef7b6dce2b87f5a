//! Derived captures (feature "derived", schema/derived.sql): the steps that
//! made a capture from its parents, in `meta`, and the view of a slice.

use super::reader::CaptureReader;
use super::writer::CaptureWriter;
use super::CaptureError;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Read;

pub const FEATURE: &str = "derived";
pub const SQL: &str = include_str!("../../schema/derived.sql");
/// The `meta` key of the steps, a JSON array, the oldest first.
pub const META_KEY: &str = "derivation";
/// A view longer than this is refused: a reader holds it in memory.
const MAX_VIEW: u64 = 1 << 24;

/// One derivation: which parent, what it kept, and what it was asked.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub op: String,
    pub parent: Parent,
    pub records_kept: u64,
    pub records_left_out: u64,
    pub params: serde_json::Value,
    pub at: String,
    pub tool_version: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Parent {
    pub capture_id: Option<String>,
    pub file_sha256: String,
    pub manifest_sha256: Option<String>,
    /// Its ring-buffer records (ticks are not counted: every one is kept).
    pub records: u64,
}

/// A message of a slice's view: its first copy's first record (numbered in
/// the file that holds the view) and the stream offset its text starts at.
pub type ViewKey = (u64, u64);

impl CaptureReader {
    /// The steps that made this capture, oldest first: empty for a recording.
    pub fn derivation(&self) -> Result<Vec<Step>, CaptureError> {
        let Some(text) = self.meta()?.remove(META_KEY) else {
            return Ok(Vec::new());
        };
        serde_json::from_str(&text)
            .map_err(|e| self.damaged(format!("meta `{META_KEY}` does not read: {e}")))
    }

    /// The messages a slice selected, if the file is a slice.
    pub fn view(&self) -> Result<Option<HashSet<ViewKey>>, CaptureError> {
        if !super::schema::has_table(&self.conn, "derived_view").map_err(|e| self.damaged(e))? {
            return Ok(None);
        }
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM derived_view", [], |r| r.get(0))
            .map_err(|e| self.damaged(e))?;
        if n as u64 > MAX_VIEW {
            return Err(self.damaged(format!(
                "its view lists {n} messages, more than the {MAX_VIEW} a reader holds"
            )));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT seq, offset FROM derived_view")
            .map_err(|e| self.damaged(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.damaged(e))?;
        rows.collect::<Result<_, _>>()
            .map(Some)
            .map_err(|e| self.damaged(e))
    }

    /// This file as a parent of `records` ring-buffer records (counted by
    /// the reader that derives from it): its id and its digests.
    pub fn as_parent(&self, records: u64) -> Result<Parent, CaptureError> {
        let io = |err| CaptureError::Io {
            path: self.name().to_path_buf(),
            err,
        };
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
        }
        let manifest: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT manifest FROM seal_manifest WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap_or(None);
        Ok(Parent {
            capture_id: self.meta()?.remove("capture_id"),
            file_sha256: hex::encode(sha2::Digest::finalize(hasher)),
            manifest_sha256: manifest.map(|m| hex::encode(super::seal::sha256(&m))),
            records,
        })
    }
}

impl CaptureWriter {
    /// Makes this a derived capture: its steps (the parent's, then this
    /// one) and, for a slice, the table of its view.
    pub fn derived(&mut self, steps: &[Step], with_view: bool) -> Result<()> {
        if with_view {
            self.conn.execute_batch(SQL)?;
        }
        self.set_meta(META_KEY, &serde_json::to_string(steps)?)?;
        self.add_feature(FEATURE)
    }

    pub fn add_view(&mut self, key: ViewKey) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO derived_view (seq, offset) VALUES (?1, ?2)")?
            .execute(params![key.0 as i64, key.1 as i64])?;
        Ok(())
    }
}

/// A derived capture's records against its derivation: each step kept
/// and left out what its parent held, and the last kept what the file
/// holds. (The first parent's completeness is that file's to prove.)
pub(super) fn check_derivation(steps: &[Step], stored: u64, r: &mut super::Report) {
    for (i, s) in steps.iter().enumerate() {
        r.check(
            s.parent.records == s.records_kept + s.records_left_out,
            format!(
                "step {} ({}): of its parent's {} records, {} kept and {} left out",
                i + 1,
                s.op,
                s.parent.records,
                s.records_kept,
                s.records_left_out
            ),
            || {
                format!(
                    "step {} ({}) says it kept {} and left out {} of {} records",
                    i + 1,
                    s.op,
                    s.records_kept,
                    s.records_left_out,
                    s.parent.records
                )
            },
        );
        if let Some(next) = steps.get(i + 1) {
            r.check(
                next.parent.records == s.records_kept,
                format!("step {} read what step {} kept", i + 2, i + 1),
                || {
                    format!(
                        "step {} read {} records, step {} kept {}",
                        i + 2,
                        next.parent.records,
                        i + 1,
                        s.records_kept
                    )
                },
            );
        }
    }
    if let Some(last) = steps.last() {
        r.check(
            last.records_kept == stored,
            format!(
                "derived by {}: the file holds the {stored} records it kept",
                last.op
            ),
            || {
                format!(
                    "derived by {}: it kept {} records, the file holds {stored}",
                    last.op, last.records_kept
                )
            },
        );
    }
}
