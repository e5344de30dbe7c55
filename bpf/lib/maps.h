/* SPDX-License-Identifier: Apache-2.0 */
/* The maps every object shares: prefilter, metrics, events. Map definitions
 * are one header per plane (maps_lb.h, maps_ct.h, maps_node.h); pinned maps
 * use LIBBPF_PIN_BY_NAME: the loader sets the pin root (--bpffs-root), so
 * the map name is the pin file name. */
#ifndef TND_BPF_MAPS_H_
#define TND_BPF_MAPS_H_

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v4_key);
	__type(value, struct tnd_prefilter_val);
	__uint(max_entries, TND_PREFILTER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_pf_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v6_key);
	__type(value, struct tnd_prefilter_val);
	__uint(max_entries, TND_PREFILTER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_pf_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tnd_prefilter_state);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_pf_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tnd_metrics_val);
	__uint(max_entries, TND_METRICS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TND_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_events SEC(".maps");

#endif
