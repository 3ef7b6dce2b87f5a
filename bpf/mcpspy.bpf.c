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
	__u64 off[2]; /* bytes seen so far, per direction */
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

static long emit_step(__u64 i, struct emit_ctx *c)
{
	if (c->left == 0)
		return 1;
	if (c->left_in_buf == 0) {
		/* Next iovec: costs one iteration, counted in the loop bound. */
		if (!next_iov(c))
			return 0;
		/* The rest of the call is lost: say so in the data itself. */
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
		}
		return 1;
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
 * Classify the descriptor and fill the header's identity fields.
 * Returns 0 for descriptors that are never captured, else the channel key.
 */
static __always_inline __u64 describe_fd(__u32 fd, struct mcpspy_event *h)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file;

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	__u32 mode = BPF_CORE_READ(inode, i_mode) & MCPSPY_S_IFMT;

	h->ino = BPF_CORE_READ(inode, i_ino);
	if (mode == MCPSPY_S_IFIFO) {
		h->fd_kind = MCPSPY_FD_PIPE;
		return h->ino;
	}
	if (mode != MCPSPY_S_IFSOCK) {
		if (!capture_all)
			return 0;
		h->fd_kind = MCPSPY_FD_OTHER;
		return h->ino;
	}
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 type = BPF_CORE_READ(sk, sk_type);

	if (type != MCPSPY_SOCK_STREAM)
		return capture_all ? (h->fd_kind = MCPSPY_FD_OTHER, h->ino) : 0;
	if (family == MCPSPY_AF_UNIX) {
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);

		h->fd_kind = MCPSPY_FD_UNIX;
		if (peer)
			h->peer_ino = BPF_CORE_READ(peer, sk_socket, file, f_inode, i_ino);
		/* Both ends name the pair by its smaller inode. */
		return (h->peer_ino && h->peer_ino < h->ino) ? h->peer_ino : h->ino;
	}
	if (family != MCPSPY_AF_INET && family != MCPSPY_AF_INET6)
		return capture_all ? (h->fd_kind = MCPSPY_FD_OTHER, h->ino) : 0;
	if (!capture_tcp && !capture_all)
		return 0;
	h->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	h->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == MCPSPY_AF_INET) {
		h->fd_kind = MCPSPY_FD_TCP4;
		BPF_CORE_READ_INTO((__u32 *)h->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)h->raddr, sk, __sk_common.skc_daddr);
	} else {
		h->fd_kind = MCPSPY_FD_TCP6;
		BPF_CORE_READ_INTO(&h->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&h->raddr, sk, __sk_common.skc_v6_daddr);
	}
	/* The same key from both ends of a connection: order the endpoints. */
	__u64 a = ((__u64)h->lport << 32) ^ *(__u32 *)h->laddr ^ *(__u32 *)&h->laddr[12];
	__u64 b = ((__u64)h->rport << 32) ^ *(__u32 *)h->raddr ^ *(__u32 *)&h->raddr[12];
	__u64 lo = a < b ? a : b, hi = a < b ? b : a;

	return mix64(mix64(0x6d637073ULL, lo), hi) | 1;
}

/*
 * Decide whether the stream is captured and emit its bytes.
 * `buf`/`iov` is the user buffer (or iovec array), `ret` the bytes moved.
 */
static __always_inline int capture(struct emit_ctx *c, __u64 chan, __u32 tls_stream,
				   __u64 stream_id)
{
	struct stream_key key = { .tgid = c->hdr.tgid, .tls = tls_stream, .id = stream_id };
	struct stream_state *st = bpf_map_lookup_elem(&streams, &key);

	if (!st) {
		if (!process_selected())
			return 0;
		if (!capture_all && !bpf_map_lookup_elem(&channels, &chan)) {
			/* Unwatched channel: look at the first bytes of the call. */
			struct mcpspy_sniff sniff = {};
			__u64 n = c->left_in_buf;

			if (n > MCPSPY_SNIFF_LEN)
				n = MCPSPY_SNIFF_LEN;
			if (bpf_probe_read_user(sniff.b, n, c->base))
				return 0;
			sniff.n = n;
			int tcp = c->hdr.fd_kind == MCPSPY_FD_TCP4 || c->hdr.fd_kind == MCPSPY_FD_TCP6;
			if (tcp ? !sniff_http(&sniff) : !sniff_jsonrpc(&sniff))
				return 0;
			__u8 one = 1;

			bpf_map_update_elem(&channels, &chan, &one, BPF_ANY);
		}
		struct stream_state zero = {};

		if (bpf_map_update_elem(&streams, &key, &zero, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&streams, &key)) {
			count(MCPSPY_CNT_MAP_FULL, 1);
			return 0;
		}
		st = bpf_map_lookup_elem(&streams, &key);
		if (!st) {
			count(MCPSPY_CNT_MAP_FULL, 1);
			return 0;
		}
		c->hdr.flags |= MCPSPY_F_STREAM_START;
	}
	/* Only captured calls pay for the clock and the name. */
	c->hdr.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(c->hdr.comm, sizeof(c->hdr.comm));
	c->stream_off = __sync_fetch_and_add(&st->off[c->hdr.direction & 1], c->left);
	/* Chunks plus one step per iovec; capped well above any real call. */
	__u64 loops = c->left / MCPSPY_CHUNK_MAX + 2 + (c->iov ? c->iov_cnt : 0);

	if (loops > (1 << 23))
		loops = 1 << 23;
	bpf_loop(loops, emit_step, c, 0);
	return 0;
}

/* The common exit handler of every syscall rung. */
static __always_inline int on_sys_exit(long nr, long ret, __u64 a0, __u64 a1, __u64 a2)
{
	__u8 call, direction;
	int vector = 0;

	if (ret <= 0)
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
	/* bpf_loop wants its context on the stack. */
	struct emit_ctx ctx = {};
	struct emit_ctx *c = &ctx;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if ((pid_tgid >> 32) == self_tgid)
		return 0;
	c->hdr.kind = MCPSPY_REC_DATA;
	c->hdr.call = call;
	c->hdr.direction = direction;
	c->hdr.tgid = pid_tgid >> 32;
	c->hdr.tid = (__u32)pid_tgid;
	c->hdr.fd = a0;
	__u64 chan = describe_fd(a0, &c->hdr);

	if (!chan)
		return 0;
	c->left = ret;
	c->hdr.call_len = ret;
	if (vector == 0) {
		c->base = (const __u8 *)a1;
		c->left_in_buf = ret;
	} else {
		if (vector == 1) {
			c->iov = (const struct iovec *)a1;
			c->iov_cnt = a2;
		} else {
			struct user_msghdr msg;

			if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a1))
				return 0;
			c->iov = msg.msg_iov;
			c->iov_cnt = msg.msg_iovlen;
		}
		/* Load the first non-empty iovec so the watch test can see its bytes. */
		for (int i = 0; i < 8 && c->left_in_buf == 0; i++)
			if (next_iov(c))
				return 0;
	}
	return capture(c, chan, 0, c->hdr.ino);
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
struct sys_exit_args {
	__u64 common;
	long nr;
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

/*
 * Every exec: the recorder learns of processes early and finds binaries that
 * carry their own TLS library. One variant per rung family.
 */
static __always_inline int on_exec(const char *filename)
{
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
