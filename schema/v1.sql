-- mcpspy capture file, schema version 1.
--
-- A capture is one SQLite file. It identifies itself with
--   PRAGMA application_id = 0x4d435053   ('MCPS')
--   PRAGMA user_version   = 1            (this file's version)
-- Readers refuse files with another application_id, and files of another
-- major version (user_version). Optional features, named in meta.features,
-- add tables, meta keys and record tags >= 128 that older readers skip:
-- schema/README.md gives the rule.
--
-- The raw ring-buffer records are the evidence; every other table describes
-- how, where and when they were taken, or indexes them. Nothing in this file
-- is decoded MCP: decoding happens when the file is read, so a better decoder
-- gives better answers on old captures.

-- Provenance: one row per fact about the recording.
--   tool_version      mcpspy's version
--   event_version     MCPSPY_EVENT_VERSION of the records (bpf/mcpspy.h)
--   hostname, kernel_release, boot_id (/proc/sys/kernel/random/boot_id)
--   machine           uname -m
--   command_line      the recorder's argv, JSON array
--   filters           the capture-time scope, JSON object: pid, comm (lists),
--                     all, tcp (booleans); when used, command (argv of the
--                     command form) and command_uid (who it ran as), follow
--                     (root pids), cgroup ([{path, id}]), container (ids as given)
--   attach_rung       the kernel hook that captured the data (tp_btf, raw_tp, tracepoint)
--   attach_tried      JSON array of {rung, error} for rungs that failed first
--   ring_size         ring buffer bytes
--   started_at        wall clock at start, RFC 3339 UTC with nanoseconds
--   started_ktime_ns  CLOCK_MONOTONIC (bpf_ktime_get_ns) at the same instant;
--                     wall = started_at + (ts_ns - started_ktime_ns)
--   ended_at, ended_ktime_ns   the same pair at the end (absent if the recorder died)
--   end_reason        duration | signal SIGINT/SIGTERM | command exited (CODE)
--                     (absent if the recorder died)
--   final_counters    JSON object of the kernel counters at the end
--   compression       codec of blocks.data (zstd) and its level
--   tls               JSON: the libraries and binaries whose SSL_* were probed ("probed": path,
--                     functions, and for a BoringSSL scan "boringssl": each function's va,
--                     file_offset and first bytes), "errors" (a BoringSSL not located), and
--                     "links": uprobe_multi, or perf_event (kernels before 6.6, no kernel BTF,
--                     or MCPSPY_UPROBE_MULTI=0), how they attached
--   features          JSON array: the optional features the file uses (absent: none)
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- The records, in the order the recorder received them, in blocks.
-- data is one zstd frame. Decompressed, it is a sequence of records, each
--   u8  tag     1 = ring-buffer event, 2 = clock tick; 128-255 = a record of
--               an optional feature, skipped by readers that do not know it
--   u32 length  little-endian, bytes that follow
--   bytes       tag 1: struct mcpspy_event then its `len` payload bytes,
--                      exactly as the kernel wrote them (the ring slot's
--                      unused tail is not stored)
--               tag 2: u64 little-endian CLOCK_MONOTONIC ns; the recorder
--                      had drained every record submitted before it
-- Records are numbered from 0 across the file: first_seq is the number of
-- the block's first record. Block n+1 starts where block n ends.
-- The newest block may be rewritten while it grows (at each commit).
CREATE TABLE blocks (
    block_id    INTEGER PRIMARY KEY,
    first_seq   INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    first_ts_ns INTEGER,          -- smallest event ts_ns in the block (NULL: ticks only)
    last_ts_ns  INTEGER,          -- largest event ts_ns in the block
    raw_bytes   INTEGER NOT NULL, -- decompressed size
    data        BLOB NOT NULL
) STRICT;
CREATE INDEX blocks_by_time ON blocks (first_ts_ns, last_ts_ns);

-- Streams: one process's side of one pipe, socket or TLS connection, one
-- direction. Built by the recorder from the event headers, as an index.
--   fd_kind    enum mcpspy_fd_kind (TLS: 0 until its socket is known); tls = 1 for SSL_* plaintext
--   ino        pipe inode or socket inode (tls: the socket, when known)
--   peer_ino   unix sockets: the peer socket's inode
--   laddr/raddr/lport/rport   TCP endpoints (text addresses)
CREATE TABLE streams (
    stream_id   INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    fd          INTEGER NOT NULL,
    fd_kind     INTEGER NOT NULL,
    tls         INTEGER NOT NULL,
    ssl         INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    peer_ino    INTEGER NOT NULL,
    direction   TEXT NOT NULL,    -- 'read' or 'write'
    laddr       TEXT,
    lport       INTEGER,
    raddr       TEXT,
    rport       INTEGER,
    first_ts_ns INTEGER NOT NULL,
    last_ts_ns  INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL  -- payload bytes captured
) STRICT;

-- Which blocks hold records of which stream: fetch one stream without
-- decompressing the others.
CREATE TABLE block_streams (
    block_id  INTEGER NOT NULL REFERENCES blocks (block_id),
    stream_id INTEGER NOT NULL REFERENCES streams (stream_id),
    records   INTEGER NOT NULL,
    PRIMARY KEY (stream_id, block_id)
) STRICT, WITHOUT ROWID;

-- Processes seen, one row per (pid, program image): a row when a pid first
-- appears in the records, another after each execve.
--   comm        from the kernel (always present)
--   exe, cmdline, ppid, uid, start_time_ns: best effort from /proc, NULL when
--               the process was gone before it could be read
--   start_time_ns  process start on the CLOCK_MONOTONIC scale of ts_ns
--   seen_ts_ns  ts_ns of the record that made the recorder look
CREATE TABLE processes (
    pid           INTEGER NOT NULL,
    seen_ts_ns    INTEGER NOT NULL,
    comm          TEXT NOT NULL,
    exe           TEXT,
    cmdline       TEXT,           -- JSON array of arguments
    ppid          INTEGER,
    uid           INTEGER,
    start_time_ns INTEGER,
    PRIMARY KEY (pid, seen_ts_ns)
) STRICT;

-- The drop ledger: the kernel's loss counters, read about once a second.
-- Each row holds the increase over [start_ktime_ns, end_ktime_ns).
-- Columns match enum mcpspy_counter. A row is written for every slice in
-- which any counter moved, so the sums over all rows are the totals.
CREATE TABLE drops (
    start_ktime_ns  INTEGER NOT NULL,
    end_ktime_ns    INTEGER NOT NULL,
    events          INTEGER NOT NULL, -- records submitted (not a loss)
    bytes           INTEGER NOT NULL, -- payload bytes submitted (not a loss)
    ring_full       INTEGER NOT NULL, -- records lost: ring buffer full
    ring_full_bytes INTEGER NOT NULL, -- payload bytes in them
    read_failed     INTEGER NOT NULL, -- chunks whose user memory was unreadable
    map_full        INTEGER NOT NULL, -- streams that could not be tracked
    truncated       INTEGER NOT NULL, -- calls cut short
    truncated_bytes INTEGER NOT NULL, -- bytes of them not captured
    user_lost       INTEGER NOT NULL  -- records the recorder itself failed to store
) STRICT;
