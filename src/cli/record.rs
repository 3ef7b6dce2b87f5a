use super::{Failure, RecordArgs};
pub fn run(_a: RecordArgs) -> Result<(), Failure> {
    Err(Failure::other("record: not built yet"))
}
