//! Kernel filesystems the programs need, mounted when a fresh machine lacks them.

use anyhow::{bail, Result};
use std::ffi::CString;
use std::path::Path;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Classic tracepoints are found through tracefs; debugfs's copy is often
/// off-limits, so mount tracefs itself where it is missing.
pub fn ensure_tracefs() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let target = CString::new(TRACEFS).expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    // SAFETY: plain mount(2) with valid NUL-terminated strings and no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
