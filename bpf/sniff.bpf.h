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
