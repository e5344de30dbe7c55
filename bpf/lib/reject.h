/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The answer kube-proxy's REJECT rule gives a new flow to a service with no
 * usable endpoint anywhere: a TCP RST (to a SYN) or an ICMP / ICMPv6 port
 * unreachable (to a UDP datagram), built in place from the packet and sent
 * back out of the device it came in by. tc only (XDP passes such packets on
 * to tc). Included by nodeport.h.
 *
 * Never answered (dropped with the same reason): ICMP errors, fragments
 * without the L4 header, TCP other than a bare SYN (kube-proxy rejects
 * connections in state NEW), GSO packets, IPv4 with options or IPv6 with
 * extension headers before UDP (the quote would not hold the UDP header),
 * and more than TND_REJECT_PER_SEC answers per CPU per second (the reply
 * is never bigger than twice the request: no useful amplification).
 *
 * Checksums are written in full. The skb's checksum state is the request's:
 * CHECKSUM_COMPLETE is kept right by BPF_F_RECOMPUTE_CSUM; a request from a
 * local veth (CHECKSUM_PARTIAL) goes back to a veth, whose peer trusts it.
 */
#ifndef TND_BPF_REJECT_H_
#define TND_BPF_REJECT_H_

#include <linux/tcp.h>

/* (linux/icmp.h pulls in libc headers.) */
#define TND_ICMP_DEST_UNREACH 3
#define TND_ICMP_PORT_UNREACH 3
#define TND_ICMP6_DEST_UNREACH 1
#define TND_ICMP6_PORT_UNREACH 4

/* ICMP and ICMPv6 errors share this header. */
struct tnd_icmp_err {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};

#define TND_REJECT_PER_SEC 1000

struct tnd_reject_window {
	__u64 second;
	__u32 sent;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tnd_reject_window);
} tnd_reject_rate SEC(".maps");

static __always_inline bool tnd_reject_allowed(void)
{
	__u32 k = 0;
	struct tnd_reject_window *w = tnd_state_lookup(&tnd_reject_rate, &k, struct tnd_reject_window);
	__u64 now = tnd_now_sec();

	if (!w)
		return false;
	if (w->second != now) {
		w->second = now;
		w->sent = 0;
	}
	if (w->sent >= TND_REJECT_PER_SEC)
		return false;
	w->sent++;
	return true;
}

/* The checksum field for a one's complement sum from bpf_csum_diff. */
static __always_inline __sum16 tnd_csum_final(__s64 sum)
{
	return (__sum16)~tnd_csum_fold((__u32)sum);
}

/* Swaps the Ethernet addresses: the reply goes back to the sender. */
static __always_inline int tnd_reject_macs(struct __sk_buff *ctx)
{
	__u8 m[12], s[12];

	if (bpf_skb_load_bytes(ctx, 0, m, sizeof(m)) < 0)
		return -1;
	__builtin_memcpy(s, &m[6], 6);
	__builtin_memcpy(&s[6], m, 6);
	return bpf_skb_store_bytes(ctx, 0, s, sizeof(s), 0);
}

/* The reply's headers replace the request from l3 on (`len` bytes). */
static __always_inline int tnd_reject_write(struct __sk_buff *ctx, __u32 l3, const void *hdrs, __u32 len)
{
	if (bpf_skb_change_tail(ctx, l3 + len, 0) < 0 || tnd_reject_macs(ctx) < 0)
		return -1;
	return bpf_skb_store_bytes(ctx, l3, hdrs, len, BPF_F_RECOMPUTE_CSUM);
}

/* RST|ACK to the SYN at p->l4_off, whose L4 part (header and data) is
 * `l4_bytes` long: seq 0, ack = the SYN's seq + its data + 1. */
static __always_inline int tnd_reject_rst(struct __sk_buff *ctx, const struct tnd_pkt *p, __u32 l4_bytes,
					  struct tcphdr *r)
{
	struct tcphdr syn = {};
	__u32 hl;

	if (bpf_skb_load_bytes(ctx, p->l4_off, &syn, 14) < 0)
		return -1;
	hl = syn.doff * 4;
	r->source = syn.dest;
	r->dest = syn.source;
	r->ack_seq = bpf_htonl(bpf_ntohl(syn.seq) + (l4_bytes > hl ? l4_bytes - hl : 0) + 1);
	r->doff = 5;
	r->rst = 1;
	r->ack = 1;
	return 0;
}

/* The checksum of an L4 part `l4` given its pseudo-header `ph`. */
static __always_inline __sum16 tnd_reject_csum(const void *ph, __u32 ph_len, const void *l4, __u32 l4_len)
{
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)ph, ph_len, 0);

	return tnd_csum_final(bpf_csum_diff(NULL, 0, (__be32 *)l4, l4_len, sum < 0 ? 0 : (__wsum)sum));
}

static __always_inline void tnd_reject_ip4(struct iphdr *ip, const struct iphdr *req, __u16 len, __u8 proto)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(len);
	ip->ttl = 64;
	ip->protocol = proto;
	ip->saddr = req->daddr;
	ip->daddr = req->saddr;
}

/* The IPv4 pseudo-header (RFC 793 3.1). */
struct tnd_ph4 {
	__be32 saddr, daddr;
	__u8 zero, proto;
	__be16 len;
};

static __noinline int tnd_reject_tcp4(struct __sk_buff *ctx, const struct tnd_pkt *p)
{
	struct tnd_ph4 ph = { .proto = IPPROTO_TCP, .len = bpf_htons(sizeof(struct tcphdr)) };
	struct {
		struct iphdr ip;
		struct tcphdr th;
	} r = {};
	struct iphdr ip;
	__u32 tot;

	if (bpf_skb_load_bytes(ctx, p->l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	tot = bpf_ntohs(ip.tot_len);
	if (tnd_reject_rst(ctx, p, tot > ip.ihl * 4u ? tot - ip.ihl * 4u : 0, &r.th) < 0)
		return -1;
	tnd_reject_ip4(&r.ip, &ip, sizeof(r), IPPROTO_TCP);
	r.ip.frag_off = bpf_htons(0x4000); /* DF */
	r.ip.check = tnd_csum_final(bpf_csum_diff(NULL, 0, (__be32 *)&r.ip, sizeof(r.ip), 0));
	ph.saddr = r.ip.saddr;
	ph.daddr = r.ip.daddr;
	r.th.check = tnd_reject_csum(&ph, sizeof(ph), &r.th, sizeof(r.th));
	return tnd_reject_write(ctx, p->l3_off, &r, sizeof(r));
}

static __noinline int tnd_reject_udp4(struct __sk_buff *ctx, const struct tnd_pkt *p)
{
	struct {
		struct iphdr ip;
		struct tnd_icmp_err ic;
		struct iphdr quoted;
		__u8 l4[8];
	} r = {};

	if (bpf_skb_load_bytes(ctx, p->l3_off, &r.quoted, sizeof(r.quoted)) < 0 || r.quoted.ihl != 5 ||
	    bpf_skb_load_bytes(ctx, p->l4_off, r.l4, sizeof(r.l4)) < 0)
		return -1;
	tnd_reject_ip4(&r.ip, &r.quoted, sizeof(r), IPPROTO_ICMP);
	r.ip.check = tnd_csum_final(bpf_csum_diff(NULL, 0, (__be32 *)&r.ip, sizeof(r.ip), 0));
	r.ic.type = TND_ICMP_DEST_UNREACH;
	r.ic.code = TND_ICMP_PORT_UNREACH;
	r.ic.checksum = tnd_csum_final(bpf_csum_diff(NULL, 0, (__be32 *)&r.ic, sizeof(r) - sizeof(r.ip), 0));
	return tnd_reject_write(ctx, p->l3_off, &r, sizeof(r));
}

/* The IPv6 pseudo-header (RFC 8200 8.1). */
struct tnd_ph6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 len;
	__u8 zero[3];
	__u8 next;
};

static __always_inline void tnd_reject_ip6(struct ipv6hdr *ip, const struct ipv6hdr *req, __u16 payload, __u8 next,
					   struct tnd_ph6 *ph)
{
	ip->version = 6;
	ip->payload_len = bpf_htons(payload);
	ip->nexthdr = next;
	ip->hop_limit = 64;
	__builtin_memcpy(&ip->saddr, &req->daddr, 16);
	__builtin_memcpy(&ip->daddr, &req->saddr, 16);
	__builtin_memcpy(ph->saddr, &ip->saddr, 16);
	__builtin_memcpy(ph->daddr, &ip->daddr, 16);
	ph->len = bpf_htonl(payload);
	ph->next = next;
}

static __noinline int tnd_reject_tcp6(struct __sk_buff *ctx, const struct tnd_pkt *p)
{
	struct tnd_ph6 ph = {};
	struct {
		struct ipv6hdr ip;
		struct tcphdr th;
	} r = {};
	struct ipv6hdr ip;
	__u32 tot, ext = p->l4_off - p->l3_off - sizeof(ip);

	if (bpf_skb_load_bytes(ctx, p->l3_off, &ip, sizeof(ip)) < 0)
		return -1;
	tot = bpf_ntohs(ip.payload_len);
	if (tnd_reject_rst(ctx, p, tot > ext ? tot - ext : 0, &r.th) < 0)
		return -1;
	tnd_reject_ip6(&r.ip, &ip, sizeof(r.th), IPPROTO_TCP, &ph);
	r.th.check = tnd_reject_csum(&ph, sizeof(ph), &r.th, sizeof(r.th));
	return tnd_reject_write(ctx, p->l3_off, &r, sizeof(r));
}

static __noinline int tnd_reject_udp6(struct __sk_buff *ctx, const struct tnd_pkt *p)
{
	struct tnd_ph6 ph = {};
	struct {
		struct ipv6hdr ip;
		struct tnd_icmp_err ic;
		struct ipv6hdr quoted;
		__u8 l4[8];
	} r = {};

	if (p->l4_off != p->l3_off + sizeof(struct ipv6hdr) ||
	    bpf_skb_load_bytes(ctx, p->l3_off, &r.quoted, sizeof(r.quoted)) < 0 ||
	    bpf_skb_load_bytes(ctx, p->l4_off, r.l4, sizeof(r.l4)) < 0)
		return -1;
	tnd_reject_ip6(&r.ip, &r.quoted, sizeof(r) - sizeof(r.ip), IPPROTO_ICMPV6, &ph);
	r.ic.type = TND_ICMP6_DEST_UNREACH;
	r.ic.code = TND_ICMP6_PORT_UNREACH;
	r.ic.checksum = tnd_reject_csum(&ph, sizeof(ph), &r.ic, sizeof(r) - sizeof(r.ip));
	return tnd_reject_write(ctx, p->l3_off, &r, sizeof(r));
}

/*
 * A new flow to a frontend whose service has no usable backend: counted with
 * `reason` and sent to monitor as a drop, then answered where it can be.
 * TND_REDIRECT (fwd says: back out of the device it came in by) or TND_DROP.
 */
static __always_inline int tnd_reject(struct __sk_buff *ctx, struct tnd_pkt *p, const int fam, struct tnd_fwd *fwd,
				      __u8 reason, __u32 ifindex)
{
	int r;

	tnd_drop_pkt(fwd, p, fam, reason, TND_DIR_INGRESS, ifindex);
	if (!p->has_l4 || p->icmp_err || ctx->gso_size)
		return TND_DROP;
	if (p->t.proto == IPPROTO_TCP &&
	    (p->tcp_flags & (TND_TCP_SYN | TND_TCP_ACK | TND_TCP_RST | TND_TCP_FIN)) != TND_TCP_SYN)
		return TND_DROP;
	if (!tnd_reject_allowed())
		return TND_DROP;
	if (fam == 4)
		r = p->t.proto == IPPROTO_TCP ? tnd_reject_tcp4(ctx, p) : tnd_reject_udp4(ctx, p);
	else
		r = p->t.proto == IPPROTO_TCP ? tnd_reject_tcp6(ctx, p) : tnd_reject_udp6(ctx, p);
	if (r < 0)
		return TND_DROP;
	tnd_explain_step(TND_XS_REJECT);
	fwd->ifindex = ctx->ifindex;
	fwd->have_mac = 1;
	fwd->peer = 0;
	return TND_REDIRECT;
}

#endif
