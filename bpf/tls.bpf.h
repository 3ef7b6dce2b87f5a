/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext from OpenSSL's SSL_read/SSL_write (and the _ex forms):
 * the uprobes, and the maps that tie each SSL* to its socket. Part of
 * mcpspy.bpf.c.
 */
#ifndef MCPSPY_TLS_BPF_H
#define MCPSPY_TLS_BPF_H

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
	struct stream_state *st = watched_stream(&key, 0, MCPSPY_FD_TCP4, (const __u8 *)c.buf, n,
						   c.direction, NULL);

	if (!st)
		return 0;
	note_plaintext(tgid);
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
		note_tls_sock(tgid, conn->ino, c.ssl);
	}
	e.base = (const __u8 *)c.buf;
	e.left_in_buf = n;
	e.left = n;
	emit_call(&e, st);
	return 0;
}

#endif /* MCPSPY_TLS_BPF_H */
