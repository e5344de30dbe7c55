/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tendril map ABI: the one definition of every key, value, name and size that
 * the BPF programs (bpf/) and the C++ control plane (agent/, cli/, test/)
 * share. Included from C (BPF, clang -target bpf) and from C++.
 *
 * Rules:
 *  - Fixed-width types only, explicit padding, no bitfields.
 *  - Changing a layout changes the map's key/value size; the loader notices
 *    the mismatch with the pinned map and replaces it (see agent/loader.cc).
 *  - Map names are at most 15 characters (BPF_OBJ_NAME_LEN - 1); they are the
 *    pin file names under the bpffs root.
 */
#ifndef TENDRIL_MAPS_H_
#define TENDRIL_MAPS_H_

#include <linux/types.h>

/* ---- map names (pin names) ---------------------------------------------- */
#define TND_MAP_PREFILTER_V4 "tnd_pf_v4"
#define TND_MAP_PREFILTER_V6 "tnd_pf_v6"
#define TND_MAP_METRICS "tnd_metrics"
#define TND_MAP_XDP_CALLS "tnd_xdp_calls" /* prog array, per object, not pinned */
#define TND_MAP_XDP_SCRATCH "tnd_xdp_scratch" /* per-CPU scratch, not pinned */

#define TND_MAP_SVC_V4 "tnd_svc_v4"
#define TND_MAP_SVC_V6 "tnd_svc_v6"
#define TND_MAP_BACKENDS "tnd_backends"
#define TND_MAP_REVNAT "tnd_revnat"
#define TND_MAP_SK_REVNAT_V4 "tnd_sk_rnat_v4"
#define TND_MAP_SK_REVNAT_V6 "tnd_sk_rnat_v6"
#define TND_MAP_AFFINITY "tnd_affinity"
#define TND_MAP_MAGLEV "tnd_maglev"

/* ---- sizes --------------------------------------------------------------- */
#define TND_PREFILTER_MAX 16384 /* entries per address family */
#define TND_METRICS_MAX 512 /* (dir << 8 | reason): 2 directions x 256 reasons */
#define TND_XDP_CALLS_MAX 8
#define TND_SVC_MAX 65536        /* service map entries (master + slots), per family */
#define TND_BACKENDS_MAX 65536
#define TND_REVNAT_MAX 65535     /* service ids are 1..65535 */
#define TND_SK_REVNAT_MAX 65536  /* LRU: one per connected/sending socket and backend */
#define TND_AFFINITY_MAX 65536   /* LRU */
#define TND_MAGLEV_SVC_MAX 4096  /* services with Maglev tables */
#ifndef TENDRIL_MAGLEV_TABLE_SIZE
#define TENDRIL_MAGLEV_TABLE_SIZE 16381 /* prime; set by the agent's config header */
#endif

/* ---- tail-call indices (tnd_xdp_calls) ----------------------------------- */
#define TND_TAIL_XDP_V4 0
#define TND_TAIL_XDP_V6 1

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

/* ---- metrics (per-CPU array) --------------------------------------------- */
enum tnd_dir {
	TND_DIR_INGRESS = 0,
	TND_DIR_EGRESS = 1,
};

/*
 * Drop reasons. Numbers are ABI: they are keys in the pinned metrics map and
 * appear in events; never renumber, only append. Names live in
 * maps/abi.h (C++) next to this list.
 */
enum tnd_drop_reason {
	TND_DROP_NONE = 0,
	TND_DROP_PREFILTER_DENIED = 1, /* source address in a prefilter deny CIDR */
	TND_DROP_MISSED_TAIL_CALL = 2, /* prog array slot empty */
	TND_DROP_NO_SERVICE_BACKEND = 3, /* service has no usable backend: connect refused */
	TND_DROP_BACKEND_MISSING = 4,   /* slot names a backend id not in tnd_backends */
	TND_DROP_REASON_MAX = 5,
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

/* ---- services --------------------------------------------------------------
 *
 * A service is one frontend (VIP, port, protocol). Its entries in tnd_svc_v4/6:
 *   slot 0:            the master entry: how many active backend slots there
 *                      are, the service id, flags, affinity timeout;
 *   slots 1..count:    one active backend id each (a backend appears in as
 *                      many slots as its weight asks for);
 * Terminating and maintenance backends are in no slot: never chosen for new
 * connections, while their backend entries stay for sockets that use them.
 *
 * Update order (agent/services.cc), so a reader never sees a service with
 * zero backends or a slot naming a backend not yet written: backends, then
 * Maglev table and slots, then the master entry that publishes the count;
 * removal goes the other way.
 */
#define TND_SVC_F_MAGLEV (1 << 0)
#define TND_SVC_F_AFFINITY (1 << 1)

struct tnd_svc4_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
	__u16 slot; /* 0: master */
	__u16 pad2;
};

struct tnd_svc6_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
	__u16 slot;
	__u16 pad2;
};

struct tnd_svc_val {
	__u32 backend_id;       /* slots: the backend; master: 0 */
	__u16 count;            /* master: active slots */
	__u16 svc_id;           /* master and slots: the service id (= rev NAT id) */
	__u32 affinity_timeout; /* master: seconds; 0 = no affinity */
	__u8 flags;             /* master: TND_SVC_F_* */
	__u8 pad[3];
};

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
	__u16 svc_id;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u8 state;  /* enum tnd_backend_state */
	__u8 pad;
};

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
	__u16 svc_id;
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

/* ---- XDP per-CPU scratch, carried across tail calls ---------------------- */
struct tnd_xdp_scratch {
	__u16 l3_off; /* offset of the IP header from the start of the frame */
	__u16 pad;
	__u32 pad2;
};

#endif /* TENDRIL_MAPS_H_ */
