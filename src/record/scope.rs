//! Scope on the host side: cgroup v2 paths and ids, container ids, and the
//! process trees that `--follow` starts from. The kernel side is
//! bpf/scope.bpf.h.

use anyhow::{bail, Context, Result};
use regex::Regex;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A cgroup v2 directory as the kernel names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Below the cgroup2 root, starting with `/` (as /proc/PID/cgroup says).
    pub path: String,
    /// The kernel's cgroup id (the directory's inode on cgroup2).
    pub id: u64,
    /// How deep it lies below the root (the root is 0).
    pub level: u32,
}

/// Where cgroup v2 is mounted: the first cgroup2 line of /proc/self/mountinfo.
pub fn cgroup2_root() -> Result<PathBuf> {
    // Read once: every new process's row asks for it, on the drain thread.
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        info.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
        })
    })
    .clone()
    .context("cgroup v2 is not mounted on this host (no cgroup2 in /proc/self/mountinfo)")
}

/// The cgroup at `path`, a directory of the cgroup2 file system (absolute,
/// or relative to its mount point).
pub fn cgroup_at(path: &Path) -> Result<Cgroup> {
    let root = cgroup2_root()?;
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let full = full
        .canonicalize()
        .with_context(|| format!("--cgroup {}: no such cgroup", path.display()))?;
    let below = full.strip_prefix(&root).map_err(|_| {
        anyhow::anyhow!(
            "--cgroup {}: not a cgroup v2 directory (cgroup2 is mounted at {})",
            path.display(),
            root.display()
        )
    })?;
    if !full.join("cgroup.procs").exists() {
        bail!("--cgroup {}: not a cgroup directory", path.display());
    }
    let id = std::fs::metadata(&full)?.ino();
    Ok(Cgroup {
        path: format!("/{}", below.display()).replace("//", "/"),
        id,
        level: below.components().count() as u32,
    })
}

/// The cgroup a process is in now, from /proc/PID/cgroup; None when it is gone.
pub fn cgroup_of(pid: u32) -> Option<Cgroup> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let root = cgroup2_root().ok()?;
    let id = std::fs::metadata(root.join(path.trim_start_matches('/')))
        .ok()?
        .ino();
    Some(Cgroup {
        path: path.to_string(),
        id,
        level: path.split('/').filter(|c| !c.is_empty()).count() as u32,
    })
}

/// The container a cgroup path belongs to, where the runtime's naming says
/// so: docker (`docker-ID.scope`, `/docker/ID`), containerd (`cri-containerd-ID.scope`,
/// `/kubepods/.../ID`), CRI-O (`crio-ID.scope`), podman (`libpod-ID.scope`).
/// The innermost one, for nested containers.
pub fn container_id(cgroup_path: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^(?:docker-|cri-containerd-|crio-|libpod-)?([0-9a-f]{64})(?:\.scope)?$")
            .expect("static regex")
    });
    cgroup_path
        .rsplit('/')
        .find_map(|c| re.captures(c).map(|m| m[1].to_string()))
}

/// The cgroups of the container whose id is or starts with `id` (at least
/// 12 hex digits, as `docker ps` shows them): the outermost directory of each.
pub fn container_cgroups(id: &str) -> Result<Vec<Cgroup>> {
    if id.len() < 12 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--container {id:?}: a container id is 12 to 64 hex digits");
    }
    let id = id.to_ascii_lowercase();
    let root = cgroup2_root()?;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            let below = format!("/{}", path.strip_prefix(&root)?.display());
            match container_id(&below) {
                // Its sub-cgroups belong to the same container.
                Some(c) if c.starts_with(&id) => found.push((c, path)),
                _ => pending.push(path),
            }
        }
    }
    let ids: BTreeSet<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
    match ids.len() {
        0 => bail!(
            "--container {id}: no container with that id on this host (looked for docker, \
             containerd, CRI-O and podman cgroups under {})",
            root.display()
        ),
        1 => found.iter().map(|(_, p)| cgroup_at(p)).collect(),
        _ => bail!(
            "--container {id}: more than one container starts so ({}); give more digits",
            ids.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Whether a process exists now.
pub fn process_exists(pid: u32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The processes now running below `roots` (not the roots themselves), from
/// /proc. A process that forks while this reads may be missed; the caller
/// marks what this returns and reads again.
pub fn descendants(roots: &[u32]) -> BTreeSet<u32> {
    if roots.is_empty() {
        return BTreeSet::new();
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The field after the parenthesised comm, which may hold spaces.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = BTreeSet::new();
    let mut pending = roots.to_vec();
    while let Some(p) = pending.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            if out.insert(c) {
                pending.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_of_each_runtime() {
        let id = "3f2a".repeat(16);
        for path in [
            format!("/system.slice/docker-{id}.scope"),
            format!("/docker/{id}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{id}.scope"),
            format!("/kubepods/besteffort/pod7/{id}"),
            format!("/machine.slice/libpod-{id}.scope/container"),
            format!("/kubepods.slice/crio-{id}.scope"),
        ] {
            assert_eq!(container_id(&path), Some(id.clone()), "{path}");
        }
        for path in [
            "/user.slice/user-1000.slice/session-2.scope",
            &format!("/machine.slice/libpod-conmon-{id}.scope"),
            &format!("/docker/{}", &id[..63]),
        ] {
            assert_eq!(container_id(path), None, "{path}");
        }
    }

    #[test]
    fn this_process_has_a_cgroup_and_a_tree() {
        let me = cgroup_of(std::process::id()).expect("cgroup v2 on the test host");
        assert!(me.path.starts_with('/'));
        let dir = cgroup2_root()
            .unwrap()
            .join(me.path.trim_start_matches('/'));
        let found = cgroup_at(&dir).unwrap();
        assert_eq!(found, me);
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let below = descendants(&[std::process::id()]);
        assert!(below.contains(&child.id()));
        assert!(!below.contains(&std::process::id()));
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert!(!process_exists(u32::MAX - 1));
        assert!(container_cgroups("zz").is_err());
    }
}
