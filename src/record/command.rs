//! The command form (`record -- CMD ARGS`): the command runs as the user who
//! ran sudo, a child of the recorder, which the kernel follows (and so its
//! descendants) from before its first instruction.

use anyhow::{Context, Result};
use std::ffi::{CStr, CString, OsString};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};

/// Who the command runs as.
#[derive(Clone, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Starts `argv` as `user` (or as the recorder's own user when None).
pub fn spawn(argv: &[OsString], user: Option<&RunAs>, keylog: Option<&PathBuf>) -> Result<Child> {
    let (program, args) = argv.split_first().context("the command is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // With --keylog, the command writes its TLS secrets there (programs that
    // honour SSLKEYLOGFILE), unless it was told otherwise.
    if let (Some(path), None) = (keylog, std::env::var_os("SSLKEYLOGFILE")) {
        cmd.env("SSLKEYLOGFILE", path);
    }
    if let Some(u) = user {
        let (uid, gid) = (u.uid, u.gid);
        let account = Account::of(uid);
        let groups = account
            .as_ref()
            .map(|a| a.groups(gid))
            .unwrap_or_else(|| vec![gid]);
        if let Some(a) = &account {
            cmd.env("HOME", &a.home)
                .env("USER", &a.name)
                .env("LOGNAME", &a.name);
        }
        // SAFETY: between fork and exec the closure calls only setgroups,
        // setgid and setuid, which are async-signal-safe, on data made before.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))
}

/// The exit code a shell would give for `status`: the code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A user's name, home and groups, from the password and group databases.
struct Account {
    name: String,
    home: String,
}

impl Account {
    fn of(uid: u32) -> Option<Account> {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwuid_r fills `pw` with pointers into `buf`, both alive here.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc != 0 || found.is_null() {
            return None;
        }
        // SAFETY: on success the fields are NUL-terminated strings in `buf`.
        let text =
            |p: *const libc::c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        Some(Account {
            name: text(pw.pw_name),
            home: text(pw.pw_dir),
        })
    }

    /// The user's groups, `gid` first.
    fn groups(&self, gid: u32) -> Vec<libc::gid_t> {
        let Ok(name) = CString::new(self.name.clone()) else {
            return vec![gid];
        };
        let mut n: libc::c_int = 256;
        let mut groups = vec![0 as libc::gid_t; n as usize];
        // SAFETY: `groups` holds `n` entries; getgrouplist writes at most that many.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc < 0 {
            return vec![gid];
        }
        groups.truncate(n.max(0) as usize);
        groups
    }
}
