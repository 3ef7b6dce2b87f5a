//! The capture file's identity and schema (schema/v1.sql).

use rusqlite::Connection;

/// 'MCPS': PRAGMA application_id of every capture file.
pub const APPLICATION_ID: i32 = 0x4d43_5053;
/// PRAGMA user_version of the files this build writes and reads.
pub const VERSION: i32 = 1;
pub const SQL_V1: &str = include_str!("../../schema/v1.sql");

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SQL_V1)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}
