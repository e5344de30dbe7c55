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

/* ---- sizes --------------------------------------------------------------- */
#define TND_PREFILTER_MAX 16384 /* entries per address family */
#define TND_METRICS_MAX 512 /* (dir << 8 | reason): 2 directions x 256 reasons */
#define TND_XDP_CALLS_MAX 8

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
	TND_DROP_REASON_MAX = 3,
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

/* ---- XDP per-CPU scratch, carried across tail calls ---------------------- */
struct tnd_xdp_scratch {
	__u16 l3_off; /* offset of the IP header from the start of the frame */
	__u16 pad;
	__u32 pad2;
};

#endif /* TENDRIL_MAPS_H_ */
