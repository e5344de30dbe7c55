/* SPDX-License-Identifier: Apache-2.0 */
/*
 * eBPF host routing for local endpoints (pods), tc only: the stages that
 * bpf_lxc.c (the host side of each endpoint's veth) and bpf_host.c (native
 * devices) share.
 *
 *   from an endpoint:  reverse translation of service replies, per-packet
 *                      service LB for what socket LB did not translate,
 *                      conntrack, then routing: another local endpoint by
 *                      bpf_redirect_peer, anything else by the FIB and
 *                      bpf_redirect / bpf_redirect_neigh, the node itself
 *                      through the stack;
 *   from the network:  packets for a local endpoint go straight into its
 *                      namespace (bpf_redirect_peer), conntrack marks the
 *                      flow inbound;
 *   to the network:    endpoint traffic to anything outside the pod CIDRs
 *                      and exemptions is masqueraded to the device address
 *                      (NAT maps and ports shared with per-packet LB).
 *
 * Routed packets get their TTL / hop limit decremented like the kernel's
 * forwarding would; one about to expire goes to the stack, which answers
 * with "time exceeded".
 */
#ifndef TND_BPF_HOSTROUTING_H_
#define TND_BPF_HOSTROUTING_H_

#if TND_CTX_XDP
#error "hostrouting.h is for tc programs"
#endif

#include <linux/pkt_cls.h>

#include "nodeport.h"
#include "ep_fast.h"

#ifndef TENDRIL_ENABLE_MASQUERADE
#define TENDRIL_ENABLE_MASQUERADE 1
#endif

/* A stage's verdict as a tc action: redirects into an endpoint's namespace,
 * out of a device with the MACs written, or through the neighbour code. */
static __always_inline int tnd_tc_verdict(int v, const struct tnd_fwd *fwd)
{
	if (v == TND_DROP)
		return TC_ACT_SHOT;
	if (v == TND_REDIRECT) {
		tnd_explain_redirect(fwd->ifindex, fwd->peer ? TND_XR_PEER : fwd->have_mac ? TND_XR_DEVICE : TND_XR_NEIGH);
		if (fwd->peer)
			return bpf_redirect_peer(fwd->ifindex, 0);
		if (fwd->have_mac)
			return bpf_redirect(fwd->ifindex, 0);
		return bpf_redirect_neigh(fwd->ifindex, NULL, 0, 0);
	}
	return TC_ACT_OK;
}

/* tnd_lxc_service: dropped (fwd->reason says why), or answered with a
 * reject (fwd says where it goes). */
#define TND_LXC_DROPPED 11
#define TND_LXC_REJECTED 12

/* 0: decremented; 1: it would expire (leave it to the stack); < 0: error. */
static __always_inline int tnd_ttl_dec(struct __sk_buff *ctx, __u32 l3_off, const int fam)
{
	__u8 hdr[2];

	if (fam == 4) {
		__be16 old_w, new_w;

		/* TTL and protocol share the checksummed 16-bit word. */
		if (ctx_load(ctx, l3_off + 8, hdr, 2) < 0)
			return -1;
		if (hdr[0] <= 1)
			return 1;
		__builtin_memcpy(&old_w, hdr, 2);
		hdr[0]--;
		__builtin_memcpy(&new_w, hdr, 2);
		if (bpf_l3_csum_replace(ctx, l3_off + 10, old_w, new_w, 2) < 0)
			return -1;
		return ctx_store(ctx, l3_off + 8, hdr, 1);
	}
	if (ctx_load(ctx, l3_off + 7, hdr, 1) < 0)
		return -1;
	if (hdr[0] <= 1)
		return 1;
	hdr[0]--;
	return ctx_store(ctx, l3_off + 7, hdr, 1);
}

/* The IP addresses of a packet tnd_parse did not take (ICMP echo, other
 * protocols): enough to route it, if its IP header is one the kernel would
 * take (< 0 otherwise: the stack's, untouched). */
static __always_inline int tnd_load_addrs(struct __sk_buff *ctx, __u32 l3_off, const int fam,
					  struct tnd_pkt *p)
{
	p->l3_off = l3_off;
	p->len = ctx->len;
	if (fam == 4) {
		struct iphdr ip;

		if (ctx_load(ctx, l3_off, &ip, sizeof(ip)) < 0 || !tnd_ipv4_ok(ctx, l3_off, &ip, p))
			return -1;
		__builtin_memcpy(p->t.saddr, &ip.saddr, 4);
		__builtin_memcpy(p->t.daddr, &ip.daddr, 4);
		return 0;
	}
	/* Version and payload length, then the addresses straight into `p`
	 * (no header copy on this frame's stack: it is two calls deep). */
	__u8 vh[6];

	if (ctx_load(ctx, l3_off, vh, sizeof(vh)) < 0 || (vh[0] >> 4) != 6)
		return -1;
	p->l3_end = tnd_l3_end(l3_off + sizeof(struct ipv6hdr), (__u32)vh[4] << 8 | vh[5], p->len);
	if (!p->l3_end)
		return -1;
	if (ctx_load(ctx, l3_off + 8, p->t.saddr, 16) < 0 || ctx_load(ctx, l3_off + 24, p->t.daddr, 16) < 0)
		return -1;
	return 0;
}

/* A trace event for the first packet of a flow: the packet as it arrived
 * (`p->t`), where it goes and what it was translated to. */
static __noinline void tnd_trace(const struct tnd_pkt *p, const struct tnd_ct_key *orig, const int fam,
				 const struct tnd_fwd *fwd, __u8 verdict)
{
	struct tnd_event *e = tnd_event_reserve(&tnd_events, sizeof(*e));

	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->type = TND_EVENT_TRACE;
	e->family = fam;
	e->dir = fwd->point == TND_OBS_TO_NETWORK ? TND_DIR_EGRESS : TND_DIR_INGRESS;
	e->point = fwd->point;
	e->ifindex = fwd->obs_ifindex;
	e->verdict = verdict;
	e->src_ep = tnd_event_src_ep(fwd, orig->saddr, fam);
	e->dst_ep = fwd->dst_ep;
	e->to_ifindex = fwd->ifindex;
	__builtin_memcpy(e->saddr, orig->saddr, 16);
	__builtin_memcpy(e->daddr, orig->daddr, 16);
	e->sport = orig->sport;
	e->dport = orig->dport;
	e->proto = orig->proto;
	/* Translated: the destination (service) or the source (masquerade). */
	if (verdict == TND_TRACE_MASQUERADE) {
		__builtin_memcpy(e->nat_addr, p->t.saddr, 16);
		e->nat_port = p->t.sport;
	} else if (!tnd_addr_eq(p->t.daddr, orig->daddr, fam) || p->t.dport != orig->dport) {
		__builtin_memcpy(e->nat_addr, p->t.daddr, 16);
		e->nat_port = p->t.dport;
	}
	e->len = p->len;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

/* Conntrack for an endpoint flow that is not a service flow: refreshes the
 * packet's own entry (`ct`, the caller's lookup of p->t) or the entry of the
 * flow it answers; else creates one with `flags` (TND_CT_F_ENDPOINT or
 * TND_CT_F_INBOUND). TND_CT_CREATED, TND_CT_ANSWERED (it touched the
 * entry of the flow the packet answers), or 0. */
#define TND_CT_CREATED 1
#define TND_CT_ANSWERED 2
static __noinline int tnd_ct_track(const int fam, const struct tnd_pkt *p, __u32 flags, struct tnd_ct_val *ct)
{
	struct tnd_ct_key rk;
	const bool opens = tnd_tcp_opens(p->t.proto, p->tcp_flags);
	struct tnd_ct_val v = {};
	struct tnd_ct_val *rev;

	tnd_ct_key_reversed(&rk, &p->t);
	if (opens) {
		/* A new connection on a tuple whose reverse a closed service
		 * flow's reply entry still names (the client now talks to the
		 * backend directly, from the same port): that entry would
		 * rewrite this connection's answers to come from the frontend.
		 * A SYN answers nothing, so no reverse entry is this flow's. */
		rev = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);
		if (rev && (rev->flags & TND_CT_F_REPLY))
			tnd_map_delete(tnd_ct_map(fam), &rk);
	} else if (!ct) {
		rev = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);  /* the flow this answers */
		if (rev) {
			tnd_ct_touch(rev, p->t.proto, p->tcp_flags, p->len);
			return TND_CT_ANSWERED;
		}
	}
	if (ct) {
		tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len);
		return 0;
	}
	v.created = tnd_now_sec();
	v.flags = flags;
	tnd_ct_touch(&v, p->t.proto, p->tcp_flags, p->len);
	tnd_map_update(tnd_ct_map(fam), &p->t, &v, BPF_ANY);
	return TND_CT_CREATED;
}

/* A reply of a service flow whose client is an endpoint (or, `mask`, of a
 * local/DSR backend): source back to the frontend. `ct`: the caller's
 * lookup of p->t. 1: rewritten, 0: not such a reply, < 0: the rewrite
 * failed. Updates p->t. */
static __noinline int tnd_rev_dnat(struct __sk_buff *ctx, struct tnd_pkt *p, const int fam, __u32 mask,
				   struct tnd_ct_val *ct)
{
	__u8 fe[16], backend[16];
	__be16 fe_port;
	bool hairpin;
	int ev;

	if (!ct || !(ct->flags & TND_CT_F_REPLY) || !(ct->flags & mask))
		return 0;
	__builtin_memcpy(fe, ct->nat_addr, 16);
	__builtin_memcpy(backend, p->t.saddr, 16);
	fe_port = ct->nat_port;
	hairpin = tnd_same_addr(p->t.daddr, fe);
	ev = tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len);
	if (ev != TND_EV_NONE)
		tnd_ct_mark_fwd(fam, &p->t, ct, TND_EVF(ev, p->tcp_flags));
	if (tnd_rw(ctx, p, fam, true, p->t.saddr, fe, p->t.sport, fe_port) < 0)
		return -1;
	__builtin_memcpy(p->t.saddr, fe, 16);
	p->t.sport = fe_port;
	/* Hairpin: addressed to the frontend, it goes back to its client, the
	 * backend itself. */
	if (hairpin) {
		if (tnd_rw(ctx, p, fam, false, p->t.daddr, backend, p->t.dport, p->t.dport) < 0)
			return -1;
		__builtin_memcpy(p->t.daddr, backend, 16);
	}
	return 1;
}

/* Per-packet service LB for a packet an endpoint sent to a frontend that
 * socket LB did not translate: DNAT to the flow's backend (conntrack) or a
 * new one. The client keeps its address. -1: not a service; 0: existing
 * flow; 1: new flow; TND_LXC_DROPPED: dropped (fwd->reason); TND_LXC_REJECTED:
 * answered (no backend anywhere). `ct`: the caller's lookup of p->t.
 * Updates p->t. */
static __noinline int tnd_lxc_service(struct __sk_buff *ctx, const int fam, struct tnd_lb_scratch *s,
				      struct tnd_ct_val *ct)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	/* The work area lives in the scratch map: this stage is four calls
	 * deep (entry, tnd_from_endpoint, here, tnd_ct_create) and older
	 * verifiers count 512 bytes over the chain. */
	struct tnd_lb_work *w = &s->w;
	struct tnd_svc4_key k4 = {};
	struct tnd_svc6_key k6 = {};
	struct tnd_svc_val *svcp, svc;
	__u8 be_flags = 0;
	bool new_flow = false;
	int r;

	svcp = tnd_svc_lookup(p, fam, &k4, &k6);
	if (!svcp)
		return -1;
	if ((svcp->flags & TND_SVC_F_SRCRANGE) && !tnd_srcrange_ok(fam, svcp->svc_id, p->t.saddr)) {
		tnd_drop_pkt(fwd, p, fam, TND_DROP_SOURCE_RANGE, TND_DIR_INGRESS, ctx->ifindex);
		return TND_LXC_DROPPED;
	}
	svc = *tnd_svc_internal(TND_SVC_MAP(fam), TND_SVC_KEY(&k4, &k6, fam), TND_SVC_SCOPE(&k4, &k6, fam), svcp);
	/* The same choice as per-packet LB at the node's devices (nodeport.h). */
	r = tnd_lb_pick(ctx, s, fam, &k4, &k6, &svc, ct, &new_flow, &be_flags, ctx->ifindex);
	if (r >= 0)
		return r == TND_REDIRECT ? TND_LXC_REJECTED : TND_LXC_DROPPED;
	tnd_lb_track(p, fam, w, new_flow ? NULL : ct, TND_CT_F_ENDPOINT, &s->fwd);
	__builtin_memcpy(w->node, p->t.daddr, 16); /* the frontend */
	if (tnd_rw(ctx, p, fam, false, p->t.daddr, w->be_addr, p->t.dport, w->be_port) < 0) {
		tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx->ifindex);
		return TND_LXC_DROPPED;
	}
	__builtin_memcpy(p->t.daddr, w->be_addr, 16);
	p->t.dport = w->be_port;
	/* Hairpin: the endpoint reaches itself through the service. From its
	 * own address it would not accept the packet (a martian source), and
	 * its answer would never come back here: the source becomes the
	 * frontend (conntrack.h), the port stays. */
	if (tnd_same_addr(w->be_addr, p->t.saddr)) {
		if (tnd_rw(ctx, p, fam, true, p->t.saddr, w->node, p->t.sport, p->t.sport) < 0) {
			tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx->ifindex);
			return TND_LXC_DROPPED;
		}
		__builtin_memcpy(p->t.saddr, w->node, 16);
	}
	return new_flow;
}

/* Routes a packet the node forwards (from an endpoint, or from the network
 * to an endpoint): decides, decrements the TTL, writes the MACs. A verdict;
 * *trace says how it left, for trace events. */
static __noinline int tnd_route(struct __sk_buff *ctx, struct tnd_pkt *p, const int fam,
				struct tnd_fwd *fwd, __u8 *trace)
{
	int r = tnd_fib(ctx, fam, p->t.saddr, p->t.daddr, p, p->t.sport, p->t.dport, fwd);
	int t;

	*trace = TND_TRACE_TO_STACK;
	/* 2: an address of this node; 3: forwarding off; -2: too big (the
	 * stack sends "fragmentation needed"): all the stack's. */
	if (r == 2 || r == 3 || r == -2)
		return TND_PASS;
	if (r < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, ctx->ifindex);
	t = tnd_ttl_dec(ctx, p->l3_off, fam);
	if (t == 1)
		return TND_PASS;
	if (t < 0 || tnd_write_macs(ctx, fwd) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx->ifindex);
	*trace = fwd->peer ? TND_TRACE_TO_ENDPOINT : r == 1 ? TND_TRACE_REDIRECT_NEIGH : TND_TRACE_REDIRECT;
	if (fwd->peer)
		tnd_explain_step(TND_XS_TO_ENDPOINT);
	return TND_REDIRECT;
}

/* The local endpoint a packet from the network is addressed to, if any. */
static __always_inline struct tnd_endpoint *tnd_host_dst_ep(struct __sk_buff *ctx, const int fam)
{
	/* The key filled in place: this is the entry program's frame. */
	struct tnd_ep_key k = { .family = fam };

	if (ctx_load(ctx, ETH_HLEN + (fam == 4 ? 16 : 24), k.addr, fam == 4 ? 4 : 16) < 0)
		return NULL;
	return bpf_map_lookup_elem(&tnd_endpoints, &k);
}

/* From the network, parsed into s->p (per-packet LB's parse, or the
 * caller's when LB had nothing to do with it): one for a local endpoint goes
 * into its namespace. `ep`: the caller's lookup of the destination, NULL
 * when it did not make one. */
static __noinline __attribute__((unused)) int tnd_host_to_endpoint(struct __sk_buff *ctx, const int fam,
								    struct tnd_lb_scratch *s,
								    struct tnd_endpoint *ep)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_ct_key *orig = &s->orig;
	struct tnd_ct_val *ct = NULL;
	__u32 gen = tnd_node_gen(); /* before any decision */
	__u8 trace;
	int created = 0, v;

	if (!ep && !tnd_host_dst_ep(ctx, fam))
		return TND_PASS;
	if (!p->parsed && tnd_load_addrs(ctx, ETH_HLEN, fam, p) < 0)
		return TND_PASS;
	*orig = p->t;
	if (p->parsed && !p->icmp_err) {
		/* One lookup of the packet's own entry serves each stage. */
		ct = tnd_state_lookup(tnd_ct_map(fam), &p->t, struct tnd_ct_val);
		v = tnd_rev_dnat(ctx, p, fam, TND_CT_F_ENDPOINT, ct);
		if (v < 0)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx->ifindex);
		if (v == 0)
			created = tnd_ct_track(fam, p, TND_CT_F_INBOUND, ct);
	}
	v = tnd_route(ctx, p, fam, fwd, &trace);
	tnd_ep_cache(ct, fwd, gen, TND_CT_F_INBOUND, v);
	if (created == TND_CT_ANSWERED && v == TND_REDIRECT)
		tnd_ep_cache_reply(fam, &p->t, fwd, gen, TND_CT_F_ENDPOINT);
	if (created == TND_CT_CREATED && v != TND_DROP)
		tnd_trace(p, orig, fam, fwd, trace);
	return v;
}

/* From an endpoint (bpf_lxc, host side of its veth). */
static __noinline __attribute__((unused)) int tnd_from_endpoint(struct __sk_buff *ctx, const int fam, struct tnd_lb_scratch *s)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_ct_key *orig = &s->orig;
	struct tnd_ct_val *ct = NULL;
	__u32 gen = tnd_node_gen(); /* before any decision */
	__u8 trace;
	int created = 0, v;

	if (tnd_parse(ctx, ETH_HLEN, fam, p) < 0 || p->icmp_err) {
		p->parsed = 0;
		if (tnd_load_addrs(ctx, ETH_HLEN, fam, p) < 0)
			return TND_PASS;
	}
	*orig = p->t;
	if (p->parsed) {
		/* One lookup of the packet's own entry serves each stage. */
		ct = tnd_state_lookup(tnd_ct_map(fam), &p->t, struct tnd_ct_val);
		v = tnd_rev_dnat(ctx, p, fam, TND_CT_F_ENDPOINT | TND_CT_F_LOCAL | TND_CT_F_DSR, ct);
		if (v < 0)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx->ifindex);
		if (v == 0) {
			v = tnd_lxc_service(ctx, fam, s, ct);
			if (v == TND_LXC_DROPPED)
				return TND_DROP;
			if (v == TND_LXC_REJECTED)
				return TND_REDIRECT;
			if (v < 0)
				created = tnd_ct_track(fam, p, TND_CT_F_ENDPOINT, ct);
			else
				created = v ? TND_CT_CREATED : 0;
		}
	}
	v = tnd_route(ctx, p, fam, fwd, &trace);
	tnd_ep_cache(ct, fwd, gen, TND_CT_F_ENDPOINT, v);
	if (created == TND_CT_ANSWERED && v == TND_REDIRECT)
		tnd_ep_cache_reply(fam, &p->t, fwd, gen, TND_CT_F_ENDPOINT | TND_CT_F_INBOUND);
	if (created == TND_CT_CREATED && v != TND_DROP)
		tnd_trace(p, orig, fam, fwd, trace);
	return v;
}

/* To the network: the endpoint's own flows leave with the device's address
 * (s->p parsed by tnd_lb_egress). Replies of inbound flows, traffic to pod
 * CIDRs and exempt destinations keep theirs. A verdict, or -1: left as it
 * is (for every packet of its flow while the device and lists stay). */
static __noinline __attribute__((unused)) int tnd_masquerade(struct __sk_buff *ctx, const int fam,
								struct tnd_lb_scratch *s)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_lb_work *w = &s->w;
	struct tnd_ct_key rk;
	struct tnd_endpoint *ep;
	struct tnd_device *dev;
	struct tnd_ct_val *ct;
	__u32 ifindex = ctx->ifindex;
	__be16 port;
	bool exempt, fresh;

	if (!p->has_l4)
		return -1;
	ep = tnd_ep_lookup(p->t.saddr, fam);
	if (!ep)
		return -1;
	if (fam == 4) {
		struct tnd_lpm_v4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, p->t.daddr, 4);
		exempt = bpf_map_lookup_elem(&tnd_nomasq_v4, &k) != NULL;
	} else {
		struct tnd_lpm_v6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, p->t.daddr, 16);
		exempt = bpf_map_lookup_elem(&tnd_nomasq_v6, &k) != NULL;
	}
	if (exempt)
		return -1;
	tnd_ct_key_reversed(&rk, &p->t);
	ct = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);
	if (ct && (ct->flags & TND_CT_F_INBOUND))
		return -1;
	dev = bpf_map_lookup_elem(&tnd_devices, &ifindex);
	if (!dev)
		return -1;
	fwd->point = TND_OBS_TO_NETWORK;
	fwd->obs_ifindex = ifindex;
	fwd->src_ep = ep->id;
	fwd->ifindex = ifindex;
	__builtin_memset(w, 0, sizeof(*w));
	if (fam == 4)
		__builtin_memcpy(w->node, &dev->ipv4, 4);
	else
		__builtin_memcpy(w->node, dev->ipv6, 16);
	if (!(*(__u64 *)w->node | *(__u64 *)&w->node[8]))
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_NODE_ADDR, TND_DIR_EGRESS, ifindex);
	__builtin_memcpy(w->be_addr, p->t.daddr, 16);
	w->be_port = p->t.dport;
	w->hash = tnd_flow_hash(&p->t);
	/* rk: the packet's tuple from here on, which is also the key of its
	 * NAT "out" entry (dir TND_NAT_OUT = 0 in the pad byte). Is there a
	 * mapping already? (Only for the trace: the first packet.) */
	rk = p->t;
	rk.pad = TND_NAT_OUT;
	fresh = bpf_map_lookup_elem(tnd_nat_map(fam), &rk) == NULL;
	port = tnd_snat_port(fam, &p->t, w, p->tcp_flags | (TND_NAT_F_MASQ << 8) | TND_NAT_SLOT_EGRESS);
	if (!port)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NAT_EXHAUSTED, TND_DIR_EGRESS, ifindex);
	if (tnd_rw(ctx, p, fam, true, p->t.saddr, w->node, p->t.sport, port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ifindex);
	tnd_explain_set(TND_XS_MASQUERADE, snat_port, port);
	__builtin_memcpy(p->t.saddr, w->node, 16);
	p->t.sport = port;
	if (fresh)
		tnd_trace(p, &rk, fam, fwd, TND_TRACE_MASQUERADE);
	return TND_PASS;
}

#endif
