/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The established path of an endpoint flow (tc only): a packet of a flow
 * that a local endpoint started (bpf_lxc) or that comes from the network to
 * one (bpf_host), whose own conntrack entry caches its next hop, is routed
 * with that one lookup: no scratch, no parse into it, no FIB or endpoint
 * lookup. The cache (tnd_ct_val.hop_*, conntrack.h) is filled by the full
 * path (tnd_ep_cache) and holds under the same rules as a service flow's:
 * the node's generation unchanged, the same cache tick, nothing new in the TCP
 * state. A reply of such a flow (no entry of its own) is routed the same
 * way from the cache its flow's entry keeps for replies (reply_*). Service
 * flows (DNAT) take the full path.
 */
#ifndef TND_BPF_EP_FAST_H_
#define TND_BPF_EP_FAST_H_

#if TND_CTX_XDP
#error "ep_fast.h is for tc programs"
#endif

#include "conntrack.h"
#include "csum.h"
#include "lookup.h"
#include "scratch.h"

/* The IPv4 header at `ip` (20 bytes, no options) is one the kernel would
 * take: version, lengths within the packet, checksum. */
static __always_inline bool tnd_ep_fast_v4_ok(const struct iphdr *ip, __u32 len)
{
	const __u16 *w = (const __u16 *)ip;
	__u64 sum = 0;
	__u16 tot = bpf_ntohs(ip->tot_len);

	if (ip->version != 4 || ip->ihl != 5 || tot < sizeof(*ip) || ETH_HLEN + tot > len)
		return false;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return tnd_csum_fold(sum) == 0xffff;
}

/* Fills k (zeroed by the caller) from the IP header; the L4 offset and how
 * many bytes from it belong to the IP packet. < 0: not for this path. */
static __always_inline int tnd_ep_fast_ip(struct __sk_buff *ctx, const int fam, struct tnd_ct_key *k,
					  __u32 *room)
{
	if (fam == 4) {
		struct iphdr *ip = ctx_ptr(ctx, ETH_HLEN, sizeof(*ip));

		if (!ip || !tnd_ep_fast_v4_ok(ip, ctx->len) || ip->ttl <= 1 ||
		    (ip->frag_off & bpf_htons(TND_IP_MF | TND_IP_OFFMASK)))
			return -1;
		__builtin_memcpy(k->saddr, &ip->saddr, 4);
		__builtin_memcpy(k->daddr, &ip->daddr, 4);
		k->proto = ip->protocol;
		*room = bpf_ntohs(ip->tot_len) - sizeof(*ip);
		return ETH_HLEN + sizeof(*ip);
	}
	struct ipv6hdr *ip6 = ctx_ptr(ctx, ETH_HLEN, sizeof(*ip6));

	if (!ip6 || ip6->version != 6 || ip6->hop_limit <= 1 ||
	    ETH_HLEN + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > ctx->len)
		return -1;
	__builtin_memcpy(k->saddr, &ip6->saddr, 16);
	__builtin_memcpy(k->daddr, &ip6->daddr, 16);
	k->proto = ip6->nexthdr;
	*room = bpf_ntohs(ip6->payload_len);
	return ETH_HLEN + sizeof(*ip6);
}

/* The ports and TCP flags, with the header checks tnd_parse makes. */
static __always_inline bool tnd_ep_fast_l4(struct __sk_buff *ctx, __u32 l4_off, __u32 room,
					   struct tnd_ct_key *k, __u8 *tcp_flags)
{
	__u8 *h;

	if (k->proto == IPPROTO_TCP) {
		h = ctx_ptr(ctx, l4_off, 20);
		if (!h || room < 20 || (h[12] >> 4) < 5 || (__u32)(h[12] >> 4) * 4 > room)
			return false;
		*tcp_flags = h[13];
	} else if (k->proto == IPPROTO_UDP) {
		h = ctx_ptr(ctx, l4_off, 8);
		if (!h || room < 8 || ((__u32)h[4] << 8 | h[5]) < 8 || ((__u32)h[4] << 8 | h[5]) > room)
			return false;
	} else {
		return false;
	}
	__builtin_memcpy(&k->sport, h, 2);
	__builtin_memcpy(&k->dport, h + 2, 2);
	return true;
}

/* Decrements the TTL / hop limit in place (the caller saw it > 1), the IPv4
 * header checksum by RFC 1624; writes the cached MACs. */
static __always_inline bool tnd_ep_fast_rewrite(struct __sk_buff *ctx, const int fam, const __u8 *dmac,
						const __u8 *smac)
{
	struct ethhdr *eth = ctx_ptr(ctx, 0, ETH_HLEN);

	if (!eth)
		return false;
	if (fam == 4) {
		struct iphdr *ip = ctx_ptr(ctx, ETH_HLEN, sizeof(*ip));
		__be16 old_w, new_w;

		if (!ip)
			return false;
		__builtin_memcpy(&old_w, &ip->ttl, 2); /* TTL and protocol: one word */
		ip->ttl--;
		__builtin_memcpy(&new_w, &ip->ttl, 2);
		ip->check = ~tnd_csum_fold((__u64)(__u16)~ip->check + tnd_diff16(old_w, new_w));
	} else {
		struct ipv6hdr *ip6 = ctx_ptr(ctx, ETH_HLEN, sizeof(*ip6));

		if (!ip6)
			return false;
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, dmac, 6);
	__builtin_memcpy(eth->h_source, smac, 6);
	return true;
}

/* The established path: a tc verdict, or < 0 for the full path. `want`:
 * the conntrack flag of the flows this hook starts (TND_CT_F_ENDPOINT at
 * bpf_lxc, TND_CT_F_INBOUND at bpf_host), whose packets find their own
 * entry; `reply_want`: those of the flows whose replies come through this
 * hook (a pod answers inbound flows and other pods' at bpf_lxc; the
 * network answers pods' flows at bpf_host), which have no entry of their
 * own and find their flow's by the reversed tuple (its reply_* cache). Its
 * own BPF function: the key stays off the entry program's frame. */
static __noinline int tnd_ep_fast(struct __sk_buff *ctx, const int fam, __u32 want, __u32 reply_want)
{
	struct tnd_ct_key k = {}, rk;
	struct tnd_ct_val *ct;
	/* The cached MACs (source, destination), copied: both ways then meet
	 * in the same state, and older verifiers check the rest once. */
	__u8 macs[12];
	__u32 ifindex, gen = tnd_node_gen();
	__u8 tcp_flags = 0, hop;
	__u32 room = 0;
	int l4_off;

	l4_off = tnd_ep_fast_ip(ctx, fam, &k, &room);
	if (l4_off < 0 || !tnd_ep_fast_l4(ctx, l4_off, room, &k, &tcp_flags))
		return -1;
	ct = tnd_state_lookup(tnd_ct_map(fam), &k, struct tnd_ct_val);
	if (ct) {
		if (!(ct->flags & want) || (ct->flags & (TND_CT_F_SERVICE | TND_CT_F_REPLY)) ||
		    !tnd_ct_cache_ok(ct, tcp_flags, gen))
			return -1;
		hop = ct->hop_flags;
		ifindex = ct->hop_ifindex;
		__builtin_memcpy(macs, ct->hop_smac, 6);
		__builtin_memcpy(macs + 6, ct->hop_dmac, 6);
		tnd_explain_step(TND_XS_ENDPOINT_CACHED);
	} else {
		/* A SYN answers nothing: the full path makes it a flow of its
		 * own (tnd_ct_track). */
		if (tnd_tcp_opens(k.proto, tcp_flags))
			return -1;
		tnd_ct_key_reversed(&rk, &k);
		ct = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);
		if (!ct || !tnd_ct_pod_flow(ct, reply_want) || !tnd_ct_reply_cache_ok(ct, tcp_flags, gen))
			return -1;
		hop = ct->reply_when.flags;
		ifindex = ct->reply_hop.ifindex;
		__builtin_memcpy(macs, ct->reply_hop.smac, 6);
		__builtin_memcpy(macs + 6, ct->reply_hop.dmac, 6);
		tnd_explain_step(TND_XS_REPLY_CACHED);
	}
	if (!tnd_ep_fast_rewrite(ctx, fam, macs + 6, macs))
		return -1;
	tnd_ct_touch(ct, k.proto, tcp_flags, ctx->len);
	tnd_explain_redirect(ifindex, (hop & TND_HOP_PEER) ? TND_XR_PEER : TND_XR_DEVICE);
	if (hop & TND_HOP_PEER)
		return bpf_redirect_peer(ifindex, 0);
	if ((hop & TND_HOP_EGRESS_NONE) && !ctx->mark)
		ctx->mark = TND_MARK_ROUTED;
	return bpf_redirect(ifindex, 0);
}

/* The full path routed a packet of an endpoint flow (its own entry `ct`)
 * out of fwd with the MACs known, deciding under generation `gen`: later
 * packets can take tnd_ep_fast. */
static __always_inline void tnd_ep_cache(struct tnd_ct_val *ct, const struct tnd_fwd *fwd, __u32 gen,
					 __u32 want, int verdict)
{
	if (!ct || verdict != TND_REDIRECT || !fwd->have_mac || !(ct->flags & want) ||
	    (ct->flags & (TND_CT_F_SERVICE | TND_CT_F_REPLY)))
		return;
	tnd_ct_cache_hop(ct, fwd, gen);
}

/* The full path routed a reply (tuple t) of a pod's flow out of fwd with
 * the MACs known, deciding under generation `gen`: its flow's entry (t
 * reversed, with `want` among its flags) caches the hop for the next
 * replies. Once per fill (a tick at most): a lookup of its own. */
static __noinline void tnd_ep_cache_reply(const int fam, const struct tnd_ct_key *t, const struct tnd_fwd *fwd,
					  __u32 gen, __u32 want)
{
	struct tnd_ct_key k;
	struct tnd_ct_val *ct;

	if (!fwd->have_mac)
		return;
	tnd_ct_key_reversed(&k, t);
	ct = tnd_state_lookup(tnd_ct_map(fam), &k, struct tnd_ct_val);
	if (ct && tnd_ct_pod_flow(ct, want))
		tnd_ct_cache_reply_hop(ct, fwd, gen);
}

#endif
