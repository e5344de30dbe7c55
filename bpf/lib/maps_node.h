/* SPDX-License-Identifier: Apache-2.0 */
/* The node's tables: native devices, local endpoints, masquerade
 * exemptions. The agent writes them (datapath/node_maps.cc, endpoints). */
#ifndef TND_BPF_MAPS_NODE_H_
#define TND_BPF_MAPS_NODE_H_

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tnd_device);
	__uint(max_entries, TND_DEVICES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* declared state: memory follows use */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tnd_ep_key);
	__type(value, struct tnd_endpoint);
	__uint(max_entries, TND_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v4_key);
	__type(value, struct tnd_nomasq_val);
	__uint(max_entries, TND_NOMASQ_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nomasq_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v6_key);
	__type(value, struct tnd_nomasq_val);
	__uint(max_entries, TND_NOMASQ_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nomasq_v6 SEC(".maps");

/* Next hops shared by new flows (tendril_maps.h: tnd_hop_key); bpf/lib/fib.h
 * alone reads and writes it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_hop_key);
	__type(value, struct tnd_hop_val);
	__uint(max_entries, TND_HOPS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_hops SEC(".maps");

#endif
