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

static __always_inline int ctx_load(TND_CTX *ctx, __u32 off, void *to, __u32 len)
{
#if TND_CTX_XDP
	return bpf_xdp_load_bytes(ctx, off, to, len);
#else
	return bpf_skb_load_bytes(ctx, off, to, len);
#endif
}

static __always_inline int ctx_store(TND_CTX *ctx, __u32 off, const void *from, __u32 len)
{
#if TND_CTX_XDP
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
#else
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
#endif
}

#endif
