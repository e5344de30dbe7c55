/* SPDX-License-Identifier: Apache-2.0 */
/* Lookups of per-packet state: conntrack and NAT maps by family, flow
 * hashes, source ranges, local endpoints. */
#ifndef TND_BPF_LOOKUP_H_
#define TND_BPF_LOOKUP_H_

#include "maps_ct.h"
#include "maps_lb.h"
#include "maps_node.h"
#include "scratch.h"

static __always_inline void *tnd_ct_map(const int fam)
{
	return fam == 4 ? (void *)&tnd_ct_v4 : (void *)&tnd_ct_v6;
}

static __always_inline void *tnd_nat_map(const int fam)
{
	return fam == 4 ? (void *)&tnd_nat_v4 : (void *)&tnd_nat_v6;
}

static __always_inline bool tnd_addr_eq(const __u8 *a, const __u8 *b, const int fam)
{
	__u32 x[4] = {}, y[4] = {};

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	if (fam == 4)
		return x[0] == y[0];
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* The client, for session affinity: its address (bit 63 keeps these apart
 * from the netns cookies that socket LB uses). */
static __always_inline __u64 tnd_client_id(const __u8 *addr, const int fam)
{
	__u32 w[4];

	__builtin_memcpy(w, addr, 16);
	if (fam == 4)
		return (1ULL << 63) | w[0];
	return (1ULL << 63) | ((((__u64)(w[0] ^ w[1]) << 32) | (w[2] ^ w[3])) & ~(1ULL << 63));
}

static __always_inline __u64 tnd_flow_hash(const struct tnd_ct_key *t)
{
	__u32 s[4], d[4];

	__builtin_memcpy(s, t->saddr, 16);
	__builtin_memcpy(d, t->daddr, 16);
	__u64 a = ((__u64)(s[0] ^ s[1] ^ s[2] ^ s[3]) << 32) | (d[0] ^ d[1] ^ d[2] ^ d[3]);
	__u64 b = ((__u64)t->sport << 24) | ((__u64)t->dport << 8) | t->proto;

	return a ^ tnd_hash64(b);
}

static __always_inline bool tnd_srcrange_ok(const int fam, __u32 svc_id, const __u8 *saddr)
{
	if (fam == 4) {
		struct tnd_srange_v4_key k = { .prefixlen = 64, .svc_id = bpf_htonl(svc_id) };

		__builtin_memcpy(k.addr, saddr, 4);
		return bpf_map_lookup_elem(&tnd_srng_v4, &k) != NULL;
	}
	struct tnd_srange_v6_key k = { .prefixlen = 160, .svc_id = bpf_htonl(svc_id) };

	__builtin_memcpy(k.addr, saddr, 16);
	return bpf_map_lookup_elem(&tnd_srng_v6, &k) != NULL;
}

static __always_inline struct tnd_endpoint *tnd_ep_lookup(const __u8 *addr, const int fam)
{
	struct tnd_ep_key k = { .family = fam };

	/* IPv4 addresses are held in 16 bytes, the rest zero. */
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&tnd_endpoints, &k);
}

#endif
