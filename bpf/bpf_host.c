/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc programs for a node's native devices.
 *
 *   tnd_host_ingress: by family, tail-calls tnd_host_in_v4 / tnd_host_in_v6:
 *                     per-packet service LB (NodePort, ExternalIP,
 *                     LoadBalancer): reverse SNAT of replies, DSR learning,
 *                     DNAT (+SNAT or DSR) and forwarding through the FIB
 *                     (bpf_redirect, or bpf_redirect_neigh when the
 *                     neighbour is not resolved yet), without the upper stack
 *                     then packets for a local endpoint go straight into its
 *                     namespace (bpf_redirect_peer; lib/hostrouting.h)
 *   tnd_host_egress:  replies of local backends get the frontend as source;
 *                     endpoints' own flows leaving the node are masqueraded
 *
 * The decisions live in lib/nodeport.h, shared with the XDP fast path.
 */
#define TND_CTX_XDP 0

#include <linux/pkt_cls.h>

#include "lib/common.h"
#include "lib/hostrouting.h"

int tnd_host_in_v4(struct __sk_buff *ctx);
int tnd_host_in_v6(struct __sk_buff *ctx);

/* The entry program's tail calls: libbpf fills the prog array from this
 * initialiser at load, so it is the one list of which program serves which
 * slot (the agent only pins the array). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, TND_TAIL_HOST_MAX);
	__uint(key_size, sizeof(__u32));   /* no BTF key/value: prog arrays refuse it */
	__uint(value_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} tnd_host_calls SEC(".maps") = {
	.values = {
		[TND_TAIL_HOST_V4] = (void *)&tnd_host_in_v4,
		[TND_TAIL_HOST_V6] = (void *)&tnd_host_in_v6,
	},
};

SEC("tc")
int tnd_host_ingress(struct __sk_buff *ctx)
{
	/* A VLAN-tagged frame (the tag taken off into the skb) belongs to a
	 * VLAN device, or to nobody: the stack's, untouched. */
	tnd_explain_prog(TND_XP_HOST_INGRESS);
	if (ctx->vlan_present)
		return TC_ACT_OK;
#if TENDRIL_ENABLE_IPV4
	if (ctx->protocol == bpf_htons(ETH_P_IP)) {
		bpf_tail_call(ctx, &tnd_host_calls, TND_TAIL_HOST_V4);
		tnd_count(TND_DROP_MISSED_TAIL_CALL, TND_DIR_INGRESS, ctx->len);
		return TC_ACT_SHOT;
	}
#endif
#if TENDRIL_ENABLE_IPV6
	if (ctx->protocol == bpf_htons(ETH_P_IPV6)) {
		bpf_tail_call(ctx, &tnd_host_calls, TND_TAIL_HOST_V6);
		tnd_count(TND_DROP_MISSED_TAIL_CALL, TND_DIR_INGRESS, ctx->len);
		return TC_ACT_SHOT;
	}
#endif
	return TC_ACT_OK;
}

/* A packet from the network, of family `fam`: per-packet LB, else to a
 * local endpoint, else the stack. One tail-called program per family. A
 * packet neither could want (tnd_lb_maybe, the endpoint lookup) leaves
 * before the scratch is touched. */
static __always_inline int tnd_host_in(struct __sk_buff *ctx, const int fam)
{
	struct tnd_endpoint *ep = NULL;
	struct tnd_lb_scratch *s;
	bool lb = tnd_lb_maybe(ctx, ETH_HLEN, fam);
	int v;

	if (!lb) {
		ep = tnd_host_dst_ep(ctx, fam);
		if (!ep) {
			tnd_explain_step(TND_XS_NOT_MINE);
			return TC_ACT_OK;
		}
		v = tnd_ep_fast(ctx, fam, TND_CT_F_INBOUND, TND_CT_F_ENDPOINT);
		if (v >= 0)
			return v;
	}
	s = tnd_scratch(0);
	if (!s)
		return TC_ACT_OK;
	s->fwd.point = TND_OBS_FROM_NETWORK;
	s->fwd.obs_ifindex = ctx->ifindex;
	v = TND_PASS;
	if (lb)
		v = tnd_lb_ingress(ctx, ETH_HLEN, fam, s);
	else
		tnd_parse(ctx, ETH_HLEN, fam, &s->p); /* s->p.parsed says whether it is TCP/UDP */
	if (v == TND_PASS)
		v = tnd_host_to_endpoint(ctx, fam, s, ep);
	return tnd_tc_verdict(v, &s->fwd);
}

SEC("tc")
int tnd_host_in_v4(struct __sk_buff *ctx)
{
	tnd_explain_prog(TND_XP_HOST_IN_V4);
	return tnd_host_in(ctx, 4);
}

SEC("tc")
int tnd_host_in_v6(struct __sk_buff *ctx)
{
	tnd_explain_prog(TND_XP_HOST_IN_V6);
	return tnd_host_in(ctx, 6);
}

/* One family's egress: a reply of a local backend, else masquerade. A
 * flow of an endpoint that both leave as it is learns so in its conntrack
 * entry (TND_HOP_EGRESS_NONE, until bpf_lxc next fills the cache): its next
 * packets come marked and pass without a lookup. */
static __always_inline int tnd_host_out(struct __sk_buff *ctx, const int fam, struct tnd_lb_scratch *s)
{
	struct tnd_ct_val *own;
	int v;

	s->egress_own = 0;
	v = tnd_lb_egress(ctx, ETH_HLEN, fam, s);
#if TENDRIL_ENABLE_MASQUERADE
	if (v < 0)
		v = tnd_masquerade(ctx, fam, s);
#endif
	/* Once per cache fill of the flow (a cache tick at most): found again. */
	if (v < 0 && s->egress_own) {
		own = tnd_state_lookup(tnd_ct_map(fam), &s->p.t, struct tnd_ct_val);
		if (own)
			own->hop_flags |= TND_HOP_EGRESS_NONE;
	}
	return tnd_tc_verdict(v < 0 ? TND_PASS : v, &s->fwd);
}

SEC("tc")
int tnd_host_egress(struct __sk_buff *ctx)
{
	struct tnd_lb_scratch *s;

	tnd_explain_prog(TND_XP_HOST_EGRESS);
	if (ctx->mark == TND_MARK_ROUTED) {
		ctx->mark = 0;
		tnd_explain_step(TND_XS_ROUTED);
		return TC_ACT_OK;
	}
	if (ctx->vlan_present || (ctx->protocol != bpf_htons(ETH_P_IP) && ctx->protocol != bpf_htons(ETH_P_IPV6)))
		return TC_ACT_OK;
	s = tnd_scratch(1);
	if (!s)
		return TC_ACT_OK;
#if TENDRIL_ENABLE_IPV4
	if (ctx->protocol == bpf_htons(ETH_P_IP))
		return tnd_host_out(ctx, 4, s);
#endif
#if TENDRIL_ENABLE_IPV6
	if (ctx->protocol == bpf_htons(ETH_P_IPV6))
		return tnd_host_out(ctx, 6, s);
#endif
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
