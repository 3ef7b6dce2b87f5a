/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Scope: which processes are recorded. By pid (--pid), by name (--comm), a
 * process tree followed in the kernel (--follow, and the command form), and
 * cgroups (--cgroup, --container). A process is recorded when any of them
 * names it; with none, every process is. Part of mcpspy.bpf.c, included
 * right after config.bpf.h.
 */
#ifndef MCPSPY_SCOPE_BPF_H
#define MCPSPY_SCOPE_BPF_H

/* Set by userspace before load. */
const volatile __u32 n_filter_pids = 0;
const volatile __u32 filter_pids[MCPSPY_MAX_FILTERS] = {};
const volatile __u32 n_filter_comms = 0;
const volatile char filter_comms[MCPSPY_MAX_FILTERS][MCPSPY_COMM_LEN] = {};
/* The followed map is in use: userspace put the roots in it. */
const volatile __u8 follow = 0;
/* Cgroup v2 ids and their depth below the root: a process is in scope when
 * its cgroup is one of them or lies below one. */
const volatile __u32 n_filter_cgroups = 0;
const volatile __u64 filter_cgroup_ids[MCPSPY_MAX_FILTERS] = {};
const volatile __u32 filter_cgroup_levels[MCPSPY_MAX_FILTERS] = {};

/*
 * Followed processes (tgids), and in the classic-tracepoint rung also their
 * threads' ids, which it cannot tell apart at fork. A plain hash, not an
 * LRU: evicting a followed process would lose it silently. Entries leave
 * when their thread or process exits, so the map holds live tasks only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} followed SEC(".maps");

static __always_inline int comm_selected(void)
{
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

static __always_inline int process_selected(void)
{
	if (n_filter_pids == 0 && n_filter_comms == 0 && !follow && n_filter_cgroups == 0)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	for (int i = 0; i < MCPSPY_MAX_FILTERS; i++) {
		if (i >= n_filter_pids)
			break;
		if (filter_pids[i] == tgid)
			return 1;
	}
	if (follow && bpf_map_lookup_elem(&followed, &tgid))
		return 1;
	for (int i = 0; i < MCPSPY_MAX_FILTERS; i++) {
		if (i >= n_filter_cgroups)
			break;
		if (bpf_get_current_ancestor_cgroup_id(filter_cgroup_levels[i]) ==
		    filter_cgroup_ids[i])
			return 1;
	}
	return n_filter_comms && comm_selected();
}

/* A new task `child` (its tgid `child_tgid`) forked by the current one: a
 * child of a followed process is followed from before its first instruction
 * (the fork tracepoints fire before it is woken). */
static __always_inline void on_fork(__u32 child, __u32 child_tgid)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u8 one = 1;

	if (child_tgid == parent || !bpf_map_lookup_elem(&followed, &parent))
		return;
	if (bpf_map_update_elem(&followed, &child, &one, BPF_ANY))
		count(MCPSPY_CNT_MAP_FULL, 1);
}

/* A task exits: forget it, and its process once the last thread is gone,
 * so that a reused pid is not followed. */
static __always_inline void on_task_exit(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 pid = task->pid, tgid = task->tgid;

	if (pid != tgid)
		bpf_map_delete_elem(&followed, &pid);
	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		bpf_map_delete_elem(&followed, &tgid);
}

/* One variant of each per rung family; userspace loads them only with --follow. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(mcpspy_fork_tp_btf, struct task_struct *parent, struct task_struct *child)
{
	on_fork(child->tgid, child->tgid);
	return 0;
}

SEC("raw_tracepoint/sched_process_fork")
int mcpspy_fork_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = BPF_CORE_READ((struct task_struct *)ctx->args[1], tgid);

	on_fork(tgid, tgid);
	return 0;
}

struct sched_fork_args {
	__u64 common;
	__u32 parent_comm_loc;
	__s32 parent_pid;
	__u32 child_comm_loc;
	__s32 child_pid;
};

/* Only the child's thread id is known here: a new thread of a followed
 * process is marked too, and forgotten when it exits. */
SEC("tracepoint/sched/sched_process_fork")
int mcpspy_fork_tp(struct sched_fork_args *ctx)
{
	on_fork(ctx->child_pid, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(mcpspy_task_exit_tp_btf)
{
	on_task_exit();
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int mcpspy_task_exit_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	on_task_exit();
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int mcpspy_task_exit_tp(void *ctx)
{
	on_task_exit();
	return 0;
}

#endif /* MCPSPY_SCOPE_BPF_H */
