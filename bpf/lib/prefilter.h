/* SPDX-License-Identifier: Apache-2.0 */
/* Prefilter: drop frames whose source address lies in a denied CIDR. */
#ifndef TND_BPF_PREFILTER_H_
#define TND_BPF_PREFILTER_H_

#include "maps.h"

static __always_inline bool tnd_prefilter_denied_v4(__be32 saddr)
{
	struct tnd_lpm_v4_key key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, &saddr, sizeof(saddr));
	return bpf_map_lookup_elem(&tnd_pf_v4, &key) != NULL;
}

static __always_inline bool tnd_prefilter_denied_v6(const struct in6_addr *saddr)
{
	struct tnd_lpm_v6_key key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&tnd_pf_v6, &key) != NULL;
}

#endif
