/* SPDX-License-Identifier: Apache-2.0 */
/* Direct server return: the option (IPv4) or extension header (IPv6) that
 * tells a remote backend which frontend to answer from (tc only). */
#ifndef TND_BPF_DSR_H_
#define TND_BPF_DSR_H_

#include "rewrite.h"

#if !TND_CTX_XDP
/* Inserts the DSR option after the fixed IPv4 header (which must have no
 * options), naming the frontend. */
static __always_inline int tnd_dsr_insert4(struct __sk_buff *ctx, struct tnd_pkt *p,
					   const __u8 *fe_addr, __be16 fe_port)
{
	struct tnd_dsr_opt o = { .type = TND_DSR_OPT_TYPE, .len = TND_DSR_OPT_LEN, .port = fe_port };
	struct iphdr ip;
	__be16 old_w, new_w, old_len, new_len;

	__builtin_memcpy(&o.addr, fe_addr, 4);
	if (ctx_load(ctx, p->l3_off, &ip, sizeof(ip)) < 0 || ip.ihl != 5)
		return -1;
	if (bpf_skb_adjust_room(ctx, TND_DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return -1;
	if (ctx_store(ctx, p->l3_off + sizeof(ip), &o, sizeof(o)) < 0)
		return -1;
	/* version/ihl share a 16-bit word with tos. */
	__builtin_memcpy(&old_w, &ip, 2);
	ip.ihl = 5 + TND_DSR_OPT_LEN / 4;
	__builtin_memcpy(&new_w, &ip, 2);
	old_len = ip.tot_len;
	new_len = bpf_htons(bpf_ntohs(ip.tot_len) + TND_DSR_OPT_LEN);
	if (ctx_store(ctx, p->l3_off, &new_w, 2) < 0 || ctx_store(ctx, p->l3_off + 2, &new_len, 2) < 0)
		return -1;
	if (bpf_l3_csum_replace(ctx, p->l3_off + 10, old_w, new_w, 2) < 0 ||
	    bpf_l3_csum_replace(ctx, p->l3_off + 10, old_len, new_len, 2) < 0)
		return -1;
	/* The option (two 32-bit words) is part of the header checksum too. */
	__u32 ow[2];

	__builtin_memcpy(ow, &o, 8);
	if (bpf_l3_csum_replace(ctx, p->l3_off + 10, 0, ow[0], 4) < 0 ||
	    bpf_l3_csum_replace(ctx, p->l3_off + 10, 0, ow[1], 4) < 0)
		return -1;
	p->l4_off += TND_DSR_OPT_LEN;
	p->len += TND_DSR_OPT_LEN;
	p->l3_end += TND_DSR_OPT_LEN;
	return 0;
}

/* Inserts the DSR destination-options header after the fixed IPv6 header,
 * naming the frontend. The L4 checksum stays: its pseudo header counts the
 * upper-layer length, without extension headers. */
static __always_inline int tnd_dsr_insert6(struct __sk_buff *ctx, struct tnd_pkt *p,
					   const __u8 *fe_addr, __be16 fe_port)
{
	struct tnd_dsr_opt6 o = { .hdrlen = 2, .opt_type = TND_DSR_OPT6_TYPE, .opt_len = 18,
				  .port = fe_port, .pad_type = 1 };
	struct ipv6hdr ip6;
	__u8 dstopts = IPPROTO_DSTOPTS;
	__be16 plen;

	if (ctx_load(ctx, p->l3_off, &ip6, sizeof(ip6)) < 0)
		return -1;
	o.nexthdr = ip6.nexthdr;
	__builtin_memcpy(o.addr, fe_addr, 16);
	if (bpf_skb_adjust_room(ctx, TND_DSR_OPT6_LEN, BPF_ADJ_ROOM_NET, 0) < 0)
		return -1;
	plen = bpf_htons(bpf_ntohs(ip6.payload_len) + TND_DSR_OPT6_LEN);
	if (ctx_store(ctx, p->l3_off + sizeof(ip6), &o, sizeof(o)) < 0 ||
	    ctx_store(ctx, p->l3_off + 4, &plen, 2) < 0 || ctx_store(ctx, p->l3_off + 6, &dstopts, 1) < 0)
		return -1;
	p->l4_off += TND_DSR_OPT6_LEN;
	p->len += TND_DSR_OPT6_LEN;
	p->l3_end += TND_DSR_OPT6_LEN;
	return 0;
}
#endif

#endif
