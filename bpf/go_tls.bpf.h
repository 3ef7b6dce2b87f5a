/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext from Go's crypto/tls: (*Conn).Write at its entry, and
 * (*Conn).Read at each of its RET instructions (found in user space by
 * decoding the function; uretprobes would break on Go's moving stacks).
 * Go's register ABI on x86-64: RAX = *Conn, RBX = buffer, RCX = length,
 * n returned in RAX; R14 holds the running goroutine (g), which keys an
 * in-flight Read (a goroutine may resume on another thread).
 * The *Conn is tied to its socket by walking tls.Conn.conn (a net.Conn
 * holding a *net.TCPConn) to its netFD's poll.FD.Sysfd. Part of mcpspy.bpf.c.
 */
#ifndef MCPSPY_GO_TLS_BPF_H
#define MCPSPY_GO_TLS_BPF_H

struct go_read_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};

struct go_read {
	__u64 conn;
	__u64 buf;
};

/* Reads in flight, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_read_key);
	__type(value, struct go_read);
} go_reads SEC(".maps");

/*
 * The socket under a *tls.Conn: conn+0x8 is the data word of the net.Conn
 * interface (a *net.TCPConn), whose first word is its *netFD, whose poll.FD
 * holds Sysfd at +0x10 (the same from Go 1.9 to 1.27). -1 if unreadable.
 */
static __always_inline long go_conn_fd(__u64 conn)
{
	__u64 tcp = 0, nfd = 0;
	long fd = -1;

	if (bpf_probe_read_user(&tcp, sizeof(tcp), (void *)(conn + 0x8)) || !tcp)
		return -1;
	if (bpf_probe_read_user(&nfd, sizeof(nfd), (void *)tcp) || !nfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(nfd + 0x10)))
		return -1;
	return fd;
}

static __always_inline int go_tls_emit(__u64 conn, const __u8 *buf, __u64 n, __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	if (n == 0 || stopped || tgid == self_tgid || !process_selected())
		return 0;
	struct stream_key key = { .tgid = tgid, .tls = 1, .id = conn };
	struct stream_state *st = watched_stream(&key, 0, MCPSPY_FD_TCP4, buf, n, direction, NULL);

	if (!st)
		return 0;
	note_plaintext(tgid);
	struct emit_ctx e = {};

	e.hdr.kind = MCPSPY_REC_DATA;
	e.hdr.call = direction == MCPSPY_DIR_READ ? MCPSPY_CALL_SSL_READ : MCPSPY_CALL_SSL_WRITE;
	e.hdr.direction = direction;
	e.hdr.flags = MCPSPY_F_TLS;
	e.hdr.tgid = tgid;
	e.hdr.tid = (__u32)pid_tgid;
	e.hdr.ssl = conn;
	e.hdr.call_len = n;
	long fd = go_conn_fd(conn);
	struct fd_info fi = {};

	/* Only a TCP socket of this task is taken: a program that wraps
	 * net.Conn in its own type leaves the connection unknown, not wrong. */
	if (fd >= 0 && fd < (1 << 20) &&
	    classify_fd(bpf_get_current_task_btf(), (__u32)fd, &fi) &&
	    (fi.kind == MCPSPY_FD_TCP4 || fi.kind == MCPSPY_FD_TCP6)) {
		struct conn_id c = {};

		read_endpoints(&c, &fi);
		conn_into_header(&e.hdr, &c);
		e.hdr.fd = (__u32)fd;
		note_tls_sock(tgid, fi.ino, conn);
	}
	e.base = buf;
	e.left_in_buf = n;
	e.left = n;
	emit_call(&e, st);
	return 0;
}

/*
 * The entry probes sit on the stack check's `jbe`, which the kernel
 * emulates: a probe on any instruction it must single-step instead costs
 * some 30 times as much on a VM. When the jump will be taken (CF or ZF
 * set by the `cmp`: the stack must grow, or the goroutine is to be
 * preempted), the call starts over from its entry, and the probe fires
 * again then: this time is not the call.
 */
static __always_inline int go_call_starts_over(const struct pt_regs *ctx)
{
	return ctx->flags & (0x1 | 0x40);
}

/* (*Conn).Write, at its stack check: the plaintext is in the buffer. */
SEC("uprobe")
int mcpspy_go_tls_write(struct pt_regs *ctx)
{
	if (go_call_starts_over(ctx))
		return 0;
	return go_tls_emit(ctx->ax, (const __u8 *)ctx->bx, ctx->cx, MCPSPY_DIR_WRITE);
}

/* (*Conn).Read, at its stack check: remember where the bytes will go. */
SEC("uprobe")
int mcpspy_go_tls_read(struct pt_regs *ctx)
{
	if (go_call_starts_over(ctx))
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct go_read_key k = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct go_read r = { .conn = ctx->ax, .buf = ctx->bx };

	if (stopped || k.tgid == self_tgid || !process_selected())
		return 0;
	bpf_map_update_elem(&go_reads, &k, &r, BPF_ANY);
	return 0;
}

/*
 * Read's error (RBX, RCX: the interface's type and data) is io.EOF, an
 * errors.errorString whose text is "EOF": what Read returns once the peer's
 * close_notify (or the socket's end) has come. Other errors (a deadline the
 * HTTP server sets to stop its background read) end nothing.
 */
static __always_inline int go_err_is_eof(const struct pt_regs *ctx)
{
	struct {
		__u64 ptr;
		__u64 len;
	} s = {};
	char text[3] = {};

	if (!ctx->bx || !ctx->cx || bpf_probe_read_user(&s, sizeof(s), (void *)ctx->cx) ||
	    s.len != 3 || bpf_probe_read_user(text, sizeof(text), (void *)s.ptr))
		return 0;
	return text[0] == 'E' && text[1] == 'O' && text[2] == 'F';
}

/*
 * The TLS stream over `conn` ended at its reader: a client's close_notify
 * reaches the server before the client closes its socket, and the server
 * may close first, so this, not the socket's end, is the first sign.
 */
static __always_inline void go_tls_end(__u64 conn)
{
	long fd = go_conn_fd(conn);

	if (fd >= 0 && fd < (1 << 20) && capture_tcp && !stopped)
		emit_end(bpf_get_current_task_btf(), (__u32)fd, MCPSPY_CALL_SSL_READ,
			 MCPSPY_DIR_READ);
}

/* Every RET of (*Conn).Read: RAX holds n, RBX and RCX the error. */
SEC("uprobe")
int mcpspy_go_tls_read_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct go_read_key k = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct go_read *in = bpf_map_lookup_elem(&go_reads, &k);

	if (!in)
		return 0;
	struct go_read r = *in;

	bpf_map_delete_elem(&go_reads, &k);
	long n = (long)ctx->ax;

	if (n == 0 && go_err_is_eof(ctx))
		go_tls_end(r.conn);
	if (n <= 0)
		return 0;
	return go_tls_emit(r.conn, (const __u8 *)r.buf, (__u64)n, MCPSPY_DIR_READ);
}

#endif /* MCPSPY_GO_TLS_BPF_H */
