/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The watch test: whether a call's first bytes start JSON-RPC (pipes,
 * unix sockets) or HTTP (TCP). Part of mcpspy.bpf.c.
 */
#ifndef MCPSPY_SNIFF_BPF_H
#define MCPSPY_SNIFF_BPF_H

/*
 * The watch test runs on every call of an unwatched pipe or socket. Its helpers
 * are global functions: the verifier checks each once, with unknown arguments,
 * instead of once per byte position (which exceeds its instruction budget).
 */
struct mcpspy_sniff {
	/* Twice the window: a held prefix and a call's bytes are copied in at
	 * offsets the verifier bounds separately; only the first
	 * MCPSPY_SNIFF_LEN bytes are ever judged. */
	__u8 b[2 * MCPSPY_SNIFF_LEN];
	__u32 n; /* valid bytes in b, at most MCPSPY_SNIFF_LEN */
};

/* The watch test's answers for JSON-RPC: no, yes, or not yet (the bytes end
 * before it is decided, as a 1-byte read of `{` does). */
#define MCPSPY_SNIFF_NO 0
#define MCPSPY_SNIFF_YES 1
#define MCPSPY_SNIFF_UNDECIDED 2

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

/* Do the bytes at `pos` start with `want` (NUL-padded): YES, NO, or
 * UNDECIDED when they are a prefix of it cut by the end. */
static __always_inline int sniff_has(struct mcpspy_sniff *s, __u32 pos, const char want[8])
{
	for (int j = 0; j < 8; j++) {
		if (!want[j])
			return MCPSPY_SNIFF_YES;
		if (pos + j >= s->n)
			return MCPSPY_SNIFF_UNDECIDED;
		if (sniff_at(s, pos + j) != want[j])
			return MCPSPY_SNIFF_NO;
	}
	return MCPSPY_SNIFF_YES;
}

/* After `{` and `"`: one of the keys a JSON-RPC object has. */
__noinline int sniff_jsonrpc_key(struct mcpspy_sniff *s, __u32 pos)
{
	static const char keys[6][8] = { "jsonrpc\"", "method\"", "id\"", "result\"", "error\"",
					 "params\"" };

	int undecided = 0;

	if (!s)
		return MCPSPY_SNIFF_NO;
	for (int k = 0; k < 6; k++) {
		int r = sniff_has(s, pos, keys[k]);

		if (r == MCPSPY_SNIFF_YES)
			return r;
		undecided |= r == MCPSPY_SNIFF_UNDECIDED;
	}
	return undecided ? MCPSPY_SNIFF_UNDECIDED : MCPSPY_SNIFF_NO;
}

/*
 * Do the first bytes look like the start of a JSON-RPC message: `{` (or `[`
 * `{`), then a JSON-RPC key? Bytes that end before that is decided are
 * UNDECIDED: the caller holds them until the stream's next call (a message
 * written or read in tiny pieces is not missed, and a script read one byte
 * at a time that merely begins with `{` is not taken for one).
 */
__noinline int sniff_jsonrpc(struct mcpspy_sniff *s)
{
	if (!s)
		return MCPSPY_SNIFF_NO;
	__u32 p = sniff_skip_space(s, 0);

	if (p >= s->n)
		return MCPSPY_SNIFF_NO; /* nothing but whitespace */
	if (sniff_at(s, p) == '[') {
		p = sniff_skip_space(s, p + 1);
		if (p >= s->n)
			return MCPSPY_SNIFF_UNDECIDED;
	}
	if (sniff_at(s, p) != '{')
		return MCPSPY_SNIFF_NO;
	p = sniff_skip_space(s, p + 1);
	if (p >= s->n)
		return MCPSPY_SNIFF_UNDECIDED;
	if (sniff_at(s, p) != '"')
		return MCPSPY_SNIFF_NO;
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
		if (sniff_has(s, 0, starts[k]) == MCPSPY_SNIFF_YES)
			return 1;
	return 0;
}

/* A TLS record that starts a ClientHello: handshake (22), version 3.x,
 * then a handshake message of type 1; or just such a record's 5-byte
 * header (OpenSSL without read-ahead reads the header alone first). */
static __always_inline int sniff_client_hello(struct mcpspy_sniff *s)
{
	if (s->n < 5 || s->b[0] != 0x16 || s->b[1] != 0x03 || s->b[2] > 0x04)
		return 0;
	return s->n == 5 || s->b[5] == 0x01;
}

#endif /* MCPSPY_SNIFF_BPF_H */
