/* SPDX-License-Identifier: Apache-2.0 */
/* Checksums: folding, incremental updates (RFC 1624) and where a packet's
 * L4 checksum is. */
#ifndef TND_BPF_CSUM_H_
#define TND_BPF_CSUM_H_

#include "scratch.h"

static __always_inline __u16 tnd_csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 incremental update of the checksum at `off` by a one's complement
 * difference `diff` (sum of the old words complemented and the new words).
 * `udp`: a zero checksum means "none" and stays zero; a result of zero is
 * sent as 0xffff. */
static __always_inline int tnd_csum_update(TND_CTX *ctx, __u32 off, __u64 diff, bool udp)
{
	__u16 check;

	if (ctx_load(ctx, off, &check, 2) < 0)
		return -1;
	if (udp && check == 0)
		return 0;
	check = ~tnd_csum_fold((__u64)(__u16)~check + diff);
	if (udp && check == 0)
		check = 0xffff;
	return ctx_store(ctx, off, &check, 2);
}

static __always_inline __u64 tnd_diff32(__be32 from, __be32 to)
{
	__u32 nf = ~from;

	return (__u64)(nf & 0xffff) + (nf >> 16) + (to & 0xffff) + (to >> 16);
}

static __always_inline __u64 tnd_diff16(__be16 from, __be16 to)
{
	return (__u64)(__u16)~from + to;
}

static __always_inline __u32 tnd_l4_csum_off(const struct tnd_pkt *p)
{
	return p->l4_off + (p->t.proto == IPPROTO_TCP ? 16 : p->t.proto == IPPROTO_UDP ? 6 : 2);
}

#endif
