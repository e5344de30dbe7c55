/* SPDX-License-Identifier: Apache-2.0 */
/* Rewrites of addresses and ports with their checksums, in the outer
 * packet and in the packet an ICMP error quotes. */
#ifndef TND_BPF_REWRITE_H_
#define TND_BPF_REWRITE_H_

#include "csum.h"

/* What a rewrite changes in the checksums, summed over every field it
 * changes (RFC 1624 differences): the IPv4 header's (l3), the L4 one's
 * pseudo-header part (addresses) and header part (ports). Applied once per
 * checksum: a NAT of both ends costs two inline updates in XDP and three
 * helper calls in tc, not one per field. */
struct tnd_rw_acc {
	__u64 l3, pseudo, l4;
	bool addr, port;
};

/* One 32-bit word of an address at byte `off` (a constant). */
static __always_inline void tnd_acc_word(struct tnd_rw_acc *a, const __u8 *from_p, const __u8 *to_p, int off,
					 bool l3)
{
	__u32 from, to;
	__u64 d;

	__builtin_memcpy(&from, from_p + off, 4);
	__builtin_memcpy(&to, to_p + off, 4);
	if (from == to)
		return;
	d = tnd_diff32(from, to);
	if (l3)
		a->l3 += d;
	a->pseudo += d;
	a->addr = true;
}

static __always_inline void tnd_acc_addr(struct tnd_rw_acc *a, const int fam, const __u8 *from_p, const __u8 *to_p)
{
	/* Opaque to clang: knowing a stack address's alignment, it would form
	 * the words' addresses with an OR, which the verifier refuses. */
	asm volatile("" : "+r"(from_p));
	asm volatile("" : "+r"(to_p));
	if (fam == 4) {
		tnd_acc_word(a, from_p, to_p, 0, true);
		return;
	}
	tnd_acc_word(a, from_p, to_p, 0, false);
	tnd_acc_word(a, from_p, to_p, 4, false);
	tnd_acc_word(a, from_p, to_p, 8, false);
	tnd_acc_word(a, from_p, to_p, 12, false);
}

static __always_inline void tnd_acc_port(struct tnd_rw_acc *a, __be16 from, __be16 to)
{
	if (from != to) {
		a->l4 += tnd_diff16(from, to);
		a->port = true;
	}
}

/* The checksums of what `a` changes. UDP's zero checksum ("none") stays. */
static __always_inline int tnd_csum_apply(TND_CTX *ctx, const struct tnd_pkt *p, const int fam,
					  const struct tnd_rw_acc *a)
{
	bool udp = p->t.proto == IPPROTO_UDP;

#if TND_CTX_XDP
	if (p->has_l4 && (a->addr || a->port) && tnd_csum_update(ctx, tnd_l4_csum_off(p), a->pseudo + a->l4, udp) < 0)
		return -1;
	if (fam == 4 && a->addr && tnd_csum_update(ctx, p->l3_off + 10, a->l3, false) < 0)
		return -1;
#else
	/* The kernel keeps a checksum still to be completed (CHECKSUM_PARTIAL)
	 * right: it takes the pseudo-header part only. */
	__u64 mm = udp ? BPF_F_MARK_MANGLED_0 : 0;

	if (p->has_l4 && a->addr &&
	    bpf_l4_csum_replace(ctx, tnd_l4_csum_off(p), 0, tnd_csum_fold(a->pseudo), BPF_F_PSEUDO_HDR | mm) < 0)
		return -1;
	if (p->has_l4 && a->port && bpf_l4_csum_replace(ctx, tnd_l4_csum_off(p), 0, tnd_csum_fold(a->l4), mm) < 0)
		return -1;
	/* The IPv4 header's own checksum inline, as in XDP: the helper would
	 * do the same arithmetic and nothing more (the header sums to the same
	 * value whatever it holds, so a CHECKSUM_COMPLETE sum is unchanged). */
	if (fam == 4 && a->addr && tnd_csum_update(ctx, p->l3_off + 10, a->l3, false) < 0)
		return -1;
#endif
	return 0;
}

/* Stores the source (src=true) or destination address. */
static __always_inline int tnd_store_addr(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, bool src,
					  const __u8 *addr)
{
	return fam == 4 ? ctx_store(ctx, p->l3_off + (src ? 12 : 16), addr, 4)
			: ctx_store(ctx, p->l3_off + (src ? 8 : 24), addr, 16);
}

/* Stores the source (src=true) or destination address and port (the port
 * only where the packet carries its L4 header). */
static __always_inline int tnd_store_end(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, bool src,
					 const __u8 *addr, __be16 port)
{
	int r = tnd_store_addr(ctx, p, fam, src, addr);

	if (r < 0 || !p->has_l4)
		return r;
	return ctx_store(ctx, p->l4_off + (src ? 0 : 2), &port, 2);
}

/* Rewrites the source (src=true) or destination address and port. */
static __always_inline int tnd_rw(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, bool src,
				  const __u8 *from_addr, const __u8 *to_addr, __be16 from_port,
				  __be16 to_port)
{
	struct tnd_rw_acc a = {};

	tnd_acc_addr(&a, fam, from_addr, to_addr);
	if (p->has_l4)
		tnd_acc_port(&a, from_port, to_port);
	if (!a.addr && !a.port)
		return 0;
	if (tnd_csum_apply(ctx, p, fam, &a) < 0)
		return -1;
	return tnd_store_end(ctx, p, fam, src, to_addr, to_port);
}

/* A NAT of the packet as parsed (p->t): the destination to daddr:dport
 * and, when `snat`, the source to saddr:sport; each checksum once. Both
 * pointers are always valid (6.1's verifier does not tie a NULL pointer to
 * the flag that guards it). */
static __always_inline int tnd_rw_nat(TND_CTX *ctx, const struct tnd_pkt *p, const int fam, const __u8 *daddr,
				      __be16 dport, bool snat, const __u8 *saddr, __be16 sport)
{
	struct tnd_rw_acc a = {};

	tnd_acc_addr(&a, fam, p->t.daddr, daddr);
	if (p->has_l4)
		tnd_acc_port(&a, p->t.dport, dport);
	if (snat) {
		tnd_acc_addr(&a, fam, p->t.saddr, saddr);
		if (p->has_l4)
			tnd_acc_port(&a, p->t.sport, sport);
	}
	if (!a.addr && !a.port)
		return 0;
	if (tnd_csum_apply(ctx, p, fam, &a) < 0 || tnd_store_end(ctx, p, fam, false, daddr, dport) < 0)
		return -1;
	return snat ? tnd_store_end(ctx, p, fam, true, saddr, sport) : 0;
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
	struct tnd_rw_acc a = {};

	tnd_acc_addr(&a, fam, from_addr, to_addr);
	if (!a.addr)
		return 0;
	if (tnd_csum_apply(ctx, p, fam, &a) < 0)
		return -1;
	return tnd_store_addr(ctx, p, fam, src, to_addr);
}

#endif
