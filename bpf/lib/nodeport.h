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
 * Egress (tc only, nodeport_egress.h): replies of local backends (and DSR
 * backends) leave with the frontend as source.
 *
 * Every decision is taken (lookups, FIB) before anything is written, so a
 * packet that XDP hands on to tc arrives unmodified and tc repeats the work.
 */
#ifndef TND_BPF_NODEPORT_H_
#define TND_BPF_NODEPORT_H_

#include "conntrack.h"
#include "ctx.h"
#include "scratch.h"
#include "csum.h"
#include "rewrite.h"
#include "parse.h"
#include "drop.h"
#if !TND_CTX_XDP
#include "reject.h"
#endif
#include "lookup.h"
#include "fib.h"
#include "nat.h"
#include "dsr.h"

/* XDP hands the packet on, unmodified, for tc to finish (explain's step). */
#define TND_TO_TC() (tnd_explain_step(TND_XS_TO_TC), TND_PASS)

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
	__u32 gen = tnd_node_gen(); /* before any decision */
	bool cached;
	int r, ev;

	__builtin_memcpy(in.saddr, p->t.saddr, 16);
	__builtin_memcpy(in.daddr, p->t.daddr, 16);
	in.sport = p->t.sport;
	in.dport = p->t.dport;
	nv = tnd_state_lookup(tnd_nat_map(fam), &in, struct tnd_nat_val);
	if (!nv)
		return -1;
	tnd_explain_step(TND_XS_NAT_REPLY);
	__builtin_memcpy(client, nv->to_addr, 16);
	client_port = nv->to_port;

	/* After restoring the client, the reply conntrack entry names the
	 * frontend to answer from. */
	ck = p->t;
	__builtin_memcpy(ck.daddr, client, 16);
	ck.dport = client_port;
	ct = tnd_state_lookup(tnd_ct_map(fam), &ck, struct tnd_ct_val);
	if (ct && !(ct->flags & TND_CT_F_REPLY))
		ct = NULL;
	if (ct) {
		__builtin_memcpy(fe, ct->nat_addr, 16);
		fe_port = ct->nat_port;
	}
	/* The way to the client: cached in the reply entry (conntrack.h), or
	 * the FIB's answer, which the entry then caches. */
	cached = ct && tnd_ct_cache_ok(ct, p->tcp_flags, gen);
	if (cached) {
		tnd_ct_cached_hop(ct, fwd);
		r = TND_CTX_XDP && fwd->peer && !tnd_xdp_rx_fits(fwd, p) ? 1 : 0; /* into a pod XDP cannot reach: tc's */
	} else {
		r = tnd_fib(ctx, fam, ct ? fe : p->t.daddr, client, p, ct ? fe_port : p->t.dport, client_port, fwd);
		if (ct && r == 0)
			tnd_ct_cache_hop(ct, fwd, gen);
	}
#if TND_CTX_XDP
	if (r == 1 || r == -2)
		return TND_TO_TC(); /* tc resolves the neighbour / answers too big */
#endif
	if (r == -2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_TOO_BIG, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	if (r < 0 || r >= 2)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_NO_ROUTE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
	/* A valid cache was filled in this tick by a packet that refreshed
	 * both entries' lifetimes and states, and this packet's flags add
	 * nothing to them: only the counters. */
	if (cached) {
		ct->packets += 1;
		ct->bytes += p->len;
	} else {
		ev = tnd_state_update(&nv->tcp_flags, &nv->expires, p->t.proto, p->tcp_flags, tnd_now_sec());
		if (ev != TND_EV_NONE) {
			tnd_nat_note_reset(nv, TND_EVF(ev, p->tcp_flags));
			tnd_nat_mark_out(fam, &in, nv, TND_EVF(ev, p->tcp_flags));
		}
		ev = ct ? tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len) : TND_EV_NONE;
		if (ev != TND_EV_NONE)
			tnd_ct_mark_fwd(fam, &ck, ct, TND_EVF(ev, p->tcp_flags));
	}
	if (tnd_rw_nat(ctx, p, fam, client, client_port, ct != NULL, fe, fe_port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, ctx_in_ifindex(ctx));
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
	nv = tnd_state_lookup(tnd_nat_map(fam), &in, struct tnd_nat_val);
	if (!nv)
		return TND_PASS;
	__builtin_memcpy(client, nv->to_addr, 16);
	client_port = nv->to_port;
	__builtin_memcpy(ck.saddr, p->inner.daddr, 16);
	__builtin_memcpy(ck.daddr, client, 16);
	ck.sport = p->inner.dport;
	ck.dport = client_port;
	ct = tnd_state_lookup(tnd_ct_map(fam), &ck, struct tnd_ct_val);
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
	struct tnd_ct_key rk;
	struct tnd_ct_val v = {};
	struct tnd_ct_val *cur;
	__u32 now = tnd_now_sec();

	tnd_ct_key_reversed(&rk, &p->t);
	tnd_explain_step(TND_XS_DSR_LEARN);
	cur = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);
	if (cur && (cur->flags & TND_CT_F_DSR))
		return;
	__builtin_memcpy(v.nat_addr, p->dsr_addr, 16);
	v.nat_port = p->dsr_port;
	v.flags = TND_CT_F_REPLY | TND_CT_F_DSR | TND_CT_F_LOCAL;
	v.created = now;
	v.expires = now + tnd_ct_lifetime(p->t.proto, p->tcp_flags);
	tnd_map_update(tnd_ct_map(fam), &rk, &v, BPF_ANY);
}

/* The forward and reply conntrack entries of a new service flow; the
 * forward one caches the path (w->cache). */
static __noinline void tnd_ct_create(const int fam, const struct tnd_pkt *p, const struct tnd_lb_work *w,
				     const struct tnd_fwd *fwd)
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
	tnd_map_update(tnd_ct_map(fam), &rk, &v, BPF_ANY);
	/* The forward entry counts this packet; the reply entry starts at 0. */
	__builtin_memset(v.nat_addr, 0, 16);
	v.nat_port = 0;
	v.flags = TND_CT_F_SERVICE | w->flags;
	tnd_ct_cache_path(&v, w, fwd);
	tnd_map_update(tnd_ct_map(fam), &p->t, &v, BPF_ANY);
}

/* A service lookup by p's destination (slot 0, external scope), from the
 * key of its family, after the port filter (tnd_svc_port_used); `fam` is a
 * constant in each program. Choosing a backend later rewrites the key's
 * slot (and scope). */
#define TND_SVC_MAP(fam) ((fam) == 4 ? (void *)&tnd_svc_v4 : (void *)&tnd_svc_v6)
#define TND_SVC_KEY(k4, k6, fam) ((fam) == 4 ? (void *)(k4) : (void *)(k6))
#define TND_SVC_SLOT(k4, k6, fam) ((fam) == 4 ? &(k4)->slot : &(k6)->slot)
#define TND_SVC_SCOPE(k4, k6, fam) ((fam) == 4 ? &(k4)->scope : &(k6)->scope)

static __always_inline struct tnd_svc_val *tnd_svc_lookup(const struct tnd_pkt *p, const int fam,
							  struct tnd_svc4_key *k4, struct tnd_svc6_key *k6)
{
	if (!tnd_svc_port_used(p->t.dport))
		return NULL; /* no frontend has this port: no lookup */
	if (fam == 4) {
		__builtin_memcpy(&k4->addr, p->t.daddr, 4);
		k4->port = p->t.dport;
		k4->proto = p->t.proto;
	} else {
		__builtin_memcpy(k6->addr, p->t.daddr, 16);
		k6->port = p->t.dport;
		k6->proto = p->t.proto;
	}
	return tnd_table_lookup(TND_SVC_MAP(fam), TND_SVC_KEY(k4, k6, fam));
}

/* SNAT of a flow to a remote backend: the device's address of the family
 * in w->node (zero when it has none) and the flow's port: the one its
 * forward entry names (tnd_lb_pick put it in w->nport and its address in
 * w->node), while the device has that address and the mapping stands, or
 * a free one. 0 when there is none (or no address). */
static __always_inline __be16 tnd_lb_snat_port(const struct tnd_pkt *p, const int fam, struct tnd_lb_work *w,
					       const struct tnd_device *dev)
{
	const __u8 *addr = fam == 4 ? (const __u8 *)&dev->ipv4 : dev->ipv6;

	if (w->nport && !tnd_addr_eq(w->node, addr, fam))
		w->nport = 0;
	if (fam == 4)
		__builtin_memcpy(w->node, addr, 4);
	else
		__builtin_memcpy(w->node, addr, 16);
	if (!(*(__u64 *)w->node | *(__u64 *)&w->node[8]))
		return 0;
	return tnd_snat_port(fam, &p->t, w, p->tcp_flags | (TND_NAT_F_SERVICE << 8));
}

/* The flow's backend: the one its conntrack entry names, or a new choice
 * (affinity, Maglev, random slot) when there is none or it left the
 * service. Fills the work area. < 0: chosen; else the verdict (no backend:
 * a reject, a drop). */
static __always_inline int tnd_lb_pick(TND_CTX *ctx, struct tnd_lb_scratch *s, const int fam,
				       struct tnd_svc4_key *k4, struct tnd_svc6_key *k6, const struct tnd_svc_val *svc,
				       const struct tnd_ct_val *ct, bool *new_flow, __u8 *be_flags, __u32 in_if)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_lb_work *w = &s->w;
	struct tnd_backend *be = NULL;
	__u32 bid = 0;

	__builtin_memset(w, 0, sizeof(*w));
	if (ct && (ct->flags & TND_CT_F_SERVICE) && ct->svc_id == svc->svc_id) {
		if (ct->flags & TND_CT_F_SNAT) {
			/* Its SNAT mapping so far, kept while it stands
			 * (tnd_lb_snat_port), a reopened flow's too. */
			__builtin_memcpy(w->node, ct->snat_addr, 16);
			w->nport = ct->snat_port;
		}
		if (!tnd_ct_reopened(ct, p->t.proto, p->tcp_flags)) {
			bid = ct->backend_id;
			be = tnd_table_lookup(&tnd_backends, &bid);
		}
		if (be && (be->svc_id != svc->svc_id || (be->flags & TND_BACKEND_F_RETIRED)))
			be = NULL;
		if (be)
			tnd_explain_step(TND_XS_CT_BACKEND);
	}
	w->hash = tnd_flow_hash(&p->t);
	if (!be) {
		if (svc->count == 0 && (svc->xflags & TND_SVC_X_REJECT)) {
#if TND_CTX_XDP
			return TND_TO_TC(); /* tc answers it */
#else
			return tnd_reject(ctx, p, fam, fwd, TND_DROP_NO_SERVICE_BACKEND, in_if);
#endif
		}
		if (svc->count == 0)
			return tnd_drop_pkt(fwd, p, fam,
					    (svc->flags & TND_SVC_F_LOCAL) ? TND_DROP_NO_LOCAL_BACKEND
									  : TND_DROP_NO_SERVICE_BACKEND,
					    TND_DIR_INGRESS, in_if);
		be = tnd_select_backend(TND_SVC_MAP(fam), TND_SVC_KEY(k4, k6, fam), TND_SVC_SLOT(k4, k6, fam), svc,
					w->hash,
					tnd_client_id(p->t.saddr, fam), false, &bid);
		if (!be)
			return tnd_drop_pkt(fwd, p, fam, TND_DROP_BACKEND_MISSING, TND_DIR_INGRESS, in_if);
		*new_flow = true;
	}
	__builtin_memcpy(w->be_addr, be->addr, 16);
	w->be_port = be->port;
	w->bid = bid;
	tnd_explain_set(TND_XS_SERVICE, backend_id, bid);
	w->svc_id = svc->svc_id;
	*be_flags = be->flags;
	return -1;
}

/* The way to the chosen backend (tnd_fib): 0 forwarded, 1 forwarded with
 * the neighbour unresolved, 2 to this node's stack (a host-network
 * backend). < 0: *verdict says what to do instead (hand on from XDP, drop). */
static __always_inline int tnd_lb_route(TND_CTX *ctx, const struct tnd_pkt *p, const int fam,
					const struct tnd_lb_work *w, struct tnd_fwd *fwd, __u8 be_flags, __u32 in_if,
					int *verdict)
{
	int r = tnd_fib(ctx, fam, p->t.saddr, w->be_addr, p, p->t.sport, w->be_port, fwd);

#if TND_CTX_XDP
	if (r == -2) {
		*verdict = TND_TO_TC();
		return -1;
	}
#endif
	/* r == 2: not forwarded; r == 3: forwarding is off here. For a backend
	 * on this node's own address (host network) neither matters: DNAT and
	 * hand the packet to the stack. Anything else has no route. */
	if (r == 3)
		r = (be_flags & TND_BACKEND_F_HOST) ? 2 : -1;
	if (r == 2 && !(be_flags & TND_BACKEND_F_HOST))
		r = -1;
	if (r < 0)
		*verdict = tnd_drop_pkt(fwd, p, fam, r == -2 ? TND_DROP_TOO_BIG : TND_DROP_NO_ROUTE, TND_DIR_INGRESS,
					in_if);
	return r;
}

/* Conntrack: a new flow gets its forward entry (pins the backend) and reply
 * entry (names the frontend for the way back); an existing one is touched,
 * and its reply entry learns of a close or reopen. */
static __always_inline void tnd_lb_track(const struct tnd_pkt *p, const int fam, struct tnd_lb_work *w,
					 struct tnd_ct_val *ct, __u8 flags, const struct tnd_fwd *fwd)
{
	int ev;

	if (!ct) {
		w->flags = flags;
		tnd_explain_step(TND_XS_CT_NEW);
		tnd_ct_create(fam, p, w, fwd);
		return;
	}
	ev = tnd_ct_touch(ct, p->t.proto, p->tcp_flags, p->len);
	if (ev != TND_EV_NONE)
		tnd_ct_mark_reply(fam, &p->t, w->be_addr, w->be_port, TND_EVF(ev, p->tcp_flags));
	tnd_ct_cache_path(ct, w, fwd);
}

/* 0. An established flow whose forward entry caches its path (conntrack.h):
 * the rewrite and the redirect, no other lookup, the service's included: a
 * valid cache was filled under this generation, which every service and
 * backend change bumps, so its service and backend are as they were. An
 * endpoint's (pod's) flow is not served here: its packets come from the
 * pod's veth, not from the network. < 0: the full path runs. */
static __always_inline int tnd_lb_fast(TND_CTX *ctx, struct tnd_pkt *p, const int fam, struct tnd_fwd *fwd,
				       struct tnd_ct_val *ct, __u32 gen, __u32 in_if)
{
	if (!ct || (ct->flags & (TND_CT_F_SERVICE | TND_CT_F_ENDPOINT)) != TND_CT_F_SERVICE ||
	    !tnd_ct_cache_ok(ct, p->tcp_flags, gen))
		return -1;
	/* A DSR flow's SYN (a retransmission too) carries the option: tc's. */
	if ((ct->flags & TND_CT_F_DSR) && (p->tcp_flags & TND_TCP_SYN))
		return TND_CTX_XDP ? TND_TO_TC() : -1;
	tnd_ct_cached_hop(ct, fwd);
	/* XDP sends on what the full path lets it (tnd_lb_service): SNAT, DSR
	 * and delivery into a veth that takes XDP frames. A local backend
	 * behind any other device (not an endpoint: no peer) is tc's too. */
	if (TND_CTX_XDP && (fwd->peer ? !tnd_xdp_rx_fits(fwd, p) : !(ct->flags & (TND_CT_F_SNAT | TND_CT_F_DSR))))
		return TND_TO_TC();
	tnd_explain_set(TND_XS_CACHED_PATH, backend_id, ct->backend_id);
	ct->packets += 1;
	ct->bytes += p->len;
	if (tnd_rw_nat(ctx, p, fam, ct->nat_addr, ct->nat_port, ct->flags & TND_CT_F_SNAT, ct->snat_addr,
		       ct->snat_port) < 0 ||
	    tnd_write_macs(ctx, fwd) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_INGRESS, in_if);
	return TND_REDIRECT;
}

/* The rewrite of a flow's packet on the full path: DNAT to the backend,
 * SNAT when w->nport is set, the DSR option (tc, a flow's first packet or a
 * SYN), the MACs. `r` is tnd_lb_route's answer. A verdict. */
static __always_inline int tnd_lb_rewrite(TND_CTX *ctx, struct tnd_pkt *p, const int fam,
					  const struct tnd_lb_work *w, struct tnd_fwd *fwd, bool dsr, bool new_flow,
					  int r, __u32 in_if)
{
	/* p->t keeps the tuple as it arrived: the "from" of each rewrite. */
	if (tnd_rw_nat(ctx, p, fam, w->be_addr, w->be_port, w->nport != 0, w->node, w->nport) < 0)
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
	struct tnd_svc_val *svcp, svc;
	struct tnd_ct_val *ct;
	struct tnd_device *dev;
	__u8 be_flags = 0;
	__u32 in_if = ctx_in_ifindex(ctx);
	bool new_flow = false, remote, snat, dsr;
	__be16 nport = 0;
	__u32 gen;
	int r, verdict = TND_PASS;

	if (!tnd_svc_port_used(p->t.dport))
		return TND_PASS; /* no frontend has this port: no lookup */
	/* Read before any decision: a change after it bumps it again. */
	gen = tnd_node_gen();
	/* An established flow first: one lookup (tnd_lb_fast). */
	ct = tnd_state_lookup(tnd_ct_map(fam), &p->t, struct tnd_ct_val);
	r = tnd_lb_fast(ctx, p, fam, fwd, ct, gen, in_if);
	if (r >= 0)
		return r;
	svcp = tnd_svc_lookup(p, fam, &k4, &k6);
	/* (No explain steps in this function: explain reads the service, its
	 * source ranges, SNAT and DSR from the maps and the frame. Marks here
	 * made 6.1's verifier explore 2.5x the instructions.) */
	if (!svcp || !(svcp->flags & TND_SVC_F_EXTERNAL))
		return TND_PASS;
	svc = *svcp;
	if ((svc.flags & TND_SVC_F_SRCRANGE) && !tnd_srcrange_ok(fam, svc.svc_id, p->t.saddr))
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_SOURCE_RANGE, TND_DIR_INGRESS, in_if);

	r = tnd_lb_pick(ctx, s, fam, &k4, &k6, &svc, ct, &new_flow, &be_flags, in_if);
	if (r >= 0)
		return r;
	w->gen = gen;

	r = tnd_lb_route(ctx, p, fam, w, fwd, be_flags, in_if, &verdict);
	if (r < 0)
		return verdict;
	dev = r == 2 ? NULL : bpf_map_lookup_elem(&tnd_devices, &fwd->ifindex);
	remote = dev != NULL;
	dsr = remote && (svc.flags & TND_SVC_F_DSR) && !(svc.flags & TND_SVC_F_LOCAL);
	snat = remote && !(svc.flags & (TND_SVC_F_LOCAL | TND_SVC_F_DSR));
#if TND_CTX_XDP
	/* XDP does what it rewrites in place: SNAT, DSR past the packets that
	 * carry the option (a flow's first, a SYN: tc inserts it), and delivery
	 * to a local backend whose veth takes XDP frames. Other local delivery
	 * and unresolved neighbours are tc's, on the unmodified packet. */
	if (r > 0 || !(snat || dsr || fwd->peer == TND_PEER_XDP) ||
	    (dsr && (new_flow || (p->tcp_flags & TND_TCP_SYN))))
		return TND_TO_TC();
#endif
	if (snat) {
		nport = tnd_lb_snat_port(p, fam, w, dev);
		if (!nport)
			return tnd_drop_pkt(fwd, p, fam,
					    (*(__u64 *)w->node | *(__u64 *)&w->node[8]) ? TND_DROP_NAT_EXHAUSTED
											: TND_DROP_NO_NODE_ADDR,
					    TND_DIR_INGRESS, in_if);
	}

	w->nport = nport;
	w->cache = r == 0; /* forwarded with the MACs known (a DSR SYN never takes the cache) */
	tnd_lb_track(p, fam, w, new_flow ? NULL : ct,
		     (snat ? TND_CT_F_SNAT : 0) | (dsr ? TND_CT_F_DSR : 0) | (remote ? 0 : TND_CT_F_LOCAL) |
			     (TND_CTX_XDP ? TND_CT_F_XDP : 0),
		     fwd);
	return tnd_lb_rewrite(ctx, p, fam, w, fwd, dsr, new_flow, r, in_if);
}

#if !TND_CTX_XDP
#include "nodeport_egress.h"
#endif

/* Per-packet LB at ingress. Returns a verdict; s->fwd says where or why. */
static __always_inline int tnd_lb_ingress(TND_CTX *ctx, __u32 l3_off, const int fam,
					  struct tnd_lb_scratch *s)
{
	struct tnd_pkt *p = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	int v;

	if (tnd_parse(ctx, l3_off, fam, p) < 0) {
		tnd_explain_step(TND_XS_NOT_LB);
		return TND_PASS;
	}
	if (p->icmp_err)
		return tnd_lb_icmp_ingress(ctx, p, fam, fwd);
	/* Replies of SNATed flows come to a port of the NAT range. */
	if (tnd_nat_port_ours(p->t.dport)) {
		v = tnd_lb_rev_snat(ctx, p, fam, fwd);
		if (v >= 0)
			return v;
	}
	if (p->dsr) {
		tnd_lb_dsr_learn(p, fam);
		return TND_PASS;
	}
	return tnd_lb_service(ctx, s, fam);
}

#endif

