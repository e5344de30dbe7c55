/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-packet service load balancing (NodePort, ExternalIP, LoadBalancer),
 * written once for both hooks: the including file defines TND_CTX_XDP to 1
 * (struct xdp_md, bpf_xdp.c) or 0 (struct __sk_buff, bpf_host.c). Only the
 * byte and checksum primitives below differ; the decisions are the same code,
 * so a flow gets the same result through XDP or through tc.
 *
 * Ingress, in order:
 *   1. reply to a flow this node SNATed (tnd_nat_* "in" entry): restore the
 *      client as destination and the frontend as source, forward to it;
 *   2. first packets of a DSR flow from another node (IPv4 option): learn the
 *      frontend the local backend's replies must come from;
 *   3. packet to an external frontend: source ranges, then the flow's backend
 *      from conntrack or a new choice (affinity, Maglev, random slot); DNAT,
 *      and for a remote backend SNAT to the node (default) or DSR; forward
 *      through the FIB without the upper stack.
 * Egress (tc only): replies of local backends (and DSR backends) leave with
 * the frontend as source.
 *
 * Every decision is taken (lookups, FIB) before anything is written, so a
 * packet that XDP hands on to tc arrives unmodified and tc repeats the work.
 */
#ifndef TND_BPF_NODEPORT_H_
#define TND_BPF_NODEPORT_H_

#include <linux/tcp.h>
#include <linux/udp.h>

#include "conntrack.h"
#include "metrics.h"

#ifndef TND_CTX_XDP
#error "define TND_CTX_XDP to 1 (XDP) or 0 (tc) before including nodeport.h"
#endif

#if TND_CTX_XDP
#define TND_CTX struct xdp_md
#else
#define TND_CTX struct __sk_buff
#endif

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define TND_ICMP_INNER_V4 24 /* inner IPv4 header (no options) + ports */
#define TND_ICMP_INNER_V6 44 /* inner IPv6 header + ports */

#define TND_IP_MF 0x2000
#define TND_IP_OFFMASK 0x1fff

enum tnd_verdict {
	TND_PASS = 0,     /* not ours, or handed on (XDP -> tc) unmodified */
	TND_DROP = 1,     /* fwd->reason says why */
	TND_REDIRECT = 2, /* out of fwd->ifindex (MACs written when have_mac) */
};

struct tnd_fwd {
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
	__u8 have_mac;
	__u8 reason;
	__u8 peer;   /* tc: into a local endpoint's namespace (bpf_redirect_peer) */
	__u8 point;  /* enum tnd_obs_point, for events */
	__u32 src_ep; /* endpoint the packet came from, for events */
	__u32 dst_ep; /* endpoint it is routed to */
	__u32 obs_ifindex; /* where the packet was seen, for events */
};

/* A service flow being set up: its backend, SNAT address and flags. */
struct tnd_lb_work {
	__u8 be_addr[16];
	__u8 node[16];
	__u64 hash;
	__be16 be_port;
	__u16 svc_id;
	__u32 bid;
	__u8 flags; /* TND_CT_F_* of a new flow */
	__u8 pad[7];
};

/* A parsed packet: the tuple as on the wire and where its headers are. */
struct tnd_pkt {
	struct tnd_ct_key t;
	__u32 l3_off;
	__u32 l4_off;
	__u32 len;
	__u32 l3_end;  /* where the IP packet ends (the frame may carry padding) */
	__u8 tcp_flags;
	__u8 has_l4;   /* the L4 header is in this packet (not a later fragment) */
	__u8 dsr;      /* a DSR option (IPv4) or header (IPv6) was found (dsr_* valid) */
	__u8 icmp_err; /* an ICMP(v6) error: `inner` is the packet it is about */
	__u8 dsr_addr[16];
	__be16 dsr_port;
	__u32 inner_off;
	struct tnd_ct_key inner;
	__u8 parsed;   /* t is valid (TCP, UDP or an ICMP error about them) */
	__u8 pad[7];
};

/* The packet being worked on and the forwarding result live in a per-CPU
 * scratch map rather than on the stack, so the stages below (separate BPF
 * functions) each have the 512-byte stack to themselves. Slot 0: ingress,
 * slot 1: egress. XDP and tc run to completion on their CPU, and each object
 * has its own (unpinned) scratch map. */
struct tnd_lb_scratch {
	struct tnd_pkt p;
	struct tnd_fwd fwd;
	struct tnd_lb_work w; /* the service stage's (ingress) or masquerade's (egress) work area */
	struct tnd_ct_key orig; /* host routing: the tuple as it arrived, for traces */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tnd_lb_scratch);
} tnd_lb_scratch SEC(".maps");

static __always_inline struct tnd_lb_scratch *tnd_scratch(__u32 slot)
{
	struct tnd_lb_scratch *s = bpf_map_lookup_elem(&tnd_lb_scratch, &slot);

	if (s)
		__builtin_memset(s, 0, sizeof(*s));
	return s;
}

/* ---- context primitives ---------------------------------------------------- */

static __always_inline __u32 ctx_len(TND_CTX *ctx)
{
#if TND_CTX_XDP
	return (__u32)(ctx->data_end - ctx->data);
#else
	return ctx->len;
#endif
}

static __always_inline __u32 ctx_in_ifindex(TND_CTX *ctx)
{
#if TND_CTX_XDP
	return ctx->ingress_ifindex;
#else
	return ctx->ingress_ifindex ? ctx->ingress_ifindex : ctx->ifindex;
#endif
}

static __always_inline int ctx_load(TND_CTX *ctx, __u32 off, void *to, __u32 len)
{
#if TND_CTX_XDP
	return bpf_xdp_load_bytes(ctx, off, to, len);
#else
	return bpf_skb_load_bytes(ctx, off, to, len);
#endif
}

static __always_inline int ctx_store(TND_CTX *ctx, __u32 off, const void *from, __u32 len)
{
#if TND_CTX_XDP
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
#else
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
#endif
}

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

/* ---- parsing --------------------------------------------------------------- */

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

/* Fills `p` for a TCP or UDP packet, or an ICMP error about one; < 0 for
 * anything else, and for anything the kernel would drop (bad header
 * checksum, lengths that do not add up, truncated): passed on untouched. */
static __noinline int tnd_parse(TND_CTX *ctx, __u32 l3_off, const int fam, struct tnd_pkt *p)
{
	__u8 h[16] = {}; /* the L4 header, as far as tnd_l4_fits loaded it */
	__be16 ports[2];
	__u8 proto;

	p->l3_off = l3_off;
	p->len = ctx_len(ctx);
	p->has_l4 = 1;
	if (fam == 4) {
		struct iphdr ip;
		__u16 frag;

		if (ctx_load(ctx, l3_off, &ip, sizeof(ip)) < 0)
			return -1;
		proto = ip.protocol;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMP)
			return -1;
		if (!tnd_ipv4_ok(ctx, l3_off, &ip, p))
			return -1;
		__builtin_memcpy(p->t.saddr, &ip.saddr, 4);
		__builtin_memcpy(p->t.daddr, &ip.daddr, 4);
		p->l4_off = l3_off + ip.ihl * 4;
		p->t.proto = proto;
		frag = bpf_ntohs(ip.frag_off);
		if (!(frag & TND_IP_OFFMASK) && !tnd_l4_fits(ctx, p, proto, !(frag & TND_IP_MF), h))
			return -1;
		if (proto == IPPROTO_ICMP)
			return (frag & (TND_IP_MF | TND_IP_OFFMASK)) ? -1 : tnd_parse_icmp(ctx, fam, p);
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
				.saddr = ip.saddr, .daddr = ip.daddr, .id = ip.id, .proto = proto,
			};

			if (frag & TND_IP_OFFMASK) {
				/* A later fragment: no L4 header; the ports are its first's. */
				struct tnd_frag_val *fv = bpf_map_lookup_elem(&tnd_frag_v4, &fk);

				if (!fv)
					return -1;
				p->has_l4 = 0;
				p->t.sport = fv->sport;
				p->t.dport = fv->dport;
				p->t.proto = proto;
				p->parsed = 1;
				return 0;
			}
			__builtin_memcpy(ports, h, sizeof(ports));
			struct tnd_frag_val fv = { .sport = ports[0], .dport = ports[1] };

			bpf_map_update_elem(&tnd_frag_v4, &fk, &fv, BPF_ANY);
		}
	} else {
		struct ipv6hdr ip6;

		if (ctx_load(ctx, l3_off, &ip6, sizeof(ip6)) < 0)
			return -1;
		if (ip6.version != 6)
			return -1;
		proto = ip6.nexthdr;
		p->l4_off = l3_off + sizeof(ip6);
		p->l3_end = tnd_l3_end(p->l4_off, bpf_ntohs(ip6.payload_len), p->len);
		if (!p->l3_end)
			return -1;
		if (proto == IPPROTO_DSTOPTS) {
			/* Only tendril's DSR header; other extension headers (and
			 * so fragments) are passed on. */
			struct tnd_dsr_opt6 o;

			if (ctx_load(ctx, p->l4_off, &o, sizeof(o)) < 0 || o.hdrlen != 2 ||
			    o.opt_type != TND_DSR_OPT6_TYPE || o.opt_len != 18)
				return -1;
			p->dsr = 1;
			__builtin_memcpy(p->dsr_addr, o.addr, 16);
			p->dsr_port = o.port;
			proto = o.nexthdr;
			p->l4_off += sizeof(o);
		}
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMPV6)
			return -1;
		if (!tnd_l4_fits(ctx, p, proto, true, h))
			return -1;
		__builtin_memcpy(p->t.saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->t.daddr, &ip6.daddr, 16);
		p->t.proto = proto;
		if (proto == IPPROTO_ICMPV6)
			return tnd_parse_icmp(ctx, fam, p);
	}
	p->t.proto = proto;
	__builtin_memcpy(ports, h, sizeof(ports));
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	if (proto == IPPROTO_TCP)
		p->tcp_flags = h[13];
	p->parsed = 1;
	return 0;
}

/* ---- drops ----------------------------------------------------------------- */

static __always_inline int tnd_drop_pkt(struct tnd_fwd *fwd, const struct tnd_pkt *p, const int fam,
					__u8 reason, __u8 dir, __u32 ifindex)
{
	struct tnd_event *e;

	fwd->reason = reason;
	tnd_count(reason, dir, p->len);
	e = bpf_ringbuf_reserve(&tnd_events, sizeof(*e), 0);
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		e->type = TND_EVENT_DROP;
		e->reason = reason;
		e->dir = dir;
		e->family = fam;
		e->ifindex = ifindex;
		__builtin_memcpy(e->saddr, p->t.saddr, 16);
		__builtin_memcpy(e->daddr, p->t.daddr, 16);
		e->sport = p->t.sport;
		e->dport = p->t.dport;
		e->proto = p->t.proto;
		e->len = p->len;
		e->point = fwd->point;
		e->src_ep = fwd->src_ep;
		e->dst_ep = fwd->dst_ep;
		e->ts_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, 0);
	}
	return TND_DROP;
}

#if !TND_CTX_XDP
#include "reject.h"
#endif

/* ---- lookups --------------------------------------------------------------- */

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

static __always_inline bool tnd_srcrange_ok(const int fam, __u16 svc_id, const __u8 *saddr)
{
	if (fam == 4) {
		struct tnd_srange_v4_key k = { .prefixlen = 64, .svc_id = bpf_htons(svc_id) };

		__builtin_memcpy(k.addr, saddr, 4);
		return bpf_map_lookup_elem(&tnd_srng_v4, &k) != NULL;
	}
	struct tnd_srange_v6_key k = { .prefixlen = 160, .svc_id = bpf_htons(svc_id) };

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

/* Route to `dst` as the kernel would forward it; a local endpoint first
 * (fwd->peer: bpf_redirect_peer into its namespace). 0: found, MACs in fwd;
 * 1: found but the neighbour is not resolved (tc resolves it); 2: not
 * forwarded (a local address of this node: the stack delivers it); 3:
 * forwarding is off on the ingress device; -2: larger than the route's MTU;
 * -1: no route. */
static __always_inline int tnd_fib(TND_CTX *ctx, const int fam, const __u8 *src, const __u8 *dst,
				   const struct tnd_pkt *p, __be16 sport, __be16 dport,
				   struct tnd_fwd *fwd)
{
	struct bpf_fib_lookup f = {};
	struct tnd_endpoint *ep = tnd_ep_lookup(dst, fam);
	long rc;

	if (ep) {
		/* A local endpoint: straight into its namespace (tc), without a
		 * FIB lookup. XDP cannot do that: tc's job. */
		fwd->ifindex = ep->ifindex;
		fwd->dst_ep = ep->id;
		if (TND_CTX_XDP)
			return 1;
		__builtin_memcpy(fwd->smac, ep->node_mac, 6);
		__builtin_memcpy(fwd->dmac, ep->mac, 6);
		fwd->have_mac = 1;
		fwd->peer = 1;
		return 0;
	}
	f.ifindex = ctx_in_ifindex(ctx);
	f.l4_protocol = p->t.proto;
	f.sport = sport;
	f.dport = dport;
	/* XDP frames fit the MTU or not; at tc a GSO packet is longer than the
	 * MTU, so tot_len stays 0 there and the kernel checks the skb (GSO
	 * aware) against the egress device instead. */
	if (fam == 4) {
		f.family = AF_INET;
		f.tot_len = TND_CTX_XDP ? (__u16)(p->l3_end - p->l3_off) : 0;
		__builtin_memcpy(&f.ipv4_src, src, 4);
		__builtin_memcpy(&f.ipv4_dst, dst, 4);
	} else {
		f.family = AF_INET6;
		f.tot_len = TND_CTX_XDP ? (__u16)(p->l3_end - p->l3_off) : 0;
		__builtin_memcpy(f.ipv6_src, src, 16);
		__builtin_memcpy(f.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &f, sizeof(f), 0);
	fwd->ifindex = f.ifindex;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(fwd->smac, f.smac, 6);
		__builtin_memcpy(fwd->dmac, f.dmac, 6);
		fwd->have_mac = 1;
		return 0;
	}
	fwd->have_mac = 0;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 1;
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED)
		return 2;
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return 3;
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return -2;
	return -1;
}

static __always_inline int tnd_write_macs(TND_CTX *ctx, const struct tnd_fwd *fwd)
{
	__u8 macs[12];

	if (!fwd->have_mac)
		return 0;
	__builtin_memcpy(macs, fwd->dmac, 6);
	__builtin_memcpy(macs + 6, fwd->smac, 6);
	return ctx_store(ctx, 0, macs, 12);
}

/* ---- SNAT mappings: lifetime and port allocation (nat.h) ---------------- */

#include "nat.h"

/* ---- DSR option (IPv4, tc) ------------------------------------------------- */

#if !TND_CTX_XDP
/* Inserts the DSR option after the fixed IPv4 header (which must have no
 * options), naming the frontend. */
static __always_inline int tnd_dsr_insert4(struct __sk_buff *ctx, struct tnd_pkt *p,
					   const __u8 *fe_addr, __be16 fe_port)
{
	struct tnd_dsr_opt o = { .type = TND_DSR_OPT_TYPE, .len = TND_DSR_OPT_LEN, .port = fe_port };
	struct iphdr ip;
	__be16 old_w, new_w, old_len, new_len;

	__builtin_memcpy(&o.addr, fe_addr, 4);
	if (ctx_load(ctx, p->l3_off, &ip, sizeof(ip)) < 0 || ip.ihl != 5)
		return -1;
	if (bpf_skb_adjust_room(ctx, TND_DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return -1;
	if (ctx_store(ctx, p->l3_off + sizeof(ip), &o, sizeof(o)) < 0)
		return -1;
	/* version/ihl share a 16-bit word with tos. */
	__builtin_memcpy(&old_w, &ip, 2);
	ip.ihl = 5 + TND_DSR_OPT_LEN / 4;
	__builtin_memcpy(&new_w, &ip, 2);
	old_len = ip.tot_len;
	new_len = bpf_htons(bpf_ntohs(ip.tot_len) + TND_DSR_OPT_LEN);
	if (ctx_store(ctx, p->l3_off, &new_w, 2) < 0 || ctx_store(ctx, p->l3_off + 2, &new_len, 2) < 0)
		return -1;
	if (bpf_l3_csum_replace(ctx, p->l3_off + 10, old_w, new_w, 2) < 0 ||
	    bpf_l3_csum_replace(ctx, p->l3_off + 10, old_len, new_len, 2) < 0)
		return -1;
	/* The option (two 32-bit words) is part of the header checksum too. */
	__u32 ow[2];

	__builtin_memcpy(ow, &o, 8);
	if (bpf_l3_csum_replace(ctx, p->l3_off + 10, 0, ow[0], 4) < 0 ||
	    bpf_l3_csum_replace(ctx, p->l3_off + 10, 0, ow[1], 4) < 0)
		return -1;
	p->l4_off += TND_DSR_OPT_LEN;
	p->len += TND_DSR_OPT_LEN;
	p->l3_end += TND_DSR_OPT_LEN;
	return 0;
}

/* Inserts the DSR destination-options header after the fixed IPv6 header,
 * naming the frontend. The L4 checksum stays: its pseudo header counts the
 * upper-layer length, without extension headers. */
static __always_inline int tnd_dsr_insert6(struct __sk_buff *ctx, struct tnd_pkt *p,
					   const __u8 *fe_addr, __be16 fe_port)
{
	struct tnd_dsr_opt6 o = { .hdrlen = 2, .opt_type = TND_DSR_OPT6_TYPE, .opt_len = 18,
				  .port = fe_port, .pad_type = 1 };
	struct ipv6hdr ip6;
	__u8 dstopts = IPPROTO_DSTOPTS;
	__be16 plen;

	if (ctx_load(ctx, p->l3_off, &ip6, sizeof(ip6)) < 0)
		return -1;
	o.nexthdr = ip6.nexthdr;
	__builtin_memcpy(o.addr, fe_addr, 16);
	if (bpf_skb_adjust_room(ctx, TND_DSR_OPT6_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return -1;
	plen = bpf_htons(bpf_ntohs(ip6.payload_len) + TND_DSR_OPT6_LEN);
	if (ctx_store(ctx, p->l3_off + sizeof(ip6), &o, sizeof(o)) < 0 ||
	    ctx_store(ctx, p->l3_off + 4, &plen, 2) < 0 || ctx_store(ctx, p->l3_off + 6, &dstopts, 1) < 0)
		return -1;
	p->l4_off += TND_DSR_OPT6_LEN;
	p->len += TND_DSR_OPT6_LEN;
	p->l3_end += TND_DSR_OPT6_LEN;
	return 0;
}
#endif

/* ---- the ingress path ----------------------------------------------------
 *
 * The stages are separate BPF functions (__noinline): each has its own stack
 * frame, so the deepest chain (entry + one stage) stays under the 512-byte
 * limit. */

/* 1. A reply to a flow that this node SNATed: backend -> node:port. */
static __noinline int tnd_lb_rev_snat(TND_CTX *ctx, struct tnd_pkt *p, const int fam,
				      struct tnd_fwd *fwd)
{
	struct tnd_nat_key in = { .proto = p->t.proto, .dir = TND_NAT_IN };
	struct tnd_nat_val *nv;
	struct tnd_ct_key ck;
	struct tnd_ct_val *ct;
	__u8 client[16], fe[16] = {};
	__be16 client_port, fe_port = 0;
	int r, ev;

	__builtin_memcpy(in.saddr, p->t.saddr, 16);
	__builtin_memcpy(in.daddr, p->t.daddr, 16);
	in.sport = p->t.sport;
	in.dport = p->t.dport;
	nv = bpf_map_lookup_elem(tnd_nat_map(fam), &in);
	if (!nv)
		return -1;
	__builtin_memcpy(client, nv->to_addr, 16);
	client_port = nv->to_port;

	/* After restoring the client, the reply conntrack entry names the
	 * frontend to answer from. */
	ck = p->t;
	__builtin_memcpy(ck.daddr, client, 16);
	ck.dport = client_port;
	ct = bpf_map_lookup_elem(tnd_ct_map(fam), &ck);
	if (ct && (ct->flags & TND_CT_F_REPLY)) {
		__builtin_memcpy(fe, ct->nat_addr, 16);
		fe_port = ct->nat_port;
	}
	r = tnd_fib(ctx, fam, ct ? fe : p->t.daddr, client, p, ct ? fe_port : p->t.dport, client_port, fwd);
#if TND_CTX_XDP
	if (r == 1 || r == -2)
		return TND_PASS; /* tc resolves the neighbour / answers too big */
#endif
	if (r == -2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_TOO_BIG, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	if (r < 0 || r >= 2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	ev = tnd_state_update(&nv->tcp_flags, &nv->expires, p->t.proto, p->tcp_flags, tnd_now_sec());
	if (ev != TND_EV_NONE) {
		tnd_nat_note_reset(nv, TND_EVF(ev, p->tcp_flags));
		tnd_nat_mark_out(fam, &in, nv, TND_EVF(ev, p->tcp_flags));
	}
	if (tnd_rw(ctx, p, fam, false, p->t.daddr, client, p->t.dport, client_port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	if (ct && (ct->flags & TND_CT_F_REPLY)) {
		ev = tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len);
		if (ev != TND_EV_NONE)
			tnd_ct_mark_fwd(fam, &ck, ct, TND_EVF(ev, p->tcp_flags));
		if (tnd_rw(ctx, p, fam, true, p->t.saddr, fe, p->t.sport, fe_port) < 0)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	}
	if (tnd_write_macs(ctx, fwd) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	return TND_REDIRECT;
}

/* 1b. An ICMP error about a packet this node SNATed toward a backend (a
 * router's "fragmentation needed", the backend's "port unreachable"): the
 * client gets it about the packet it sent, client -> frontend. A separate
 * BPF function (its own stack frame): errors are rare and their inner
 * headers are large. */
static __noinline int tnd_lb_icmp_ingress(TND_CTX *ctx, struct tnd_pkt *p, const int fam,
					  struct tnd_fwd *fwd)
{
	/* The inner packet is node:port -> backend; its reply tuple keys the
	 * NAT "in" entry. */
	struct tnd_nat_key in = { .proto = p->inner.proto, .dir = TND_NAT_IN };
	struct tnd_nat_val *nv;
	struct tnd_ct_key ck = { .proto = p->inner.proto };
	struct tnd_ct_val *ct;
	__u8 client[16], fe[16], outer_src[16], outer_dst[16];
	__be16 client_port, fe_port;
	int r;

	__builtin_memcpy(in.saddr, p->inner.daddr, 16);
	__builtin_memcpy(in.daddr, p->inner.saddr, 16);
	in.sport = p->inner.dport;
	in.dport = p->inner.sport;
	nv = bpf_map_lookup_elem(tnd_nat_map(fam), &in);
	if (!nv)
		return TND_PASS;
	__builtin_memcpy(client, nv->to_addr, 16);
	client_port = nv->to_port;
	__builtin_memcpy(ck.saddr, p->inner.daddr, 16);
	__builtin_memcpy(ck.daddr, client, 16);
	ck.sport = p->inner.dport;
	ck.dport = client_port;
	ct = bpf_map_lookup_elem(tnd_ct_map(fam), &ck);
	if (!ct || !(ct->flags & TND_CT_F_REPLY))
		return TND_PASS;
	__builtin_memcpy(fe, ct->nat_addr, 16);
	fe_port = ct->nat_port;
	__builtin_memcpy(outer_src, p->t.saddr, 16);
	__builtin_memcpy(outer_dst, p->t.daddr, 16);

	r = tnd_fib(ctx, fam, fe, client, p, 0, 0, fwd);
#if TND_CTX_XDP
	if (r == 1 || r == -2)
		return TND_PASS;
#endif
	if (r < 0 || r >= 2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	if (tnd_icmp_rw_inner(ctx, p, fam, client, client_port, fe, fe_port) < 0 ||
	    tnd_rw_addr(ctx, p, fam, false, outer_dst, client) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	/* Sent by the backend itself: it comes from the frontend. */
	if (tnd_addr_eq(outer_src, p->inner.daddr, fam) && tnd_rw_addr(ctx, p, fam, true, outer_src, fe) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	if (tnd_write_macs(ctx, fwd) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	return TND_REDIRECT;
}

/* 2. DSR from another node: remember the frontend for the replies. */
static __noinline void tnd_lb_dsr_learn(const struct tnd_pkt *p, const int fam)
{
	struct tnd_ct_key rk = { .proto = p->t.proto };
	struct tnd_ct_val v = {};
	struct tnd_ct_val *cur;
	__u32 now = tnd_now_sec();

	__builtin_memcpy(rk.saddr, p->t.daddr, 16);
	__builtin_memcpy(rk.daddr, p->t.saddr, 16);
	rk.sport = p->t.dport;
	rk.dport = p->t.sport;
	cur = bpf_map_lookup_elem(tnd_ct_map(fam), &rk);
	if (cur && (cur->flags & TND_CT_F_DSR))
		return;
	__builtin_memcpy(v.nat_addr, p->dsr_addr, 16);
	v.nat_port = p->dsr_port;
	v.flags = TND_CT_F_REPLY | TND_CT_F_DSR | TND_CT_F_LOCAL;
	v.created = now;
	v.expires = now + tnd_ct_lifetime(p->t.proto, p->tcp_flags);
	bpf_map_update_elem(tnd_ct_map(fam), &rk, &v, BPF_ANY);
}

/* The forward and reply conntrack entries of a new service flow. */
static __noinline void tnd_ct_create(const int fam, const struct tnd_pkt *p, const struct tnd_lb_work *w)
{
	/* One value, reused: this runs two calls deep. */
	struct tnd_ct_val v = { .svc_id = w->svc_id, .backend_id = w->bid, .created = tnd_now_sec(),
				.flags = TND_CT_F_REPLY | w->flags, .nat_port = p->t.dport };
	struct tnd_ct_key rk = { .proto = p->t.proto, .sport = w->be_port, .dport = p->t.sport };

	tnd_ct_touch(&v, p->t.proto, p->tcp_flags, p->len);
	__builtin_memcpy(v.nat_addr, p->t.daddr, 16);
	__builtin_memcpy(rk.saddr, w->be_addr, 16);
	/* (hairpin: the reply is addressed to the frontend; conntrack.h) */
	__builtin_memcpy(rk.daddr, tnd_same_addr(w->be_addr, p->t.saddr) ? p->t.daddr : p->t.saddr, 16);
	bpf_map_update_elem(tnd_ct_map(fam), &rk, &v, BPF_ANY);
	/* The forward entry counts this packet; the reply entry starts at 0. */
	__builtin_memset(v.nat_addr, 0, 16);
	v.nat_port = 0;
	v.flags = TND_CT_F_SERVICE | w->flags;
	bpf_map_update_elem(tnd_ct_map(fam), &p->t, &v, BPF_ANY);
}

/* 3. A packet to a service frontend (or nothing of ours: TND_PASS). */
static __noinline int tnd_lb_service(TND_CTX *ctx, struct tnd_lb_scratch *s, const int fam)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	/* The work area is the scratch's (unused at ingress otherwise): this
	 * stage is the middle of a chain four frames deep (entry, here, SNAT
	 * port search, its bpf_loop callback), and 6.1 counts 512 bytes over
	 * all of them. */
	struct tnd_lb_work *w = &s->w;
	struct tnd_svc4_key k4 = {};
	struct tnd_svc6_key k6 = {};
	void *svc_map = fam == 4 ? (void *)&tnd_svc_v4 : (void *)&tnd_svc_v6;
	void *skey = fam == 4 ? (void *)&k4 : (void *)&k6;
	__u16 *slot = fam == 4 ? &k4.slot : &k6.slot;
	struct tnd_svc_val *svcp, svc;
	struct tnd_ct_val *ct;
	struct tnd_backend *be = NULL;
	struct tnd_device *dev;
	__u8 be_flags;
	__u32 bid = 0, in_if = ctx_in_ifindex(ctx);
	bool new_flow = false, remote, snat, dsr;
	__be16 nport = 0;
	int r;

	if (fam == 4) {
		__builtin_memcpy(&k4.addr, p->t.daddr, 4);
		k4.port = p->t.dport;
		k4.proto = p->t.proto;
	} else {
		__builtin_memcpy(k6.addr, p->t.daddr, 16);
		k6.port = p->t.dport;
		k6.proto = p->t.proto;
	}
	svcp = bpf_map_lookup_elem(svc_map, skey);
	if (!svcp || !(svcp->flags & TND_SVC_F_EXTERNAL))
		return TND_PASS;
	svc = *svcp;
	if ((svc.flags & TND_SVC_F_SRCRANGE) && !tnd_srcrange_ok(fam, svc.svc_id, p->t.saddr))
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_SOURCE_RANGE, TND_DIR_INGRESS, in_if);

	ct = bpf_map_lookup_elem(tnd_ct_map(fam), &p->t);
	if (ct && (ct->flags & TND_CT_F_SERVICE) && ct->svc_id == svc.svc_id &&
	    !tnd_ct_reopened(ct, p->t.proto, p->tcp_flags)) {
		bid = ct->backend_id;
		be = bpf_map_lookup_elem(&tnd_backends, &bid);
		if (be && be->svc_id != svc.svc_id)
			be = NULL;
	}
	__builtin_memset(w, 0, sizeof(*w));
	w->hash = tnd_flow_hash(&p->t);
	if (!be) {
		if (svc.count == 0 && (svc.xflags & TND_SVC_X_REJECT)) {
#if TND_CTX_XDP
			return TND_PASS; /* tc answers it */
#else
			return tnd_reject(ctx, p, fam, fwd, TND_DROP_NO_SERVICE_BACKEND, in_if);
#endif
		}
		if (svc.count == 0)
			return tnd_drop_pkt(fwd, p, fam,
					    (svc.flags & TND_SVC_F_LOCAL) ? TND_DROP_NO_LOCAL_BACKEND
									 : TND_DROP_NO_SERVICE_BACKEND,
					    TND_DIR_INGRESS, in_if);
		be = tnd_select_backend(svc_map, skey, slot, &svc, w->hash,
					tnd_client_id(p->t.saddr, fam), false, &bid);
		if (!be)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_BACKEND_MISSING, TND_DIR_INGRESS, in_if);
		new_flow = true;
	}
	__builtin_memcpy(w->be_addr, be->addr, 16);
	w->be_port = be->port;
	w->bid = bid;
	w->svc_id = svc.svc_id;
	be_flags = be->flags;

	r = tnd_fib(ctx, fam, p->t.saddr, w->be_addr, p, p->t.sport, w->be_port, fwd);
#if TND_CTX_XDP
	if (r == -2)
		return TND_PASS;
#endif
	if (r == -2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_TOO_BIG, TND_DIR_INGRESS, in_if);
	if (r < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, in_if);
	/* r == 2: not forwarded; r == 3: forwarding is off here. For a backend
	 * on this node's own address (host network) neither matters: DNAT and
	 * hand the packet to the stack. Anything else has no route. */
	if (r == 3)
		r = (be_flags & TND_BACKEND_F_HOST) ? 2 : -1;
	if (r < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, in_if);
	if (r == 2 && !(be_flags & TND_BACKEND_F_HOST))
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, in_if);
	dev = r == 2 ? NULL : bpf_map_lookup_elem(&tnd_devices, &fwd->ifindex);
	remote = dev != NULL;
	dsr = remote && (svc.flags & TND_SVC_F_DSR) && !(svc.flags & TND_SVC_F_LOCAL);
	snat = remote && !(svc.flags & (TND_SVC_F_LOCAL | TND_SVC_F_DSR));
#if TND_CTX_XDP
	/* XDP does the remote SNAT case; local delivery, DSR (adds an option)
	 * and unresolved neighbours are tc's, on the unmodified packet. */
	if (r > 0 || !snat)
		return TND_PASS;
#endif
	if (snat) {
		if (fam == 4)
			__builtin_memcpy(w->node, &dev->ipv4, 4);
		else
			__builtin_memcpy(w->node, dev->ipv6, 16);
		if (!(*(__u64 *)w->node | *(__u64 *)&w->node[8]))
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_NODE_ADDR, TND_DIR_INGRESS, in_if);
		nport = tnd_snat_port(fam, &p->t, w, p->tcp_flags | (TND_NAT_F_SERVICE << 8));
		if (!nport)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_NAT_EXHAUSTED, TND_DIR_INGRESS, in_if);
	}

	/* Conntrack: the forward entry pins the backend, the reply entry names
	 * the frontend for the way back. */
	if (new_flow || !ct) {
		w->flags = (snat ? TND_CT_F_SNAT : 0) | (dsr ? TND_CT_F_DSR : 0) |
			  (remote ? 0 : TND_CT_F_LOCAL) | (TND_CTX_XDP ? TND_CT_F_XDP : 0);
		tnd_ct_create(fam, p, w);
	} else {
		int ev = tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len);

		if (ev != TND_EV_NONE)
			tnd_ct_mark_reply(fam, &p->t, w->be_addr, w->be_port, TND_EVF(ev, p->tcp_flags));
	}

	/* p->t keeps the tuple as it arrived: the "from" of each rewrite. */
	if (tnd_rw(ctx, p, fam, false, p->t.daddr, w->be_addr, p->t.dport, w->be_port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, in_if);
	if (snat && tnd_rw(ctx, p, fam, true, p->t.saddr, w->node, p->t.sport, nport) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, in_if);
#if !TND_CTX_XDP
	if (dsr && (new_flow || (p->tcp_flags & TND_TCP_SYN)) &&
	    (fam == 4 ? tnd_dsr_insert4(ctx, p, p->t.daddr, p->t.dport)
		      : tnd_dsr_insert6(ctx, p, p->t.daddr, p->t.dport)) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, in_if);
#endif
	if (r == 2)
		return TND_PASS;
	if (tnd_write_macs(ctx, fwd) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, in_if);
	return TND_REDIRECT;
}

#if !TND_CTX_XDP
/* An error a local backend sends about a packet it received (client ->
 * backend) is made about client -> frontend. */
static __noinline int tnd_lb_icmp_egress(struct __sk_buff *ctx, struct tnd_pkt *p, const int fam,
					 struct tnd_fwd *fwd)
{
	struct tnd_ct_key rk = { .proto = p->inner.proto, .sport = p->inner.dport, .dport = p->inner.sport };
	struct tnd_ct_val *ct;
	__u8 outer_src[16], fe[16];
	__be16 fe_port;

	__builtin_memcpy(rk.saddr, p->inner.daddr, 16);
	__builtin_memcpy(rk.daddr, p->inner.saddr, 16);
	ct = bpf_map_lookup_elem(tnd_ct_map(fam), &rk);
	if (!ct || !(ct->flags & TND_CT_F_REPLY) || !(ct->flags & (TND_CT_F_LOCAL | TND_CT_F_DSR)))
		return TND_PASS;
	__builtin_memcpy(fe, ct->nat_addr, 16);
	fe_port = ct->nat_port;
	__builtin_memcpy(outer_src, p->t.saddr, 16);
	if (tnd_icmp_rw_inner(ctx, p, fam, p->inner.saddr, p->inner.sport, fe, fe_port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	if (tnd_addr_eq(outer_src, p->inner.daddr, fam) && tnd_rw_addr(ctx, p, fam, true, outer_src, fe) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	return TND_PASS;
}

/* Egress: replies of local (and DSR) backends leave with the frontend as
 * their source. < 0: a TCP/UDP packet that is not such a reply (s->p holds
 * it). */
static __always_inline int tnd_lb_egress(struct __sk_buff *ctx, __u32 l3_off, const int fam,
					 struct tnd_lb_scratch *s)
{
	struct tnd_pkt *pp = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_ct_val *ct;
	__u8 fe[16];
	__be16 fe_port;
	int ev;

	if (tnd_parse(ctx, l3_off, fam, pp) < 0)
		return TND_PASS;
	if (pp->icmp_err)
		return tnd_lb_icmp_egress(ctx, pp, fam, fwd);
	ct = bpf_map_lookup_elem(tnd_ct_map(fam), &pp->t);
	if (!ct || !(ct->flags & TND_CT_F_REPLY) || !(ct->flags & (TND_CT_F_LOCAL | TND_CT_F_DSR)))
		return -1; /* parsed, not a reply of ours: masquerade may want it */
	__builtin_memcpy(fe, ct->nat_addr, 16);
	fe_port = ct->nat_port;
	ev = tnd_ct_touch(ct, pp->t.proto, pp->tcp_flags, pp->len);
	if (ev != TND_EV_NONE)
		tnd_ct_mark_fwd(fam, &pp->t, ct, TND_EVF(ev, pp->tcp_flags));
	if (tnd_rw(ctx, pp, fam, true, pp->t.saddr, fe, pp->t.sport, fe_port) < 0)
		return tnd_drop_pkt(fwd, pp, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	return TND_PASS;
}
#endif

/* Per-packet LB at ingress. Returns a verdict; s->fwd says where or why. */
static __always_inline int tnd_lb_ingress(TND_CTX *ctx, __u32 l3_off, const int fam,
					  struct tnd_lb_scratch *s)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	int v;

	if (tnd_parse(ctx, l3_off, fam, p) < 0)
		return TND_PASS;
	if (p->icmp_err)
		return tnd_lb_icmp_ingress(ctx, p, fam, fwd);
	v = tnd_lb_rev_snat(ctx, p, fam, fwd);
	if (v >= 0)
		return v;
	if (p->dsr) {
		tnd_lb_dsr_learn(p, fam);
		return TND_PASS;
	}
	return tnd_lb_service(ctx, s, fam);
}

#endif
