/* SPDX-License-Identifier: Apache-2.0 */
/* Prefilter: drop frames whose source address lies in a denied CIDR. The
 * first level (tnd_pf_state, by the address's first 16 bits) answers most
 * packets with one array access; the trie is asked only where entries longer
 * than 16 bits start. */
#ifndef TND_BPF_PREFILTER_H_
#define TND_BPF_PREFILTER_H_

#include "maps.h"

/* The first level's answer for an address whose first two bytes are hi, lo
 * (TND_PF_TRIE without the map: the trie decides). */
static __always_inline __u8 tnd_prefilter_bucket(const int fam, __u8 hi, __u8 lo)
{
	__u64 i = (__u32)hi << 8 | lo;
	__u32 zero = 0;
	struct tnd_prefilter_state *st = bpf_map_lookup_elem(&tnd_pf_state, &zero);

	if (!st)
		return TND_PF_TRIE;
	/* Bound the very register that indexes: clang may build the index with
	 * a byte swap, whose result 6.1's verifier does not bound. */
	asm volatile("%0 &= %1" : "+r"(i) : "i"(TND_PF_BUCKETS - 1));
	return fam == 4 ? st->v4[i] : st->v6[i];
}

static __always_inline bool tnd_prefilter_denied_v4(__be32 saddr)
{
	struct tnd_lpm_v4_key key = { .prefixlen = 32 };
	__u8 b;

	__builtin_memcpy(key.addr, &saddr, sizeof(saddr));
	b = tnd_prefilter_bucket(4, key.addr[0], key.addr[1]);
	if (b != TND_PF_TRIE)
		return b == TND_PF_DENY;
	return bpf_map_lookup_elem(&tnd_pf_v4, &key) != NULL;
}

static __always_inline bool tnd_prefilter_denied_v6(const struct in6_addr *saddr)
{
	struct tnd_lpm_v6_key key = { .prefixlen = 128 };
	__u8 b;

	__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
	b = tnd_prefilter_bucket(6, key.addr[0], key.addr[1]);
	if (b != TND_PF_TRIE)
		return b == TND_PF_DENY;
	return bpf_map_lookup_elem(&tnd_pf_v6, &key) != NULL;
}

#endif
