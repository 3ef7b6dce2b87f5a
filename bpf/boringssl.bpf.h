/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * BoringSSL linked into a program without symbols (Bun): SSL_read and
 * SSL_write are probed at the offsets the scan found, with the programs of
 * tls.bpf.h (same arguments, same return). BoringSSL's SSL_free reports no
 * errors, so the scan cannot find it; SSL_new's return serves instead: a
 * new SSL* at an address that served an old connection starts afresh.
 * Part of mcpspy.bpf.c.
 */
#ifndef MCPSPY_BORINGSSL_BPF_H
#define MCPSPY_BORINGSSL_BPF_H

SEC("uretprobe")
int BPF_URETPROBE(mcpspy_ssl_new_ret, void *ssl)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_key sk = { .tgid = tgid, .ssl = (__u64)ssl };
	struct stream_key key = { .tgid = tgid, .tls = 1, .id = (__u64)ssl };

	if (!ssl)
		return 0;
	bpf_map_delete_elem(&ssl_conns, &sk);
	bpf_map_delete_elem(&streams, &key);
	return 0;
}

#endif /* MCPSPY_BORINGSSL_BPF_H */
