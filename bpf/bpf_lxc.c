/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tc programs for the host side of a local endpoint's veth (one object for
 * every endpoint: who the endpoint is comes from tnd_endpoints).
 *
 *   tnd_lxc_ingress: packets the endpoint sends. By family, tail-calls
 *                    tnd_lxc_in_v4 / tnd_lxc_in_v6: reverse translation of
 *                    service replies, per-packet service LB for what socket
 *                    LB did not translate, conntrack, then eBPF host routing
 *                    (another local endpoint: bpf_redirect_peer; elsewhere:
 *                    FIB + bpf_redirect / bpf_redirect_neigh; this node:
 *                    the stack). The host's iptables, routing and neighbour
 *                    code are not on the path.
 *   tnd_lxc_egress:  packets the host stack sends to the endpoint: replies
 *                    of services with a host-network backend get the
 *                    frontend back as their source.
 */
#define TND_CTX_XDP 0

#include <linux/pkt_cls.h>

#include "lib/common.h"
#include "lib/hostrouting.h"

int tnd_lxc_in_v4(struct __sk_buff *ctx);
int tnd_lxc_in_v6(struct __sk_buff *ctx);

/* The entry program's tail calls: libbpf fills the prog array from this
 * initialiser at load, so it is the one list of which program serves which
 * slot (the agent only pins the array). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, TND_TAIL_LXC_MAX);
	__uint(key_size, sizeof(__u32));   /* no BTF key/value: prog arrays refuse it */
	__uint(value_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} tnd_lxc_calls SEC(".maps") = {
	.values = {
		[TND_TAIL_LXC_V4] = (void *)&tnd_lxc_in_v4,
		[TND_TAIL_LXC_V6] = (void *)&tnd_lxc_in_v6,
	},
};

SEC("tc")
int tnd_lxc_ingress(struct __sk_buff *ctx)
{
	/* A VLAN-tagged frame (the tag taken off into the skb) belongs to a
	 * VLAN device, or to nobody: the stack's, untouched. */
	tnd_explain_prog(TND_XP_LXC_INGRESS);
	if (ctx->vlan_present)
		return TC_ACT_OK;
#if TENDRIL_ENABLE_IPV4
	if (ctx->protocol == bpf_htons(ETH_P_IP)) {
		bpf_tail_call(ctx, &tnd_lxc_calls, TND_TAIL_LXC_V4);
		tnd_count(TND_DROP_MISSED_TAIL_CALL, TND_DIR_INGRESS, ctx->len);
		return TC_ACT_SHOT;
	}
#endif
#if TENDRIL_ENABLE_IPV6
	if (ctx->protocol == bpf_htons(ETH_P_IPV6)) {
		bpf_tail_call(ctx, &tnd_lxc_calls, TND_TAIL_LXC_V6);
		tnd_count(TND_DROP_MISSED_TAIL_CALL, TND_DIR_INGRESS, ctx->len);
		return TC_ACT_SHOT;
	}
#endif
	return TC_ACT_OK;
}

/* A packet the endpoint sent, of family `fam`: an established flow's by
 * its cached path (ep_fast.h), else the full path. One tail-called program
 * per family. */
static __always_inline int tnd_lxc_in(struct __sk_buff *ctx, const int fam)
{
	struct tnd_lb_scratch *s;
	int v = tnd_ep_fast(ctx, fam, TND_CT_F_ENDPOINT, TND_CT_F_ENDPOINT | TND_CT_F_INBOUND);

	if (v >= 0)
		return v;
	s = tnd_scratch(0);
	if (!s)
		return TC_ACT_OK;
	s->fwd.point = TND_OBS_FROM_ENDPOINT;
	s->fwd.obs_ifindex = ctx->ifindex;
	return tnd_tc_verdict(tnd_from_endpoint(ctx, fam, s), &s->fwd);
}

SEC("tc")
int tnd_lxc_in_v4(struct __sk_buff *ctx)
{
	tnd_explain_prog(TND_XP_LXC_IN_V4);
	return tnd_lxc_in(ctx, 4);
}

SEC("tc")
int tnd_lxc_in_v6(struct __sk_buff *ctx)
{
	tnd_explain_prog(TND_XP_LXC_IN_V6);
	return tnd_lxc_in(ctx, 6);
}

SEC("tc")
int tnd_lxc_egress(struct __sk_buff *ctx)
{
	struct tnd_lb_scratch *s;
	int fam;

	tnd_explain_prog(TND_XP_LXC_EGRESS);
	if (ctx->vlan_present)
		return TC_ACT_OK;
	if (ctx->protocol == bpf_htons(ETH_P_IP) && TENDRIL_ENABLE_IPV4)
		fam = 4;
	else if (ctx->protocol == bpf_htons(ETH_P_IPV6) && TENDRIL_ENABLE_IPV6)
		fam = 6;
	else
		return TC_ACT_OK;
	s = tnd_scratch(1);
	if (!s)
		return TC_ACT_OK;
	if (fam == 4) {
		if (tnd_parse(ctx, ETH_HLEN, 4, &s->p) == 0 && !s->p.icmp_err &&
		    tnd_rev_dnat(ctx, &s->p, 4, TND_CT_F_ENDPOINT, tnd_state_lookup(tnd_ct_map(4), &s->p.t, struct tnd_ct_val)) < 0)
			return TC_ACT_SHOT;
	} else {
		if (tnd_parse(ctx, ETH_HLEN, 6, &s->p) == 0 && !s->p.icmp_err &&
		    tnd_rev_dnat(ctx, &s->p, 6, TND_CT_F_ENDPOINT, tnd_state_lookup(tnd_ct_map(6), &s->p.t, struct tnd_ct_val)) < 0)
			return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
