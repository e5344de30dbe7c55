/* SPDX-License-Identifier: Apache-2.0 */
/* Rewrites of addresses and ports with their checksums, in the outer
 * packet and in the packet an ICMP error quotes. */
#ifndef TND_BPF_REWRITE_H_
#define TND_BPF_REWRITE_H_

#include "csum.h"

/* Replaces the IPv4 address at `addr_off` (saddr or daddr), fixing the IP
 * header checksum and, where this packet carries it, the L4 checksum. */
static __always_inline int tnd_rw_addr4(TND_CTX *ctx, const struct tnd_pkt *p, __u32 addr_off,
					__be32 from, __be32 to)
{
	bool udp = p->t.proto == IPPROTO_UDP;

	if (from == to)
		return 0;
#if TND_CTX_XDP
	if (p->has_l4 && tnd_csum_update(ctx, tnd_l4_csum_off(p), tnd_diff32(from, to), udp) < 0)
		return -1;
	if (tnd_csum_update(ctx, p->l3_off + 10, tnd_diff32(from, to), false) < 0)
		return -1;
#else
	if (p->has_l4 && bpf_l4_csum_replace(ctx, tnd_l4_csum_off(p), from, to,
					     BPF_F_PSEUDO_HDR | 4 | (udp ? BPF_F_MARK_MANGLED_0 : 0)) < 0)
		return -1;
	if (bpf_l3_csum_replace(ctx, p->l3_off + 10, from, to, 4) < 0)
		return -1;
#endif
	return ctx_store(ctx, addr_off, &to, 4);
}

static __always_inline int tnd_rw_addr6(TND_CTX *ctx, const struct tnd_pkt *p, __u32 addr_off,
					const __u8 *from_p, const __u8 *to_p)
{
	/* Only UDP's zero checksum means "none": a TCP (or ICMPv6) checksum
	 * that an earlier rewrite of this packet left at zero is a checksum. */
	bool udp = p->t.proto == IPPROTO_UDP;
	__u32 from[4], to[4];
	__s64 diff;

	__builtin_memcpy(from, from_p, 16);
	__builtin_memcpy(to, to_p, 16);
	if (from[0] == to[0] && from[1] == to[1] && from[2] == to[2] && from[3] == to[3])
		return 0;
	diff = bpf_csum_diff(from, 16, to, 16, 0);
	if (diff < 0)
		return -1;
#if TND_CTX_XDP
	if (p->has_l4 && tnd_csum_update(ctx, tnd_l4_csum_off(p), (__u32)diff, udp) < 0)
		return -1;
#else
	if (p->has_l4 && bpf_l4_csum_replace(ctx, tnd_l4_csum_off(p), 0, (__u32)diff,
					     BPF_F_PSEUDO_HDR | (udp ? BPF_F_MARK_MANGLED_0 : 0)) < 0)
		return -1;
#endif
	return ctx_store(ctx, addr_off, to, 16);
}

/* Replaces the L4 port at `port_off` (source or destination). */
static __always_inline int tnd_rw_port(TND_CTX *ctx, const struct tnd_pkt *p, __u32 port_off,
				       __be16 from, __be16 to)
{
	bool udp = p->t.proto == IPPROTO_UDP;

	if (from == to || !p->has_l4)
		return 0;
#if TND_CTX_XDP
	if (tnd_csum_update(ctx, tnd_l4_csum_off(p), tnd_diff16(from, to), udp) < 0)
		return -1;
#else
	if (bpf_l4_csum_replace(ctx, tnd_l4_csum_off(p), from, to,
				2 | (udp ? BPF_F_MARK_MANGLED_0 : 0)) < 0)
		return -1;
#endif
	return ctx_store(ctx, port_off, &to, 2);
}

/* Rewrites the source (src=true) or destination address and port. */
static __always_inline int tnd_rw(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, bool src,
				  const __u8 *from_addr, const __u8 *to_addr, __be16 from_port,
				  __be16 to_port)
{
	__u32 port_off = p->l4_off + (src ? 0 : 2);
	int r;

	if (fam == 4) {
		__be32 f, t;

		__builtin_memcpy(&f, from_addr, 4);
		__builtin_memcpy(&t, to_addr, 4);
		r = tnd_rw_addr4(ctx, p, p->l3_off + (src ? 12 : 16), f, t);
	} else {
		r = tnd_rw_addr6(ctx, p, p->l3_off + (src ? 8 : 24), from_addr, to_addr);
	}
	if (r < 0)
		return r;
	return tnd_rw_port(ctx, p, port_off, from_port, to_port);
}

/* Rewrites the packet inside an ICMP error: its source to nsrc:nsport and its
 * destination to ndst:ndport, fixing the inner IPv4 header checksum and the
 * ICMP checksum (which covers the inner bytes). The inner L4 checksum is left
 * alone: it is usually cut off, and nobody verifies it. */
static __always_inline int tnd_icmp_rw_inner(TND_CTX *ctx, const struct tnd_pkt *p, const int fam,
					     const __u8 *nsrc, __be16 nsport, const __u8 *ndst,
					     __be16 ndport)
{
	__u32 old[TND_ICMP_INNER_V6 / 4], neu[TND_ICMP_INNER_V6 / 4];
	__u32 len = fam == 4 ? TND_ICMP_INNER_V4 : TND_ICMP_INNER_V6;
	__be16 ports[2] = { nsport, ndport };
	__s64 diff;

	if (fam == 4) {
		struct iphdr ip;
		__be32 ns, nd;

		if (ctx_load(ctx, p->inner_off, old, TND_ICMP_INNER_V4) < 0)
			return -1;
		__builtin_memcpy(&ip, old, sizeof(ip));
		__builtin_memcpy(&ns, nsrc, 4);
		__builtin_memcpy(&nd, ndst, 4);
		ip.check = ~tnd_csum_fold((__u64)(__u16)~ip.check + tnd_diff32(ip.saddr, ns) +
					  tnd_diff32(ip.daddr, nd));
		ip.saddr = ns;
		ip.daddr = nd;
		__builtin_memcpy(neu, &ip, sizeof(ip));
		__builtin_memcpy(&neu[5], ports, 4);
		diff = bpf_csum_diff(old, TND_ICMP_INNER_V4, neu, TND_ICMP_INNER_V4, 0);
	} else {
		if (ctx_load(ctx, p->inner_off, old, TND_ICMP_INNER_V6) < 0)
			return -1;
		__builtin_memcpy(neu, old, 8);
		__builtin_memcpy(&neu[2], nsrc, 16);
		__builtin_memcpy(&neu[6], ndst, 16);
		__builtin_memcpy(&neu[10], ports, 4);
		diff = bpf_csum_diff(old, TND_ICMP_INNER_V6, neu, TND_ICMP_INNER_V6, 0);
	}
	if (diff < 0)
		return -1;
#if TND_CTX_XDP
	if (tnd_csum_update(ctx, p->l4_off + 2, (__u32)diff, false) < 0)
		return -1;
#else
	if (bpf_l4_csum_replace(ctx, p->l4_off + 2, 0, (__u32)diff, 0) < 0)
		return -1;
#endif
	return ctx_store(ctx, p->inner_off, neu, len);
}

/* Rewrites the outer source (src=true) or destination address only. */
static __always_inline int tnd_rw_addr(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, bool src,
				       const __u8 *from_addr, const __u8 *to_addr)
{
	if (fam == 4) {
		__be32 f, t;

		__builtin_memcpy(&f, from_addr, 4);
		__builtin_memcpy(&t, to_addr, 4);
		return tnd_rw_addr4(ctx, p, p->l3_off + (src ? 12 : 16), f, t);
	}
	return tnd_rw_addr6(ctx, p, p->l3_off + (src ? 8 : 24), from_addr, to_addr);
}

#endif
