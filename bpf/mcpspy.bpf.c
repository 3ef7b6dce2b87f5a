// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kernel side of mcpspy: capture the bytes of read/write-family calls on pipes,
 * unix stream sockets and TCP sockets, and of OpenSSL's SSL_read/SSL_write.
 *
 * All syscall rungs hook only the syscall *exit*: on x86-64 the saved user
 * registers still hold the arguments there, so no per-thread map of in-flight
 * arguments is needed and unrelated I/O costs one program run, not two.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "mcpspy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
const volatile __u32 n_filter_pids = 0;
const volatile __u32 filter_pids[MCPSPY_MAX_FILTERS] = {};
const volatile __u32 n_filter_comms = 0;
const volatile char filter_comms[MCPSPY_MAX_FILTERS][MCPSPY_COMM_LEN] = {};
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

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += n; /* per-CPU slot: no atomics needed */
}

/* One call's data, walked chunk by chunk inside bpf_loop. */
struct emit_ctx {
	struct mcpspy_event hdr;
	const __u8 *base;  /* current user buffer */
	__u64 left_in_buf; /* bytes of it still to emit */
	__u64 left;        /* bytes of the call still to emit */
	const struct iovec *iov; /* vector calls: the iovec array, else NULL */
	__u64 iov_idx;
	__u64 iov_cnt;
	__u64 done;
	__u64 stream_off;
};

/* Reserve a record of a constant size class and fill it. */
#define EMIT_CLASS(CLASS)                                                           \
	do {                                                                        \
		struct mcpspy_event *e =                                            \
			bpf_ringbuf_reserve(&events, sizeof(*e) + (CLASS), 0);      \
		if (!e) {                                                           \
			count(MCPSPY_CNT_RING_FULL, 1);                             \
			count(MCPSPY_CNT_RING_FULL_BYTES, n);                       \
			break;                                                      \
		}                                                                   \
		__builtin_memcpy(e, &c->hdr, sizeof(*e));                           \
		e->call_off = c->done;                                              \
		e->stream_off = c->stream_off + c->done;                            \
		__u64 m = n;                                                        \
		if (m > (CLASS))                                                    \
			m = (CLASS);                                                \
		if (bpf_probe_read_user((void *)(e + 1), m, c->base)) {             \
			e->flags |= MCPSPY_F_READ_FAILED;                           \
			e->len = 0;                                                 \
			count(MCPSPY_CNT_READ_FAILED, 1);                           \
		} else {                                                            \
			e->len = m;                                                 \
			count(MCPSPY_CNT_BYTES, m);                                 \
		}                                                                   \
		count(MCPSPY_CNT_EVENTS, 1);                                        \
		bpf_ringbuf_submit(e, wake_flags());                                \
	} while (0)

static __always_inline __u64 wake_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
}

/* Move to the next iovec. Returns 0 on success, 1 when there is none or it is unreadable. */
static __always_inline int next_iov(struct emit_ctx *c)
{
	struct iovec v;

	if (!c->iov || c->iov_idx >= c->iov_cnt)
		return 1;
	if (bpf_probe_read_user(&v, sizeof(v), &c->iov[c->iov_idx & 1023]))
		return 1;
	c->iov_idx++;
	c->base = v.iov_base;
	c->left_in_buf = v.iov_len;
	return 0;
}

/* Says in the data itself that the rest of the call is lost. */
static __always_inline void emit_truncated(struct emit_ctx *c)
{
	struct mcpspy_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	count(MCPSPY_CNT_TRUNCATED, 1);
	count(MCPSPY_CNT_TRUNCATED_BYTES, c->left);
	if (e) {
		__builtin_memcpy(e, &c->hdr, sizeof(*e));
		e->call_off = c->done;
		e->stream_off = c->stream_off + c->done;
		e->flags |= MCPSPY_F_TRUNCATED;
		e->len = 0;
		bpf_ringbuf_submit(e, wake_flags());
	} else {
		count(MCPSPY_CNT_RING_FULL, 1);
	}
}

/* One chunk per step; a step that reaches the end of an iovec loads the next. */
static long emit_step(__u64 i, struct emit_ctx *c)
{
	if (c->left == 0)
		return 1;
	if (c->left_in_buf == 0) {
		if (next_iov(c)) {
			emit_truncated(c);
			c->left = 0;
			return 1;
		}
		if (c->left_in_buf == 0)
			return 0; /* an empty iovec */
	}
	__u64 n = c->left_in_buf;

	if (n > c->left)
		n = c->left;
	if (n > MCPSPY_CHUNK_MAX)
		n = MCPSPY_CHUNK_MAX;
	if (n <= 256)
		EMIT_CLASS(256);
	else if (n <= 4096)
		EMIT_CLASS(4096);
	else
		EMIT_CLASS(MCPSPY_CHUNK_MAX);
	c->hdr.flags &= ~MCPSPY_F_STREAM_START;
	c->base += n;
	c->left_in_buf -= n;
	c->left -= n;
	c->done += n;
	return 0;
}

/*
 * The watch test runs on every call of an unwatched pipe or socket. Its helpers
 * are global functions: the verifier checks each once, with unknown arguments,
 * instead of once per byte position (which exceeds its instruction budget).
 */
struct mcpspy_sniff {
	__u8 b[MCPSPY_SNIFF_LEN];
	__u32 n; /* valid bytes in b */
};

/* Byte i of the sniff buffer, with a bound the verifier can see after clang's rewrites. */
static __always_inline __u8 sniff_at(const struct mcpspy_sniff *s, __u64 i)
{
	barrier_var(i);
	i &= MCPSPY_SNIFF_LEN - 1;
	return s->b[i];
}

static __always_inline int is_space(__u8 ch)
{
	return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

/* First position at or after `pos` that is not whitespace; >= s->n if none. */
__noinline int sniff_skip_space(struct mcpspy_sniff *s, __u32 pos)
{
	if (!s)
		return MCPSPY_SNIFF_LEN;
	for (int k = 0; k < MCPSPY_SNIFF_LEN; k++) {
		__u32 i = pos + k;

		if (i >= s->n || i >= MCPSPY_SNIFF_LEN)
			return MCPSPY_SNIFF_LEN;
		if (!is_space(sniff_at(s, i)))
			return i;
	}
	return MCPSPY_SNIFF_LEN;
}

/* Do the bytes at `pos` start with `want` (NUL-padded), or a prefix of it cut by the end? */
static __always_inline int sniff_has(struct mcpspy_sniff *s, __u32 pos, const char want[8])
{
	for (int j = 0; j < 8; j++) {
		if (!want[j] || pos + j >= s->n)
			return 1;
		if (sniff_at(s, pos + j) != want[j])
			return 0;
	}
	return 1;
}

/* After `{` and `"`: one of the keys a JSON-RPC object has. */
__noinline int sniff_jsonrpc_key(struct mcpspy_sniff *s, __u32 pos)
{
	static const char keys[6][8] = { "jsonrpc\"", "method\"", "id\"", "result\"", "error\"",
					 "params\"" };

	if (!s)
		return 0;
	for (int k = 0; k < 6; k++)
		if (sniff_has(s, pos, keys[k]))
			return 1;
	return 0;
}

/*
 * Does the call's first bytes look like the start of a JSON-RPC message:
 * `{` (or `[` `{`), then a JSON-RPC key? A prefix cut before the key is
 * decided counts as a match: a message written in tiny pieces must not be
 * missed, and a false match costs only bytes.
 */
__noinline int sniff_jsonrpc(struct mcpspy_sniff *s)
{
	if (!s)
		return 0;
	__u32 p = sniff_skip_space(s, 0);

	if (p >= s->n)
		return 0; /* nothing but whitespace: undecided */
	if (sniff_at(s, p) == '[') {
		p = sniff_skip_space(s, p + 1);
		if (p >= s->n)
			return 1;
	}
	if (sniff_at(s, p) != '{')
		return 0;
	p = sniff_skip_space(s, p + 1);
	if (p >= s->n)
		return 1;
	if (sniff_at(s, p) != '"')
		return 0;
	return sniff_jsonrpc_key(s, p + 1);
}

/* An HTTP/1.x request line, a status line, or the HTTP/2 preface. */
__noinline int sniff_http(struct mcpspy_sniff *s)
{
	static const char starts[9][8] = { "GET ", "POST ", "PUT ", "DELETE ", "HEAD ",
					   "OPTIONS ", "PATCH ", "HTTP/1.", "PRI * H" };

	if (!s || s->n < 8)
		return 0; /* every start above is decided within 8 bytes */
	for (int k = 0; k < 9; k++)
		if (sniff_has(s, 0, starts[k]))
			return 1;
	return 0;
}

static __always_inline int process_selected(void)
{
	if (n_filter_pids == 0 && n_filter_comms == 0)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	for (int i = 0; i < MCPSPY_MAX_FILTERS; i++) {
		if (i >= n_filter_pids)
			break;
		if (filter_pids[i] == tgid)
			return 1;
	}
	if (n_filter_comms == 0)
		return 0;
	char comm[MCPSPY_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < MCPSPY_MAX_FILTERS; i++) {
		if (i >= n_filter_comms)
			break;
		int same = 1;

		for (int j = 0; j < MCPSPY_COMM_LEN; j++) {
			if (comm[j] != filter_comms[i][j]) {
				same = 0;
				break;
			}
			if (!comm[j])
				break;
		}
		if (same)
			return 1;
	}
	return 0;
}

static __always_inline __u64 mix64(__u64 h, __u64 v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

/*
 * A TCP socket's local port. Not skc_num: a reset frees the port and zeroes
 * it, often inside the very call that wrote a connection's last bytes (on
 * loopback the peer's reset is handled before the call returns), and those
 * bytes would then belong to no known connection. inet_sport keeps it.
 */
static __always_inline __u16 local_port(struct sock *sk)
{
	return __builtin_bswap16(bpf_core_cast(sk, struct inet_sock)->inet_sport);
}

/* What a descriptor is: learned cheaply, before anything is copied. */
struct fd_info {
	__u64 ino;
	__u64 peer_ino;
	__u64 chan; /* the channel both ends share: pipe inode, socket pair, TCP 4-tuple */
	struct sock *sk;
	__u16 family;
	__u8 kind;
};

/*
 * Classify descriptor `fd` of the current task. Returns 0 for descriptors
 * that are never captured. Task, fdtable and inode are walked with direct
 * (BTF) loads: this runs on every read and write on the host.
 */
static __always_inline int classify_fd(struct task_struct *task, __u32 fd, struct fd_info *fi)
{
	struct fdtable *fdt = task->files->fdt;
	struct file *file;

	if (fd >= fdt->max_fds)
		return 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]) || !file)
		return 0;
	file = bpf_core_cast(file, struct file);
	struct inode *inode = file->f_inode;
	__u32 mode = inode->i_mode & MCPSPY_S_IFMT;

	fi->ino = inode->i_ino;
	fi->chan = fi->ino;
	if (mode == MCPSPY_S_IFIFO) {
		fi->kind = MCPSPY_FD_PIPE;
		return 1;
	}
	if (mode != MCPSPY_S_IFSOCK) {
		fi->kind = MCPSPY_FD_OTHER;
		return capture_all;
	}
	struct socket *sock = bpf_core_cast(file->private_data, struct socket);
	struct sock *sk = sock->sk;
	__u16 type = sk->sk_type;

	fi->family = sk->__sk_common.skc_family;
	fi->sk = sk;
	fi->kind = MCPSPY_FD_OTHER;
	if (type != MCPSPY_SOCK_STREAM)
		return capture_all;
	if (fi->family == MCPSPY_AF_UNIX) {
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);

		fi->kind = MCPSPY_FD_UNIX;
		if (peer)
			fi->peer_ino = BPF_CORE_READ(peer, sk_socket, file, f_inode, i_ino);
		/* Both ends name the pair by its smaller inode. A closed peer has
		 * no inode left: then the stream is found by its own key. */
		if (!fi->peer_ino)
			fi->chan = 0;
		else if (fi->peer_ino < fi->ino)
			fi->chan = fi->peer_ino;
		return 1;
	}
	if (fi->family != MCPSPY_AF_INET && fi->family != MCPSPY_AF_INET6)
		return capture_all;
	if (!capture_tcp && !capture_all)
		return 0;
	fi->kind = fi->family == MCPSPY_AF_INET ? MCPSPY_FD_TCP4 : MCPSPY_FD_TCP6;
	/* The same key from both ends of a connection: order the endpoints. */
	__u64 a = ((__u64)local_port(sk) << 32) ^ sk->__sk_common.skc_rcv_saddr;
	__u64 b = ((__u64)__builtin_bswap16(sk->__sk_common.skc_dport) << 32) ^
		  sk->__sk_common.skc_daddr;
	if (fi->family == MCPSPY_AF_INET6) {
		a ^= sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		b ^= sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
	}
	fi->chan = mix64(mix64(0x6d637073ULL, a < b ? a : b), a < b ? b : a) | 1;
	return 1;
}

/* A TCP connection as seen from one end. */
struct conn_id {
	__u64 ino;
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u32 fd;
	__u8 kind;
	__u8 direction; /* of the call that last used it (thread_socks) */
};

/* TCP endpoints: read only for calls that need them. */
static __always_inline void read_endpoints(struct conn_id *c, const struct fd_info *fi)
{
	struct sock *sk = fi->sk;

	c->ino = fi->ino;
	c->kind = fi->kind;
	c->lport = local_port(sk);
	c->rport = __builtin_bswap16(sk->__sk_common.skc_dport);
	if (fi->family == MCPSPY_AF_INET) {
		*(__u32 *)c->laddr = sk->__sk_common.skc_rcv_saddr;
		*(__u32 *)c->raddr = sk->__sk_common.skc_daddr;
		return;
	}
	for (int i = 0; i < 4; i++) {
		((__u32 *)c->laddr)[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
		((__u32 *)c->raddr)[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
	}
}

static __always_inline void conn_into_header(struct mcpspy_event *h, const struct conn_id *c)
{
	h->ino = c->ino;
	h->fd_kind = c->kind;
	h->lport = c->lport;
	h->rport = c->rport;
	__builtin_memcpy(h->laddr, c->laddr, 16);
	__builtin_memcpy(h->raddr, c->raddr, 16);
}

/*
 * TLS plaintext is read at SSL_read/SSL_write, where the socket is unknown.
 * OpenSSL with a socket BIO does its syscalls inside the SSL call; with a
 * memory BIO (Python's asyncio, Node) the event loop thread does them just
 * before SSL_read and just after SSL_write. Both are seen from here.
 */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* _ex forms: where the byte count is written */
	__u8 ex;
	__u8 direction;
};

struct ssl_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};

/* In-flight SSL calls, by thread (pid_tgid). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* The socket of each SSL*, once known. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct conn_id);
} ssl_conns SEC(".maps");

/* The TCP socket each thread of a TLS-using process used last. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct conn_id);
} thread_socks SEC(".maps");

/* SSL* whose plaintext was written but whose socket write has not happened yet, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} pending_ssl_writes SEC(".maps");

/* Processes that called into OpenSSL: only their TCP calls are tracked for TLS. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} ssl_tgids SEC(".maps");

/* A TCP call by a TLS-using process: learn which SSL* this socket serves. */
static __always_inline void note_tcp_call(__u64 pid_tgid, const struct fd_info *fi, __u32 fd,
					  __u8 direction)
{
	struct conn_id conn = {};

	read_endpoints(&conn, fi);
	conn.fd = fd;
	conn.direction = direction;
	bpf_map_update_elem(&thread_socks, &pid_tgid, &conn, BPF_ANY);
	struct ssl_key key = { .tgid = pid_tgid >> 32 };
	struct ssl_call *inside = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);

	if (inside) {
		/* A socket BIO: the syscall happens inside SSL_read/SSL_write. */
		key.ssl = inside->ssl;
		bpf_map_update_elem(&ssl_conns, &key, &conn, BPF_ANY);
	}
	__u64 *pending = bpf_map_lookup_elem(&pending_ssl_writes, &pid_tgid);

	if (pending && direction == MCPSPY_DIR_WRITE) {
		/* A memory BIO: ciphertext leaves right after SSL_write. */
		key.ssl = *pending;
		bpf_map_update_elem(&ssl_conns, &key, &conn, BPF_ANY);
		bpf_map_delete_elem(&pending_ssl_writes, &pid_tgid);
	}
}

/*
 * Is this call's stream captured? Returns its state, creating it when the
 * stream starts being watched.
 * `first`/`first_len` are the first bytes of the call, for the watch test.
 */
static __always_inline struct stream_state *
watched_stream(const struct stream_key *key, __u64 chan, __u8 kind, const __u8 *first,
	       __u64 first_len)
{
	struct stream_state *st;

	/* Streams without a channel (TLS plaintext) are looked up directly; the
	 * others only once their channel is known to carry MCP, which spares
	 * unrelated pipes and sockets a lookup. */
	int chan_watched = capture_all || (chan && bpf_map_lookup_elem(&channels, &chan));

	if (chan_watched || !chan) {
		st = bpf_map_lookup_elem(&streams, key);
		if (st)
			return st;
	}
	if (!chan_watched) {
		/* Unwatched channel, the common case: look at the first bytes. */
		struct mcpspy_sniff sniff = {};
		__u64 n = first_len;
		int tcp = kind == MCPSPY_FD_TCP4 || kind == MCPSPY_FD_TCP6;

		if (n > MCPSPY_SNIFF_LEN)
			n = MCPSPY_SNIFF_LEN;
		if (bpf_probe_read_user(sniff.b, n, first))
			return NULL;
		sniff.n = n;
		/* Most traffic fails on its first byte: decide that without a call. */
		__u8 c0 = sniff.b[0];
		if (!tcp && c0 != '{' && c0 != '[' && !is_space(c0))
			return NULL;
		if (tcp && c0 != 'G' && c0 != 'P' && c0 != 'D' && c0 != 'H' && c0 != 'O')
			return NULL;
		if (tcp ? !sniff_http(&sniff) : !sniff_jsonrpc(&sniff))
			return NULL;
	}
	__u8 one = 1;
	struct stream_state zero = {};

	if (!capture_all && chan)
		bpf_map_update_elem(&channels, &chan, &one, BPF_ANY);
	bpf_map_update_elem(&streams, key, &zero, BPF_NOEXIST);
	st = bpf_map_lookup_elem(&streams, key);
	if (!st)
		count(MCPSPY_CNT_MAP_FULL, 1);
	return st;
}

/* Emit the call's bytes, `c->left` of them, from its buffer or iovecs. */
static __always_inline void emit_call(struct emit_ctx *c, struct stream_state *st)
{
	/* The first record of each direction says so: a process reads and writes
	 * one socket, and each direction is a stream of its own. */
	__u64 bit = 1 << (c->hdr.direction & 1);

	if (!(st->started & bit)) {
		__sync_fetch_and_or(&st->started, bit);
		c->hdr.flags |= MCPSPY_F_STREAM_START;
	}
	c->hdr.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(c->hdr.comm, sizeof(c->hdr.comm));
	c->stream_off = __sync_fetch_and_add(&st->off[c->hdr.direction & 1], c->left);
	if (!c->iov && c->left <= MCPSPY_CHUNK_MAX) {
		/* One chunk, the common case: no loop. */
		emit_step(0, c);
		return;
	}
	/* Each step emits a chunk or passes an empty iovec; each iovec can end
	 * in a partial chunk. Capped (bpf_loop's limit) far above real calls. */
	__u64 loops = c->left / MCPSPY_CHUNK_MAX + 2 + (c->iov ? 2 * c->iov_cnt : 0);

	if (loops > (1 << 23))
		loops = 1 << 23;
	bpf_loop(loops, emit_step, c, 0);
	if (c->left)
		emit_truncated(c);
}

/* The common exit handler of every syscall rung. */
static __always_inline int on_sys_exit(long nr, long ret, __u64 a0, __u64 a1, __u64 a2)
{
	__u8 call, direction;
	int vector = 0;

	if (ret <= 0 || stopped)
		return 0;
	switch (nr) {
	case MCPSPY_NR_READ: call = MCPSPY_CALL_READ; direction = MCPSPY_DIR_READ; break;
	case MCPSPY_NR_WRITE: call = MCPSPY_CALL_WRITE; direction = MCPSPY_DIR_WRITE; break;
	case MCPSPY_NR_READV: call = MCPSPY_CALL_READV; direction = MCPSPY_DIR_READ; vector = 1; break;
	case MCPSPY_NR_WRITEV: call = MCPSPY_CALL_WRITEV; direction = MCPSPY_DIR_WRITE; vector = 1; break;
	case MCPSPY_NR_RECVFROM: call = MCPSPY_CALL_RECVFROM; direction = MCPSPY_DIR_READ; break;
	case MCPSPY_NR_SENDTO: call = MCPSPY_CALL_SENDTO; direction = MCPSPY_DIR_WRITE; break;
	case MCPSPY_NR_RECVMSG: call = MCPSPY_CALL_RECVMSG; direction = MCPSPY_DIR_READ; vector = 2; break;
	case MCPSPY_NR_SENDMSG: call = MCPSPY_CALL_SENDMSG; direction = MCPSPY_DIR_WRITE; vector = 2; break;
	default: return 0;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid;

	/* Unselected processes (--pid, --comm) cost next to nothing. */
	if (tgid == self_tgid || !process_selected())
		return 0;
	struct fd_info fi = {};

	if (!classify_fd(task, a0, &fi))
		return 0;
	/* The call's first bytes: its buffer, or its first non-empty iovec. */
	const struct iovec *iov = NULL;
	__u64 iov_cnt = 0, iov_idx = 0;
	const __u8 *first = (const __u8 *)a1;
	__u64 first_len = ret;

	if (vector) {
		if (vector == 1) {
			iov = (const struct iovec *)a1;
			iov_cnt = a2;
		} else {
			struct user_msghdr msg;

			if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a1))
				return 0;
			iov = msg.msg_iov;
			iov_cnt = msg.msg_iovlen;
		}
		first_len = 0;
		for (int i = 0; i < 8 && first_len == 0 && iov_idx < iov_cnt; i++) {
			struct iovec v;

			if (bpf_probe_read_user(&v, sizeof(v), &iov[iov_idx]))
				return 0;
			iov_idx++;
			first = v.iov_base;
			first_len = v.iov_len;
		}
		if (first_len > (__u64)ret)
			first_len = ret;
	}
	if (tls_probes && (fi.kind == MCPSPY_FD_TCP4 || fi.kind == MCPSPY_FD_TCP6) &&
	    bpf_map_lookup_elem(&ssl_tgids, &tgid))
		note_tcp_call(((__u64)tgid << 32) | task->pid, &fi, a0, direction);
	struct stream_key key = { .tgid = tgid, .id = fi.ino };
	struct stream_state *st = watched_stream(&key, fi.chan, fi.kind, first, first_len);

	if (!st)
		return 0;
	if (fi.kind == MCPSPY_FD_UNIX) {
		/* The last reads often come after the peer has closed. */
		if (!fi.peer_ino)
			fi.peer_ino = st->peer_ino;
		else if (st->peer_ino != fi.peer_ino)
			st->peer_ino = fi.peer_ino;
	}
	/* Captured: build the record header (bpf_loop wants its context on the stack). */
	struct emit_ctx ctx = {};

	ctx.hdr.kind = MCPSPY_REC_DATA;
	ctx.hdr.call = call;
	ctx.hdr.direction = direction;
	ctx.hdr.fd_kind = fi.kind;
	ctx.hdr.fd = a0;
	ctx.hdr.tgid = tgid;
	ctx.hdr.tid = task->pid;
	ctx.hdr.ino = fi.ino;
	ctx.hdr.peer_ino = fi.peer_ino;
	ctx.hdr.call_len = ret;
	if (fi.kind == MCPSPY_FD_TCP4 || fi.kind == MCPSPY_FD_TCP6) {
		struct conn_id conn = {};

		read_endpoints(&conn, &fi);
		conn_into_header(&ctx.hdr, &conn);
	}
	ctx.base = first;
	ctx.left_in_buf = first_len;
	ctx.left = ret;
	ctx.iov = iov;
	ctx.iov_cnt = iov_cnt;
	ctx.iov_idx = iov_idx;
	emit_call(&ctx, st);
	return 0;
}

/* Rung 1: BTF-typed raw tracepoint; direct, typed access to the registers. */
SEC("tp_btf/sys_exit")
int BPF_PROG(mcpspy_tp_btf_exit, struct pt_regs *regs, long ret)
{
	return on_sys_exit(regs->orig_ax, ret, regs->di, regs->si, regs->dx);
}

/* Rung 2: untyped raw tracepoint; same hook, registers read with probes. */
SEC("raw_tracepoint/sys_exit")
int mcpspy_raw_tp_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];

	return on_sys_exit(BPF_CORE_READ(regs, orig_ax), ctx->args[1], BPF_CORE_READ(regs, di),
			   BPF_CORE_READ(regs, si), BPF_CORE_READ(regs, dx));
}

/* Rung 3: classic per-syscall tracepoints; arguments from the task's saved registers. */
/* As tracefs's events/syscalls/sys_exit_NAME/format lays it out: the syscall
 * number is an int, and the 4 bytes after it are padding that the kernel does
 * not clear, so reading it as a long gives garbage whenever they are not zero. */
struct sys_exit_args {
	__u64 common;
	int nr;
	int _pad;
	long ret;
};

static __always_inline int classic_exit(struct sys_exit_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return on_sys_exit(ctx->nr, ctx->ret, regs->di, regs->si, regs->dx);
}

#define CLASSIC(NAME)                                                                       \
	SEC("tracepoint/syscalls/sys_exit_" #NAME)                                          \
	int mcpspy_tp_exit_##NAME(struct sys_exit_args *ctx)                                \
	{                                                                                   \
		return classic_exit(ctx);                                                   \
	}

CLASSIC(read)
CLASSIC(write)
CLASSIC(readv)
CLASSIC(writev)
CLASSIC(recvfrom)
CLASSIC(sendto)
CLASSIC(recvmsg)
CLASSIC(sendmsg)

/* OpenSSL entry points: remember the arguments until the call returns. */
static __always_inline int ssl_enter(void *ssl, const void *buf, void *out_len, __u8 ex,
				     __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ssl_call c = {
		.ssl = (__u64)ssl,
		.buf = (__u64)buf,
		.out_len = (__u64)out_len,
		.ex = ex,
		.direction = direction,
	};

	if (tgid == self_tgid || stopped || !process_selected())
		return 0;
	bpf_map_update_elem(&ssl_calls, &pid_tgid, &c, BPF_ANY);
	if (!bpf_map_lookup_elem(&ssl_tgids, &tgid)) {
		__u8 one = 1;

		bpf_map_update_elem(&ssl_tgids, &tgid, &one, BPF_ANY);
	}
	return 0;
}

SEC("uprobe")
int BPF_UPROBE(mcpspy_ssl_write, void *ssl, const void *buf, int num)
{
	return ssl_enter(ssl, buf, NULL, 0, MCPSPY_DIR_WRITE);
}

SEC("uprobe")
int BPF_UPROBE(mcpspy_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return ssl_enter(ssl, buf, written, 1, MCPSPY_DIR_WRITE);
}

SEC("uprobe")
int BPF_UPROBE(mcpspy_ssl_read, void *ssl, void *buf, int num)
{
	return ssl_enter(ssl, buf, NULL, 0, MCPSPY_DIR_READ);
}

SEC("uprobe")
int BPF_UPROBE(mcpspy_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return ssl_enter(ssl, buf, readbytes, 1, MCPSPY_DIR_READ);
}

/*
 * SSL_free: the SSL* may be reused by the next connection, so forget its
 * socket and its stream; the next connection starts a stream of its own.
 */
SEC("uprobe")
int BPF_UPROBE(mcpspy_ssl_free, void *ssl)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_key sk = { .tgid = tgid, .ssl = (__u64)ssl };
	struct stream_key key = { .tgid = tgid, .tls = 1, .id = (__u64)ssl };

	bpf_map_delete_elem(&ssl_conns, &sk);
	bpf_map_delete_elem(&streams, &key);
	return 0;
}

/* Every SSL_* return: the plaintext is in the buffer now. */
SEC("uretprobe")
int BPF_URETPROBE(mcpspy_ssl_ret, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_call *in = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);

	if (!in || stopped)
		return 0;
	struct ssl_call c = *in;

	bpf_map_delete_elem(&ssl_calls, &pid_tgid);
	__u64 n = 0;
	/* Every SSL_* here returns int: only the low 32 bits of the register count. */
	int rc = (int)ret;

	if (c.ex) {
		if (rc != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)c.out_len))
			return 0;
	} else {
		if (rc <= 0)
			return 0;
		n = rc;
	}
	if (n == 0)
		return 0;
	__u32 tgid = pid_tgid >> 32;
	struct ssl_key sk = { .tgid = tgid, .ssl = c.ssl };
	struct conn_id *conn = bpf_map_lookup_elem(&ssl_conns, &sk);

	if (!conn && c.direction == MCPSPY_DIR_READ) {
		/* A memory BIO: the ciphertext was read just before, on this thread. */
		struct conn_id *last = bpf_map_lookup_elem(&thread_socks, &pid_tgid);

		if (last && last->direction == MCPSPY_DIR_READ) {
			bpf_map_update_elem(&ssl_conns, &sk, last, BPF_ANY);
			conn = bpf_map_lookup_elem(&ssl_conns, &sk);
		}
	}
	if (!conn && c.direction == MCPSPY_DIR_WRITE)
		bpf_map_update_elem(&pending_ssl_writes, &pid_tgid, &c.ssl, BPF_ANY);
	struct stream_key key = { .tgid = tgid, .tls = 1, .id = c.ssl };
	struct stream_state *st = watched_stream(&key, 0, MCPSPY_FD_TCP4, (const __u8 *)c.buf, n);

	if (!st)
		return 0;
	struct emit_ctx e = {};

	e.hdr.kind = MCPSPY_REC_DATA;
	e.hdr.call = c.direction == MCPSPY_DIR_READ ? MCPSPY_CALL_SSL_READ : MCPSPY_CALL_SSL_WRITE;
	e.hdr.direction = c.direction;
	e.hdr.flags = MCPSPY_F_TLS;
	e.hdr.tgid = tgid;
	e.hdr.tid = (__u32)pid_tgid;
	e.hdr.ssl = c.ssl;
	e.hdr.call_len = n;
	if (conn) {
		conn_into_header(&e.hdr, conn);
		e.hdr.fd = conn->fd;
	}
	e.base = (const __u8 *)c.buf;
	e.left_in_buf = n;
	e.left = n;
	emit_call(&e, st);
	return 0;
}

/*
 * Every exec: the recorder learns of processes early and finds binaries that
 * carry their own TLS library. One variant per rung family.
 */
static __always_inline int on_exec(const char *filename)
{
	if (stopped)
		return 0;
	struct mcpspy_event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + 256, 0);

	if (!e) {
		count(MCPSPY_CNT_RING_FULL, 1);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->kind = MCPSPY_REC_EXEC;
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	long n = bpf_probe_read_kernel_str((void *)(e + 1), 256, filename);

	e->len = n > 0 ? n - 1 : 0;
	count(MCPSPY_CNT_EVENTS, 1);
	bpf_ringbuf_submit(e, wake_flags());
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(mcpspy_exec_tp_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(BPF_CORE_READ(bprm, filename));
}

SEC("raw_tracepoint/sched_process_exec")
int mcpspy_exec_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];

	return on_exec(BPF_CORE_READ(bprm, filename));
}

struct sched_exec_args {
	__u64 common;
	__u32 filename_loc; /* __data_loc: offset in the low 16 bits */
	__s32 pid;
	__s32 old_pid;
};

SEC("tracepoint/sched/sched_process_exec")
int mcpspy_exec_tp(struct sched_exec_args *ctx)
{
	return on_exec((const char *)ctx + (ctx->filename_loc & 0xffff));
}
