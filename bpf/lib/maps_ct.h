/* SPDX-License-Identifier: Apache-2.0 */
/* Per-packet flow state: conntrack, NAT mappings, IPv4 fragments. */
#ifndef TND_BPF_MAPS_CT_H_
#define TND_BPF_MAPS_CT_H_

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_ct_val);
	__uint(max_entries, TND_CT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_ct_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_ct_val);
	__uint(max_entries, TND_CT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_ct_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_nat_key);
	__type(value, struct tnd_nat_val);
	__uint(max_entries, TND_NAT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nat_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_nat_key);
	__type(value, struct tnd_nat_val);
	__uint(max_entries, TND_NAT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nat_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_frag_key);
	__type(value, struct tnd_frag_val);
	__uint(max_entries, TND_FRAG_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_frag_v4 SEC(".maps");

#endif
