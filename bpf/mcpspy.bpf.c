// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kernel side of mcpspy: capture the bytes of read/write-family calls on pipes,
 * unix stream sockets and TCP sockets (with --keylog, TLS ciphertext too), and
 * of OpenSSL's SSL_read/SSL_write.
 *
 * All syscall rungs hook only the syscall *exit*: on x86-64 the saved user
 * registers still hold the arguments there, so no per-thread map of in-flight
 * arguments is needed and unrelated I/O costs one program run, not two.
 *
 * One object, in headers by job: config (settings, maps), scope (which
 * processes: filters, followed trees, cgroups), sniff (the watch test),
 * fdinfo (what a descriptor is), emit (records), tls (OpenSSL, and
 * BoringSSL where located), go_tls (Go's crypto/tls).
 * This file holds the syscall and exec entry points.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "mcpspy.h"
#include "config.bpf.h"
#include "scope.bpf.h"
#include "sniff.bpf.h"
#include "fdinfo.bpf.h"
#include "emit.bpf.h"
#include "tls.bpf.h"
#include "boringssl.bpf.h"
#include "go_tls.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The common exit handler of every syscall rung. */
static __always_inline int on_sys_exit(long nr, long ret, __u64 a0, __u64 a1, __u64 a2)
{
	__u8 call, direction;
	int vector = 0;

	if (ret < 0 || stopped)
		return 0;
	if (ret == 0) {
		/* A read that asked for bytes and got 0: the peer closed its end.
		 * (Vector reads may ask for nothing; writes of 0 move nothing.) */
		if ((nr == MCPSPY_NR_READ || nr == MCPSPY_NR_RECVFROM) && a2 > 0 && capture_tcp &&
		    process_selected()) {
			struct task_struct *task = bpf_get_current_task_btf();

			if (task->tgid != self_tgid)
				emit_end(task, a0, MCPSPY_CALL_READ, MCPSPY_DIR_READ);
		}
		return 0;
	}
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
	__u32 held = 0;
	struct stream_state *st =
		watched_stream(&key, fi.chan, fi.kind, first, first_len, direction, &held);

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
	if (held)
		emit_held(&ctx.hdr, st, &key);
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

/* close(2) of a watched TCP stream's descriptor, seen before the descriptor
 * goes. A classic tracepoint on every rung: it runs on close calls only. */
struct sys_enter_close_args {
	__u64 common;
	int nr;
	int _pad;
	__u64 fd;
};

SEC("tracepoint/syscalls/sys_enter_close")
int mcpspy_close_tp(struct sys_enter_close_args *ctx)
{
	if (stopped || !capture_tcp || !process_selected())
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();

	if (task->tgid != self_tgid)
		emit_end(task, ctx->fd, MCPSPY_CALL_CLOSE, MCPSPY_DIR_WRITE);
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
