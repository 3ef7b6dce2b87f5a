/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a file descriptor is (pipe, unix socket, TCP), learned cheaply
 * before anything is copied, and a TCP connection's endpoints. Part of
 * mcpspy.bpf.c.
 */
#ifndef MCPSPY_FDINFO_BPF_H
#define MCPSPY_FDINFO_BPF_H

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

#endif /* MCPSPY_FDINFO_BPF_H */
