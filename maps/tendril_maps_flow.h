/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tendril map ABI, continued (included by tendril_maps.h only): per-packet
 * flow state. Same rules as tendril_maps.h.
 */
#ifndef TENDRIL_MAPS_FLOW_H_
#define TENDRIL_MAPS_FLOW_H_

#ifndef TENDRIL_MAPS_H_
#error "include tendril_maps.h, not tendril_maps_flow.h"
#endif

/* ---- per-packet load balancing: devices, conntrack, NAT ------------------
 *
 * tnd_devices: the node's native devices (ifindex -> addresses, MAC). The
 * agent writes one entry per configured device; the per-packet programs take
 * the SNAT source address from the device a packet leaves through, and know
 * from it whether a FIB result points back out of the node (remote backend)
 * or into it (local backend).
 */
struct tnd_device {
	__be32 ipv4;     /* 0: none */
	__u8 ipv6[16];   /* all zero: none */
	__u8 mac[6];
	__u8 flags;      /* reserved */
	__u8 pad;
};

/*
 * Conntrack (LRU hash per family). Every per-packet service flow has two
 * entries:
 *   forward (client -> frontend, TND_CT_F_SERVICE): which backend the flow
 *     uses, so every packet goes to the same one;
 *   reply (backend -> client, TND_CT_F_REPLY): the frontend that replies are
 *     rewritten to come from.
 * IPv4 uses the first 4 bytes of each address. `expires` is refreshed by the
 * data path; the agent deletes entries past it (GC) and the LRU evicts the
 * oldest under pressure.
 */
struct tnd_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad;
	__u16 pad2;
};

#define TND_CT_F_SERVICE (1 << 0) /* forward entry of a service flow */
#define TND_CT_F_REPLY (1 << 1)   /* reply entry: rewrite the source to nat_addr:nat_port */
#define TND_CT_F_SNAT (1 << 2)    /* the flow is SNATed to the node (see tnd_nat_*) */
#define TND_CT_F_DSR (1 << 3)     /* the backend's node answers the client directly */
#define TND_CT_F_LOCAL (1 << 4)   /* the backend is on this node */
#define TND_CT_F_XDP (1 << 5)     /* created by the XDP program (else tc) */
#define TND_CT_F_ENDPOINT (1 << 6) /* started by a local endpoint (pod); on a reply entry of a
				      * service flow: the client is a local endpoint */
#define TND_CT_F_INBOUND (1 << 7)  /* started elsewhere, toward a local endpoint */

/* TCP flags seen, in tcp_flags (either direction). */
#define TND_TCP_SYN 0x02
#define TND_TCP_FIN 0x01
#define TND_TCP_RST 0x04
#define TND_TCP_ACK 0x10

/* Lifetimes, seconds (Cilium's defaults). */
#define TND_CT_SYN_TIMEOUT 60
#define TND_CT_TCP_TIMEOUT 21600
#define TND_CT_CLOSE_TIMEOUT 10
#define TND_CT_UDP_TIMEOUT 60

/* The clock of the established path's caches (hop_tick, reply_when.tick,
 * tnd_hop_val.tick): the kernel's jiffies over 2^TND_CACHE_TICK_SHIFT, a
 * tick of 256 jiffies (1.024 s at HZ=250, 0.256 s at 1000, 2.56 s at 100).
 * A cache serves within the tick it was filled in. The programs read
 * jiffies inline (bpf_jiffies64: no helper call, no division), where the
 * seconds of lifetimes (created, expires) cost a clock helper and a
 * division; a cache only needs "not long ago". */
#define TND_CACHE_TICK_SHIFT 8

/*
 * A pod's flow (an entry whose flags are TND_CT_F_ENDPOINT or
 * TND_CT_F_INBOUND and nothing else) has one entry, keyed by the direction
 * that opened it; its replies find it by their reversed tuple. Their
 * established path's cache lives in the bytes a service flow uses for its
 * addresses (nat_addr, snat_addr), which such an entry never does: the next
 * hop and when it was decided, as hop_* for the other direction.
 */
struct tnd_ct_reply_hop {
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
};

struct tnd_ct_reply_when {
	__u32 gen;
	__u32 tick;  /* TND_CACHE_TICK_SHIFT */
	__u8 flags; /* TND_HOP_* */
	__u8 pad[7];
};

struct tnd_ct_val {
	union {
		__u8 nat_addr[16];  /* reply: the frontend address; forward (cached): the backend's */
		struct tnd_ct_reply_hop reply_hop; /* a pod's flow: its replies' next hop */
	};
	__be16 nat_port;    /* reply: the frontend port; forward (cached): the backend's */
	__u8 flags;         /* TND_CT_F_* */
	__u8 tcp_flags;     /* TND_TCP_* seen so far */
	__u32 svc_id;
	__u32 backend_id;   /* forward: the chosen backend */
	__u32 created;      /* seconds since boot */
	__u32 expires;      /* seconds since boot */
	__be16 snat_port;   /* forward, TND_CT_F_SNAT: the node port the flow leaves from (its mapping: the
			     * NAT in entry peer -> snat_addr:snat_port; written on every full-path packet) */
	__u8 hop_flags;     /* TND_HOP_*: whether the cache below (and nat_*) is filled */
	__u8 pad;
	__u64 packets;
	__u64 bytes;
	/* The established path's cache (a forward entry through a native
	 * device): what the rewrite and the forwarding need, so that a packet of
	 * the flow takes one lookup. Valid while hop_gen equals the node's
	 * generation (tnd_node_info.gen: bumped by the agent on every change of
	 * services, backends, endpoints, devices, routes, neighbours) and within
	 * the tick hop_tick (TND_CACHE_TICK_SHIFT): the next tick's first packet takes
	 * the full path once (refreshing the NAT mapping's lifetime and the FIB's
	 * answer). */
	union {
		__u8 snat_addr[16]; /* TND_CT_F_SNAT: the node address the flow leaves from (with snat_port) */
		struct tnd_ct_reply_when reply_when; /* a pod's flow: its replies' cache, valid when */
	};
	__u32 hop_ifindex;
	__u8 hop_smac[6];
	__u8 hop_dmac[6];
	__u32 hop_gen;
	__u32 hop_tick;
};

#define TND_HOP_VALID (1 << 0) /* the cache is filled (while hop_gen and hop_tick hold) */
#define TND_HOP_PEER (1 << 1)  /* into a local endpoint's namespace (tc: bpf_redirect_peer) */
#define TND_HOP_XDP_RX (1 << 2) /* ... whose veth takes XDP frames (XDP: bpf_redirect) */
#define TND_HOP_EGRESS_NONE (1 << 3) /* an endpoint's flow out of a node device that the device's
				      * egress program leaves as it is (no reply of a local
				      * backend, not masqueraded): bpf_lxc marks its cached
				      * packets (TND_MARK_ROUTED) and egress passes them at once */

/* skb->mark of a packet bpf_lxc redirected out of a node device from a
 * flow with TND_HOP_EGRESS_NONE. A pod's packet comes out of its namespace
 * with mark 0 (crossing namespaces clears it); tnd_host_egress compares the
 * whole value and puts 0 back. */
#define TND_MARK_ROUTED 0x746e6401

/*
 * NAT (LRU hash per family), shared by service SNAT and pod masquerade:
 *   out (dir TND_NAT_OUT): original tuple (client -> peer) -> the node
 *     address and port it leaves with;
 *   in (dir TND_NAT_IN): reply tuple (peer -> node:port) -> the client
 *     address and port to restore.
 * A masquerade mapping is a pair: each entry follows its flow like a
 * conntrack entry (tcp_flags, expires by tnd_ct_lifetime), refreshed by its
 * own direction's packets, closing and reopening together with the other
 * entry of its pair. A service flow's mapping (TND_NAT_F_SERVICE) is its in
 * entry alone: the flow's forward conntrack entry holds what the out entry
 * would (snat_addr, snat_port), and the in entry is refreshed by both
 * directions (the forward packets on the full path, at least once a
 * second while the flow lasts). The agent's GC removes a pair once both
 * are expired, a lone entry once it is. The node port comes from the NAT
 * port range (setting nat-port-range, outside the node's own ephemeral
 * ports): random probes, then a scan of the whole range; a port whose
 * mapping expired, or (for a new TCP connection, when no port is free)
 * whose flow was reset over TND_NAT_RESET_SETTLE_MS ago, is taken over.
 */
#define TND_NAT_OUT 0
#define TND_NAT_IN 1
#define TND_NAT_PORT_MIN_DEFAULT 10000  /* below the node-port range and Linux's ephemeral ports */
#define TND_NAT_PORT_MAX_DEFAULT 29999
#define TND_NAT_PROBES 32              /* random probes before the scan of the whole range */
#define TND_NAT_RESET_SETTLE_MS 200    /* a reset flow's port is not reused sooner */

#define TND_NAT_F_SERVICE (1 << 0)  /* SNAT of a per-packet service flow */
#define TND_NAT_F_MASQ (1 << 1)     /* masquerade of an endpoint's own flow */

struct tnd_nat_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir;           /* TND_NAT_OUT or TND_NAT_IN */
	__u16 pad;
};

struct tnd_nat_val {
	__u8 to_addr[16];
	__be16 to_port;
	__u8 tcp_flags;     /* TND_TCP_* of the flow, as this entry knows it */
	__u8 flags;         /* TND_NAT_F_* */
	__u32 created;
	__u32 expires;      /* with `gen`, one 8-byte word: the data path takes a */
	__u32 gen;          /* mapping over by swapping it (gen counts take-overs) */
	__u32 reset_ms;     /* in entries: when the flow's RST was seen (ms since boot, low 32 bits) */
	__u32 pad;
};

/* IPv4 fragments: the ports of a datagram, learnt from its first fragment,
 * so later fragments follow the same flow. LRU. */
struct tnd_frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

struct tnd_frag_val {
	__be16 sport;
	__be16 dport;
};

/* Direct server return: the IPv4 option the LB node adds to the first
 * packets of a flow, naming the frontend the backend's node must answer
 * from. Type: copied, class 0, number 30 (unassigned). */
#define TND_DSR_OPT_TYPE 0x9e
#define TND_DSR_OPT_LEN 8
struct tnd_dsr_opt {
	__u8 type;
	__u8 len;
	__be16 port;
	__be32 addr;
};

/* Direct server return over IPv6: a Destination Options extension header
 * with one option naming the frontend, padded to 24 bytes. The option type's
 * top bits are 00: a node that does not know it skips it. */
#define TND_DSR_OPT6_TYPE 0x1e
#define TND_DSR_OPT6_LEN 24
struct tnd_dsr_opt6 {
	__u8 nexthdr;
	__u8 hdrlen;     /* in 8-byte units, not counting the first 8: 2 */
	__u8 opt_type;   /* TND_DSR_OPT6_TYPE */
	__u8 opt_len;    /* 18: port and address */
	__be16 port;
	__u8 addr[16];
	__u8 pad_type;   /* PadN */
	__u8 pad_len;    /* 0 */
};

/* loadBalancerSourceRanges: (service id, client prefix) allowed. */
struct tnd_srange_v4_key {
	__u32 prefixlen; /* 32 (svc id) + prefix length */
	__be32 svc_id;   /* network byte order, part of the prefix */
	__u8 addr[4];
};

struct tnd_srange_v6_key {
	__u32 prefixlen;
	__be32 svc_id;
	__u8 addr[16];
};

#endif /* TENDRIL_MAPS_FLOW_H_ */
