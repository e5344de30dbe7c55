/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SNAT mappings, for NodePort SNAT and pod masquerade alike: a mapping's
 * lifetime and the allocation of its node port. Included by nodeport.h
 * (tnd_nat_map, tnd_addr_eq, struct tnd_lb_work come from there).
 *
 * A masquerade mapping is a pair (tendril_maps.h): "out" (client -> peer,
 * refreshed by the client's packets) and "in" (peer -> node:port,
 * refreshed by the replies). Each follows the flow's TCP state like a
 * conntrack entry, and the first FIN or RST, or a SYN that reopens a closed
 * tuple, seen by one is passed to the other: the pair closes, expires and
 * restarts together.
 *
 * A service flow's mapping (NodePort SNAT) is its "in" entry alone: the
 * flow's forward conntrack entry names its port (snat_*), which is what an
 * "out" entry would hold, and the full path's forward packets (at least
 * one a second: conntrack.h's cache) refresh the in entry as its replies
 * do; it closes, expires and restarts with the flow's packets either way.
 * A new service flow writes three entries (conntrack forward and reply,
 * NAT in), not four.
 *
 * Allocation: TND_NAT_PROBES ports of the NAT port range (the first from
 * the flow's hash, the rest random), then, if none was free, a scan of the whole range (bpf_loop) from a random start.
 * A port is free when no "in" entry holds it, or its mapping is over: both
 * entries expired (a one-way flow refreshes only one of them). When no port
 * is free, a new TCP connection may take over the port of a flow that was
 * reset TND_NAT_RESET_SETTLE_MS ago (no TCP state is left at either end of it); the
 * kernel's NAT evicts closed flows' tuples the same way, and only when it
 * must.
 */
#ifndef TND_BPF_NAT_H_
#define TND_BPF_NAT_H_

#include "classify.h"

#define TND_NAT_RANGE (TENDRIL_NAT_PORT_MAX - TENDRIL_NAT_PORT_MIN + 1)

#define TND_NAT_SLOT_EGRESS (1u << 16) /* in tnd_snat_port's info: the egress scratch slot */

static __always_inline bool tnd_expired(__u32 expires, __u32 now)
{
	return (__s32)(expires - now) < 0;
}

static __always_inline __u32 tnd_now_ms(void)
{
	return (__u32)(tnd_now_ns() / 1000000ULL);
}

/* An in entry learns that its flow was reset: when, for tnd_nat_reset_settled. */
static __always_inline void tnd_nat_note_reset(struct tnd_nat_val *in, __u32 evf)
{
	if ((evf >> 8) == TND_EV_CLOSE && (evf & TND_TCP_RST))
		in->reset_ms = tnd_now_ms();
}

/* The "out" key of the mapping whose "in" entry is `in` -> `v`. */
static __always_inline void tnd_nat_out_key(struct tnd_nat_key *o, const struct tnd_nat_key *in,
					    const struct tnd_nat_val *v)
{
	__builtin_memset(o, 0, sizeof(*o));
	__builtin_memcpy(o->saddr, v->to_addr, 16);
	__builtin_memcpy(o->daddr, in->saddr, 16);
	o->sport = v->to_port;
	o->dport = in->sport;
	o->proto = in->proto;
	o->dir = TND_NAT_OUT;
}

/* The "out" entry of a pair, if it still belongs to the "in" entry (in ->
 * v): it maps back to in's address and port. */
static __always_inline struct tnd_nat_val *tnd_nat_out_of(const int fam, const struct tnd_nat_key *in,
							   const struct tnd_nat_val *v, struct tnd_nat_key *o)
{
	struct tnd_nat_val *ov;

	tnd_nat_out_key(o, in, v);
	ov = tnd_state_lookup(tnd_nat_map(fam), o, struct tnd_nat_val);
	if (ov && ov->to_port == in->dport && tnd_addr_eq(ov->to_addr, in->daddr, fam))
		return ov;
	return NULL;
}

/* The "in" entry of a pair learns of an event (TND_EVF) its "out" entry
 * (`out` -> `ov`) saw. Rare: its own function. */
static __noinline void tnd_nat_mark_in(const int fam, const struct tnd_nat_key *out, const struct tnd_nat_val *ov,
				       __u32 evf)
{
	struct tnd_nat_key k = { .proto = out->proto, .dir = TND_NAT_IN, .sport = out->dport, .dport = ov->to_port };
	struct tnd_nat_val *v;

	__builtin_memcpy(k.saddr, out->daddr, 16);
	__builtin_memcpy(k.daddr, ov->to_addr, 16);
	v = tnd_state_lookup(tnd_nat_map(fam), &k, struct tnd_nat_val);
	if (v && v->to_port == out->sport && tnd_addr_eq(v->to_addr, out->saddr, fam)) {
		tnd_state_mark(&v->tcp_flags, &v->expires, k.proto, evf);
		tnd_nat_note_reset(v, evf);
	}
}

/* The "out" entry of a pair learns of an event its "in" entry (`in` -> `v`)
 * saw; so does the endpoint's conntrack entry of a masqueraded flow (its
 * key is the out key's tuple: the layouts agree, dir OUT is 0). */
static __noinline void tnd_nat_mark_out(const int fam, const struct tnd_nat_key *in, const struct tnd_nat_val *v,
					__u32 evf)
{
	struct tnd_nat_key o;
	struct tnd_nat_val *ov;

	if (v->flags & TND_NAT_F_SERVICE)
		return; /* no out entry: the conntrack entries learn of it themselves */
	ov = tnd_nat_out_of(fam, in, v, &o);
	if (!ov)
		return;
	tnd_state_mark(&ov->tcp_flags, &ov->expires, o.proto, evf);
	if (ov->flags & TND_NAT_F_MASQ)
		tnd_ct_mark(fam, (const struct tnd_ct_key *)&o, evf);
}

/* A port search: the "in" entry to create (key with the candidate port in
 * k.dport, value), and what was found; the bpf_loop context. It lives in a
 * per-CPU scratch map, off the stack of a chain that is three calls deep:
 * slot 0 for ingress (NodePort SNAT), 1 for egress (masquerade). */
struct tnd_nat_search {
	struct tnd_nat_key k;
	struct tnd_nat_val v;
	struct tnd_nat_key o;  /* the out key of a mapping found on a candidate port */
	__u32 now;
	__u32 start;     /* first probe (the flow's hash), then the scan's start */
	__u16 port;      /* host order: the port taken; 0 none yet */
	__u16 reset;     /* host order: a reset flow's port, to take over if nothing is free */
	__u8 fam;
	__u8 opens;      /* the flow is a new TCP connection */
	__u8 hard;       /* nothing free was found: a reset flow's port will do */
	__u8 tcp_flags;  /* the packet's */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tnd_nat_search);
} tnd_nat_scratch SEC(".maps");

/* The mapping on the candidate port, its in entry expired: is it over (its
 * out entry gone, another flow's, or expired too)? A service mapping's in
 * entry is refreshed by both directions: expired, it is over. */
static __always_inline bool tnd_nat_over(struct tnd_nat_search *s, const struct tnd_nat_val *cur)
{
	struct tnd_nat_val *ov;

	if (cur->flags & TND_NAT_F_SERVICE)
		return true;
	ov = tnd_nat_out_of(s->fam, &s->k, cur, &s->o);
	return !ov || tnd_expired(ov->expires, s->now);
}

/* The mapping's flow was reset a while ago (TND_NAT_RESET_SETTLE_MS): the
 * reset has reached the peer, whose socket is gone, so a new connection
 * from the same node port is a new one there too. Sooner, a SYN could
 * overtake the reset on another CPU and meet the old connection (a
 * challenge ACK, not a SYN-ACK). */
static __always_inline bool tnd_nat_reset_settled(const struct tnd_nat_val *v)
{
	return (v->tcp_flags & TND_TCP_RST) && (__s32)(tnd_now_ms() - v->reset_ms) >= TND_NAT_RESET_SETTLE_MS;
}

/* The state fields of an entry are written after its (expires, gen) word
 * when it is taken over, so a judgement is made against the word read
 * first (`seen`): a word that is already the new flow's has its fresh
 * expiry (not expired, beyond a closing lifetime) and fails these checks;
 * an older one makes the swap fail. */
static __always_inline bool tnd_nat_claimable(struct tnd_nat_search *s, const struct tnd_nat_val *cur, __u64 seen,
					      bool *reset)
{
	__u32 exp = (__u32)seen;

	*reset = s->opens && (__s32)(exp - s->now) <= TND_CT_CLOSE_TIMEOUT && tnd_nat_reset_settled(cur);
	if (tnd_expired(exp, s->now))
		return tnd_nat_over(s, cur);
	return *reset && s->hard;
}

/* Takes over the mapping `cur` on the candidate port, in place: the
 * entry's (expires, generation) word is swapped atomically, so of CPUs
 * racing for it exactly one wins, and one whose view of the entry went
 * stale (refreshed or taken meanwhile) loses. The winner writes the rest
 * and removes the old flow's out entry. 1: taken. */
static __always_inline int tnd_nat_claim(struct tnd_nat_search *s, struct tnd_nat_val *cur, __u64 seen, __u16 cand)
{
	struct tnd_nat_val *ov;
	__u64 want = (__u64)s->v.expires | ((__u64)((__u32)(seen >> 32) + 1) << 32);

	tnd_nat_out_key(&s->o, &s->k, cur);
	if (__sync_val_compare_and_swap((__u64 *)&cur->expires, seen, want) != seen)
		return 0;
	__builtin_memcpy(cur->to_addr, s->v.to_addr, 16);
	cur->to_port = s->v.to_port;
	cur->tcp_flags = s->v.tcp_flags;
	cur->flags = s->v.flags;
	cur->created = s->v.created;
	cur->reset_ms = 0;
	ov = tnd_state_lookup(tnd_nat_map(s->fam), &s->o, struct tnd_nat_val);
	if (ov && ov->to_port == s->k.dport && tnd_addr_eq(ov->to_addr, s->k.daddr, s->fam))
		tnd_map_delete(tnd_nat_map(s->fam), &s->o);
	s->port = cand;
	return 1;
}

/* A service mapping on the candidate port that is this flow's own: its
 * conntrack entry went (evicted under pressure, the mapping idle but
 * live) and the flow goes on from the same port, refreshed by this packet.
 * (Its port was most likely the flow's first probe, from its hash.) */
static __always_inline bool tnd_nat_own(struct tnd_nat_search *s, struct tnd_nat_val *cur)
{
	if (!(cur->flags & s->v.flags & TND_NAT_F_SERVICE) || cur->to_port != s->v.to_port ||
	    !tnd_addr_eq(cur->to_addr, s->v.to_addr, s->fam))
		return false;
	tnd_state_update(&cur->tcp_flags, &cur->expires, s->k.proto, s->tcp_flags, s->now);
	return true;
}

/* Takes the candidate port for s->v: free (exclusive insert), the flow's
 * own (tnd_nat_own), its mapping over, or, in the hard phase for a new TCP
 * connection, its flow reset. 1: taken. Remembers a reset flow's port on
 * the way. */
static __always_inline int tnd_nat_try(struct tnd_nat_search *s, __u16 cand)
{
	void *map = tnd_nat_map(s->fam);
	struct tnd_nat_val *cur;
	__u64 seen;
	bool reset;

	s->k.dport = bpf_htons(cand);
	cur = tnd_state_lookup(map, &s->k, struct tnd_nat_val);
	if (!cur) {
		if (tnd_map_update(map, &s->k, &s->v, BPF_NOEXIST) != 0)
			return 0;
		s->port = cand;
		return 1;
	}
	if (tnd_nat_own(s, cur)) {
		s->port = cand;
		return 1;
	}
	seen = *(volatile __u64 *)&cur->expires;
	if (tnd_nat_claimable(s, cur, seen, &reset))
		return tnd_nat_claim(s, cur, seen, cand);
	if (reset && !s->reset)
		s->reset = cand;
	return 0;
}

/* bpf_loop wants its context on the stack: a pointer to the search. */
struct tnd_nat_loop {
	struct tnd_nat_search *s;
};

static int tnd_nat_probe_cb(__u32 i, void *ctx)
{
	struct tnd_nat_search *s = ((struct tnd_nat_loop *)ctx)->s;

	/* The first from the flow's hash: a flow gets the same port whichever
	 * hook (XDP or tc) sets it up, while the range is not crowded. */
	__u32 r = i == 0 ? s->start : bpf_get_prandom_u32();

	return tnd_nat_try(s, (__u16)(TENDRIL_NAT_PORT_MIN + r % TND_NAT_RANGE));
}

static int tnd_nat_scan_cb(__u32 i, void *ctx)
{
	struct tnd_nat_search *s = ((struct tnd_nat_loop *)ctx)->s;

	return tnd_nat_try(s, (__u16)(TENDRIL_NAT_PORT_MIN + (s->start + i) % TND_NAT_RANGE));
}

/* Nothing free after the probes: the remembered reset flow's port. */
static __always_inline int tnd_nat_take_reset(struct tnd_nat_search *s)
{
	s->hard = 1;
	return tnd_nat_try(s, s->reset);
}

/* The existing mapping of the flow (out key s->k), refreshed by this
 * packet; 0 if none. A new connection on the tuple checks that the mapping
 * is still whole: while another flow was taking its port over, the port is
 * that flow's, and this stale out entry goes. */
static __always_inline __be16 tnd_snat_existing(struct tnd_nat_search *s, const struct tnd_lb_work *w,
						 __u8 tcp_flags)
{
	void *map = tnd_nat_map(s->fam);
	struct tnd_nat_val *cur = tnd_state_lookup(map, &s->k, struct tnd_nat_val);
	struct tnd_nat_val *in;
	int ev;

	if (!cur || !tnd_addr_eq(cur->to_addr, w->node, s->fam))
		return 0;
	if (tnd_tcp_opens(s->k.proto, tcp_flags)) {
		__builtin_memset(&s->o, 0, sizeof(s->o));
		__builtin_memcpy(s->o.saddr, s->k.daddr, 16);
		__builtin_memcpy(s->o.daddr, cur->to_addr, 16);
		s->o.sport = s->k.dport;
		s->o.dport = cur->to_port;
		s->o.proto = s->k.proto;
		s->o.dir = TND_NAT_IN;
		in = tnd_state_lookup(map, &s->o, struct tnd_nat_val);
		if (!in || in->to_port != s->k.sport || !tnd_addr_eq(in->to_addr, s->k.saddr, s->fam)) {
			tnd_map_delete(map, &s->k);
			return 0;
		}
	}
	ev = tnd_state_update(&cur->tcp_flags, &cur->expires, s->k.proto, tcp_flags, tnd_now_sec());
	if (ev != TND_EV_NONE)
		tnd_nat_mark_in(s->fam, &s->k, cur, TND_EVF(ev, tcp_flags));
	return cur->to_port;
}

/* Fills s->k with the mapping's "in" (dir TND_NAT_IN: peer -> node:port)
 * or "out" key (client -> peer). */
static __always_inline void tnd_nat_key_of(struct tnd_nat_search *s, const struct tnd_ct_key *t,
					   const struct tnd_lb_work *w, __u8 dir, __be16 port)
{
	s->k.proto = t->proto;
	s->k.dir = dir;
	if (dir == TND_NAT_IN) {
		__builtin_memcpy(s->k.saddr, w->be_addr, 16);
		__builtin_memcpy(s->k.daddr, w->node, 16);
		s->k.sport = w->be_port;
		s->k.dport = port;
	} else {
		__builtin_memcpy(s->k.saddr, t->saddr, 16);
		__builtin_memcpy(s->k.daddr, w->be_addr, 16);
		s->k.sport = t->sport;
		s->k.dport = w->be_port;
	}
}

/* A service flow's mapping: its in entry on the port its forward conntrack
 * entry names (w->nport, 0 none), if that is still the flow's (not taken
 * over by another flow), refreshed by this packet. The port, or 0. */
static __always_inline __be16 tnd_snat_service_existing(struct tnd_nat_search *s, const struct tnd_ct_key *t,
							 const struct tnd_lb_work *w, __u8 tcp_flags)
{
	struct tnd_nat_val *in;
	int ev;

	if (!w->nport)
		return 0;
	tnd_nat_key_of(s, t, w, TND_NAT_IN, w->nport);
	in = tnd_state_lookup(tnd_nat_map(s->fam), &s->k, struct tnd_nat_val);
	if (!in || in->to_port != t->sport || !tnd_addr_eq(in->to_addr, t->saddr, s->fam))
		return 0;
	ev = tnd_state_update(&in->tcp_flags, &in->expires, t->proto, tcp_flags, tnd_now_sec());
	if (ev != TND_EV_NONE)
		tnd_nat_note_reset(in, TND_EVF(ev, tcp_flags));
	return w->nport;
}

/* The node port the flow t (client -> w->be_addr:be_port) leaves w->node
 * with: its mapping, or a new one. `info`: the packet's TCP flags, the
 * TND_NAT_F_* kind << 8 and TND_NAT_SLOT_EGRESS at egress; a service
 * flow's current port in w->nport (0 none). 0 if the range has no port
 * left. (The kind is a constant at each call: the verifier follows one
 * branch.) */
static __noinline __be16 tnd_snat_port(const int fam, const struct tnd_ct_key *t, const struct tnd_lb_work *w,
				       __u32 info)
{
	__u32 slot = (info & TND_NAT_SLOT_EGRESS) ? 1 : 0;
	struct tnd_nat_search *s = bpf_map_lookup_elem(&tnd_nat_scratch, &slot);
	struct tnd_nat_loop loop = { .s = s };
	__u8 tcp_flags = (__u8)info;
	__be16 port;

	if (!s)
		return 0;
	__builtin_memset(s, 0, sizeof(*s));
	s->fam = fam;
	if ((info >> 8) & TND_NAT_F_SERVICE) {
		port = tnd_snat_service_existing(s, t, w, tcp_flags);
	} else {
		tnd_nat_key_of(s, t, w, TND_NAT_OUT, 0);
		port = tnd_snat_existing(s, w, tcp_flags);
	}
	if (port)
		return port;

	/* in: peer -> node:port, restoring the client. */
	s->now = tnd_now_sec();
	s->opens = tnd_tcp_opens(t->proto, tcp_flags);
	s->tcp_flags = tcp_flags;
	tnd_nat_key_of(s, t, w, TND_NAT_IN, 0);
	__builtin_memcpy(s->v.to_addr, t->saddr, 16);
	s->v.to_port = t->sport;
	s->v.flags = (__u8)(info >> 8);
	s->v.created = s->now;
	tnd_state_update(&s->v.tcp_flags, &s->v.expires, t->proto, tcp_flags, s->now);
	s->start = (__u32)w->hash;
	bpf_loop(TND_NAT_PROBES, tnd_nat_probe_cb, &loop, 0);
	if (!s->port && !(s->reset && tnd_nat_take_reset(s))) {
		s->hard = 1;
		s->start = bpf_get_prandom_u32();
		bpf_loop(TND_NAT_RANGE, tnd_nat_scan_cb, &loop, 0);
	}
	if (!s->port)
		return 0;
	port = bpf_htons(s->port);
	if ((info >> 8) & TND_NAT_F_SERVICE)
		return port; /* its forward conntrack entry names it */

	/* out: client -> peer leaves as node:port. */
	tnd_nat_key_of(s, t, w, TND_NAT_OUT, 0);
	__builtin_memcpy(s->v.to_addr, w->node, 16);
	s->v.to_port = port;
	if (tnd_map_update(tnd_nat_map(fam), &s->k, &s->v, BPF_ANY) != 0) {
		tnd_nat_key_of(s, t, w, TND_NAT_IN, port);
		tnd_map_delete(tnd_nat_map(fam), &s->k);
		return 0;
	}
	return port;
}

#endif
