/* SPDX-License-Identifier: Apache-2.0 */
/* A drop: counted by reason and, where enabled, sent as an event. */
#ifndef TND_BPF_DROP_H_
#define TND_BPF_DROP_H_

#include "maps.h"
#include "metrics.h"
#include "scratch.h"
#include "lookup.h"

/* The endpoint a packet came from, for an event: bpf_lxc looks it up only
 * when it sends one (every packet would pay a lookup otherwise). A BPF
 * function of its own: the key stays off the (deep) callers' frames. */
static __noinline __u32 tnd_event_src_ep(const struct tnd_fwd *fwd, const __u8 *saddr, const int fam)
{
	struct tnd_endpoint *ep;

	if (fwd->src_ep || fwd->point != TND_OBS_FROM_ENDPOINT)
		return fwd->src_ep;
	ep = tnd_ep_lookup(saddr, fam);
	return ep ? ep->id : 0;
}

static __always_inline int tnd_drop_pkt(struct tnd_fwd *fwd, const struct tnd_pkt *p, const int fam,
					__u8 reason, __u8 dir, __u32 ifindex)
{
	struct tnd_event *e;

	fwd->reason = reason;
	tnd_explain_field(drop_reason, reason);
	tnd_count(reason, dir, p->len);
	e = tnd_event_reserve(&tnd_events, sizeof(*e));
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		e->type = TND_EVENT_DROP;
		e->reason = reason;
		e->dir = dir;
		e->family = fam;
		e->ifindex = ifindex;
		__builtin_memcpy(e->saddr, p->t.saddr, 16);
		__builtin_memcpy(e->daddr, p->t.daddr, 16);
		e->sport = p->t.sport;
		e->dport = p->t.dport;
		e->proto = p->t.proto;
		e->len = p->len;
		e->point = fwd->point;
		e->src_ep = tnd_event_src_ep(fwd, p->t.saddr, fam);
		e->dst_ep = fwd->dst_ep;
		e->ts_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, 0);
	}
	return TND_DROP;
}

#endif
