//! replay, query and export: read a capture, decode it, render it.
use super::{ExportArgs, Failure, QueryArgs, ReplayArgs};

pub fn replay(_a: ReplayArgs) -> Result<(), Failure> {
    Err(Failure::other("replay: not built yet"))
}
pub fn query(_a: QueryArgs) -> Result<(), Failure> {
    Err(Failure::other("query: not built yet"))
}
pub fn export(_a: ExportArgs) -> Result<(), Failure> {
    Err(Failure::other("export: not built yet"))
}
