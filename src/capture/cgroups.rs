//! Each process's cgroup and container (feature "cgroups",
//! schema/cgroups.sql): written beside its `processes` row when the
//! recorder could read it, read back with it.

use super::reader::CaptureReader;
use super::schema;
use super::writer::CaptureWriter;
use super::{CaptureError, ProcessRow};
use anyhow::Result;
use rusqlite::params;

pub const FEATURE: &str = "cgroups";
const SQL: &str = include_str!("../../schema/cgroups.sql");
/// The table's rows for the seal, in a fixed order.
pub const SEAL_QUERY: (&str, &str) = (
    "process_cgroups",
    "SELECT pid, seen_ts_ns, cgroup_id, cgroup_path, container_id FROM process_cgroups \
     ORDER BY pid, seen_ts_ns",
);

impl CaptureWriter {
    /// The cgroup of a process row, if it has one; the table and the
    /// feature come with the first.
    pub(super) fn add_process_cgroup(&mut self, p: &ProcessRow) -> Result<()> {
        let Some((id, path)) = &p.cgroup else {
            return Ok(());
        };
        if !schema::has_table(&self.conn, "process_cgroups")? {
            self.conn.execute_batch(SQL)?;
            self.add_feature(FEATURE)?;
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO process_cgroups
                   (pid, seen_ts_ns, cgroup_id, cgroup_path, container_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                p.pid,
                p.seen_ts_ns as i64,
                *id as i64,
                path,
                p.container_id
            ])?;
        Ok(())
    }
}

impl CaptureReader {
    /// Fills in the cgroups of `rows` (keyed by pid and seen_ts_ns) from a
    /// file that has them.
    pub(super) fn read_cgroups(&self, rows: &mut [ProcessRow]) -> Result<(), CaptureError> {
        if !schema::has_table(&self.conn, "process_cgroups").map_err(|e| self.damaged(e))? {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT pid, seen_ts_ns, cgroup_id, cgroup_path, container_id FROM process_cgroups",
            )
            .map_err(|e| self.damaged(e))?;
        let found = stmt
            .query_map([], |r| {
                let key = (r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64);
                let cgroup = (r.get::<_, i64>(2)? as u64, r.get::<_, String>(3)?);
                Ok((key, (cgroup, r.get::<_, Option<String>>(4)?)))
            })
            .map_err(|e| self.damaged(e))?
            .collect::<Result<std::collections::HashMap<_, _>, _>>()
            .map_err(|e| self.damaged(e))?;
        for row in rows {
            if let Some((cgroup, container)) = found.get(&(row.pid, row.seen_ts_ns)) {
                row.cgroup = Some(cgroup.clone());
                row.container_id = container.clone();
            }
        }
        Ok(())
    }
}
