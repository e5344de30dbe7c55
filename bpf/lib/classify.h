/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "Is this mine?" before any work: a look at the headers in place (no
 * scratch, no parse, no hash lookup) that tells the packets per-packet LB
 * certainly has nothing to do with from those it may. A packet that is not
 * a service's and not a reply of a SNATed flow then leaves after one array
 * lookup (the port filter, tnd_svc_port_used).
 */
#ifndef TND_BPF_CLASSIFY_H_
#define TND_BPF_CLASSIFY_H_

#include "ctx.h"
#include "maps_lb.h"
#include "scratch.h"

#ifndef TENDRIL_NAT_PORT_MIN
#define TENDRIL_NAT_PORT_MIN TND_NAT_PORT_MIN_DEFAULT
#define TENDRIL_NAT_PORT_MAX TND_NAT_PORT_MAX_DEFAULT
#endif

/* A port of the NAT range (network order): where the replies of SNATed
 * flows arrive. Changing the range across a restart ends the reverse
 * translation of flows mapped outside the new one. */
static __always_inline bool tnd_nat_port_ours(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p >= TENDRIL_NAT_PORT_MIN && p <= TENDRIL_NAT_PORT_MAX;
}

/* false: per-packet LB (tnd_lb_ingress) would pass this packet untouched;
 * a TCP or UDP packet, whole (not a fragment), without IPv4 options or IPv6
 * extension headers (DSR carries its frontend in one), whose destination
 * port is neither a frontend's nor of the NAT range. Everything else (ICMP
 * errors, fragments, options, headers outside the linear part) takes the
 * full path, which decides. */
static __always_inline bool tnd_lb_maybe(TND_CTX *ctx, __u32 l3_off, const int fam)
{
	__be16 *ports;
	__u32 l4_off;
	__u8 proto;

	if (fam == 4) {
		struct iphdr *ip = ctx_ptr(ctx, l3_off, sizeof(*ip));

		if (!ip || ip->ihl != 5 || (ip->frag_off & bpf_htons(TND_IP_MF | TND_IP_OFFMASK)))
			return true;
		proto = ip->protocol;
		l4_off = l3_off + sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = ctx_ptr(ctx, l3_off, sizeof(*ip6));

		if (!ip6)
			return true;
		proto = ip6->nexthdr;
		l4_off = l3_off + sizeof(*ip6);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6 || proto == IPPROTO_DSTOPTS;
	ports = ctx_ptr(ctx, l4_off, 2 * sizeof(*ports));
	if (!ports)
		return true;
	return tnd_nat_port_ours(ports[1]) || tnd_svc_port_used(ports[1]);
}

#endif
