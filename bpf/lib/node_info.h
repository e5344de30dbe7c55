/* SPDX-License-Identifier: Apache-2.0 */
/* This node's facts (one entry the agent writes): the host namespace's
 * cookie (socket LB) and the generation that cached flow paths check. */
#ifndef TND_BPF_NODE_INFO_H_
#define TND_BPF_NODE_INFO_H_

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tnd_node_info);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_node SEC(".maps");

static __always_inline struct tnd_node_info *tnd_node_get(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&tnd_node, &k);
}

#endif
