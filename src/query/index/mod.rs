//! A derived index of a capture's decoded items, so that `query` reads
//! what it selects instead of decoding the whole capture each time.
//!
//! The index is a cache, never evidence. It is one SQLite file in the
//! user's own cache folder (`$XDG_CACHE_HOME/mcpspy`, else
//! `~/.cache/mcpspy`), never beside the capture: the capture's folder is
//! left as it was, and nobody who can write there can plant an index that
//! makes a verified capture say something else. It is keyed to the exact
//! capture (path, device and inode, size, mtime and ctime, block and record
//! counts) and to the exact build of mcpspy that made it (a better decoder
//! gives other items); an index with another key, or one that does not read
//! back cleanly, is rebuilt, never trusted. A build writes a temporary file
//! beside its destination and renames it into place, so concurrent queries
//! see either the old index or the new one, whole.
//!
//! Every field of every [`Item`](crate::query::Item) is stored, its session as it stood at that
//! item included, so any renderer can run on items read back (a test checks
//! them field by field). The texts (and the raw JSON members, which are
//! slices of them) sit in zstd-compressed chunks, read only for callers that
//! ask for them ([`Index::each`]'s `text`): without them an item's text is
//! empty, its raw members other than the id read `null`, and its size is
//! passed beside it. Console lines, filters and tables need no text.
//!
//! [`cache`] finds, keys and prunes indexes; [`codec`] and [`sessions`] are
//! the stored mirrors of an item and of a session; [`build`] writes an index
//! from a full decode (a sink); [`read`] reads the items a selection may keep.

mod build;
mod cache;
mod codec;
mod read;
mod sessions;

pub use build::Builder;
pub use cache::{cache_dir, path_in, private_dir, prune, Key};
pub use read::{Index, Select};

use std::fmt;

/// 'MCPI': PRAGMA application_id of index files.
const APPLICATION_ID: i32 = 0x4d43_5049;
/// PRAGMA user_version: the layout of this file and of its records.
const FORMAT: i32 = 7;
/// Texts are compressed together in chunks of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Decompressed chunks above this size are refused (a chunk holds one
/// item's text at most once it passes CHUNK_BYTES; the decoder keeps 64 MiB).
const MAX_CHUNK: u64 = 256 << 20;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per item, in output order; the columns are what query selects on.
CREATE TABLE items (
    n INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    method INTEGER,
    subject INTEGER,
    session INTEGER,
    answers INTEGER,
    rec BLOB NOT NULL
);
-- Texts of consecutive items, concatenated and zstd-compressed.
CREATE TABLE texts (chunk INTEGER PRIMARY KEY, raw_len INTEGER NOT NULL, data BLOB NOT NULL);
-- Each session's identity each time it changed (numbered over all
-- sessions, 0, 1, 2…), and its final summary.
CREATE TABLE session_versions (version INTEGER PRIMARY KEY, rec BLOB NOT NULL);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, rec BLOB NOT NULL);
-- The methods and subjects (Kind::method, Kind::subject) items name, by number.
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
-- The processes records name, by number (0, 1, 2… in order of appearance).
CREATE TABLE peers (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, comm BLOB NOT NULL);
";

/// Why an index cannot be used (it is then rebuilt, or skipped).
#[derive(Debug)]
pub struct IndexError(String);

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexError {}

fn fail(why: impl fmt::Display) -> IndexError {
    IndexError(why.to_string())
}

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> Self {
        fail(e)
    }
}

impl From<rusqlite::types::FromSqlError> for IndexError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        fail(e)
    }
}

impl From<std::io::Error> for IndexError {
    fn from(e: std::io::Error) -> Self {
        fail(e)
    }
}
