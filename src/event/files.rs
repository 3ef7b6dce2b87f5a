//! Files named by a user or written by a stranger (a rules file, a key, a
//! TLS key log the recorder follows): opened only if they are regular
//! files, and without blocking, so that a FIFO cannot hang whoever reads it.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `path`, opened for reading if it is a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    // Non-blocking: opening a FIFO must not wait for a writer (it is then
    // refused); reads of a regular file do not block either way.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}
