/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XDP entry for a node device.
 *
 *   tnd_xdp_entry: parses Ethernet and up to two VLAN tags, records the L3
 *                  offset in the per-CPU scratch map and tail-calls by family
 *   tnd_xdp_v4 / tnd_xdp_v6: prefilter (LPM deny list on the source address),
 *                  then the NodePort fast path (lib/nodeport.h) for flows to
 *                  remote backends: rewritten and sent with XDP_TX or
 *                  bpf_redirect without an skb; everything else passes to tc
 *
 * Frames that cannot be parsed (truncated, unknown EtherType, malformed IP
 * header) are passed to the stack, which validates and drops them itself:
 * the prefilter only ever drops on a source address it has actually read.
 */
#define TND_CTX_XDP 1

#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/prefilter.h"
#if TENDRIL_ENABLE_NODEPORT
#include "lib/nodeport.h"
#endif

int tnd_xdp_v4(struct xdp_md *ctx);
int tnd_xdp_v6(struct xdp_md *ctx);

/* The entry program's tail calls: libbpf fills the prog array from this
 * initialiser at load, so it is the one list of which program serves which
 * slot (the agent only pins the array). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, TND_TAIL_XDP_MAX);
	__uint(key_size, sizeof(__u32));   /* no BTF key/value: prog arrays refuse it */
	__uint(value_size, sizeof(__u32));
	__array(values, int(struct xdp_md *));
} tnd_xdp_calls SEC(".maps") = {
	.values = {
		[TND_TAIL_XDP_V4] = (void *)&tnd_xdp_v4,
		[TND_TAIL_XDP_V6] = (void *)&tnd_xdp_v6,
	},
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tnd_xdp_scratch);
} tnd_xdp_scratch SEC(".maps");

#define TND_MAX_L3_OFF (ETH_HLEN + TND_MAX_VLAN_DEPTH * sizeof(struct tnd_vlan_hdr))

static __always_inline __u64 frame_len(const struct xdp_md *ctx)
{
	return (__u64)(ctx->data_end - ctx->data);
}

static __always_inline int drop(struct xdp_md *ctx, __u8 reason)
{
	tnd_explain_field(drop_reason, reason);
	tnd_count(reason, TND_DIR_INGRESS, frame_len(ctx));
	return XDP_DROP;
}

static __always_inline struct tnd_xdp_scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tnd_xdp_scratch, &zero);
}

SEC("xdp")
int tnd_xdp_entry(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tnd_xdp_scratch *s;
	__u16 off = ETH_HLEN;
	__be16 proto;

	tnd_explain_prog(TND_XP_XDP_ENTRY);
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < TND_MAX_VLAN_DEPTH; i++) {
		struct tnd_vlan_hdr *vh;

		if (proto != bpf_htons(TND_ETH_P_8021Q) && proto != bpf_htons(TND_ETH_P_8021AD))
			break;
		vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return XDP_PASS;
		proto = vh->encap_proto;
		off += sizeof(*vh);
	}

	s = scratch();
	if (!s)
		return XDP_PASS;
	s->l3_off = off;

#if TENDRIL_ENABLE_IPV4
	if (proto == bpf_htons(ETH_P_IP)) {
		bpf_tail_call(ctx, &tnd_xdp_calls, TND_TAIL_XDP_V4);
		return drop(ctx, TND_DROP_MISSED_TAIL_CALL);
	}
#endif
#if TENDRIL_ENABLE_IPV6
	if (proto == bpf_htons(ETH_P_IPV6)) {
		bpf_tail_call(ctx, &tnd_xdp_calls, TND_TAIL_XDP_V6);
		return drop(ctx, TND_DROP_MISSED_TAIL_CALL);
	}
#endif
	return XDP_PASS;
}

/* The L3 header that the entry program found, if `len` bytes of it are in
 * the frame; NULL otherwise. */
static __always_inline void *l3_header(struct xdp_md *ctx, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tnd_xdp_scratch *s = scratch();
	__u32 off;

	if (!s)
		return NULL;
	off = s->l3_off;
	if (off > TND_MAX_L3_OFF || data + off + len > data_end)
		return NULL;
	return data + off;
}

#if TENDRIL_ENABLE_NODEPORT
static __always_inline int xdp_lb(struct xdp_md *ctx, const int fam)
{
	struct tnd_xdp_scratch *s = scratch();
	struct tnd_lb_scratch *lb;
	int v;

	/* VLAN-tagged frames are left to tc, which sees them untagged. */
	if (!s || s->l3_off != ETH_HLEN)
		return XDP_PASS;
	/* Not a service's nor a SNATed flow's reply: no scratch, no parse. */
	if (!tnd_lb_maybe(ctx, ETH_HLEN, fam)) {
		tnd_explain_step(TND_XS_NOT_MINE);
		return XDP_PASS;
	}
	lb = tnd_scratch(0);
	if (!lb)
		return XDP_PASS;
	v = tnd_lb_ingress(ctx, ETH_HLEN, fam, lb);
	if (v == TND_DROP)
		return XDP_DROP;
	if (v == TND_REDIRECT) {
		tnd_explain_redirect(lb->fwd.ifindex,
				     lb->fwd.ifindex == ctx->ingress_ifindex ? TND_XR_TX : TND_XR_DEVICE);
		return lb->fwd.ifindex == ctx->ingress_ifindex ? XDP_TX : bpf_redirect(lb->fwd.ifindex, 0);
	}
	return XDP_PASS;
}
#endif

SEC("xdp")
int tnd_xdp_v4(struct xdp_md *ctx)
{
	struct iphdr *ip = l3_header(ctx, sizeof(*ip));

	tnd_explain_prog(TND_XP_XDP_V4);
	if (!ip || ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
#if TENDRIL_ENABLE_PREFILTER
	if (tnd_prefilter_denied_v4(ip->saddr))
		return drop(ctx, TND_DROP_PREFILTER_DENIED);
	tnd_explain_step(TND_XS_PREFILTER_PASS);
#endif
#if TENDRIL_ENABLE_NODEPORT
	return xdp_lb(ctx, 4);
#else
	return XDP_PASS;
#endif
}

SEC("xdp")
int tnd_xdp_v6(struct xdp_md *ctx)
{
	struct ipv6hdr *ip6 = l3_header(ctx, sizeof(*ip6));

	tnd_explain_prog(TND_XP_XDP_V6);
	if (!ip6 || ip6->version != 6)
		return XDP_PASS;
#if TENDRIL_ENABLE_PREFILTER
	if (tnd_prefilter_denied_v6(&ip6->saddr))
		return drop(ctx, TND_DROP_PREFILTER_DENIED);
	tnd_explain_step(TND_XS_PREFILTER_PASS);
#endif
#if TENDRIL_ENABLE_NODEPORT
	return xdp_lb(ctx, 6);
#else
	return XDP_PASS;
#endif
}

char _license[] SEC("license") = "GPL";
