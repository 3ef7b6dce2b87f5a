//! Scan results kept by ELF BuildID in the user's cache folder, the one the
//! query index uses and on the same terms: the caller checked that only
//! this user can write in it, and a file is used only if this user owns it
//! and others cannot write it. A located result is used only if the file
//! still has each function's first bytes where it says.

use super::elf::Image;
use super::{Outcome, SCAN_VERSION};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Cached results larger than this are not ours: they are not read.
const MAX_ENTRY: u64 = 64 * 1024;

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `dir` must be a folder that only this user can write.
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, build_id: &[u8]) -> PathBuf {
        self.dir.join(format!(
            "boringssl-{}-v{SCAN_VERSION}.json",
            hex::encode(build_id)
        ))
    }

    pub fn get(&self, build_id: &[u8], img: &Image) -> Option<Outcome> {
        let path = self.path(build_id);
        let m = std::fs::symlink_metadata(&path).ok()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if !m.is_file() || m.uid() != me || m.mode() & 0o022 != 0 || m.len() > MAX_ENTRY {
            return None;
        }
        let outcome: Outcome = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        let still_there = match &outcome {
            Outcome::Located(l) => [Some(&l.ssl_write), Some(&l.ssl_read), l.ssl_new.as_ref()]
                .into_iter()
                .flatten()
                .all(|f| {
                    img.file_offset(f.va) == Some(f.file_offset)
                        && img.bytes_at(f.va, super::HEAD).map(hex::encode).as_ref()
                            == Some(&f.head)
                }),
            Outcome::Unlocated { .. } => true,
            Outcome::Absent => false,
        };
        still_there.then_some(outcome)
    }

    /// Keeps `outcome`; a failure only means the next start scans again.
    pub fn put(&self, build_id: &[u8], outcome: &Outcome) {
        let Ok(text) = serde_json::to_vec(outcome) else {
            return;
        };
        let Ok(mut tmp) = tempfile::NamedTempFile::new_in(&self.dir) else {
            return;
        };
        if tmp.write_all(&text).is_ok() {
            let _ = tmp.persist(self.path(build_id));
        }
    }
}
