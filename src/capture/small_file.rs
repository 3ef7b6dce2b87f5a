//! Small files handed to a command beside a capture (rules, keys, a tools
//! lock): only a regular file is read, and only up to a size no honest one
//! comes near, so that a FIFO cannot hang a command nor /dev/zero fill its
//! memory.

use crate::event::open_regular;
use std::io::{self, Read};
use std::path::Path;

/// Larger files are refused.
pub const MAX_SMALL_FILE: u64 = 64 << 20;

/// The bytes of `path`, a regular file of at most [`MAX_SMALL_FILE`] bytes.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?
        .take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {} MiB", MAX_SMALL_FILE >> 20),
        ));
    }
    Ok(bytes)
}

/// As [`read_small`], for UTF-8 text.
pub fn read_small_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_small(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether `a` and `b` name one existing file (by device and inode, so
/// through links and other spellings of the path).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
