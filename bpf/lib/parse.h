/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing: IPv4/IPv6, TCP/UDP, ICMP errors and the packet they quote,
 * fragments, DSR options; every length checked against the packet. */
#ifndef TND_BPF_PARSE_H_
#define TND_BPF_PARSE_H_

#include <linux/tcp.h>
#include <linux/udp.h>
#include "maps_ct.h"
#include "csum.h"


/* An ICMP error (destination unreachable, time exceeded, parameter problem;
 * ICMPv6 also packet too big) carrying a TCP or UDP packet: fills p->inner
 * with that packet's tuple. < 0 for any other ICMP message. */
static __always_inline int tnd_parse_icmp(TND_CTX *ctx, const int fam, struct tnd_pkt *p)
{
	__be16 ports[2];
	__u8 type;

	if (ctx_load(ctx, p->l4_off, &type, 1) < 0)
		return -1;
	if (fam == 4 ? (type != 3 && type != 11 && type != 12) : (type < 1 || type > 4))
		return -1;
	p->icmp_err = 1;
	/* The ICMPv6 checksum covers a pseudo header (outer addresses); the
	 * ICMPv4 one does not. */
	p->has_l4 = fam == 6;
	p->inner_off = p->l4_off + 8;
	/* What gets rewritten of the quoted packet must be inside this one. */
	if (p->inner_off + (fam == 4 ? TND_ICMP_INNER_V4 : TND_ICMP_INNER_V6) > p->l3_end)
		return -1;
	if (fam == 4) {
		struct iphdr ip;

		if (ctx_load(ctx, p->inner_off, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl != 5)
			return -1;
		if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
			return -1;
		p->inner.proto = ip.protocol;
		__builtin_memcpy(p->inner.saddr, &ip.saddr, 4);
		__builtin_memcpy(p->inner.daddr, &ip.daddr, 4);
		if (ctx_load(ctx, p->inner_off + sizeof(ip), ports, sizeof(ports)) < 0)
			return -1;
	} else {
		struct ipv6hdr ip6;

		if (ctx_load(ctx, p->inner_off, &ip6, sizeof(ip6)) < 0 || ip6.version != 6)
			return -1;
		if (ip6.nexthdr != IPPROTO_TCP && ip6.nexthdr != IPPROTO_UDP)
			return -1;
		p->inner.proto = ip6.nexthdr;
		__builtin_memcpy(p->inner.saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->inner.daddr, &ip6.daddr, 16);
		if (ctx_load(ctx, p->inner_off + sizeof(ip6), ports, sizeof(ports)) < 0)
			return -1;
	}
	p->inner.sport = ports[0];
	p->inner.dport = ports[1];
	p->parsed = 1;
	return 0;
}

#define TND_L4_HDR_TCP 14 /* ports, sequence, ack, data offset, flags */
#define TND_L4_HDR_UDP 8

/* The IPv4 header checksum is right (over the options too). A packet with a
 * wrong one is the stack's to drop, never ours to rewrite. */
static __always_inline int tnd_ipv4_csum_ok(TND_CTX *ctx, __u32 l3_off, const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 opt = ((__u32)ip->ihl - 5) * 4;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	/* Options, a 32-bit word at a time: a load of constant size (6.1's
	 * verifier cannot bound a length it computed). */
#pragma unroll
	for (__u32 i = 0; i < 10; i++) {
		__u16 o[2];

		if (i * 4 >= opt)
			break;
		if (ctx_load(ctx, l3_off + sizeof(*ip) + i * 4, o, 4) < 0)
			return 0;
		sum += o[0] + o[1];
	}
	return tnd_csum_fold(sum) == 0xffff;
}

/* The L4 header the rewrites touch (ports, flags, checksum) is inside the IP
 * packet, as is all of it for an unfragmented packet: a short first fragment
 * or a header that claims more than the packet holds is passed on, never
 * rewritten in the frame's padding. */
static __always_inline int tnd_l4_fits(TND_CTX *ctx, struct tnd_pkt *p, __u8 proto, bool whole, __u8 *h)
{
	__u32 room = p->l3_end > p->l4_off ? p->l3_end - p->l4_off : 0;

	/* One load brings what the checks and the parse need (ports, TCP data
	 * offset and flags, UDP length): a helper call is tens of ns. */
	if (proto == IPPROTO_TCP) {
		__u8 doff;

		if (room < 20 || ctx_load(ctx, p->l4_off, h, TND_L4_HDR_TCP) < 0)
			return 0;
		doff = h[12] >> 4;
		return doff >= 5 && (!whole || doff * 4 <= room);
	}
	if (proto == IPPROTO_UDP) {
		__u16 ulen;

		if (room < 8 || ctx_load(ctx, p->l4_off, h, TND_L4_HDR_UDP) < 0)
			return 0;
		ulen = (__u16)h[4] << 8 | h[5];
		return !whole || (ulen >= 8 && ulen <= room);
	}
	return room >= 8; /* ICMP: type, code, checksum and 4 more */
}

/* Where the IP packet of `total` bytes from l3_off ends; 0 when the frame
 * does not hold it. A zero length on a packet larger than 64 KiB is a BIG
 * TCP aggregate (the length is the skb's). */
static __always_inline __u32 tnd_l3_end(__u32 l3_off, __u32 total, __u32 len)
{
	if (total == 0 && !TND_CTX_XDP && len > l3_off + 0xffff)
		return len;
	return l3_off + total <= len ? l3_off + total : 0;
}

/* The IPv4 header `ip` (loaded from l3_off) is one the kernel would take:
 * its lengths fit the frame and its checksum is right. Sets p->l3_end. */
static __always_inline bool tnd_ipv4_ok(TND_CTX *ctx, __u32 l3_off, const struct iphdr *ip, struct tnd_pkt *p)
{
	if (ip->version != 4 || ip->ihl < 5)
		return false;
	p->l3_end = tnd_l3_end(l3_off, bpf_ntohs(ip->tot_len), p->len);
	return p->l3_end && p->l3_end >= l3_off + ip->ihl * 4 && tnd_ipv4_csum_ok(ctx, l3_off, ip);
}

/* The IPv4 part of tnd_parse: header checks, fragments, the DSR option.
 * < 0: not ours; 0: `p` is complete (a later fragment, an ICMP error);
 * 1: the L4 header is in `h`, protocol in *proto. */
static __always_inline int tnd_parse_v4(TND_CTX *ctx, __u32 l3_off, struct tnd_pkt *p, __u8 *h, __u8 *proto)
{
	struct iphdr ip;
	__u16 frag;

	if (ctx_load(ctx, l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	*proto = ip.protocol;
	if (*proto != IPPROTO_TCP && *proto != IPPROTO_UDP && *proto != IPPROTO_ICMP)
		return -1;
	if (!tnd_ipv4_ok(ctx, l3_off, &ip, p))
		return -1;
	__builtin_memcpy(p->t.saddr, &ip.saddr, 4);
	__builtin_memcpy(p->t.daddr, &ip.daddr, 4);
	p->l4_off = l3_off + ip.ihl * 4;
	p->t.proto = *proto;
	frag = bpf_ntohs(ip.frag_off);
	if (!(frag & TND_IP_OFFMASK) && !tnd_l4_fits(ctx, p, *proto, !(frag & TND_IP_MF), h))
		return -1;
	if (*proto == IPPROTO_ICMP)
		return (frag & (TND_IP_MF | TND_IP_OFFMASK)) ? -1 : tnd_parse_icmp(ctx, 4, p);
	if (ip.ihl == 5 + TND_DSR_OPT_LEN / 4) {
		struct tnd_dsr_opt o;

		if (ctx_load(ctx, l3_off + sizeof(ip), &o, sizeof(o)) == 0 &&
		    o.type == TND_DSR_OPT_TYPE && o.len == TND_DSR_OPT_LEN) {
			p->dsr = 1;
			__builtin_memcpy(p->dsr_addr, &o.addr, 4);
			p->dsr_port = o.port;
		}
	}
	if (frag & (TND_IP_MF | TND_IP_OFFMASK)) {
		struct tnd_frag_key fk = {
			.saddr = ip.saddr, .daddr = ip.daddr, .id = ip.id, .proto = *proto,
		};
		__be16 ports[2];

		if (frag & TND_IP_OFFMASK) {
			/* A later fragment: no L4 header; the ports are its first's. */
			struct tnd_frag_val *fv = bpf_map_lookup_elem(&tnd_frag_v4, &fk);

			if (!fv)
				return -1;
			p->has_l4 = 0;
			p->t.sport = fv->sport;
			p->t.dport = fv->dport;
			p->t.proto = *proto;
			p->parsed = 1;
			return 0;
		}
		__builtin_memcpy(ports, h, sizeof(ports));
		struct tnd_frag_val fv = { .sport = ports[0], .dport = ports[1] };

		tnd_map_update(&tnd_frag_v4, &fk, &fv, BPF_ANY);
	}
	return 1;
}

/* The IPv6 part of tnd_parse: the header and tendril's DSR extension
 * header; the same results as tnd_parse_v4. */
static __always_inline int tnd_parse_v6(TND_CTX *ctx, __u32 l3_off, struct tnd_pkt *p, __u8 *h, __u8 *proto)
{
	struct ipv6hdr ip6;

	if (ctx_load(ctx, l3_off, &ip6, sizeof(ip6)) < 0)
		return -1;
	if (ip6.version != 6)
		return -1;
	*proto = ip6.nexthdr;
	p->l4_off = l3_off + sizeof(ip6);
	p->l3_end = tnd_l3_end(p->l4_off, bpf_ntohs(ip6.payload_len), p->len);
	if (!p->l3_end)
		return -1;
	if (*proto == IPPROTO_DSTOPTS) {
		/* Only tendril's DSR header; other extension headers (and
		 * so fragments) are passed on. */
		struct tnd_dsr_opt6 o;

		if (ctx_load(ctx, p->l4_off, &o, sizeof(o)) < 0 || o.hdrlen != 2 ||
		    o.opt_type != TND_DSR_OPT6_TYPE || o.opt_len != 18)
			return -1;
		p->dsr = 1;
		__builtin_memcpy(p->dsr_addr, o.addr, 16);
		p->dsr_port = o.port;
		*proto = o.nexthdr;
		p->l4_off += sizeof(o);
	}
	if (*proto != IPPROTO_TCP && *proto != IPPROTO_UDP && *proto != IPPROTO_ICMPV6)
		return -1;
	if (!tnd_l4_fits(ctx, p, *proto, true, h))
		return -1;
	__builtin_memcpy(p->t.saddr, &ip6.saddr, 16);
	__builtin_memcpy(p->t.daddr, &ip6.daddr, 16);
	p->t.proto = *proto;
	if (*proto == IPPROTO_ICMPV6)
		return tnd_parse_icmp(ctx, 6, p);
	return 1;
}

/* Fills `p` for a TCP or UDP packet, or an ICMP error about one; < 0 for
 * anything else, and for anything the kernel would drop (bad header
 * checksum, lengths that do not add up, truncated): passed on untouched. */
static __noinline int tnd_parse(TND_CTX *ctx, __u32 l3_off, const int fam, struct tnd_pkt *p)
{
	__u8 h[16] = {}; /* the L4 header, as far as tnd_l4_fits loaded it */
	__be16 ports[2];
	__u8 proto = 0;
	int r;

	p->l3_off = l3_off;
	p->len = ctx_len(ctx);
	p->has_l4 = 1;
	r = fam == 4 ? tnd_parse_v4(ctx, l3_off, p, h, &proto) : tnd_parse_v6(ctx, l3_off, p, h, &proto);
	if (r <= 0)
		return r;
	p->t.proto = proto;
	__builtin_memcpy(ports, h, sizeof(ports));
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	if (proto == IPPROTO_TCP)
		p->tcp_flags = h[13];
	p->parsed = 1;
	return 0;
}

#endif
