/* SPDX-License-Identifier: Apache-2.0 */
/* Load-balancing maps (layouts in maps/tendril_maps.h): services, backends,
 * reverse NAT, affinity, Maglev tables, source ranges. Pinned by name. */
#ifndef TND_BPF_MAPS_LB_H_
#define TND_BPF_MAPS_LB_H_

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tnd_svc4_key);
	__type(value, struct tnd_svc_val);
	__uint(max_entries, TND_SVC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_svc_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tnd_svc6_key);
	__type(value, struct tnd_svc_val);
	__uint(max_entries, TND_SVC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_svc_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tnd_backend);
	__uint(max_entries, TND_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tnd_revnat);
	__uint(max_entries, TND_REVNAT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_affinity_key);
	__type(value, struct tnd_affinity_val);
	__uint(max_entries, TND_AFFINITY_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_affinity SEC(".maps");

struct tnd_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TENDRIL_MAGLEV_TABLE_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

/* Service id -> that service's Maglev lookup table (backend ids). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, TND_MAGLEV_SVC_MAX);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct tnd_maglev_inner);
} tnd_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v4_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v6_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v6 SEC(".maps");

#endif
