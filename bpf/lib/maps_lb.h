/* SPDX-License-Identifier: Apache-2.0 */
/* Load-balancing maps (layouts in maps/tendril_maps.h): services, backends,
 * reverse NAT, affinity, Maglev tables, source ranges. Pinned by name. */
#ifndef TND_BPF_MAPS_LB_H_
#define TND_BPF_MAPS_LB_H_

#include "common.h"

/*
 * Tables of declared state that grow with it: services, backends, reverse
 * NAT. Each is a hash the agent creates at the size what is declared needs
 * and replaces by a larger copy when it fills (and by a smaller one at a
 * restart when it is mostly empty); the programs reach it through a
 * one-slot array of maps, so a replacement is one atomic update of that
 * slot and needs no program reload. The inner definition is only the
 * template the kernel checks replacements against (type, key and value
 * size, flags); its max_entries is not part of that check. Sizes, not
 * types: clang leaves the key and value structs of a nested definition
 * without BTF.
 */
#define TND_GROWABLE(name, ktype, vtype)                  \
	struct name##_table {                             \
		__uint(type, BPF_MAP_TYPE_HASH);          \
		__uint(key_size, sizeof(ktype));          \
		__uint(value_size, sizeof(vtype));        \
		__uint(max_entries, 1);                   \
		__uint(map_flags, BPF_F_NO_PREALLOC);     \
	};                                                \
	struct {                                          \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); \
		__uint(max_entries, 1);                   \
		__type(key, __u32);                       \
		__uint(pinning, LIBBPF_PIN_BY_NAME);      \
		__array(values, struct name##_table);     \
	} name SEC(".maps")

TND_GROWABLE(tnd_svc_v4, struct tnd_svc4_key, struct tnd_svc_val);
TND_GROWABLE(tnd_svc_v6, struct tnd_svc6_key, struct tnd_svc_val);
TND_GROWABLE(tnd_backends, __u32, struct tnd_backend);
TND_GROWABLE(tnd_revnat, __u32, struct tnd_revnat);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tnd_svc_ports);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_svc_ports SEC(".maps");

/* Whether some service frontend uses `port` (network order): the cheap
 * "is this mine" before any service lookup. */
static __always_inline bool tnd_svc_port_used(__be16 port)
{
	__u32 zero = 0;
	struct tnd_svc_ports *m = bpf_map_lookup_elem(&tnd_svc_ports, &zero);
	__u16 p = bpf_ntohs(port);

	if (!m || !m->valid)
		return true;
	return (m->bits[(p >> 6) & 1023] >> (p & 63)) & 1;
}

/* A lookup in a growable table (`outer` is the array of maps); NULL while
 * the agent has not created the table yet, as for a key not in it. */
static __always_inline void *tnd_table_lookup(void *outer, const void *key)
{
	__u32 zero = 0;
	void *table = bpf_map_lookup_elem(outer, &zero);

	return table ? bpf_map_lookup_elem(table, key) : NULL;
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_affinity_key);
	__type(value, struct tnd_affinity_val);
	__uint(max_entries, TND_AFFINITY_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_affinity SEC(".maps");

struct tnd_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, TND_MAGLEV_INNER_FLAGS);
	__uint(max_entries, TENDRIL_MAGLEV_TABLE_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

/* Service id -> that service's Maglev lookup table (backend ids). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, TND_MAGLEV_SVC_MAX_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct tnd_maglev_inner);
} tnd_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v4_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v6_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v6 SEC(".maps");

#endif
