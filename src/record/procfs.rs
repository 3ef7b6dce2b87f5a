//! Facts about the host and its processes, read from /proc, best effort.

use crate::event::{clock_ns, monotonic_ns, ProcessRow};
use std::fs;

/// A wall-clock instant and the monotonic time at that instant, read as a
/// pair so that kernel timestamps convert to wall time.
#[derive(Clone, Copy, Debug)]
pub struct ClockAnchor {
    pub wall_ns: u64,
    pub ktime_ns: u64,
}

impl ClockAnchor {
    pub fn now() -> Self {
        // Bracket the wall-clock read and take the midpoint.
        let before = monotonic_ns();
        let wall_ns = clock_ns(libc::CLOCK_REALTIME);
        let after = monotonic_ns();
        ClockAnchor {
            wall_ns,
            ktime_ns: before + (after - before) / 2,
        }
    }

    pub fn rfc3339(&self) -> String {
        let secs = (self.wall_ns / 1_000_000_000) as i64;
        let nanos = (self.wall_ns % 1_000_000_000) as u32;
        chrono::DateTime::from_timestamp(secs, nanos)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default()
    }
}

pub struct HostFacts {
    pub hostname: String,
    pub kernel_release: String,
    pub machine: String,
    pub boot_id: String,
}

pub fn host_facts() -> HostFacts {
    // SAFETY: uname fills a zeroed utsname through a valid pointer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    HostFacts {
        hostname: field(&u.nodename),
        kernel_release: field(&u.release),
        machine: field(&u.machine),
        boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// What /proc says about a process now. `comm` is the kernel's, from the event.
pub fn process_row(pid: u32, comm: &str, seen_ts_ns: u64) -> ProcessRow {
    let dir = format!("/proc/{pid}");
    let exe = fs::read_link(format!("{dir}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let cmdline = fs::read(format!("{dir}/cmdline")).ok().map(|raw| {
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        serde_json::to_string(&args).unwrap_or_default()
    });
    let stat = fs::read_to_string(format!("{dir}/stat")).ok();
    // Fields after the parenthesised comm, which may itself hold spaces.
    let after_comm: Vec<&str> = stat
        .as_deref()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].split_whitespace().collect())
        })
        .unwrap_or_default();
    let ppid = after_comm.get(1).and_then(|v| v.parse().ok());
    let start_ticks: Option<u64> = after_comm.get(19).and_then(|v| v.parse().ok());
    let uid = fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().and_then(|u| u.parse().ok()))
        });
    let cgroup = super::scope::cgroup_of(pid);
    ProcessRow {
        container_id: cgroup
            .as_ref()
            .and_then(|c| super::scope::container_id(&c.path)),
        cgroup: cgroup.map(|c| (c.id, c.path)),
        pid,
        seen_ts_ns,
        comm: comm.to_string(),
        exe,
        cmdline,
        ppid,
        uid,
        start_time_ns: start_ticks.map(ticks_since_boot_to_monotonic),
    }
}

/// /proc/PID/stat's start time counts clock ticks since boot (CLOCK_BOOTTIME);
/// event timestamps use CLOCK_MONOTONIC, which stops during suspend.
fn ticks_since_boot_to_monotonic(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let since_boot = ticks.saturating_mul(1_000_000_000 / hz);
    let suspended = clock_ns(libc::CLOCK_BOOTTIME).saturating_sub(monotonic_ns());
    since_boot.saturating_sub(suspended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let row = process_row(me, "test", 1);
        assert_eq!(row.pid, me);
        assert!(row.exe.is_some());
        assert!(row.ppid.is_some());
        let start = row.start_time_ns.expect("start time");
        assert!(start <= monotonic_ns(), "a process starts before now");
        let args: Vec<String> = serde_json::from_str(row.cmdline.as_deref().unwrap()).unwrap();
        assert!(!args.is_empty());
    }

    #[test]
    fn gone_process_gives_only_the_kernel_facts() {
        // pid_max is at most 2^22, so this pid never exists.
        let row = process_row(u32::MAX - 1, "ghost", 5);
        assert_eq!(row.comm, "ghost");
        assert_eq!((row.exe, row.cmdline, row.ppid), (None, None, None));
    }
}
