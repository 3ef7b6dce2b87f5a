-- Feature "cgroups" (schema/README.md): the cgroup v2 of each process the
-- recorder looked up, and the container that cgroup belongs to where the
-- container runtime's naming says so (docker, containerd, CRI-O, podman).
-- One row per row of `processes` whose cgroup could be read (a process gone
-- before the recorder looked has none). Covered by the seal with the other
-- tables.
--   cgroup_id     the kernel's cgroup id (bpf_get_current_cgroup_id; the
--                 directory's inode on the cgroup2 file system)
--   cgroup_path   the cgroup below the cgroup2 root, as /proc/PID/cgroup says
--   container_id  64 hex digits, or NULL when the path names no container
CREATE TABLE process_cgroups (
    pid          INTEGER NOT NULL,
    seen_ts_ns   INTEGER NOT NULL,
    cgroup_id    INTEGER NOT NULL,
    cgroup_path  TEXT NOT NULL,
    container_id TEXT,
    PRIMARY KEY (pid, seen_ts_ns)
) STRICT;
