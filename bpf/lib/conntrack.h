/* SPDX-License-Identifier: Apache-2.0 */
/* Conntrack: entry lifetimes, the TCP state machine, and how the two
 * entries of a flow learn of each other's events. Maps in maps_ct.h. */
#ifndef TND_BPF_CONNTRACK_H_
#define TND_BPF_CONNTRACK_H_

#include "lb.h"
#include "maps_ct.h"
#include "maps_node.h"
#include "node_info.h"
#include "scratch.h"

/* How long an entry lives after this packet, by protocol and TCP flags seen. */
static __always_inline __u32 tnd_ct_lifetime(__u8 proto, __u8 seen)
{
	if (proto != IPPROTO_TCP)
		return TND_CT_UDP_TIMEOUT;
	if (seen & (TND_TCP_FIN | TND_TCP_RST))
		return TND_CT_CLOSE_TIMEOUT;
	if (!(seen & TND_TCP_ACK))
		return TND_CT_SYN_TIMEOUT;
	return TND_CT_TCP_TIMEOUT;
}

/* A TCP SYN without ACK: opens a connection, never answers one. */
static __always_inline bool tnd_tcp_opens(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (TND_TCP_SYN | TND_TCP_ACK)) == TND_TCP_SYN;
}

/* The client reused the tuple of a closed connection (FIN or RST seen) for
 * a new one: like the kernel's conntrack, that is a new flow, which chooses
 * its backend again (the old one may have left the service since). */
static __always_inline bool tnd_ct_reopened(const struct tnd_ct_val *v, __u8 proto, __u8 tcp_flags)
{
	return tnd_tcp_opens(proto, tcp_flags) && (v->tcp_flags & (TND_TCP_FIN | TND_TCP_RST));
}

/*
 * Flow state, shared by conntrack and NAT entries. A flow that has two
 * entries (a service flow's forward and reply conntrack entries; a NAT
 * mapping's out and in entries) has each refreshed by the packets of its
 * own direction. The two must end together: when one sees the flow close
 * (its first FIN or RST) or a SYN reopen it, the other is told
 * (tnd_state_mark), so both live the closing lifetime, or start again.
 * Returned by tnd_state_update so that only those rare packets pay for the
 * second lookup.
 */
#define TND_EV_NONE 0
#define TND_EV_CLOSE 1   /* the flow's first FIN or RST */
#define TND_EV_REOPEN 2  /* a SYN on a closed flow's tuple: a new connection */
/* An event and the TCP flags of the packet that caused it, in one argument
 * (BPF functions take five). */
#define TND_EVF(ev, tcp_flags) (((__u32)(ev) << 8) | (tcp_flags))

static __always_inline int tnd_state_update(__u8 *seen_p, __u32 *expires, __u8 proto, __u8 tcp_flags,
					    __u32 now)
{
	__u8 seen = *seen_p;
	bool closed = seen & (TND_TCP_FIN | TND_TCP_RST);
	int ev = TND_EV_NONE;

	if (tnd_tcp_opens(proto, tcp_flags) && closed) {
		seen = 0;
		closed = false;
		ev = TND_EV_REOPEN;
	}
	seen |= tcp_flags & (TND_TCP_SYN | TND_TCP_FIN | TND_TCP_RST | TND_TCP_ACK);
	if (!closed && (seen & (TND_TCP_FIN | TND_TCP_RST)))
		ev = TND_EV_CLOSE;
	if (seen != *seen_p)
		*seen_p = seen;
	*expires = now + tnd_ct_lifetime(proto, seen);
	return ev;
}

/* The other entry of a flow learns of an event (TND_EVF). */
static __always_inline void tnd_state_mark(__u8 *seen_p, __u32 *expires, __u8 proto, __u32 evf)
{
	__u8 seen = (evf >> 8) == TND_EV_REOPEN ? 0 : *seen_p | (evf & (TND_TCP_FIN | TND_TCP_RST));

	*seen_p = seen;
	*expires = tnd_now_sec() + tnd_ct_lifetime(proto, seen);
}

/* Accounts one packet to a conntrack entry and refreshes its lifetime. A SYN
 * on a closed entry reopens it (port reuse). Returns a TND_EV_*. */
static __always_inline int tnd_ct_touch(struct tnd_ct_val *v, __u8 proto, __u8 tcp_flags, __u32 len)
{
	v->packets += 1;
	v->bytes += len;
	return tnd_state_update(&v->tcp_flags, &v->expires, proto, tcp_flags, tnd_now_sec());
}

/* Tells the conntrack entry `k` (the other of a pair) of `ev`. A separate
 * BPF function: rare, and its key stays off the caller's stack. */
static __noinline void tnd_ct_mark(const int fam, const struct tnd_ct_key *k, __u32 evf)
{
	struct tnd_ct_val *v = tnd_state_lookup(fam == 4 ? (void *)&tnd_ct_v4 : (void *)&tnd_ct_v6, k, struct tnd_ct_val);

	if (v)
		tnd_state_mark(&v->tcp_flags, &v->expires, k->proto, evf);
}

/* out: the tuple of the other direction of `in` (its replies'). */
static __always_inline void tnd_ct_key_reversed(struct tnd_ct_key *out, const struct tnd_ct_key *in)
{
	__builtin_memset(out, 0, sizeof(*out));
	__builtin_memcpy(out->saddr, in->daddr, 16);
	__builtin_memcpy(out->daddr, in->saddr, 16);
	out->sport = in->dport;
	out->dport = in->sport;
	out->proto = in->proto;
}

/* The pair of a service flow's conntrack entries: forward (client ->
 * frontend) and reply (backend -> client). From one, the other's key. */
static __always_inline bool tnd_same_addr(const __u8 *a, const __u8 *b)
{
	__u32 x[4], y[4];

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

/* Hairpin: a flow whose backend is its own client (a pod reaching itself
 * through a service it backs) leaves with the frontend address as source,
 * so the backend answers the frontend, not the client: its reply entry is
 * keyed backend -> frontend, and a reply addressed to the frontend belongs
 * to such a flow. */
static __always_inline void tnd_ct_reply_key(struct tnd_ct_key *rk, const struct tnd_ct_key *fwd,
					     const __u8 *be_addr, __be16 be_port)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->saddr, be_addr, 16);
	__builtin_memcpy(rk->daddr, tnd_same_addr(be_addr, fwd->saddr) ? fwd->daddr : fwd->saddr, 16);
	rk->sport = be_port;
	rk->dport = fwd->sport;
	rk->proto = fwd->proto;
}

static __always_inline void tnd_ct_fwd_key(struct tnd_ct_key *fk, const struct tnd_ct_key *reply,
					   const struct tnd_ct_val *rv)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	__builtin_memcpy(fk->saddr, tnd_same_addr(reply->daddr, rv->nat_addr) ? reply->saddr : reply->daddr, 16);
	__builtin_memcpy(fk->daddr, rv->nat_addr, 16);
	fk->sport = reply->dport;
	fk->dport = rv->nat_port;
	fk->proto = reply->proto;
}

/* A reply entry saw `ev`: its forward entry learns of it. */
static __noinline void tnd_ct_mark_fwd(const int fam, const struct tnd_ct_key *reply, const struct tnd_ct_val *rv,
				       __u32 evf)
{
	struct tnd_ct_key fk;

	tnd_ct_fwd_key(&fk, reply, rv);
	tnd_ct_mark(fam, &fk, evf);
}

/* A forward entry saw `ev`: its reply entry (backend be_addr:be_port)
 * learns of it. */
static __noinline void tnd_ct_mark_reply(const int fam, const struct tnd_ct_key *fwd, const __u8 *be_addr,
					 __be16 be_port, __u32 evf)
{
	struct tnd_ct_key rk;

	tnd_ct_reply_key(&rk, fwd, be_addr, be_port);
	tnd_ct_mark(fam, &rk, evf);
}

/* ---- the established path's cache (tnd_ct_val.hop_*) ----------------------
 *
 * The full path fills a forward entry's cache with what it decided (backend,
 * SNAT address and port, next hop); a later packet of the flow in the same
 * cache tick (TND_CACHE_TICK_SHIFT), under the same node generation, and
 * adding nothing to the TCP state, uses it without any other lookup
 * (tnd_lb_fast). */

/* The node's generation now (0 without the node map). */
static __always_inline __u32 tnd_node_gen(void)
{
	struct tnd_node_info *n = tnd_node_get();

	return n ? n->gen : 0;
}

/* The TND_HOP_* flags of a cache of the next hop in fwd. */
static __always_inline __u8 tnd_hop_flags(const struct tnd_fwd *fwd)
{
	return TND_HOP_VALID | (fwd->peer ? TND_HOP_PEER : 0) | (fwd->peer == TND_PEER_XDP ? TND_HOP_XDP_RX : 0);
}

/* Caches the next hop in fwd (a forward or a reply entry), decided under
 * generation `gen`. */
static __always_inline void tnd_ct_cache_hop(struct tnd_ct_val *v, const struct tnd_fwd *fwd, __u32 gen)
{
	v->hop_ifindex = fwd->ifindex;
	__builtin_memcpy(v->hop_smac, fwd->smac, 6);
	__builtin_memcpy(v->hop_dmac, fwd->dmac, 6);
	v->hop_tick = tnd_cache_tick();
	/* A reader on another CPU that sees the generation sees the fields. */
	asm volatile("" ::: "memory");
	v->hop_gen = gen;
	v->hop_flags = tnd_hop_flags(fwd);
}

/* A pod's flow: an entry with `want` among its flags and nothing else
 * (tendril_maps_flow.h: its replies' cache is in the bytes a service flow
 * uses for its addresses). */
static __always_inline bool tnd_ct_pod_flow(const struct tnd_ct_val *v, __u32 want)
{
	return (v->flags & want) && !(v->flags & ~(TND_CT_F_ENDPOINT | TND_CT_F_INBOUND));
}

/* Caches the next hop in fwd of a reply of the pod's flow v (a packet whose
 * reversed tuple is v's key), decided under generation `gen`. A reply of an
 * inbound flow that leaves through a node device is one the device's egress
 * program leaves as it is (neither a local backend's reply: it has its own
 * entry, nor masqueraded: masquerade spares inbound flows), so it is marked
 * as routed (TND_HOP_EGRESS_NONE) from the start. */
static __always_inline void tnd_ct_cache_reply_hop(struct tnd_ct_val *v, const struct tnd_fwd *fwd, __u32 gen)
{
	v->reply_hop.ifindex = fwd->ifindex;
	__builtin_memcpy(v->reply_hop.smac, fwd->smac, 6);
	__builtin_memcpy(v->reply_hop.dmac, fwd->dmac, 6);
	v->reply_when.tick = tnd_cache_tick();
	asm volatile("" ::: "memory");
	v->reply_when.gen = gen;
	v->reply_when.flags =
		tnd_hop_flags(fwd) | (!fwd->peer && (v->flags & TND_CT_F_INBOUND) ? TND_HOP_EGRESS_NONE : 0);
}

/* The cached next hop, into fwd. */
static __always_inline void tnd_ct_cached_hop(const struct tnd_ct_val *v, struct tnd_fwd *fwd)
{
	tnd_explain_step(TND_XS_HOP_CACHED);
	fwd->ifindex = v->hop_ifindex;
	__builtin_memcpy(fwd->smac, v->hop_smac, 6);
	__builtin_memcpy(fwd->dmac, v->hop_dmac, 6);
	fwd->have_mac = 1;
	fwd->peer = !(v->hop_flags & TND_HOP_PEER) ? 0 : (v->hop_flags & TND_HOP_XDP_RX) ? TND_PEER_XDP : TND_PEER_TC;
}

/* Fills (w->cache) or clears a forward entry's cache from the decided path:
 * backend (nat_*) and next hop. The SNAT mapping (snat_*) is written either
 * way: the entry names its flow's mapping (nat.h: a service flow's mapping
 * is its "in" entry alone, found from here). */
static __always_inline void tnd_ct_cache_path(struct tnd_ct_val *v, const struct tnd_lb_work *w,
					      const struct tnd_fwd *fwd)
{
	__builtin_memcpy(v->snat_addr, w->node, 16);
	v->snat_port = w->nport;
	if (!w->cache) {
		v->hop_flags = 0;
		return;
	}
	__builtin_memcpy(v->nat_addr, w->be_addr, 16);
	v->nat_port = w->be_port;
	tnd_ct_cache_hop(v, fwd, w->gen);
}

/* Whether v's cache serves a packet with `tcp_flags` now: filled under the
 * node's current generation `gen`, in this tick, on an open flow that
 * the packet's flags add nothing to (a FIN, RST or reopening SYN takes the
 * full path, which tells the flow's other entries). */
static __always_inline bool tnd_hop_ok(const struct tnd_ct_val *v, __u8 hop_flags, __u32 hop_gen, __u32 hop_tick,
				       __u8 tcp_flags, __u32 gen)
{
	const __u8 state = TND_TCP_SYN | TND_TCP_FIN | TND_TCP_RST | TND_TCP_ACK;

	if (!(hop_flags & TND_HOP_VALID) || hop_gen != gen)
		return false;
	if ((v->tcp_flags & (TND_TCP_FIN | TND_TCP_RST)) || (tcp_flags & state & ~v->tcp_flags))
		return false;
	return hop_tick == tnd_cache_tick();
}

static __always_inline bool tnd_ct_cache_ok(const struct tnd_ct_val *v, __u8 tcp_flags, __u32 gen)
{
	return tnd_hop_ok(v, v->hop_flags, v->hop_gen, v->hop_tick, tcp_flags, gen);
}

/* The same for a reply of the pod's flow v (tnd_ct_cache_reply_hop). */
static __always_inline bool tnd_ct_reply_cache_ok(const struct tnd_ct_val *v, __u8 tcp_flags, __u32 gen)
{
	return tnd_hop_ok(v, v->reply_when.flags, v->reply_when.gen, v->reply_when.tick, tcp_flags, gen);
}

#endif
