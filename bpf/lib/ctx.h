/* SPDX-License-Identifier: Apache-2.0 */
/* The one place XDP and tc differ: the context type and its byte access.
 * The including file defines TND_CTX_XDP to 1 (struct xdp_md) or 0 (struct
 * __sk_buff); everything above this header is written once for both. */
#ifndef TND_BPF_CTX_H_
#define TND_BPF_CTX_H_

#include "common.h"

#ifndef TND_CTX_XDP
#error "define TND_CTX_XDP to 1 (XDP) or 0 (tc) before including the per-packet headers"
#endif

#if TND_CTX_XDP
#define TND_CTX struct xdp_md
#else
#define TND_CTX struct __sk_buff
#endif

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif


static __always_inline __u32 ctx_len(TND_CTX *ctx)
{
#if TND_CTX_XDP
	return (__u32)(ctx->data_end - ctx->data);
#else
	return ctx->len;
#endif
}

static __always_inline __u32 ctx_in_ifindex(TND_CTX *ctx)
{
#if TND_CTX_XDP
	return ctx->ingress_ifindex;
#else
	return ctx->ingress_ifindex ? ctx->ingress_ifindex : ctx->ifindex;
#endif
}

/*
 * Packet bytes at `off`: read and written in place (direct packet access)
 * when they are in the frame's linear part, which in XDP is the whole frame
 * and in tc is where the headers are on every common path; the helpers
 * (tens of ns a call here) only where they are not (a tc packet whose
 * headers are in fragments), and for a length that is not a constant where
 * the call is inlined (the rare ICMP error paths). Far
 * offsets are left to the helpers: the verifier bounds a packet pointer's
 * variable offset, and headers are never that far.
 */
#define TND_DIRECT_MAX_OFF 0x3ff

static __always_inline void *ctx_ptr(TND_CTX *ctx, __u32 off, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *p;

	__u64 o = off;

	if (off > TND_DIRECT_MAX_OFF)
		return NULL;
	/* Bound the very register added to the packet pointer: clang may have
	 * tested a copy, and older verifiers (6.1) then see an offset of up to
	 * 4 GiB, which no bounds check can make a usable packet pointer. */
	asm volatile("%0 &= %1" : "+r"(o) : "i"(TND_DIRECT_MAX_OFF));
	p = data + o;
	if (p + len > data_end)
		return NULL;
	return p;
}

static __always_inline int ctx_load(TND_CTX *ctx, __u32 off, void *to, __u32 len)
{
	void *p = __builtin_constant_p(len) ? ctx_ptr(ctx, off, len) : NULL;

	if (p) {
		__builtin_memcpy(to, p, len);
		return 0;
	}
#if TND_CTX_XDP
	return bpf_xdp_load_bytes(ctx, off, to, len);
#else
	return bpf_skb_load_bytes(ctx, off, to, len);
#endif
}

static __always_inline int ctx_store(TND_CTX *ctx, __u32 off, const void *from, __u32 len)
{
	void *p = __builtin_constant_p(len) ? ctx_ptr(ctx, off, len) : NULL;

	if (p) {
		__builtin_memcpy(p, from, len);
		return 0;
	}
#if TND_CTX_XDP
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
#else
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
#endif
}

#endif
