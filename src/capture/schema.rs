//! The capture file's identity, its schema (schema/v1.sql) and the rule by
//! which the format grows (schema/README.md): `user_version` is the major
//! version, and optional features are named in `meta.features`.

use rusqlite::Connection;

/// 'MCPS': PRAGMA application_id of every capture file.
pub const APPLICATION_ID: i32 = 0x4d43_5053;
/// PRAGMA user_version: the major version this build writes and reads.
/// Readers refuse any other; a change that older readers cannot skip bumps it.
pub const MAJOR: i32 = 1;
pub const SQL_V1: &str = include_str!("../../schema/v1.sql");
/// The `meta` key that lists the optional features a file uses (a JSON array).
pub const FEATURES_KEY: &str = "features";
/// The optional features this build knows. A file may use others, made by
/// a newer mcpspy: they are named to the user and ignored.
pub const KNOWN_FEATURES: &[&str] = &[
    super::seal::FEATURE,
    super::derived::FEATURE,
    OTLP_EXPORT,
    super::cgroups::FEATURE,
    super::block::KEYLOG_FEATURE,
    super::block::END_FEATURE,
];
/// `record --otlp-endpoint`: what was sent to the collector (schema/README.md).
pub const OTLP_EXPORT: &str = "otlp_export";

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SQL_V1)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", MAJOR)?;
    Ok(())
}

/// Whether the file has table `name` (the tables of optional features).
pub fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The `features` meta value of a file, if it has one.
pub fn listed_features(conn: &Connection) -> Option<String> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        [FEATURES_KEY],
        |r| r.get(0),
    )
    .ok()
}

/// Whether `listed` (the `features` meta value) names `feature`.
pub fn lists(listed: &str, feature: &str) -> bool {
    serde_json::from_str::<Vec<String>>(listed)
        .is_ok_and(|names| names.iter().any(|n| n == feature))
}

/// The features of `listed` (the `features` meta value) that this build does
/// not know, or why the list cannot be read.
pub fn unknown_features(listed: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = serde_json::from_str(listed)
        .map_err(|e| format!("meta `{FEATURES_KEY}` is not a JSON array of names: {e}"))?;
    Ok(names
        .into_iter()
        .filter(|n| !KNOWN_FEATURES.contains(&n.as_str()))
        .collect())
}
