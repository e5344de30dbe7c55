/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service load balancing at a node device's egress (tc only, bpf_host.c):
 * replies of local (and DSR) backends, and ICMP errors they send, leave with
 * the frontend as their source. Included by nodeport.h, whose lookups and
 * rewrites it uses.
 */
#ifndef TND_BPF_NODEPORT_EGRESS_H_
#define TND_BPF_NODEPORT_EGRESS_H_

/* An error a local backend sends about a packet it received (client ->
 * backend) is made about client -> frontend. */
static __noinline int tnd_lb_icmp_egress(struct __sk_buff *ctx, struct tnd_pkt *p, const int fam,
					 struct tnd_fwd *fwd)
{
	struct tnd_ct_key rk = { .proto = p->inner.proto, .sport = p->inner.dport, .dport = p->inner.sport };
	struct tnd_ct_val *ct;
	__u8 outer_src[16], fe[16];
	__be16 fe_port;

	__builtin_memcpy(rk.saddr, p->inner.daddr, 16);
	__builtin_memcpy(rk.daddr, p->inner.saddr, 16);
	ct = tnd_state_lookup(tnd_ct_map(fam), &rk, struct tnd_ct_val);
	if (!ct || !(ct->flags & TND_CT_F_REPLY) || !(ct->flags & (TND_CT_F_LOCAL | TND_CT_F_DSR)))
		return TND_PASS;
	__builtin_memcpy(fe, ct->nat_addr, 16);
	fe_port = ct->nat_port;
	__builtin_memcpy(outer_src, p->t.saddr, 16);
	if (tnd_icmp_rw_inner(ctx, p, fam, p->inner.saddr, p->inner.sport, fe, fe_port) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	if (tnd_addr_eq(outer_src, p->inner.daddr, fam) && tnd_rw_addr(ctx, p, fam, true, outer_src, fe) < 0)
		return tnd_drop_pkt(fwd, p, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	return TND_PASS;
}

/* Egress: replies of local (and DSR) backends leave with the frontend as
 * their source. < 0: a TCP/UDP packet that is not such a reply (s->p holds
 * it). */
static __always_inline int tnd_lb_egress(struct __sk_buff *ctx, __u32 l3_off, const int fam,
					 struct tnd_lb_scratch *s)
{
	struct tnd_pkt *pp = &s->p;
	struct tnd_fwd *fwd = &s->fwd;
	struct tnd_ct_val *ct;
	__u8 fe[16];
	__be16 fe_port;
	int ev;

	if (tnd_parse(ctx, l3_off, fam, pp) < 0)
		return TND_PASS;
	if (pp->icmp_err)
		return tnd_lb_icmp_egress(ctx, pp, fam, fwd);
	ct = tnd_state_lookup(tnd_ct_map(fam), &pp->t, struct tnd_ct_val);
	/* An endpoint's own flow whose path bpf_lxc cached: the caller can
	 * say that this program leaves it as it is (TND_HOP_EGRESS_NONE). In
	 * the scratch, not in a register: the verifier tracks no value there. */
	s->egress_own = ct && (ct->flags & (TND_CT_F_ENDPOINT | TND_CT_F_SERVICE | TND_CT_F_REPLY)) == TND_CT_F_ENDPOINT &&
			(ct->hop_flags & (TND_HOP_VALID | TND_HOP_PEER)) == TND_HOP_VALID;
	if (!ct || !(ct->flags & TND_CT_F_REPLY) || !(ct->flags & (TND_CT_F_LOCAL | TND_CT_F_DSR)))
		return -1; /* parsed, not a reply of ours: masquerade may want it */
	__builtin_memcpy(fe, ct->nat_addr, 16);
	fe_port = ct->nat_port;
	ev = tnd_ct_touch(ct, pp->t.proto, pp->tcp_flags, pp->len);
	if (ev != TND_EV_NONE)
		tnd_ct_mark_fwd(fam, &pp->t, ct, TND_EVF(ev, pp->tcp_flags));
	if (tnd_rw(ctx, pp, fam, true, pp->t.saddr, fe, pp->t.sport, fe_port) < 0)
		return tnd_drop_pkt(fwd, pp, fam, TND_DROP_REWRITE, TND_DIR_EGRESS, ctx->ifindex);
	return TND_PASS;
}

#endif
