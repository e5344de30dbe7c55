/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tendril map ABI, continued (included by tendril_maps.h only): the record a
 * dry run leaves for `tendril explain` (bpf/lib/explain.h). Written only by
 * objects loaded with tnd_dry_run set; in the node's own programs every
 * write to it is dead code the verifier removes. Not pinned: each dry-run
 * load has its own (a data section, bpf/lib/explain.h).
 */
#ifndef TENDRIL_MAPS_EXPLAIN_H_
#define TENDRIL_MAPS_EXPLAIN_H_

#ifndef TENDRIL_MAPS_H_
#error "include tendril_maps.h, not tendril_maps_explain.h"
#endif

/*
 * What the path did, X(NAME, bit, "name", "what it means") for each: the one
 * list both sides read (the bits here, the names and texts in maps/abi.cc),
 * in the order a path takes them (explain prints them in bit order). Not
 * stored anywhere: renumbering needs only a rebuild.
 */
#define TND_EXPLAIN_STEPS(X) \
	X(PREFILTER_PASS, 0, "prefilter-pass", "the source is in no prefilter deny range") \
	X(NOT_MINE, 1, "not-mine", "no service frontend and no NAT range uses this destination port: left at once") \
	X(NOT_LB, 2, "not-load-balanced", "not a whole TCP/UDP packet nor an ICMP error about one: not load-balanced") \
	X(NAT_REPLY, 3, "nat-reply", "a reply to a flow this node source-NATed: its NAT entry was found") \
	X(DSR_LEARN, 4, "dsr-learn", "first packets of a DSR flow from another node: the frontend for the replies is learned") \
	X(NO_SERVICE, 5, "no-service", "no service frontend at this destination address and port: not load-balanced") \
	X(SERVICE, 6, "service", "the destination is a service frontend") \
	X(NOT_EXTERNAL, 7, "not-external", "the frontend is not reachable from outside the node (ClusterIP): left to the stack") \
	X(CT_FOUND, 8, "ct-found", "the flow's conntrack entry was found") \
	X(CACHED_PATH, 9, "cached-path", "established flow: rewrite and next hop taken from its conntrack entry") \
	X(SOURCE_RANGE_OK, 10, "source-range-ok", "the client is inside the service's source ranges") \
	X(CT_BACKEND, 11, "ct-backend", "the backend the flow's conntrack entry names") \
	X(AFFINITY, 12, "affinity", "session affinity: the backend this client is bound to") \
	X(MAGLEV, 13, "maglev", "the backend at the flow's position in the service's Maglev table") \
	X(SLOT_HASH, 14, "slot-hash", "the slot the flow hash picks") \
	X(SLOT_RANDOM, 15, "slot-random", "a slot picked at random: a real packet may take another backend") \
	X(SLOT_FALLBACK, 16, "slot-fallback", "the slot's backend was gone (the service shrank): slot 1") \
	X(REJECT, 17, "reject", "answered at once with a TCP RST or ICMP unreachable (service without endpoints)") \
	X(FIB, 18, "fib", "next hop from a FIB lookup") \
	X(HOP_CACHED, 19, "hop-cached", "next hop from the conntrack entry's cache") \
	X(TO_TC, 20, "to-tc", "handed on unmodified: tc finishes it (local delivery, neighbour to resolve, DSR option)") \
	X(DSR, 21, "dsr", "direct server return: the frontend travels with the packet, replies skip this node") \
	X(SNAT, 22, "snat", "source NAT to the node's address and a port of the NAT range") \
	X(CT_NEW, 23, "ct-new", "new flow: its forward and reply conntrack entries would be created") \
	X(ENDPOINT_CACHED, 24, "endpoint-cached", "a pod's established flow: next hop from its conntrack entry") \
	X(TO_ENDPOINT, 25, "to-endpoint", "delivered to a local endpoint") \
	X(MASQUERADE, 26, "masquerade", "a pod's packet leaving the node: source NAT to the node") \
	X(HOP_SHARED, 27, "hop-shared", "next hop another flow's FIB lookup to this destination found in this cache tick") \
	X(ROUTED, 28, "routed", "a pod's packet routed by bpf_lxc on a flow this program leaves as it is: passed at once") \
	X(REPLY_CACHED, 29, "endpoint-reply-cached", "a reply on a pod's established flow: next hop from the flow's conntrack entry")

enum tnd_explain_step {
#define TND_X_EXPLAIN_ENUM(name, bit, text, doc) TND_XS_##name = bit,
	TND_EXPLAIN_STEPS(TND_X_EXPLAIN_ENUM)
#undef TND_X_EXPLAIN_ENUM
	TND_XS_MAX = 30,
};

/* The programs a dry run can pass through, in the order they ran (tail
 * calls included): X(NAME, id, "program name"). */
#define TND_EXPLAIN_PROGS(X) \
	X(XDP_ENTRY, 1, "tnd_xdp_entry") \
	X(XDP_V4, 2, "tnd_xdp_v4") \
	X(XDP_V6, 3, "tnd_xdp_v6") \
	X(HOST_INGRESS, 4, "tnd_host_ingress") \
	X(HOST_IN_V4, 5, "tnd_host_in_v4") \
	X(HOST_IN_V6, 6, "tnd_host_in_v6") \
	X(HOST_EGRESS, 7, "tnd_host_egress") \
	X(LXC_INGRESS, 8, "tnd_lxc_ingress") \
	X(LXC_IN_V4, 9, "tnd_lxc_in_v4") \
	X(LXC_IN_V6, 10, "tnd_lxc_in_v6") \
	X(LXC_EGRESS, 11, "tnd_lxc_egress")

enum tnd_explain_prog {
#define TND_X_EXPLAIN_PROG(name, id, text) TND_XP_##name = id,
	TND_EXPLAIN_PROGS(TND_X_EXPLAIN_PROG)
#undef TND_X_EXPLAIN_PROG
};

#define TND_EXPLAIN_MAX_PROGS 6

/* How a redirect leaves (tnd_explain.redirect_how). */
enum tnd_explain_redirect {
	TND_XR_NONE = 0,
	TND_XR_DEVICE = 1, /* bpf_redirect out of redirect_ifindex, MACs written */
	TND_XR_PEER = 2,   /* bpf_redirect_peer into an endpoint's namespace */
	TND_XR_NEIGH = 3,  /* bpf_redirect_neigh: the kernel resolves the MACs */
	TND_XR_TX = 4,     /* XDP_TX: back out of the device it came in by */
};

struct tnd_explain {
	__u64 steps;       /* 1 << TND_XS_* */
	__u32 svc_id;      /* TND_XS_SERVICE */
	__u32 backend_id;  /* the backend chosen (any way) */
	__u32 maglev_pos;  /* TND_XS_MAGLEV */
	__u16 slot;        /* TND_XS_SLOT_* */
	__be16 snat_port;  /* TND_XS_SNAT, TND_XS_MASQUERADE: the port */
	__s32 fib_rc;      /* TND_XS_FIB: bpf_fib_lookup's answer (BPF_FIB_LKUP_RET_*) */
	__u32 redirect_ifindex;
	__u8 redirect_how; /* enum tnd_explain_redirect */
	__u8 drop_reason;  /* TND_DROP_*, 0: none */
	__u8 nprogs;
	__u8 progs[TND_EXPLAIN_MAX_PROGS]; /* TND_XP_* in the order they ran */
	__u8 pad[7];
};

#endif
