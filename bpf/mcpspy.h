/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The raw event: the contract between the kernel programs and the capture file.
 *
 * Every ring-buffer record starts with struct mcpspy_event. DATA records carry
 * `len` payload bytes right after the header; the ring slot may be larger
 * (size classes), so readers must trust `len`, never the slot size.
 *
 * src/event.rs mirrors this layout; tests/event_layout.rs checks the mirror
 * against the offsets that the C compiler computes for this file.
 * Changing anything here is a capture-format change: bump MCPSPY_EVENT_VERSION.
 */
#ifndef MCPSPY_H
#define MCPSPY_H

#define MCPSPY_EVENT_VERSION 1
#define MCPSPY_COMM_LEN 16
/* Largest payload one record carries; bigger calls are split into chunks. */
#define MCPSPY_CHUNK_MAX 16384

/* What a record is. */
enum mcpspy_record_kind {
	MCPSPY_REC_DATA = 1, /* bytes moved by one call (or one chunk of it) */
	MCPSPY_REC_EXEC = 2, /* a process called execve; payload: the file name */
	/* A watched TCP stream ended at `stream_off`: its process closed the
	 * descriptor (call CLOSE, direction WRITE) or read its end (a read call
	 * that returned 0, direction READ). No payload. Stored under an optional
	 * record tag (feature `stream_ends`), and counted apart from the
	 * others (map `end_counts`), so that readers that skip it miss nothing
	 * they account for. */
	MCPSPY_REC_END = 3,
};

/* The call that moved the bytes. */
enum mcpspy_call {
	MCPSPY_CALL_READ = 1,
	MCPSPY_CALL_WRITE = 2,
	MCPSPY_CALL_READV = 3,
	MCPSPY_CALL_WRITEV = 4,
	MCPSPY_CALL_RECVFROM = 5,
	MCPSPY_CALL_SENDTO = 6,
	MCPSPY_CALL_RECVMSG = 7,
	MCPSPY_CALL_SENDMSG = 8,
	MCPSPY_CALL_SSL_READ = 9,
	MCPSPY_CALL_SSL_WRITE = 10,
	MCPSPY_CALL_CLOSE = 11,
};

enum mcpspy_direction {
	MCPSPY_DIR_READ = 0,  /* bytes into the process */
	MCPSPY_DIR_WRITE = 1, /* bytes out of the process */
};

/* What the file descriptor is. */
enum mcpspy_fd_kind {
	MCPSPY_FD_PIPE = 1,
	MCPSPY_FD_UNIX = 2,
	MCPSPY_FD_TCP4 = 3,
	MCPSPY_FD_TCP6 = 4,
	MCPSPY_FD_OTHER = 5, /* only with --all: any other descriptor */
};

enum mcpspy_flags {
	/* The user-memory read failed: `len` is 0 and the chunk's bytes are lost. */
	MCPSPY_F_READ_FAILED = 1 << 0,
	/* Bytes of this call after this chunk were not captured (iovec limit). */
	MCPSPY_F_TRUNCATED = 1 << 1,
	/* First record of the stream since it became watched. */
	MCPSPY_F_STREAM_START = 1 << 2,
	/* Plaintext seen through the TLS library, not the socket. */
	MCPSPY_F_TLS = 1 << 3,
};

/* Per-CPU counters, indexed by this enum; userspace sums the CPUs. */
enum mcpspy_counter {
	MCPSPY_CNT_EVENTS = 0,        /* records submitted */
	MCPSPY_CNT_BYTES = 1,         /* payload bytes submitted */
	MCPSPY_CNT_RING_FULL = 2,     /* records lost: ring buffer full */
	MCPSPY_CNT_RING_FULL_BYTES = 3, /* payload bytes in those records */
	MCPSPY_CNT_READ_FAILED = 4,   /* chunks whose user memory could not be read */
	MCPSPY_CNT_MAP_FULL = 5,      /* streams that could not be tracked */
	MCPSPY_CNT_TRUNCATED = 6,     /* calls cut short by the iovec limit */
	MCPSPY_CNT_TRUNCATED_BYTES = 7, /* bytes of those calls not captured */
	MCPSPY_CNT_MAX = 8,
};

/* Per-CPU counters of END records (map `end_counts`), kept apart from the
 * counters above and the drop ledger that mirrors them. */
enum mcpspy_end_counter {
	MCPSPY_END_SUBMITTED = 0,
	MCPSPY_END_RING_FULL = 1,
	MCPSPY_END_MAX = 2,
};

struct mcpspy_event {
	__u8 kind;      /* enum mcpspy_record_kind */
	__u8 call;      /* enum mcpspy_call */
	__u8 direction; /* enum mcpspy_direction */
	__u8 fd_kind;   /* enum mcpspy_fd_kind */
	__u32 flags;    /* enum mcpspy_flags */
	__u32 len;      /* payload bytes after the header */
	__u32 fd;
	__u64 ts_ns;    /* bpf_ktime_get_ns() when the call returned */
	__u32 tgid;     /* process id */
	__u32 tid;      /* thread id */
	__u64 ino;      /* pipe inode, or the socket's inode */
	__u64 peer_ino; /* unix sockets: the peer socket's inode, else 0 */
	__u64 stream_off; /* offset of the first payload byte in (tgid, ino, direction) */
	__u64 call_len; /* bytes the whole call moved */
	__u64 call_off; /* offset of this chunk in the call */
	__u64 ssl;      /* TLS: the SSL* of the connection, else 0 */
	__u8 laddr[16]; /* TCP: local address (IPv4 in the first 4 bytes) */
	__u8 raddr[16]; /* TCP: remote address */
	__u16 lport;    /* TCP: local port, host order */
	__u16 rport;    /* TCP: remote port, host order */
	__u32 _pad;
	char comm[MCPSPY_COMM_LEN];
};

#endif
