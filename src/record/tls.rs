//! TLS plaintext: uprobes on OpenSSL's SSL_read/SSL_write (and their _ex
//! forms) in every library and program that exports them, and on Go's
//! crypto/tls in every Go binary ([`go`](super::go)), including programs
//! that start, and libraries that are loaded, after the recording began.
//! A probe on a file applies to every process that maps it, now or later.
//! Programs that link BoringSSL without exporting it (Bun) are probed where
//! the scan of boringssl/ locates its functions, and only there.

use super::boringssl::{self, Cache, Located, Outcome};
use super::loader::McpspySkel;
use super::uprobes::{self, Site};
use libbpf_rs::Link;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How an error about a Go binary starts.
const GO_FAILED: &str = "Go binary whose TLS could not be located";

/// How often to look for newly loaded copies of libssl.
const RESCAN: Duration = Duration::from_secs(3);

/// Where distributions keep the system libssl.
const LIB_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];
const LIB_NAMES: [&str; 2] = ["libssl.so.3", "libssl.so.1.1"];
/// Programs known to carry OpenSSL in their own binary, probed at the start
/// (found on PATH) so that ones started later are covered from their first
/// call, not from when their exec is noticed.
const PROGRAMS: [&str; 4] = ["node", "nodejs", "bun", "claude"];

/// A file whose OpenSSL functions are probed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Target {
    pub path: String,
    pub functions: Vec<&'static str>,
    /// Where the functions are, for a program probed by the BoringSSL scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boringssl: Option<Located>,
    /// A Go binary: where its crypto/tls was found and probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go: Option<super::go::GoTls>,
}

pub struct TlsProbes {
    links: Vec<Link>,
    /// (device, inode) of every file already looked at.
    seen: HashSet<(u64, u64)>,
    pub targets: Vec<Target>,
    pub errors: Vec<String>,
    last_scan: Instant,
    cache: Option<Cache>,
    /// The probes are uprobe_multi links (else perf-event uprobes).
    multi: bool,
}

impl TlsProbes {
    /// Probes the system libraries and everything running now.
    /// `cache`: a folder only this user can write, for the scan's results.
    pub fn start(skel: &McpspySkel<'_>, cache: Option<PathBuf>) -> Self {
        let mut t = TlsProbes {
            links: Vec::new(),
            seen: HashSet::new(),
            targets: Vec::new(),
            errors: Vec::new(),
            last_scan: Instant::now(),
            cache: cache.map(Cache::new),
            multi: uprobes::is_multi(&skel.progs.mcpspy_ssl_ret),
        };
        for dir in LIB_DIRS {
            for name in LIB_NAMES {
                let p = Path::new(dir).join(name);
                if p.exists() {
                    t.consider(skel, &p);
                }
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            for name in PROGRAMS {
                let p = dir.join(name);
                if let Ok(real) = std::fs::canonicalize(&p) {
                    t.consider(skel, &real);
                }
            }
        }
        t.scan_processes(skel, true);
        t
    }

    /// A process called execve: probe its program if it carries OpenSSL.
    pub fn on_exec(&mut self, skel: &McpspySkel<'_>, pid: u32, filename: &str) {
        let path = if filename.starts_with('/') {
            PathBuf::from(filename)
        } else {
            match std::fs::read_link(format!("/proc/{pid}/exe")) {
                Ok(p) => p,
                Err(_) => return,
            }
        };
        self.consider(skel, &path);
    }

    /// Looks for libssl copies that processes loaded since the last look.
    pub fn rescan_if_due(&mut self, skel: &McpspySkel<'_>) {
        if self.last_scan.elapsed() >= RESCAN {
            self.scan_processes(skel, false);
            self.last_scan = Instant::now();
        }
    }

    fn scan_processes(&mut self, skel: &McpspySkel<'_>, with_programs: bool) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        let me = std::process::id().to_string();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            if with_programs {
                if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
                    self.consider(skel, &exe);
                }
            }
            if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
                for lib in maps
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(5))
                    .filter(|p| p.contains("libssl.so"))
                    .collect::<HashSet<_>>()
                {
                    // Through the process's root, so that containers' files are found.
                    let path = format!("/proc/{pid}/root{lib}");
                    self.consider_as(skel, Path::new(&path), lib);
                }
            }
        }
    }

    fn consider(&mut self, skel: &McpspySkel<'_>, path: &Path) {
        let shown = path.to_string_lossy().into_owned();
        self.consider_as(skel, path, &shown);
    }

    /// Probes `path` once if it exports SSL_read and SSL_write.
    fn consider_as(&mut self, skel: &McpspySkel<'_>, path: &Path, shown: &str) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if !meta.is_file() || !self.seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        let p = &skel.progs;
        let entries = [
            ("SSL_write", &p.mcpspy_ssl_write),
            ("SSL_write_ex", &p.mcpspy_ssl_write_ex),
            ("SSL_read", &p.mcpspy_ssl_read),
            ("SSL_read_ex", &p.mcpspy_ssl_read_ex),
        ];
        // One look at the file for every function, SSL_free last.
        let names: Vec<&str> = entries
            .iter()
            .map(|(f, _)| *f)
            .chain(["SSL_free"])
            .collect();
        let offsets = uprobes::function_offsets(path, &names);
        let attach = |prog: &libbpf_rs::ProgramMut<'_>, at: u64, retprobe: bool| {
            uprobes::attach(prog, path, Site(&[at]), retprobe).map_err(|e| e.to_string())
        };
        let mut links = Vec::new();
        let mut functions = Vec::new();
        let mut last_error = None;
        for ((func, entry), at) in entries.into_iter().zip(&offsets) {
            // The entry and the return probe go together, or neither.
            let probed = at.clone().and_then(|at| {
                Ok((
                    attach(entry, at, false)?,
                    attach(&p.mcpspy_ssl_ret, at, true)?,
                ))
            });
            match probed {
                Ok((a, b)) => {
                    links.extend(a.into_iter().chain(b));
                    functions.push(func);
                }
                // Older libraries lack the _ex forms.
                Err(e) => last_error = Some(format!("{shown}: {func}: {e}")),
            }
        }
        if functions.is_empty() {
            if shown.contains("libssl") {
                self.errors.extend(last_error);
            }
            if !self.consider_go(skel, path, shown) {
                self.consider_boringssl(skel, path, shown);
            }
            return;
        }
        // Where SSL_free is exported too, a freed SSL* forgets its socket and stream.
        let free = offsets[entries.len()]
            .clone()
            .and_then(|at| attach(&p.mcpspy_ssl_free, at, false));
        if let Ok(free) = free {
            links.extend(free);
            functions.push("SSL_free");
        }
        self.links.extend(links);
        self.targets.push(Target {
            path: shown.to_string(),
            functions,
            boringssl: None,
            go: None,
        });
    }

    /// Probes `path` where the BoringSSL scan located SSL_write and SSL_read.
    fn consider_boringssl(&mut self, skel: &McpspySkel<'_>, path: &Path, shown: &str) {
        let located = match boringssl::scan_cached(path, self.cache.as_ref()).0 {
            Outcome::Absent => return,
            Outcome::Unlocated { library, why } => {
                self.errors.push(format!(
                    "{shown}: looks like BoringSSL ({library}), but SSL_read and SSL_write were \
                     not located ({why}); not probed"
                ));
                return;
            }
            Outcome::Located(l) => l,
        };
        let p = &skel.progs;
        let at = |prog: &libbpf_rs::ProgramMut<'_>, offsets: &[u64], retprobe: bool| {
            uprobes::attach(prog, path, Site(offsets), retprobe)
        };
        let (w, r) = (located.ssl_write.file_offset, located.ssl_read.file_offset);
        let mut links = Vec::new();
        let mut functions = vec!["SSL_write", "SSL_read"];
        let attached = (|| {
            links.extend(at(&p.mcpspy_ssl_write, &[w], false)?);
            links.extend(at(&p.mcpspy_ssl_read, &[r], false)?);
            links.extend(at(&p.mcpspy_ssl_ret, &[w, r], true)?);
            if let Some(new) = &located.ssl_new {
                links.extend(at(&p.mcpspy_ssl_new_ret, &[new.file_offset], true)?);
                functions.push("SSL_new");
            }
            Ok::<_, libbpf_rs::Error>(())
        })();
        if let Err(e) = attached {
            self.errors
                .push(format!("{shown}: BoringSSL located, probing failed: {e}"));
            return;
        }
        self.links.extend(links);
        self.targets.push(Target {
            path: shown.to_string(),
            functions,
            boringssl: Some(located),
            go: None,
        });
    }

    /// What the BoringSSL scan probed or could not, one line each, to be shown.
    pub fn boringssl_notes(&self) -> Vec<String> {
        let probed = self.targets.iter().filter_map(|t| {
            let l = t.boringssl.as_ref()?;
            let new = l.ssl_new.as_ref().map_or(String::new(), |f| {
                format!(", SSL_new (return) at {:#x}", f.file_offset)
            });
            Some(format!(
                "{}: BoringSSL located, probed at file offsets SSL_write {:#x}, SSL_read {:#x}{new}",
                t.path, l.ssl_write.file_offset, l.ssl_read.file_offset
            ))
        });
        let missed = self
            .errors
            .iter()
            .filter(|e| e.contains("BoringSSL"))
            .cloned();
        probed.chain(missed).collect()
    }

    /// Probes Go's crypto/tls in `path` if it is a Go binary; says so when
    /// a Go binary's TLS cannot be located or probed. False when `path` is
    /// not a Go binary.
    fn consider_go(&mut self, skel: &McpspySkel<'_>, path: &Path, shown: &str) -> bool {
        let located = super::go::locate(path).and_then(|at| {
            at.map(|at| Ok((super::go::attach(skel, path, &at)?, at)))
                .transpose()
        });
        match located {
            Ok(None) => return false,
            Ok(Some((links, at))) => {
                self.links.extend(links);
                self.targets.push(Target {
                    path: shown.to_string(),
                    functions: vec!["crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read"],
                    go: Some(at),
                    boringssl: None,
                });
            }
            Err(e) => self.errors.push(format!("{shown}: {GO_FAILED}: {e}")),
        }
        true
    }

    /// One line per Go binary: probed (and how its functions were found),
    /// or why its TLS could not be located.
    pub fn go_notes(&self) -> Vec<String> {
        let probed = self.targets.iter().filter_map(|t| {
            let go = t.go.as_ref()?;
            Some(format!(
                "Go binary {}: crypto/tls probed (found in {}; {} RETs of Read)",
                t.path,
                go.found_by,
                go.read_rets.len()
            ))
        });
        let failed = self
            .errors
            .iter()
            .filter(|e| e.contains(GO_FAILED))
            .cloned();
        probed.chain(failed).collect()
    }

    /// The probes as provenance for the capture's meta table.
    pub fn describe(&self) -> String {
        let links = if self.multi {
            "uprobe_multi"
        } else {
            "perf_event"
        };
        serde_json::json!({ "probed": self.targets, "errors": self.errors, "links": links })
            .to_string()
    }

    /// Detaches every probe. The kernel waits for a grace period per uprobe
    /// (about 0.1 s here): wait for them side by side, not one after another.
    pub fn detach(&mut self) {
        let links = std::mem::take(&mut self.links);
        std::thread::scope(|s| {
            for link in links {
                s.spawn(move || drop(link));
            }
        });
    }
}
