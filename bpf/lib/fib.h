/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding without the upper stack: the FIB lookup and the MACs it gives. */
#ifndef TND_BPF_FIB_H_
#define TND_BPF_FIB_H_

#include "lb.h"
#include "maps_node.h"
#include "node_info.h"
#include "scratch.h"

/* ---- next hops shared by new flows (tnd_hops) ------------------------------
 *
 * While the node's FIB answers by destination alone (TND_NODE_F_HOPS_SHARED),
 * a FIB lookup's success is kept per (ingress device, destination) for the
 * cache tick it was found in (TND_CACHE_TICK_SHIFT), under the node's
 * generation (which every route, neighbour and device change bumps): the
 * next new flow to that backend in that tick takes it with one hash
 * lookup. A frame longer than the longest one the route's MTU was checked
 * for asks the FIB again. */

static const struct tnd_hop_val tnd_hop_none = {};

static __always_inline void tnd_hop_key_make(struct tnd_hop_key *k, __u32 ifindex, const int fam, const __u8 *dst)
{
	k->ifindex = ifindex;
	k->family = fam;
	if (fam == 4)
		__builtin_memcpy(k->addr, dst, 4);
	else
		__builtin_memcpy(k->addr, dst, 16);
}

/* The shared next hop to `dst` for a packet of IP length `len` (0 at tc,
 * where the FIB does not check the MTU either), into fwd. 1: found; 0: not
 * found, share what the FIB finds (tnd_hop_put); -1: not shared. */
static __noinline int tnd_hop_get(__u32 ifindex, const int fam, const __u8 *dst, __u32 len, struct tnd_fwd *fwd)
{
	struct tnd_node_info *n = tnd_node_get();
	struct tnd_hop_key k = {};
	struct tnd_hop_val *v;

	if (!n || !(n->flags & TND_NODE_F_HOPS_SHARED))
		return -1;
	tnd_hop_key_make(&k, ifindex, fam, dst);
	v = bpf_map_lookup_elem(&tnd_hops, &k);
	if (!v || v->gen != n->gen || v->tick != tnd_cache_tick() || len > v->len_ok)
		return 0;
	tnd_explain_step(TND_XS_HOP_SHARED);
	fwd->ifindex = v->ifindex;
	__builtin_memcpy(fwd->smac, v->smac, 6);
	__builtin_memcpy(fwd->dmac, v->dmac, 6);
	fwd->have_mac = 1;
	return 1;
}

/* Shares a FIB lookup's success (fwd), its MTU checked for packets up to
 * `len` bytes long (0: not checked, at tc). The entry is written in place,
 * its tick 0 meanwhile so no reader takes it half written; under the same
 * generation and tick the answer is the same, so the longer length
 * checked stays. */
static __noinline void tnd_hop_put(__u32 ifindex, const int fam, const __u8 *dst, __u32 len,
				   const struct tnd_fwd *fwd)
{
	struct tnd_node_info *n = tnd_node_get();
	struct tnd_hop_key k = {};
	struct tnd_hop_val *v;
	__u32 now = tnd_cache_tick();

	if (!n || tnd_dry_run) /* a dry run changes no map */
		return;
	tnd_hop_key_make(&k, ifindex, fam, dst);
	v = bpf_map_lookup_elem(&tnd_hops, &k);
	if (!v) {
		bpf_map_update_elem(&tnd_hops, &k, &tnd_hop_none, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&tnd_hops, &k);
		if (!v)
			return;
	}
	if (v->gen == n->gen && v->tick == now && v->len_ok > len)
		len = v->len_ok;
	v->tick = 0;
	asm volatile("" ::: "memory");
	v->gen = n->gen;
	v->ifindex = fwd->ifindex;
	__builtin_memcpy(v->smac, fwd->smac, 6);
	__builtin_memcpy(v->dmac, fwd->dmac, 6);
	v->len_ok = len;
	asm volatile("" ::: "memory");
	v->tick = now;
}

/* Route to `dst` as the kernel would forward it; a local endpoint first
 * (fwd->peer, TND_PEER_*), then a next hop shared by flows (tnd_hops). 0:
 * found, MACs in fwd; 1: found but the neighbour is not resolved (tc
 * resolves it); 2: not forwarded (a local address of this node: the stack
 * delivers it); 3: forwarding is off on the ingress device; -2: larger than
 * the route's MTU; -1: no route. */
static __always_inline int tnd_fib(TND_CTX *ctx, const int fam, const __u8 *src, const __u8 *dst,
				   const struct tnd_pkt *p, __be16 sport, __be16 dport,
				   struct tnd_fwd *fwd)
{
	struct bpf_fib_lookup f = {};
	struct tnd_endpoint *ep = tnd_ep_lookup(dst, fam);
	__u32 len = TND_CTX_XDP ? (__u32)(p->l3_end - p->l3_off) : 0;
	long rc;
	int hop;

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
	hop = tnd_hop_get(ctx_in_ifindex(ctx), fam, dst, len, fwd);
	if (hop > 0)
		return 0;
	f.ifindex = ctx_in_ifindex(ctx);
	f.l4_protocol = p->t.proto;
	f.sport = sport;
	f.dport = dport;
	/* XDP frames fit the MTU or not; at tc a GSO packet is longer than the
	 * MTU, so tot_len stays 0 there and the kernel checks the skb (GSO
	 * aware) against the egress device instead. */
	if (fam == 4) {
		f.family = AF_INET;
		f.tot_len = len;
		__builtin_memcpy(&f.ipv4_src, src, 4);
		__builtin_memcpy(&f.ipv4_dst, dst, 4);
	} else {
		f.family = AF_INET6;
		f.tot_len = len;
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
		if (!hop)
			tnd_hop_put(ctx_in_ifindex(ctx), fam, dst, len, fwd);
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
