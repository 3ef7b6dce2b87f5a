/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every program shares: the settings userspace writes before load,
 * the ring buffer, the loss counters, the stream and channel maps. Part of
 * mcpspy.bpf.c (one object); included first, scope.bpf.h (which processes
 * are recorded) right after it.
 */
#ifndef MCPSPY_CONFIG_BPF_H
#define MCPSPY_CONFIG_BPF_H

#define MCPSPY_S_IFMT 00170000
#define MCPSPY_S_IFSOCK 0140000
#define MCPSPY_S_IFIFO 0010000
#define MCPSPY_AF_UNIX 1
#define MCPSPY_AF_INET 2
#define MCPSPY_AF_INET6 10
#define MCPSPY_SOCK_STREAM 1
#define MCPSPY_MAX_FILTERS 8
/* Bytes of a call's start that the watch test looks at. */
#define MCPSPY_SNIFF_LEN 32

/* x86-64 syscall numbers. */
#define MCPSPY_NR_READ 0
#define MCPSPY_NR_WRITE 1
#define MCPSPY_NR_READV 19
#define MCPSPY_NR_WRITEV 20
#define MCPSPY_NR_SENDTO 44
#define MCPSPY_NR_RECVFROM 45
#define MCPSPY_NR_SENDMSG 46
#define MCPSPY_NR_RECVMSG 47

/* Set by userspace before load. */
const volatile __u32 self_tgid = 0;
const volatile __u8 capture_all = 0;
const volatile __u8 capture_tcp = 1;
/* record --keylog: also watch TCP streams that start with a TLS ClientHello
 * (their ciphertext is decrypted offline with the key log). */
const volatile __u8 capture_tls_cipher = 0;
/* OpenSSL probes are attached: tie SSL* objects to their sockets. */
const volatile __u8 tls_probes = 0;
/* Set by userspace when the recording ends: from then on nothing is emitted,
 * so the final drain sees everything there will be, while the (slow to
 * detach) probes are still attached. */
volatile __u32 stopped = 0;
/* Wake the reader only once this much data waits; it polls on a timer anyway. */
const volatile __u64 wakeup_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* resized by userspace */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MCPSPY_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MCPSPY_END_MAX);
	__type(key, __u32);
	__type(value, __u64);
} end_counts SEC(".maps");

/* A stream: one process's view of one pipe, socket or TLS connection. */
struct stream_key {
	__u32 tgid;
	__u32 tls;
	__u64 id; /* inode, or SSL* when tls */
};

struct stream_state {
	__u64 off[2];   /* bytes seen so far, per direction */
	__u64 started;  /* bit per direction: its first record went out */
	__u64 peer_ino; /* unix sockets: the peer, remembered for when it is gone */
};

/*
 * Streams being captured. LRU, so that streams of dead processes make room;
 * it is sized far beyond the number of live MCP streams on a host.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct stream_key);
	__type(value, struct stream_state);
} streams SEC(".maps");

/*
 * Channels (a pipe, a unix socket pair, a TCP connection) that carried MCP.
 * Lets the other end's stream be captured from its very next call, even when
 * that call starts in the middle of a message.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} channels SEC(".maps");

/*
 * With --keylog: processes whose TLS plaintext a probe captures (an MCP
 * stream through their library). New connections' ciphertext is not
 * watched in them: it would be the same messages again (the decoder keeps
 * one copy of any it meets before).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} plain_tgids SEC(".maps");

/*
 * Sockets under a watched TLS stream whose plaintext a probe captures, by
 * (tgid, socket inode) (tls 0): the SSL* (or Go *Conn) of the stream. The
 * socket's close or end of file ends that stream (emit_end).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stream_key);
	__type(value, __u64);
} tls_socks SEC(".maps");

static __always_inline void note_tls_sock(__u32 tgid, __u64 ino, __u64 ssl)
{
	struct stream_key key = { .tgid = tgid, .id = ino };
	__u64 *known = bpf_map_lookup_elem(&tls_socks, &key);

	if (ino && (!known || *known != ssl))
		bpf_map_update_elem(&tls_socks, &key, &ssl, BPF_ANY);
}

static __always_inline void note_plaintext(__u32 tgid)
{
	__u8 one = 1;

	if (capture_tls_cipher && !bpf_map_lookup_elem(&plain_tgids, &tgid))
		bpf_map_update_elem(&plain_tgids, &tgid, &one, BPF_ANY);
}

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += n; /* per-CPU slot: no atomics needed */
}

static __always_inline void count_end(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&end_counts, &idx);

	if (v)
		*v += 1;
}

static __always_inline __u64 mix64(__u64 h, __u64 v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

#endif /* MCPSPY_CONFIG_BPF_H */
