/* SPDX-License-Identifier: Apache-2.0 */
/* The packet being worked on (parsed tuple, header offsets), the forwarding
 * result and the stages' work areas, in a per-CPU scratch map. */
#ifndef TND_BPF_SCRATCH_H_
#define TND_BPF_SCRATCH_H_

#include "ctx.h"

#define TND_ICMP_INNER_V4 24 /* inner IPv4 header (no options) + ports */
#define TND_ICMP_INNER_V6 44 /* inner IPv6 header + ports */

#define TND_IP_MF 0x2000
#define TND_IP_OFFMASK 0x1fff

enum tnd_verdict {
	TND_PASS = 0,     /* not ours, or handed on (XDP -> tc) unmodified */
	TND_DROP = 1,     /* fwd->reason says why */
	TND_REDIRECT = 2, /* out of fwd->ifindex (MACs written when have_mac) */
};

/* tnd_fwd.peer: a local endpoint; tc hands any into its namespace
 * (bpf_redirect_peer), XDP redirects into the veth of one whose namespace
 * side takes XDP frames (TND_EP_F_XDP_RX). */
#define TND_PEER_TC 1
#define TND_PEER_XDP 2

struct tnd_fwd {
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
	__u8 have_mac;
	__u8 reason;
	__u8 peer;   /* into a local endpoint (TND_PEER_*) */
	__u8 point;  /* enum tnd_obs_point, for events */
	__u32 src_ep; /* endpoint the packet came from, for events */
	__u32 dst_ep; /* endpoint it is routed to */
	__u32 obs_ifindex; /* where the packet was seen, for events */
};

/* A service flow being set up: its backend, SNAT address and flags. */
struct tnd_lb_work {
	__u8 be_addr[16];
	__u8 node[16];
	__u64 hash;
	__be16 be_port;
	__u8 flags; /* TND_CT_F_* of a new flow */
	__u8 cache; /* the forward entry caches the path (tnd_ct_cache_path) */
	__u32 svc_id;
	__u32 bid;
	__u32 gen;    /* the node's generation before the path was decided */
	__be16 nport; /* SNAT: the node port (into tnd_snat_port: the flow's current one, 0 none) */
	__u8 pad[6];
};

/* A parsed packet: the tuple as on the wire and where its headers are. */
struct tnd_pkt {
	struct tnd_ct_key t;
	__u32 l3_off;
	__u32 l4_off;
	__u32 len;
	__u32 l3_end;  /* where the IP packet ends (the frame may carry padding) */
	__u8 tcp_flags;
	__u8 has_l4;   /* the L4 header is in this packet (not a later fragment) */
	__u8 dsr;      /* a DSR option (IPv4) or header (IPv6) was found (dsr_* valid) */
	__u8 icmp_err; /* an ICMP(v6) error: `inner` is the packet it is about */
	__u8 dsr_addr[16];
	__be16 dsr_port;
	__u32 inner_off;
	struct tnd_ct_key inner;
	__u8 parsed;   /* t is valid (TCP, UDP or an ICMP error about them) */
	__u8 pad[7];
};

/* The packet being worked on and the forwarding result live in a per-CPU
 * scratch map rather than on the stack, so the stages below (separate BPF
 * functions) each have the 512-byte stack to themselves. Slot 0: ingress,
 * slot 1: egress. XDP and tc run to completion on their CPU, and each object
 * has its own (unpinned) scratch map. */
struct tnd_lb_scratch {
	struct tnd_pkt p;
	struct tnd_fwd fwd;
	struct tnd_lb_work w; /* the service stage's (ingress) or masquerade's (egress) work area */
	struct tnd_ct_key orig; /* host routing: the tuple as it arrived, for traces */
	__u8 egress_own;        /* tnd_lb_egress: the packet is of an endpoint's flow bpf_lxc cached */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tnd_lb_scratch);
} tnd_lb_scratch SEC(".maps");

static __always_inline struct tnd_lb_scratch *tnd_scratch(__u32 slot)
{
	struct tnd_lb_scratch *s = bpf_map_lookup_elem(&tnd_lb_scratch, &slot);

	if (s)
		__builtin_memset(s, 0, sizeof(*s));
	return s;
}

#endif
