/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding without the upper stack: the FIB lookup and the MACs it gives. */
#ifndef TND_BPF_FIB_H_
#define TND_BPF_FIB_H_

#include "maps_node.h"
#include "scratch.h"

/* Route to `dst` as the kernel would forward it; a local endpoint first
 * (fwd->peer, TND_PEER_*). 0: found, MACs in fwd;
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
		/* A local endpoint, without a FIB lookup: tc hands the packet
		 * into its namespace (bpf_redirect_peer); XDP redirects the frame
		 * into its veth where the namespace side takes XDP frames (and a
		 * cached path's frames: TND_XDP_RX_MTU) and the frame fits its
		 * MTU, and leaves the rest to tc. */
		fwd->ifindex = ep->ifindex;
		fwd->dst_ep = ep->id;
		fwd->peer = (ep->flags & TND_EP_F_XDP_RX) && ep->mtu >= TND_XDP_RX_MTU ? TND_PEER_XDP : TND_PEER_TC;
		if (TND_CTX_XDP && (fwd->peer != TND_PEER_XDP || p->l3_end - p->l3_off > ep->mtu))
			return 1;
		__builtin_memcpy(fwd->smac, ep->node_mac, 6);
		__builtin_memcpy(fwd->dmac, ep->mac, 6);
		fwd->have_mac = 1;
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
	tnd_explain_set(TND_XS_FIB, fib_rc, rc);
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

/* Whether XDP delivers a frame of `p` on a cached hop `fwd` into a local
 * endpoint: its veth takes XDP frames and the frame fits (TND_XDP_RX_MTU). */
static __always_inline bool tnd_xdp_rx_fits(const struct tnd_fwd *fwd, const struct tnd_pkt *p)
{
	return fwd->peer == TND_PEER_XDP && p->l3_end - p->l3_off <= TND_XDP_RX_MTU;
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

#endif
