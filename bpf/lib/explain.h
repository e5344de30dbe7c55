/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dry run, for `tendril explain`: the same objects, loaded beside the
 * node's with the pinned maps reused and tnd_dry_run set in .rodata, run a
 * synthetic packet through the production code and change no map:
 *
 *   - state looked up to be written in place (conntrack, NAT, affinity,
 *     the reject window) is read into a per-CPU shadow copy, so whatever
 *     the path writes lands there (tnd_state_lookup);
 *   - map updates and deletes are not made (tnd_map_update answers as the
 *     update would: BPF_NOEXIST fails on an existing key) and counters,
 *     events and the fragment map are left alone.
 *
 * The node's programs are loaded with tnd_dry_run = 0 in frozen .rodata:
 * the verifier knows the value and drops every dry-run branch, so none of
 * this costs them an instruction.
 */
#ifndef TND_BPF_EXPLAIN_H_
#define TND_BPF_EXPLAIN_H_

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Set by the explain loader only. */
const volatile __u8 tnd_dry_run = 0;

#define TND_SHADOW_SLOTS 8
#define TND_SHADOW_SIZE 256

struct tnd_shadow {
	__u8 bytes[TND_SHADOW_SIZE];
};

/* Slot 0 holds the next slot to use (rotating over 1..TND_SHADOW_SLOTS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TND_SHADOW_SLOTS + 1);
	__type(key, __u32);
	__type(value, struct tnd_shadow);
} tnd_shadow SEC(".maps");

static __always_inline void *tnd_shadow_copy(const void *v, __u32 size)
{
	__u32 zero = 0, slot;
	__u32 *next;
	void *dst;

	if (!tnd_dry_run || !v)
		return (void *)v;
	next = bpf_map_lookup_elem(&tnd_shadow, &zero);
	if (!next)
		return (void *)v;
	slot = (*next % TND_SHADOW_SLOTS) + 1;
	*next += 1;
	dst = bpf_map_lookup_elem(&tnd_shadow, &slot);
	if (!dst)
		return NULL; /* never (an array); not the real value either */
	__builtin_memcpy(dst, v, size);
	return dst;
}

/* A state map's value to be read and maybe written in place. */
#define tnd_state_lookup(map, key, type)                                                          \
	({                                                                                         \
		_Static_assert(sizeof(type) <= TND_SHADOW_SIZE, "shadow slot too small");          \
		(type *)tnd_shadow_copy(bpf_map_lookup_elem((map), (key)), sizeof(type));         \
	})

/* An update as the kernel would answer it, made only outside a dry run. */
static __always_inline long tnd_map_update(void *map, const void *key, const void *val, __u64 flags)
{
	if (!tnd_dry_run)
		return bpf_map_update_elem(map, key, val, flags);
	if (flags == BPF_NOEXIST && bpf_map_lookup_elem(map, key))
		return -17; /* -EEXIST */
	return 0;
}

static __always_inline long tnd_map_delete(void *map, const void *key)
{
	if (!tnd_dry_run)
		return bpf_map_delete_elem(map, key);
	return bpf_map_lookup_elem(map, key) ? 0 : -2; /* -ENOENT */
}

/* An event record, or none in a dry run. */
static __always_inline void *tnd_event_reserve(void *ringbuf, __u64 size)
{
	if (tnd_dry_run)
		return NULL;
	return bpf_ringbuf_reserve(ringbuf, size, 0);
}

/* The record of a dry run (maps/tendril_maps_explain.h), in a data section
 * of its own (one array map, ".data.explain", the object's own): no lookup
 * and no stack, so the deepest call chains stay within 512 bytes. The
 * loader zeroes it before a run and reads it after; a dry-run object is run
 * by one process, one frame at a time, and never attached. */
struct tnd_explain tnd_xrec SEC(".data.explain");

static __always_inline struct tnd_explain *tnd_explain_rec(void)
{
	return tnd_dry_run ? &tnd_xrec : NULL;
}

/* A step taken (TND_XS_*). */
static __always_inline void tnd_explain_step(__u32 step)
{
	struct tnd_explain *x = tnd_explain_rec();

	if (x)
		x->steps |= 1ULL << step;
}

/* A field of the record set to `val`. */
#define tnd_explain_field(field, val)                        \
	do {                                                 \
		struct tnd_explain *x_ = tnd_explain_rec();  \
		if (x_)                                      \
			x_->field = (val);                   \
	} while (0)

/* A step with its value: `field` of the record set to `val`. */
#define tnd_explain_set(step, field, val)                    \
	do {                                                 \
		struct tnd_explain *x_ = tnd_explain_rec();  \
		if (x_) {                                    \
			x_->steps |= 1ULL << (step);         \
			x_->field = (val);                   \
		}                                            \
	} while (0)

/* Where a redirect sends the packet (TND_XR_*). */
static __always_inline void tnd_explain_redirect(__u32 ifindex, __u8 how)
{
	struct tnd_explain *x = tnd_explain_rec();

	if (x) {
		x->redirect_ifindex = ifindex;
		x->redirect_how = how;
	}
}

/* A program of the path starts (TND_XP_*): entry programs and tail calls. */
static __always_inline void tnd_explain_prog(__u8 prog)
{
	struct tnd_explain *x = tnd_explain_rec();
	__u32 n;

	if (!x)
		return;
	n = x->nprogs;
	if (n < TND_EXPLAIN_MAX_PROGS) {
		x->progs[n] = prog;
		x->nprogs = n + 1;
	}
}

#endif
