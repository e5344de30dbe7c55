/* SPDX-License-Identifier: Apache-2.0 */
/* Service load balancing: maps and backend selection shared by the socket
 * programs (bpf_sock.c) and, later, the per-packet programs. */
#ifndef TND_BPF_LB_H_
#define TND_BPF_LB_H_

#include "maps.h"
#include "maps_lb.h"

/* Flow clocks: CLOCK_MONOTONIC (what the agent's GC compares with) at the
 * last timer tick. The coarse read is the timekeeper's stored value; the
 * fine one reads the clock source, which on a VM's paravirtual clock cost
 * about a tenth of an established flow's time here. A tick (1-10 ms) late
 * is nothing to lifetimes counted in seconds. */
static __always_inline __u64 tnd_now_ns(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline __u32 tnd_now_sec(void)
{
	return (__u32)(tnd_now_ns() / 1000000000ULL);
}

/* The caches' clock (TND_CACHE_TICK_SHIFT). */
static __always_inline __u32 tnd_cache_tick(void)
{
	return (__u32)(bpf_jiffies64() >> TND_CACHE_TICK_SHIFT);
}

/* A 64 -> 32 bit mix (the finaliser of murmur3's 64-bit variant). */
static __always_inline __u32 tnd_hash64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (__u32)h;
}

/* The backend a client is bound to by session affinity, if the binding is
 * fresh and the backend still in the set this frontend chooses from (the
 * local set for Local policies, else the cluster set); 0 otherwise. */
static __always_inline __u32 tnd_affinity_backend(const struct tnd_svc_val *svc, __u64 client)
{
	struct tnd_affinity_key k = { .client = client, .svc_id = svc->svc_id };
	struct tnd_affinity_val *v;
	struct tnd_backend *b;

	if (!(svc->flags & TND_SVC_F_AFFINITY))
		return 0;
	v = bpf_map_lookup_elem(&tnd_affinity, &k);
	if (!v || tnd_now_sec() - v->last_used > svc->affinity_timeout)
		return 0;
	b = tnd_table_lookup(&tnd_backends, &v->backend_id);
	if (!b || b->svc_id != svc->svc_id)
		return 0;
	if (!(b->flags & ((svc->flags & TND_SVC_F_LOCAL) ? TND_BACKEND_F_SEL_LOCAL : TND_BACKEND_F_SEL_CLUSTER)))
		return 0;
	return v->backend_id;
}

static __always_inline void tnd_affinity_record(const struct tnd_svc_val *svc, __u64 client,
						__u32 backend_id)
{
	struct tnd_affinity_key k = { .client = client, .svc_id = svc->svc_id };
	struct tnd_affinity_val v = { .backend_id = backend_id, .last_used = tnd_now_sec() };

	if (svc->flags & TND_SVC_F_AFFINITY)
		tnd_map_update(&tnd_affinity, &k, &v, BPF_ANY);
}

/* The backend at the flow's position in the service's Maglev table. */
static __always_inline __u32 tnd_maglev_backend(const struct tnd_svc_val *svc, __u32 flow_hash)
{
	__u32 sid = svc->svc_id;
	__u32 pos = flow_hash % TENDRIL_MAGLEV_TABLE_SIZE;
	__u32 *id;
	void *table;

	if (!(svc->flags & TND_SVC_F_MAGLEV))
		return 0;
	table = bpf_map_lookup_elem(&tnd_maglev, &sid);
	if (!table)
		return 0;
	id = bpf_map_lookup_elem(table, &pos);
	if (id && *id)
		tnd_explain_set(TND_XS_MAGLEV, maglev_pos, pos);
	return id ? *id : 0;
}

/* A uniformly random slot, 1..count. */
static __always_inline __u16 tnd_random_slot(const struct tnd_svc_val *svc)
{
	return (__u16)(bpf_get_prandom_u32() % svc->count) + 1;
}

/*
 * Traffic from this node and its pods (socket LB, bpf_lxc) to a frontend
 * with two scopes uses the frontend's internal entries: kube-proxy sends
 * in-cluster traffic to every endpoint whatever externalTrafficPolicy says.
 * `key` is the frontend's key and `scope` its scope field; on return they
 * name the entries the master returned belongs to (the external ones while
 * the internal entries are not written yet).
 */
static __always_inline struct tnd_svc_val *tnd_svc_internal(void *svc_map, void *key, __u8 *scope,
							     struct tnd_svc_val *svc)
{
	struct tnd_svc_val *in;

	if (!(svc->flags & TND_SVC_F_SCOPES))
		return svc;
	*scope = TND_SCOPE_INTERNAL;
	in = tnd_table_lookup(svc_map, key);
	if (in)
		return in;
	*scope = TND_SCOPE_EXTERNAL;
	return svc;
}

/*
 * Picks the backend for a new connection or flow of the service whose master
 * entry is `svc`. `svc_map`/`key` are that service's map and key (its `slot`
 * field is rewritten to read slots). Affinity first, then Maglev (on
 * `flow_hash`), then a slot: chosen by `flow_hash` with `by_hash` (socket LB:
 * the socket cookie, so every datagram of an unconnected UDP socket goes to
 * the same backend), else at random; if the service shrank between the
 * master and the slot read, slot 1.
 */
static __always_inline struct tnd_backend *tnd_select_backend(void *svc_map, void *key, __u16 *slot,
							      const struct tnd_svc_val *svc,
							      __u64 flow_hash, __u64 client,
							      bool by_hash, __u32 *backend_id)
{
	struct tnd_svc_val *sv;
	struct tnd_backend *be;
	__u32 id;

	id = tnd_affinity_backend(svc, client);
	if (id)
		tnd_explain_step(TND_XS_AFFINITY);
	if (!id)
		id = tnd_maglev_backend(svc, tnd_hash64(flow_hash));
	if (!id) {
		*slot = by_hash ? (__u16)(tnd_hash64(flow_hash) % svc->count) + 1 : tnd_random_slot(svc);
		tnd_explain_set(by_hash ? TND_XS_SLOT_HASH : TND_XS_SLOT_RANDOM, slot, *slot);
		sv = tnd_table_lookup(svc_map, key);
		id = sv ? sv->backend_id : 0;
	}
	be = id ? tnd_table_lookup(&tnd_backends, &id) : NULL;
	if (!be) {
		*slot = 1;
		tnd_explain_set(TND_XS_SLOT_FALLBACK, slot, 1);
		sv = tnd_table_lookup(svc_map, key);
		id = sv ? sv->backend_id : 0;
		be = id ? tnd_table_lookup(&tnd_backends, &id) : NULL;
	}
	if (be)
		tnd_affinity_record(svc, client, id);
	if (be)
		tnd_explain_set(TND_XS_SERVICE, backend_id, id);
	*backend_id = id;
	return be;
}

#endif
