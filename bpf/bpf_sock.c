/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket load balancing (ClusterIP): cgroup sock_addr programs translate a
 * service's frontend to a backend once, when the socket connects (TCP, UDP)
 * or sends (unconnected UDP), so no packet of the flow needs NAT and no
 * conntrack entry exists. recvmsg and getpeername translate back, so the
 * application only ever sees the frontend.
 *
 *   connect4/6     frontend -> backend; no usable backend: ECONNREFUSED
 *   sendmsg4/6     same, per datagram (the socket's cookie picks the slot,
 *                  so an unconnected UDP socket keeps its backend)
 *   recvmsg4/6     backend source -> frontend
 *   getpeername4/6 backend -> frontend
 *
 * Anything that is not a declared frontend passes through untouched, and so
 * do LoadBalancer IPs with source ranges: the socket's source address is not
 * known yet at connect, so the per-packet path (bpf_lxc) checks the client.
 * Frontends with two scopes (externalTrafficPolicy Local) use their internal
 * entries: traffic from the node and its pods reaches every backend.
 */
#include <asm-generic/errno.h>

#include "lib/common.h"
#include "lib/lb.h"
#include "lib/metrics.h"
#include "lib/node_info.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_sk_revnat4_key);
	__type(value, struct tnd_sk_revnat_val);
	__uint(max_entries, TND_SK_REVNAT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_sk_rnat_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tnd_sk_revnat6_key);
	__type(value, struct tnd_sk_revnat_val);
	__uint(max_entries, TND_SK_REVNAT_MAX_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_sk_rnat_v6 SEC(".maps");

/* 127.0.0.0/8 frontends (127.0.0.1:NODEPORT) are the node's own: a pod's
 * loopback is its own, never a service. */
static __always_inline bool loopback_not_ours(__be32 addr, const struct bpf_sock_addr *ctx)
{
	struct tnd_node_info *n;

	if ((bpf_ntohl(addr) >> 24) != 127)
		return false;
	n = tnd_node_get();
	return !n || n->host_netns_cookie != bpf_get_netns_cookie((void *)ctx);
}

static __always_inline __u8 sock_proto(const struct bpf_sock_addr *ctx)
{
	/* ctx->protocol is the socket's; only TCP and UDP have services. */
	return (__u8)ctx->protocol;
}

/* The refusal kube-proxy's REJECT rule gives: connect() fails at once. */
static __always_inline int refuse(__u8 reason)
{
	tnd_explain_field(drop_reason, reason);
	tnd_count(reason, TND_DIR_EGRESS, 0);
	bpf_set_retval(-ECONNREFUSED);
	return SYS_REJECT;
}

static __always_inline int refuse_empty(const struct tnd_svc_val *svc)
{
	return refuse((svc->flags & TND_SVC_F_LOCAL) ? TND_DROP_NO_LOCAL_BACKEND : TND_DROP_NO_SERVICE_BACKEND);
}

/* ---- IPv4 ---------------------------------------------------------------- */

static __always_inline int xlate4(struct bpf_sock_addr *ctx)
{
	struct tnd_svc4_key key = {
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.proto = sock_proto(ctx),
	};
	struct tnd_svc_val *svc;
	struct tnd_backend *be;
	__u64 cookie;
	__u32 bid;

	if ((key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) || !tnd_svc_port_used(key.port))
		return SYS_PROCEED;
	if (loopback_not_ours(key.addr, ctx))
		return SYS_PROCEED;
	svc = tnd_table_lookup(&tnd_svc_v4, &key);
	if (!svc || (svc->flags & TND_SVC_F_SRCRANGE)) {
		tnd_explain_step(TND_XS_NO_SERVICE);
		return SYS_PROCEED;
	}
	tnd_explain_set(TND_XS_SERVICE, svc_id, svc->svc_id);
	svc = tnd_svc_internal(&tnd_svc_v4, &key, &key.scope, svc);
	if (svc->count == 0)
		return refuse_empty(svc);
	cookie = bpf_get_socket_cookie(ctx);
	be = tnd_select_backend(&tnd_svc_v4, &key, &key.slot, svc, cookie, bpf_get_netns_cookie(ctx), true, &bid);
	if (!be)
		return refuse(TND_DROP_BACKEND_MISSING);

	struct tnd_sk_revnat4_key rk = { .cookie = cookie, .port = be->port };
	struct tnd_sk_revnat_val rv = { .port = (__be16)ctx->user_port, .svc_id = svc->svc_id };

	__builtin_memcpy(&rk.addr, be->addr, 4);
	__builtin_memcpy(rv.addr, &ctx->user_ip4, 4);
	tnd_map_update(&tnd_sk_rnat_v4, &rk, &rv, BPF_ANY);

	ctx->user_ip4 = rk.addr;
	ctx->user_port = be->port;
	return SYS_PROCEED;
}

/* Backend address seen by the socket -> the frontend it asked for. */
static __always_inline void revxlate4(struct bpf_sock_addr *ctx)
{
	struct tnd_sk_revnat4_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct tnd_sk_revnat_val *rv = bpf_map_lookup_elem(&tnd_sk_rnat_v4, &rk);
	struct tnd_svc4_key sk = { .proto = sock_proto(ctx) };

	if (!rv)
		return;
	/* Only while the service still exists. */
	__builtin_memcpy(&sk.addr, rv->addr, 4);
	sk.port = rv->port;
	if (!tnd_table_lookup(&tnd_svc_v4, &sk)) {
		tnd_map_delete(&tnd_sk_rnat_v4, &rk);
		return;
	}
	ctx->user_ip4 = sk.addr;
	ctx->user_port = rv->port;
}

/*
 * A dry run's connect (explain, a throwaway child cgroup): the decision is
 * in the record; the connect is refused, and the address left for the
 * node's own program (a parent cgroup's, which runs after this one) is
 * 0.0.0.0:0 / [::]:0, no service: it writes nothing, counts nothing.
 */
static __always_inline int dry_connect_end(struct bpf_sock_addr *ctx, int v6)
{
	if (v6) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = 0;
	} else {
		ctx->user_ip4 = 0;
	}
	ctx->user_port = 0;
	bpf_set_retval(-EPERM);
	return SYS_REJECT;
}

SEC("cgroup/connect4")
int tnd_sock_connect4(struct bpf_sock_addr *ctx)
{
	int v = xlate4(ctx);

	return tnd_dry_run ? dry_connect_end(ctx, 0) : v;
}

SEC("cgroup/sendmsg4")
int tnd_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return xlate4(ctx);
}

SEC("cgroup/recvmsg4")
int tnd_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	revxlate4(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int tnd_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	revxlate4(ctx);
	return SYS_PROCEED;
}

/* ---- IPv6 (and IPv4 services through IPv4-mapped IPv6 sockets) ------------ */

static __always_inline void load6(__u8 *dst, const struct bpf_sock_addr *ctx)
{
	__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	__builtin_memcpy(dst, a, 16);
}

static __always_inline void store6(struct bpf_sock_addr *ctx, const __u8 *src)
{
	__u32 a[4];

	__builtin_memcpy(a, src, 16);
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
}

/* ::ffff:a.b.c.d, how a dual-stack (AF_INET6) socket names an IPv4 peer. */
static __always_inline bool v4_mapped(const __u8 *a)
{
	__u32 w[3];

	__builtin_memcpy(w, a, 12);
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int xlate6(struct bpf_sock_addr *ctx)
{
	struct tnd_svc6_key key = {
		.port = (__be16)ctx->user_port,
		.proto = sock_proto(ctx),
	};
	struct tnd_sk_revnat6_key rk = {};
	struct tnd_sk_revnat_val rv = {};
	struct tnd_svc_val *svc;
	struct tnd_backend *be;
	__u64 cookie, client;
	__u32 bid;

	if ((key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) || !tnd_svc_port_used(key.port))
		return SYS_PROCEED;
	load6(key.addr, ctx);
	cookie = bpf_get_socket_cookie(ctx);
	client = bpf_get_netns_cookie(ctx);
	__builtin_memcpy(rk.addr, key.addr, 16); /* ::ffff:0:0/96 prefix kept below */
	if (v4_mapped(key.addr)) {
		struct tnd_svc4_key k4 = { .port = key.port, .proto = key.proto };

		__builtin_memcpy(&k4.addr, &key.addr[12], 4);
		if (loopback_not_ours(k4.addr, ctx))
			return SYS_PROCEED;
		svc = tnd_table_lookup(&tnd_svc_v4, &k4);
		if (!svc || (svc->flags & TND_SVC_F_SRCRANGE)) {
			tnd_explain_step(TND_XS_NO_SERVICE);
			return SYS_PROCEED;
		}
		tnd_explain_set(TND_XS_SERVICE, svc_id, svc->svc_id);
		svc = tnd_svc_internal(&tnd_svc_v4, &k4, &k4.scope, svc);
		if (svc->count == 0)
			return refuse_empty(svc);
		be = tnd_select_backend(&tnd_svc_v4, &k4, &k4.slot, svc, cookie, client, true, &bid);
		if (!be)
			return refuse(TND_DROP_BACKEND_MISSING);
		__builtin_memcpy(&rk.addr[12], be->addr, 4);
	} else {
		svc = tnd_table_lookup(&tnd_svc_v6, &key);
		if (!svc || (svc->flags & TND_SVC_F_SRCRANGE)) {
			tnd_explain_step(TND_XS_NO_SERVICE);
			return SYS_PROCEED;
		}
		tnd_explain_set(TND_XS_SERVICE, svc_id, svc->svc_id);
		svc = tnd_svc_internal(&tnd_svc_v6, &key, &key.scope, svc);
		if (svc->count == 0)
			return refuse_empty(svc);
		be = tnd_select_backend(&tnd_svc_v6, &key, &key.slot, svc, cookie, client, true, &bid);
		if (!be)
			return refuse(TND_DROP_BACKEND_MISSING);
		__builtin_memcpy(rk.addr, be->addr, 16);
	}
	rk.cookie = cookie;
	rk.port = be->port;
	load6(rv.addr, ctx);
	rv.port = (__be16)ctx->user_port;
	rv.svc_id = svc->svc_id;
	tnd_map_update(&tnd_sk_rnat_v6, &rk, &rv, BPF_ANY);

	store6(ctx, rk.addr);
	ctx->user_port = be->port;
	return SYS_PROCEED;
}

static __always_inline void revxlate6(struct bpf_sock_addr *ctx)
{
	struct tnd_sk_revnat6_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = (__be16)ctx->user_port,
	};
	struct tnd_sk_revnat_val *rv;
	bool present;

	load6(rk.addr, ctx);
	rv = bpf_map_lookup_elem(&tnd_sk_rnat_v6, &rk);
	if (!rv && v4_mapped(rk.addr)) {
		/* A dual-stack UDP socket sending to ::ffff:VIP goes through the
		 * IPv4 path, so sendmsg4 translated it and wrote the v4 entry. */
		struct tnd_sk_revnat4_key rk4 = { .cookie = rk.cookie, .port = rk.port };
		struct tnd_svc4_key k4 = { .proto = sock_proto(ctx) };
		__u8 mapped[16] = {};

		__builtin_memcpy(&rk4.addr, &rk.addr[12], 4);
		rv = bpf_map_lookup_elem(&tnd_sk_rnat_v4, &rk4);
		if (!rv)
			return;
		__builtin_memcpy(&k4.addr, rv->addr, 4);
		k4.port = rv->port;
		if (!tnd_table_lookup(&tnd_svc_v4, &k4))
			return;
		__builtin_memcpy(mapped, rk.addr, 12);
		__builtin_memcpy(&mapped[12], rv->addr, 4);
		store6(ctx, mapped);
		ctx->user_port = rv->port;
		return;
	}
	if (!rv)
		return;
	/* Only while the service still exists. */
	if (v4_mapped(rv->addr)) {
		struct tnd_svc4_key k4 = { .port = rv->port, .proto = sock_proto(ctx) };

		__builtin_memcpy(&k4.addr, &rv->addr[12], 4);
		present = tnd_table_lookup(&tnd_svc_v4, &k4) != NULL;
	} else {
		struct tnd_svc6_key k6 = { .port = rv->port, .proto = sock_proto(ctx) };

		__builtin_memcpy(k6.addr, rv->addr, 16);
		present = tnd_table_lookup(&tnd_svc_v6, &k6) != NULL;
	}
	if (!present) {
		tnd_map_delete(&tnd_sk_rnat_v6, &rk);
		return;
	}
	store6(ctx, rv->addr);
	ctx->user_port = rv->port;
}

SEC("cgroup/connect6")
int tnd_sock_connect6(struct bpf_sock_addr *ctx)
{
	int v = xlate6(ctx);

	return tnd_dry_run ? dry_connect_end(ctx, 1) : v;
}

SEC("cgroup/sendmsg6")
int tnd_sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return xlate6(ctx);
}

SEC("cgroup/recvmsg6")
int tnd_sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	revxlate6(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int tnd_sock_getpeername6(struct bpf_sock_addr *ctx)
{
	revxlate6(ctx);
	return SYS_PROCEED;
}

char _license[] SEC("license") = "GPL";
