/* SPDX-License-Identifier: Apache-2.0 */
/* Prefilter: drop frames whose source address lies in a denied CIDR. A
 * family whose list is empty (tnd_pf_state) costs no trie lookup. */
#ifndef TND_BPF_PREFILTER_H_
#define TND_BPF_PREFILTER_H_

#include "maps.h"

/* Whether the family's deny list may hold entries (true without the state). */
static __always_inline bool tnd_prefilter_active(const int fam)
{
	__u32 zero = 0;
	struct tnd_prefilter_state *st = bpf_map_lookup_elem(&tnd_pf_state, &zero);

	return !st || (fam == 4 ? st->v4 : st->v6);
}

static __always_inline bool tnd_prefilter_denied_v4(__be32 saddr)
{
	struct tnd_lpm_v4_key key = { .prefixlen = 32 };

	if (!tnd_prefilter_active(4))
		return false;
	__builtin_memcpy(key.addr, &saddr, sizeof(saddr));
	return bpf_map_lookup_elem(&tnd_pf_v4, &key) != NULL;
}

static __always_inline bool tnd_prefilter_denied_v6(const struct in6_addr *saddr)
{
	struct tnd_lpm_v6_key key = { .prefixlen = 128 };

	if (!tnd_prefilter_active(6))
		return false;
	__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&tnd_pf_v6, &key) != NULL;
}

#endif
