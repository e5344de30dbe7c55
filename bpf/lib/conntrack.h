/* SPDX-License-Identifier: Apache-2.0 */
/* Per-packet load balancing state: native devices, conntrack, NAT, source
 * ranges and the event ring buffer. Layouts in maps/tendril_maps.h. */
#ifndef TND_BPF_CONNTRACK_H_
#define TND_BPF_CONNTRACK_H_

#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tnd_device);
	__uint(max_entries, TND_DEVICES_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_ct_val);
	__uint(max_entries, TND_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_ct_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_ct_val);
	__uint(max_entries, TND_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_ct_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_nat_key);
	__type(value, struct tnd_nat_val);
	__uint(max_entries, TND_NAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nat_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_nat_key);
	__type(value, struct tnd_nat_val);
	__uint(max_entries, TND_NAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nat_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v4_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_srange_v6_key);
	__type(value, __u32);
	__uint(max_entries, TND_SRCRANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_srng_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_frag_key);
	__type(value, struct tnd_frag_val);
	__uint(max_entries, TND_FRAG_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_frag_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TND_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tnd_ep_key);
	__type(value, struct tnd_endpoint);
	__uint(max_entries, TND_ENDPOINTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v4_key);
	__type(value, struct tnd_nomasq_val);
	__uint(max_entries, TND_NOMASQ_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nomasq_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tnd_lpm_v6_key);
	__type(value, struct tnd_nomasq_val);
	__uint(max_entries, TND_NOMASQ_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_nomasq_v6 SEC(".maps");

/* How long an entry lives after this packet, by protocol and TCP flags seen. */
static __always_inline __u32 tnd_ct_lifetime(__u8 proto, __u8 seen)
{
	if (proto != IPPROTO_TCP)
		return TND_CT_UDP_TIMEOUT;
	if (seen & (TND_TCP_FIN | TND_TCP_RST))
		return TND_CT_CLOSE_TIMEOUT;
	if (!(seen & TND_TCP_ACK))
		return TND_CT_SYN_TIMEOUT;
	return TND_CT_TCP_TIMEOUT;
}

/* Accounts one packet to a conntrack entry and refreshes its lifetime. A SYN
 * on a closed entry reopens it (port reuse). */
/* A TCP SYN without ACK: opens a connection, never answers one. */
static __always_inline bool tnd_tcp_opens(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (TND_TCP_SYN | TND_TCP_ACK)) == TND_TCP_SYN;
}

/* The client reused the tuple of a closed connection (FIN or RST seen) for
 * a new one: like the kernel's conntrack, that is a new flow, which chooses
 * its backend again (the old one may have left the service since). */
static __always_inline bool tnd_ct_reopened(const struct tnd_ct_val *v, __u8 proto, __u8 tcp_flags)
{
	return tnd_tcp_opens(proto, tcp_flags) && (v->tcp_flags & (TND_TCP_FIN | TND_TCP_RST));
}

static __always_inline void tnd_ct_touch(struct tnd_ct_val *v, __u8 proto, __u8 tcp_flags, __u32 len)
{
	__u32 now = tnd_now_sec();
	__u8 seen = v->tcp_flags;

	if ((tcp_flags & TND_TCP_SYN) && !(tcp_flags & TND_TCP_ACK) &&
	    (seen & (TND_TCP_FIN | TND_TCP_RST)))
		seen = 0;
	seen |= tcp_flags & (TND_TCP_SYN | TND_TCP_FIN | TND_TCP_RST | TND_TCP_ACK);
	if (seen != v->tcp_flags)
		v->tcp_flags = seen;
	v->expires = now + tnd_ct_lifetime(proto, seen);
	v->packets += 1;
	v->bytes += len;
}

#endif
