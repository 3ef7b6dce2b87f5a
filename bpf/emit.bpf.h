/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Emitting records: whether a call's stream is watched, and its bytes
 * copied into ring-buffer records of a few size classes, 16 KiB chunks at
 * most, walked inside bpf_loop. Part of mcpspy.bpf.c.
 */
#ifndef MCPSPY_EMIT_BPF_H
#define MCPSPY_EMIT_BPF_H

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
 * A pipe or unix socket stream whose first bytes start JSON-RPC but end
 * before that is decided (a 1-byte read of `{`): held, per stream and
 * direction, until its next call decides. When that call starts the
 * stream, the held bytes are its first record.
 */
struct prefix_key {
	struct stream_key s;
	__u32 direction;
	__u32 _pad;
};

struct held_prefix {
	__u8 b[MCPSPY_SNIFF_LEN];
	__u32 n;
	__u32 _pad;
	__u64 ts_ns; /* when the first held call returned */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct prefix_key);
	__type(value, struct held_prefix);
} prefixes SEC(".maps");

/* Prefixes held now (an eviction leaves it high): while 0, unwatched calls
 * skip the lookup. */
volatile __s64 prefixes_held = 0;

static __always_inline void drop_prefix(struct prefix_key *pk)
{
	if (!bpf_map_delete_elem(&prefixes, pk))
		__sync_fetch_and_add(&prefixes_held, -1);
}

/*
 * Is this call's stream captured? Returns its state, creating it when the
 * stream starts being watched.
 * `first`/`first_len` are the first bytes of the call, for the watch test.
 * With --keylog, a socket's ClientHello starts a stream too. `*held` is
 * set when this call starts the stream and an earlier one left bytes
 * undecided: the caller emits them first (emit_held). A scalar, not the
 * map value: a pointer kept across the emit paths doubles the states the
 * verifier walks.
 */
static __always_inline struct stream_state *
watched_stream(const struct stream_key *key, __u64 chan, __u8 kind, const __u8 *first,
	       __u64 first_len, __u8 direction, __u32 *held)
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
	int tcp = kind == MCPSPY_FD_TCP4 || kind == MCPSPY_FD_TCP6;
	struct prefix_key pk = { .s = *key, .direction = direction };
	struct held_prefix *pre = NULL;

	/* Bytes an earlier call left undecided: judged with this call's, and
	 * the stream's first record if it starts (also when the other end
	 * started the channel meanwhile). */
	if (!tcp && prefixes_held > 0)
		pre = bpf_map_lookup_elem(&prefixes, &pk);
	if (!chan_watched) {
		/* Unwatched channel, the common case: look at the first bytes. */
		struct mcpspy_sniff sniff = {};
		__u32 h = 0;

		if (pre) {
			__builtin_memcpy(sniff.b, pre->b, MCPSPY_SNIFF_LEN);
			h = pre->n;
			if (h > MCPSPY_SNIFF_LEN - 1)
				h = MCPSPY_SNIFF_LEN - 1;
		}
		__u64 n = first_len;

		if (n > MCPSPY_SNIFF_LEN - h)
			n = MCPSPY_SNIFF_LEN - h;
		if (n > MCPSPY_SNIFF_LEN)
			n = MCPSPY_SNIFF_LEN;
		if (bpf_probe_read_user(sniff.b + (h & (MCPSPY_SNIFF_LEN - 1)), n, first))
			return NULL;
		sniff.n = h + n;
		/* Most traffic fails on its first byte: decide that without a call. */
		__u8 c0 = sniff.b[0];
		if (!tcp && c0 != '{' && c0 != '[' && !is_space(c0))
			return NULL;
		if (tcp && chan && capture_tls_cipher && c0 == 0x16) {
			if (!sniff_client_hello(&sniff) ||
			    bpf_map_lookup_elem(&plain_tgids, &key->tgid))
				return NULL;
		} else if (tcp) {
			if (c0 != 'G' && c0 != 'P' && c0 != 'D' && c0 != 'H' && c0 != 'O')
				return NULL;
			if (!sniff_http(&sniff))
				return NULL;
		} else {
			int r = sniff_jsonrpc(&sniff);

			/* Not yet decided, and the whole call is in the window: hold it. */
			if (r == MCPSPY_SNIFF_UNDECIDED && first_len <= n) {
				struct held_prefix hp = {};

				__builtin_memcpy(hp.b, sniff.b, MCPSPY_SNIFF_LEN);
				hp.n = sniff.n;
				hp.ts_ns = pre ? pre->ts_ns : bpf_ktime_get_ns();
				if (!pre)
					__sync_fetch_and_add(&prefixes_held, 1);
				bpf_map_update_elem(&prefixes, &pk, &hp, BPF_ANY);
				return NULL;
			}
			if (r != MCPSPY_SNIFF_YES) {
				if (pre)
					drop_prefix(&pk);
				return NULL;
			}
		}
	}
	if (held)
		*held = pre != NULL;
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

/*
 * The first record of each direction says so (MCPSPY_F_STREAM_START; 0 for
 * the others): a process reads and writes one socket, and each direction is
 * a stream of its own.
 */
static __always_inline __u32 direction_start(struct stream_state *st, __u8 direction)
{
	__u64 bit = 1 << (direction & 1);

	if (st->started & bit)
		return 0;
	__sync_fetch_and_or(&st->started, bit);
	return MCPSPY_F_STREAM_START;
}

/*
 * The bytes an earlier call of this stream left undecided (watched_stream),
 * as the stream's first record, ahead of the call that decided: `hdr` is
 * that call's header; the record's time and length are the held bytes'.
 * A global function, verified once on its own: inlined, its paths would
 * multiply those of the emit that follows beyond the verifier's budget.
 */
__noinline int emit_held(const struct mcpspy_event *hdr, struct stream_state *st,
			 const struct stream_key *key)
{
	if (!hdr || !st || !key)
		return 0;
	struct prefix_key pk = { .s = *key, .direction = hdr->direction };
	struct held_prefix *p = bpf_map_lookup_elem(&prefixes, &pk);

	if (!p)
		return 0;
	__u64 n = p->n;

	if (n > MCPSPY_SNIFF_LEN)
		n = MCPSPY_SNIFF_LEN;
	__u64 off = __sync_fetch_and_add(&st->off[hdr->direction & 1], n);
	struct mcpspy_event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + MCPSPY_SNIFF_LEN, 0);

	if (!e) {
		count(MCPSPY_CNT_RING_FULL, 1);
		count(MCPSPY_CNT_RING_FULL_BYTES, n);
		drop_prefix(&pk);
		return 0;
	}
	__builtin_memcpy(e, hdr, sizeof(*e));
	e->flags |= direction_start(st, hdr->direction);
	e->ts_ns = p->ts_ns;
	e->call_len = n;
	e->call_off = 0;
	e->stream_off = off;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy((void *)(e + 1), p->b, MCPSPY_SNIFF_LEN);
	e->len = n;
	count(MCPSPY_CNT_EVENTS, 1);
	count(MCPSPY_CNT_BYTES, n);
	bpf_ringbuf_submit(e, wake_flags());
	drop_prefix(&pk);
	return 0;
}

/* Emit the call's bytes, `c->left` of them, from its buffer or iovecs. */
static __always_inline void emit_call(struct emit_ctx *c, struct stream_state *st)
{
	c->hdr.flags |= direction_start(st, c->hdr.direction);
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

/*
 * A watched TCP stream of this process ended: it closed descriptor `fd`
 * (direction WRITE) or read the peer's end of it (direction READ). Over
 * HTTP/1.1 this is how a client cancels a request whose response has not
 * come: it closes the connection (MCP 2026-07-28). A socket under a TLS
 * stream a probe captures ends that stream (its offset is unknown, 0, once
 * the library has freed it).
 */
static __always_inline void emit_end(struct task_struct *task, __u32 fd, __u8 call,
				     __u8 direction)
{
	struct fd_info fi = {};

	if (!classify_fd(task, fd, &fi) ||
	    (fi.kind != MCPSPY_FD_TCP4 && fi.kind != MCPSPY_FD_TCP6))
		return;
	struct stream_key key = { .tgid = task->tgid, .id = fi.ino };
	struct stream_state *st = bpf_map_lookup_elem(&streams, &key);
	__u64 ssl = 0;

	if (!st) {
		__u64 *tls = bpf_map_lookup_elem(&tls_socks, &key);

		if (!tls)
			return;
		ssl = *tls;
		if (call == MCPSPY_CALL_CLOSE)
			bpf_map_delete_elem(&tls_socks, &key);
		struct stream_key plain = { .tgid = task->tgid, .tls = 1, .id = ssl };

		st = bpf_map_lookup_elem(&streams, &plain);
	}
	count_end(MCPSPY_END_SUBMITTED);
	struct mcpspy_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_end(MCPSPY_END_RING_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	struct conn_id conn = {};

	read_endpoints(&conn, &fi);
	conn_into_header(e, &conn);
	e->kind = MCPSPY_REC_END;
	e->call = call;
	e->direction = direction;
	e->fd = fd;
	e->tgid = task->tgid;
	e->tid = task->pid;
	e->stream_off = st ? st->off[direction & 1] : 0;
	if (ssl) {
		e->flags = MCPSPY_F_TLS;
		e->ssl = ssl;
	}
	e->ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, wake_flags());
}

#endif /* MCPSPY_EMIT_BPF_H */
