// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// iotrace: latency histograms of one process's file I/O system calls and of
// the block-device requests it issues. Compiled by bpf2go (go generate in
// dataplane/iotrace); the object is committed so building needs no clang.
//
// Only classic tracepoints are used (syscalls:*, block:*): their record
// layouts are ABI shown in /sys/kernel/tracing/events/*/format, so no
// vmlinux.h and no CO-RE relocations are needed, and they work on kernels
// without kprobes.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Kinds: the index of each histogram. Keep in step with kindNames in
// dataplane/iotrace/hist.go.
enum kind {
	K_PREAD = 0,
	K_PWRITE,
	K_FDATASYNC,
	K_FSYNC,
	K_SENDFILE,
	K_SPLICE,
	K_BLOCK_READ,
	K_BLOCK_WRITE,
	K_BLOCK_OTHER,
	NKINDS,
};

// NSLOTS log2 buckets of microseconds: slot 0 holds 0-1 us, slot k holds
// [2^k, 2^(k+1)) us; the last slot also holds everything longer.
#define NSLOTS 32

struct hist {
	__u64 count;
	__u64 errors;
	__u64 bytes;
	__u64 total_ns;
	__u64 slots[NSLOTS];
};

struct sys_start {
	__u64 ts;
	__u32 kind;
	__u32 pad;
};

struct rq_key {
	__u32 dev;
	__u32 pad;
	__u64 sector;
};

// target_tgid is the process traced, set by the loader before loading.
volatile const __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NKINDS);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

// sys_starts: the entry time of the system call each thread of the target
// is in (a thread is in at most one). LRU: a thread killed mid-call leaves
// an entry nobody deletes.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sys_start);
} sys_starts SEC(".maps");

// rq_starts: block requests of the target, by (device, sector), with their
// issue time (0 while only inserted into the scheduler queue).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct rq_key);
	__type(value, __u64);
} rq_starts SEC(".maps");

// Record layouts of the tracepoints (see their format files).
struct sys_enter_rec {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct sys_exit_rec {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

struct rq_rec { // block_rq_insert, block_rq_issue
	__u64 common;
	__u32 dev;
	__u32 pad;
	__u64 sector;
	__u32 nr_sector;
	__u32 bytes;
	__u16 ioprio;
	char rwbs[10];
};

struct rq_complete_rec {
	__u64 common;
	__u32 dev;
	__u32 pad;
	__u64 sector;
	__u32 nr_sector;
	__s32 error;
	__u16 ioprio;
	char rwbs[10];
};

static __always_inline __u32 log2_us(__u64 ns)
{
	__u64 us = ns / 1000;
	__u32 slot = 0;
	// Unrolled: the verifier needs a bounded loop.
#pragma unroll
	for (int i = 1; i < NSLOTS; i++) {
		if (us >= (1ULL << i))
			slot = i;
	}
	return slot;
}

static __always_inline void account(__u32 kind, __u64 ns, __u64 bytes, int failed)
{
	struct hist *h = bpf_map_lookup_elem(&hists, &kind);
	if (!h)
		return;
	__u32 slot = log2_us(ns);
	if (slot >= NSLOTS)
		slot = NSLOTS - 1;
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->bytes, bytes);
	__sync_fetch_and_add(&h->total_ns, ns);
	if (failed)
		__sync_fetch_and_add(&h->errors, 1);
	__sync_fetch_and_add(&h->slots[slot], 1);
}

static __always_inline int in_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline int sys_enter(__u32 kind)
{
	if (!in_target())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sys_start s = {.ts = bpf_ktime_get_ns(), .kind = kind};
	bpf_map_update_elem(&sys_starts, &tid, &s, BPF_ANY);
	return 0;
}

static __always_inline int sys_exit(__u32 kind, struct sys_exit_rec *rec, int counts_bytes)
{
	if (!in_target())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sys_start *s = bpf_map_lookup_elem(&sys_starts, &tid);
	if (!s)
		return 0; // entered before we attached
	__u64 ts = s->ts;
	__u32 k = s->kind;
	bpf_map_delete_elem(&sys_starts, &tid);
	if (k != kind)
		return 0;
	__s64 ret = rec->ret;
	__u64 bytes = (counts_bytes && ret > 0) ? (__u64)ret : 0;
	account(kind, bpf_ktime_get_ns() - ts, bytes, ret < 0);
	return 0;
}

#define SYSCALL(name, kind, counts_bytes)                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                         \
	int enter_##name(struct sys_enter_rec *rec) { return sys_enter(kind); } \
	SEC("tracepoint/syscalls/sys_exit_" #name)                          \
	int exit_##name(struct sys_exit_rec *rec) { return sys_exit(kind, rec, counts_bytes); }

SYSCALL(pread64, K_PREAD, 1)
SYSCALL(pwrite64, K_PWRITE, 1)
SYSCALL(fdatasync, K_FDATASYNC, 0)
SYSCALL(fsync, K_FSYNC, 0)
SYSCALL(sendfile64, K_SENDFILE, 1)
SYSCALL(splice, K_SPLICE, 1)

// A request belongs to the target when the target's thread inserted it
// into the queue or issued it to the driver: direct I/O, reads that miss
// the page cache and the writeback fdatasync does in the caller's context.
// Requests that kernel threads start (journal commits, background
// writeback) are not the process's and are not counted.
SEC("tracepoint/block/block_rq_insert")
int rq_insert(struct rq_rec *rec)
{
	if (!in_target())
		return 0;
	struct rq_key key = {.dev = rec->dev, .sector = rec->sector};
	__u64 zero = 0;
	bpf_map_update_elem(&rq_starts, &key, &zero, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_issue")
int rq_issue(struct rq_rec *rec)
{
	struct rq_key key = {.dev = rec->dev, .sector = rec->sector};
	if (!in_target() && !bpf_map_lookup_elem(&rq_starts, &key))
		return 0;
	// Issue to completion: the device's latency, as biolatency measures.
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&rq_starts, &key, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int rq_complete(struct rq_complete_rec *rec)
{
	struct rq_key key = {.dev = rec->dev, .sector = rec->sector};
	__u64 *start = bpf_map_lookup_elem(&rq_starts, &key);
	if (!start)
		return 0;
	__u64 ts = *start;
	bpf_map_delete_elem(&rq_starts, &key);
	if (ts == 0)
		return 0; // inserted but never seen issued
	// rwbs: [F]{R|W|D|E|N}[F][A][S][M]
	__u32 kind = K_BLOCK_OTHER;
	char c = rec->rwbs[0];
	if (c == 'F')
		c = rec->rwbs[1];
	if (c == 'R')
		kind = K_BLOCK_READ;
	else if (c == 'W')
		kind = K_BLOCK_WRITE;
	account(kind, bpf_ktime_get_ns() - ts, (__u64)rec->nr_sector << 9, rec->error != 0);
	return 0;
}
