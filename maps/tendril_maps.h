/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tendril map ABI: the one definition of every key, value, name and size that
 * the BPF programs (bpf/) and the C++ control plane (agent/, cli/, test/)
 * share. Included from C (BPF, clang -target bpf) and from C++.
 *
 * Rules:
 *  - Fixed-width types only, explicit padding, no bitfields.
 *  - Changing a layout changes the map's key/value size; the loader notices
 *    the mismatch with the pinned map and replaces it (see datapath/loader.cc).
 *  - Map names are at most 15 characters (BPF_OBJ_NAME_LEN - 1); they are the
 *    pin file names under the bpffs root.
 */
#ifndef TENDRIL_MAPS_H_
#define TENDRIL_MAPS_H_

#include <linux/types.h>

/* ---- map names (pin names) ---------------------------------------------- */
#define TND_MAP_PREFILTER_V4 "tnd_pf_v4"
#define TND_MAP_PREFILTER_V6 "tnd_pf_v6"
#define TND_MAP_PREFILTER_STATE "tnd_pf_state"
#define TND_MAP_METRICS "tnd_metrics"
#define TND_MAP_XDP_CALLS "tnd_xdp_calls" /* prog array, per object, not pinned */
#define TND_MAP_XDP_SCRATCH "tnd_xdp_scratch" /* per-CPU scratch, not pinned */

#define TND_MAP_SVC_V4 "tnd_svc_v4"
#define TND_MAP_SVC_V6 "tnd_svc_v6"
#define TND_MAP_SVC_PORTS "tnd_svc_ports"
#define TND_MAP_BACKENDS "tnd_backends"
#define TND_MAP_REVNAT "tnd_revnat"
#define TND_MAP_SK_REVNAT_V4 "tnd_sk_rnat_v4"
#define TND_MAP_SK_REVNAT_V6 "tnd_sk_rnat_v6"
#define TND_MAP_AFFINITY "tnd_affinity"
#define TND_MAP_MAGLEV "tnd_maglev"

#define TND_MAP_CT_V4 "tnd_ct_v4"
#define TND_MAP_CT_V6 "tnd_ct_v6"
#define TND_MAP_NAT_V4 "tnd_nat_v4"
#define TND_MAP_NAT_V6 "tnd_nat_v6"
#define TND_MAP_DEVICES "tnd_devices"
#define TND_MAP_SRCRANGE_V4 "tnd_srng_v4"
#define TND_MAP_SRCRANGE_V6 "tnd_srng_v6"
#define TND_MAP_EVENTS "tnd_events"
#define TND_MAP_FRAG_V4 "tnd_frag_v4"
#define TND_MAP_HOST_CALLS "tnd_host_calls" /* prog array, per object, pinned under calls/ */
#define TND_MAP_LXC_CALLS "tnd_lxc_calls"   /* prog array of bpf_lxc.o, pinned under calls/ */
#define TND_MAP_ENDPOINTS "tnd_endpoints"
#define TND_MAP_NOMASQ_V4 "tnd_nomasq_v4"
#define TND_MAP_NOMASQ_V6 "tnd_nomasq_v6"
#define TND_MAP_NODE "tnd_node"
#define TND_MAP_HOPS "tnd_hops"

/* ---- sizes ----------------------------------------------------------------
 * *_DEFAULT sizes are what the objects declare; the agent sets the real ones
 * from its settings (agent/config.cc) before loading. */
#define TND_PREFILTER_MAX 16384 /* entries per address family */
#define TND_METRICS_MAX 512 /* (dir << 8 | reason): 2 directions x 256 reasons */
/* Growable tables (services, backends, reverse NAT): the settings cap them;
 * their real size follows what is declared, from TND_TABLE_MIN_ENTRIES. */
#define TND_SVC_MAX_DEFAULT 4194304      /* service map entries (masters + slots), per family */
#define TND_BACKENDS_MAX_DEFAULT 2097152 /* backend ids 1..this */
#define TND_REVNAT_MAX_DEFAULT 1048576   /* service ids 1..this */
#define TND_TABLE_MIN_ENTRIES 16384      /* a growable table's smallest size */
#define TND_SK_REVNAT_MAX_DEFAULT 65536  /* LRU: one per connected/sending socket and backend */
#define TND_AFFINITY_MAX_DEFAULT 65536   /* LRU */
#define TND_MAGLEV_SVC_MAX_DEFAULT 4096  /* services with Maglev tables */
#define TND_MAGLEV_INNER_FLAGS BPF_F_MMAPABLE /* tables the agent reads mapped */
#define TND_CT_MAX_DEFAULT 262144        /* LRU, per family: two entries per service flow */
#define TND_NAT_MAX_DEFAULT 262144       /* LRU, per family: two entries per SNATed flow */
#define TND_DEVICES_MAX 64
#define TND_FRAG_MAX 8192         /* LRU */
#define TND_SRCRANGE_MAX_DEFAULT 65536   /* per family, all services together */
#define TND_EVENTS_BYTES (256 * 1024)
#define TND_ENDPOINTS_MAX 4096    /* endpoint addresses (v4 and v6 together) */
#define TND_NOMASQ_MAX 1024       /* per family: pod CIDRs + exempt destinations */
#define TND_HOPS_MAX 16384        /* LRU: (ingress device, destination) next hops */
#ifndef TENDRIL_MAGLEV_TABLE_SIZE
#define TENDRIL_MAGLEV_TABLE_SIZE 16381 /* prime; set by the agent's config header */
#endif

/* ---- tail-call indices -----------------------------------------------------
 * Each object's prog array is filled by libbpf from its static initialiser
 * (bpf/bpf_xdp.c, bpf_host.c, bpf_lxc.c); *_MAX sizes it, and the loader
 * refuses an object with an empty slot. */

/* tnd_xdp_calls */
#define TND_TAIL_XDP_V4 0
#define TND_TAIL_XDP_V6 1
#define TND_TAIL_XDP_MAX 2

/* tnd_host_calls (tc programs of bpf_host.o) */
#define TND_TAIL_HOST_V4 0
#define TND_TAIL_HOST_V6 1
#define TND_TAIL_HOST_MAX 2

/* tnd_lxc_calls (tc programs of bpf_lxc.o) */
#define TND_TAIL_LXC_V4 0
#define TND_TAIL_LXC_V6 1
#define TND_TAIL_LXC_MAX 2

/* ---- prefilter (LPM tries, BPF_F_NO_PREALLOC) ---------------------------- */
struct tnd_lpm_v4_key {
	__u32 prefixlen; /* LPM trie requires the prefix length first */
	__u8 addr[4];    /* network byte order */
};

struct tnd_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct tnd_prefilter_val {
	__u32 flags; /* reserved, 0 */
};

/* The first level of the deny lists (one array entry, next to the tries of
 * the same object), direct-indexed by the source address's first 16 bits:
 * TND_PF_PASS where no entry lies in or covers those 16 bits (the packet
 * passes without a trie lookup), TND_PF_DENY where an entry of 16 bits or
 * fewer covers them (dropped without one), TND_PF_TRIE where longer entries
 * start there (the trie decides). An empty list is all TND_PF_PASS. TRIE is
 * 0, so a map never written (a new node, a replaced map) asks the trie; the
 * writer marks a bucket TND_PF_TRIE while the entries under it change. */
#define TND_PF_BUCKETS 65536
enum {
	TND_PF_TRIE = 0,
	TND_PF_PASS = 1,
	TND_PF_DENY = 2,
};
struct tnd_prefilter_state {
	__u8 v4[TND_PF_BUCKETS];
	__u8 v6[TND_PF_BUCKETS];
};

/* ---- metrics (per-CPU array) --------------------------------------------- */
enum tnd_dir {
	TND_DIR_INGRESS = 0,
	TND_DIR_EGRESS = 1,
};

/*
 * Drop reasons: X(NAME, number, "name") for each, the one list both sides
 * read (the enum here, the names in maps/abi.cc). Numbers are ABI: they are
 * keys in the pinned metrics map and appear in events; never renumber, only
 * append (and raise TND_DROP_REASON_MAX).
 */
#define TND_DROP_REASONS(X) \
	X(NONE, 0, "none") \
	X(PREFILTER_DENIED, 1, "prefilter-denied")       /* source address in a prefilter deny CIDR */ \
	X(MISSED_TAIL_CALL, 2, "missed-tail-call")       /* prog array slot empty */ \
	X(NO_SERVICE_BACKEND, 3, "no-service-backend")   /* service has no usable backend: connect refused */ \
	X(BACKEND_MISSING, 4, "backend-missing")         /* slot names a backend id not in tnd_backends */ \
	X(SOURCE_RANGE, 5, "source-range-denied")        /* client outside loadBalancerSourceRanges */ \
	X(NO_LOCAL_BACKEND, 6, "no-local-backend")       /* externalTrafficPolicy Local, none on this node */ \
	X(NAT_EXHAUSTED, 7, "nat-ports-exhausted")       /* no free SNAT port for the flow */ \
	X(NO_ROUTE, 8, "no-route")                       /* FIB lookup found no route to the backend or client */ \
	X(NO_NODE_ADDR, 9, "no-node-address")            /* SNAT needed, no device address of the family */ \
	X(REWRITE, 10, "rewrite-failed")                 /* a header or checksum rewrite failed */ \
	X(TOO_BIG, 11, "packet-too-big")                 /* larger than the MTU toward the backend or client */

enum tnd_drop_reason {
#define TND_X_DROP_ENUM(name, num, text) TND_DROP_##name = num,
	TND_DROP_REASONS(TND_X_DROP_ENUM)
#undef TND_X_DROP_ENUM
	TND_DROP_REASON_MAX = 12,
};

/* The metrics map is a per-CPU array indexed by (dir << 8 | reason): the hot
 * path is an array lookup the verifier inlines, with no hashing and no insert
 * on a reason's first packet. */
static inline __u32 tnd_metrics_index(__u8 reason, __u8 dir)
{
	return ((__u32)dir << 8) | reason;
}

struct tnd_metrics_val {
	__u64 packets;
	__u64 bytes;
};

/* ---- the node ---------------------------------------------------------------
 *
 * Facts about this node the programs need at run time: one entry, written by
 * the agent at start.
 */
struct tnd_node_info {
	__u64 host_netns_cookie; /* the node's own network namespace */
	__u32 gen;               /* bumped on every change a cached flow path depends on
				  * (tnd_ct_val.hop_gen): services, backends, endpoints,
				  * devices, routes, neighbours; and at each agent start */
	__u32 flags;             /* TND_NODE_F_* */
	__u64 pad[2];
};

/* The FIB's answer depends on a packet's destination (and ingress device)
 * alone: the routing rules only say "look up table T" and no route has
 * several next hops. The agent sets it from the rules and routes it reads
 * (network/route_table.h) and clears it while that is not so; new flows
 * then share next hops (tnd_hops). */
#define TND_NODE_F_HOPS_SHARED 0x1

/* ---- next hops shared by flows (tnd_hops, LRU) -----------------------------
 *
 * A FIB lookup's answer for a destination reached from an ingress device,
 * kept for the second it was found in under the node's generation, so a new
 * flow to a backend other flows reach does one lookup here instead of
 * bpf_fib_lookup. Only while TND_NODE_F_HOPS_SHARED is set. The programs
 * alone write it. */
struct tnd_hop_key {
	__u32 ifindex; /* the device the packet came in on */
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];
	__u8 addr[16]; /* destination (IPv4: first 4 bytes, rest zero) */
};

struct tnd_hop_val {
	__u32 gen;     /* the node's generation it was found under */
	__u32 tick;    /* the cache tick (TND_CACHE_TICK_SHIFT) it was found in (0 while being written) */
	__u32 ifindex; /* out of this device */
	__u16 len_ok;  /* the longest IP packet the route's MTU was checked for */
	__u8 smac[6];
	__u8 dmac[6];
	__u8 pad[2];
};

/* ---- services --------------------------------------------------------------
 *
 * A service is one frontend (VIP, port, protocol). Its entries in tnd_svc_v4/6:
 *   slot 0:            the master entry: how many active backend slots there
 *                      are, the service id, flags, affinity timeout;
 *   slots 1..count:    one backend id each, from the backend set the
 *                      frontend's traffic policy chooses (a backend appears
 *                      in as many slots as its weight asks for);
 * The sets (lb/service.cc, SelectBackendSets), as kube-proxy's topology rules make them:
 * the cluster set is the ready (active, weight > 0) backends, or when there
 * is none the serving terminating ones; the local set is the same among the
 * backends on this node. Maintenance and weight-0 backends are in no set:
 * never chosen for new connections, while their backend entries stay for the
 * sockets and flows that use them.
 *
 * Update order (lb/services.cc), so a reader never sees a service with
 * zero backends or a slot naming a backend not yet written: backends, then
 * Maglev table and slots, then the master entry that publishes the count;
 * removal goes the other way.
 */
#define TND_SVC_F_MAGLEV (1 << 0)
#define TND_SVC_F_AFFINITY (1 << 1)
#define TND_SVC_F_EXTERNAL (1 << 2)  /* NodePort/ExternalIP/LoadBalancer: per-packet LB */
#define TND_SVC_F_LOCAL (1 << 3)     /* slots: the local set (a Local policy); external: no SNAT */
#define TND_SVC_F_DSR (1 << 4)       /* remote backends: direct server return, no SNAT */
#define TND_SVC_F_SRCRANGE (1 << 5)  /* a LoadBalancer IP: check the client against tnd_srng_v4/6 */
#define TND_SVC_F_NODEPORT (1 << 6)  /* this frontend is a node address + node port */
/* externalTrafficPolicy Local: the frontend has a second set of entries in
 * scope TND_SCOPE_INTERNAL (every backend of the cluster), which traffic from
 * this node and its pods (socket LB, bpf_lxc) uses instead, as kube-proxy
 * sends in-cluster traffic to all endpoints whatever the external policy. */
#define TND_SVC_F_SCOPES (1 << 7)

/* The scope of a frontend's entries (key field `scope`). */
#define TND_SCOPE_EXTERNAL 0 /* every frontend: what the service's policies choose */
#define TND_SCOPE_INTERNAL 1 /* only with TND_SVC_F_SCOPES: in-cluster traffic */

struct tnd_svc4_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope; /* TND_SCOPE_* */
	__u16 slot; /* 0: master */
	__u16 pad2;
};

struct tnd_svc6_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 scope;
	__u16 slot;
	__u16 pad2;
};

struct tnd_svc_val {
	__u32 backend_id;       /* slots: the backend; master: 0 */
	__u32 svc_id;           /* master and slots: the service id (= rev NAT id) */
	__u32 affinity_timeout; /* master: seconds; 0 = no affinity */
	__u16 count;            /* master: active slots */
	__u8 flags;             /* master: TND_SVC_F_* */
	__u8 xflags;            /* master: TND_SVC_X_* */
};

/* With count 0: the service has no usable backend anywhere (not only none
 * on this node), and per-packet paths answer a new flow as kube-proxy's
 * REJECT rule does: TCP RST, ICMP/ICMPv6 port unreachable for UDP. Without
 * it an empty frontend (a Local policy with no local backend) drops, as
 * kube-proxy's DROP rule does. */
#define TND_SVC_X_REJECT (1 << 0)

enum tnd_backend_state {
	TND_BACKEND_ACTIVE = 0,
	TND_BACKEND_TERMINATING = 1,
	TND_BACKEND_MAINTENANCE = 2,
};

/* Backend ids start at 1: 0 is "none" (BPF arrays start zeroed). A backend
 * belongs to one service, so its state is that service's view of it. */
struct tnd_backend {
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
	__be16 port;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u32 svc_id;
	__u8 state;  /* enum tnd_backend_state */
	__u8 flags;  /* TND_BACKEND_F_* */
	__u16 pad;
};

#define TND_BACKEND_F_LOCAL (1 << 0) /* on this node: reached through a non-native device */
#define TND_BACKEND_F_HOST (1 << 1)  /* one of this node's own addresses (host network) */
/* Which of its service's backend sets it is in now (the sets the slots are
 * filled from): session affinity keeps a client only on a backend still in
 * the set its frontend chooses from, so a drained (weight 0), terminating or
 * maintenance backend, or a remote one behind a Local policy, gets no new
 * connection through an old binding. */
#define TND_BACKEND_F_SEL_CLUSTER (1 << 2) /* in the cluster-wide set */
#define TND_BACKEND_F_SEL_LOCAL (1 << 3)   /* in the node-local set (Local policies) */
#define TND_BACKEND_F_RETIRED (1 << 4) /* removed, in its grace period: in no set; its flows choose again */

/* Service id -> frontend, for reverse translation. */
struct tnd_revnat {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 proto;
};

/* Socket-level reverse NAT: (socket cookie, backend) -> frontend, written at
 * connect/sendmsg, read by recvmsg and getpeername. */
struct tnd_sk_revnat4_key {
	__u64 cookie;
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct tnd_sk_revnat6_key {
	__u64 cookie;
	__u8 addr[16];
	__be16 port;
	__u16 pad;
	__u32 pad2;
};

struct tnd_sk_revnat_val {
	__u8 addr[16];
	__be16 port;
	__u16 pad;
	__u32 svc_id;
};

/* Session affinity: (client, service) -> backend. The client of socket LB
 * is its network namespace (a pod), identified by the netns cookie. */
struct tnd_affinity_key {
	__u64 client;
	__u32 svc_id;
	__u32 pad;
};

struct tnd_affinity_val {
	__u32 backend_id;
	__u32 last_used; /* seconds since boot (bpf_ktime_get_ns() / 1e9) */
};

/*
 * The ports any service frontend uses (tnd_svc_ports, one array entry): a
 * packet to a port no frontend has is not a service packet, known without
 * a service lookup. The LB writer sets a port's bit before the first
 * frontend with it is written and clears it after the last is removed;
 * while `valid` is 0 (nothing written yet) every port counts as used.
 */
struct tnd_svc_ports {
	__u32 valid;
	__u32 pad;
	__u64 bits[1024]; /* bit p % 64 of word p / 64: port p (host order) */
};

#include "tendril_maps_flow.h"

/* ---- endpoints (pods) -------------------------------------------------------
 *
 * tnd_endpoints: every address of a local endpoint -> where it is. The host
 * side of the endpoint's veth carries bpf_lxc.o at tc ingress; packets for
 * the endpoint are handed straight into its namespace with
 * bpf_redirect_peer(ifindex), Ethernet header written from the two MACs.
 */
struct tnd_ep_key {
	__u8 addr[16];  /* IPv4 in the first 4 bytes */
	__u8 family;    /* 4 or 6 */
	__u8 pad[3];
};

#define TND_EP_F_ADOPTED (1 << 0) /* the veth was made by someone else */
#define TND_EP_F_XDP_RX (1 << 1)  /* its namespace side runs NAPI (GRO on): XDP can redirect into it */
/* XDP redirects into a pod's veth frames of at most this many bytes of IP
 * on a flow's cached path (the full path checks the endpoint's own MTU);
 * the agent marks TND_EP_F_XDP_RX only veths whose namespace side's MTU is
 * at least this. Larger frames go to the pod through tc. */
#define TND_XDP_RX_MTU 1500

struct tnd_endpoint {
	__u32 ifindex;      /* host side of the veth */
	__u32 id;           /* the endpoint id (1..65535) */
	__u8 mac[6];        /* the endpoint's own (namespace side) MAC */
	__u8 node_mac[6];   /* the host side's MAC: the endpoint's gateway */
	__u16 flags;        /* TND_EP_F_* */
	__u16 mtu;          /* the namespace side's MTU: XDP redirects only frames that fit */
};

/* Masquerade exemptions (LPM per family, struct tnd_lpm_v*_key): the pod
 * CIDRs and the configured non-masquerade destinations. Traffic of a local
 * endpoint leaving a native device toward anything else is SNATed to the
 * device's address (the NAT maps and port allocation of per-packet LB). */
#define TND_NOMASQ_F_POD 1    /* a pod CIDR */
#define TND_NOMASQ_F_EXEMPT 2 /* a configured exemption (masquerade-exempt) */
struct tnd_nomasq_val {
	__u32 flags; /* TND_NOMASQ_F_* */
};

/* ---- events on the tnd_events ring buffer ----------------------------------
 *
 * Drops: every per-packet LB and routing drop (prefilter drops are only
 * counted: a flood would drown the ring). Traces: the first packet of every
 * flow tendril routes or translates (a new conntrack or NAT entry), saying
 * where it was seen and what was decided.
 */
enum tnd_event_type {
	TND_EVENT_DROP = 1,
	TND_EVENT_TRACE = 2,
};

/* Where a packet was seen: X(NAME, number, "name"). */
#define TND_OBS_POINTS(X) \
	X(NONE, 0, "unknown") \
	X(FROM_ENDPOINT, 1, "from-endpoint") /* bpf_lxc, tc ingress of an endpoint's veth */ \
	X(FROM_NETWORK, 2, "from-network")   /* bpf_host, tc ingress of a native device */ \
	X(TO_NETWORK, 3, "to-network")       /* bpf_host, tc egress of a native device */ \
	X(XDP, 4, "xdp")                     /* bpf_xdp */

enum tnd_obs_point {
#define TND_X_OBS_ENUM(name, num, text) TND_OBS_##name = num,
	TND_OBS_POINTS(TND_X_OBS_ENUM)
#undef TND_X_OBS_ENUM
};

/* What was decided (traces): X(NAME, number, "name"). */
#define TND_TRACE_VERDICTS(X) \
	X(NONE, 0, "none") \
	X(TO_ENDPOINT, 1, "to-endpoint")       /* bpf_redirect_peer into the endpoint's namespace */ \
	X(REDIRECT, 2, "redirect")             /* bpf_redirect out of to_ifindex (MACs from the FIB) */ \
	X(REDIRECT_NEIGH, 3, "redirect-neigh") /* bpf_redirect_neigh: the kernel resolves the next hop */ \
	X(TO_STACK, 4, "to-stack")             /* handed to the host stack */ \
	X(MASQUERADE, 5, "masquerade")         /* source rewritten to the node (nat_addr:nat_port) */

enum tnd_trace_verdict {
#define TND_X_TRACE_ENUM(name, num, text) TND_TRACE_##name = num,
	TND_TRACE_VERDICTS(TND_X_TRACE_ENUM)
#undef TND_X_TRACE_ENUM
};

struct tnd_event {
	__u8 type;       /* enum tnd_event_type */
	__u8 reason;     /* drops: enum tnd_drop_reason */
	__u8 dir;        /* enum tnd_dir */
	__u8 family;     /* 4 or 6 */
	__u32 ifindex;   /* where it was seen */
	__u8 saddr[16];  /* the packet as it was seen */
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 point;      /* enum tnd_obs_point */
	__u8 verdict;    /* traces: enum tnd_trace_verdict */
	__u8 pad;
	__u32 len;       /* packet length */
	__u32 src_ep;    /* the endpoint id it came from, 0: none */
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	__u32 to_ifindex; /* traces: the device it was sent to */
	__be16 nat_port;  /* traces: the translated destination (service) or source (masquerade) */
	__u16 pad2;
	__u8 nat_addr[16];
	__u32 dst_ep;    /* the endpoint id it is for, 0: none */
	__u32 pad3;
};

/* ---- XDP per-CPU scratch, carried across tail calls ---------------------- */
struct tnd_xdp_scratch {
	__u16 l3_off; /* offset of the IP header from the start of the frame */
	__u16 pad;
	__u32 pad2;
};

#include "tendril_maps_explain.h"

#endif /* TENDRIL_MAPS_H_ */
