/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark baseline: the cheapest XDP program there is. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bench_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";

SEC("tc")
int bench_tc_pass(struct __sk_buff *ctx)
{
	return 0; /* TC_ACT_OK */
}

/*
 * Wrappers for benchmarking programs that rewrite packets. BPF_PROG_TEST_RUN
 * with `repeat` runs a program again and again on the same buffer, so a NAT
 * program would see its own output from the second run on. Each wrapper
 * first writes the frame's first BENCH_HEAD bytes back from bench_frame (and,
 * for the new-flow case, a different source port each run), then tail-calls
 * slot 0 of its prog array: the program under test, or the bare pass program
 * for the baseline, so that both carry the same wrapper cost.
 */
#define BENCH_HEAD 64

struct bench_frame {
	__u8 head[BENCH_HEAD];
	__u32 vary_sport; /* non-zero: write a new source port every run */
	__u32 sport_off;  /* its offset in the frame */
	__u32 mark;       /* tc: the skb's mark for every run */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_frame SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} bench_xdp_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} bench_tc_calls SEC(".maps");

static __always_inline __u16 next_port(void)
{
	__u32 zero = 0;
	__u32 *c = bpf_map_lookup_elem(&bench_counter, &zero);

	if (!c)
		return 1024;
	*c += 1;
	return (__u16)(1024 + *c % 60000);
}

SEC("xdp")
int bench_xdp_wrap(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frame, &zero);
	__u16 port;

	if (!f)
		return XDP_ABORTED;
	bpf_xdp_store_bytes(ctx, 0, f->head, BENCH_HEAD);
	port = __builtin_bswap16(next_port());
	if (f->vary_sport)
		bpf_xdp_store_bytes(ctx, f->sport_off & 0x7f, &port, 2);
	bpf_tail_call(ctx, &bench_xdp_calls, 0);
	return XDP_ABORTED;
}

SEC("tc")
int bench_tc_wrap(struct __sk_buff *ctx)
{
	__u32 zero = 0;
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frame, &zero);
	__u16 port;

	if (!f)
		return 2; /* TC_ACT_SHOT */
	bpf_skb_store_bytes(ctx, 0, f->head, BENCH_HEAD, 0);
	port = __builtin_bswap16(next_port());
	if (f->vary_sport)
		bpf_skb_store_bytes(ctx, f->sport_off & 0x7f, &port, 2, 0);
	ctx->mark = f->mark;
	bpf_tail_call(ctx, &bench_tc_calls, 0);
	return 2;
}

/* The receiver of the live packet-rate benchmark (test/bench/pps_bench.cc):
 * counts the frames reaching it, per CPU, and drops them, so that the
 * receiver is never what limits the rate. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_rx SEC(".maps");

SEC("xdp")
int bench_xdp_count_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *eth = data;
	__u32 zero = 0;
	__u64 *n;

	/* IPv4 (EtherType 0x0800) carrying UDP (protocol 17, byte 23):
	 * counted and dropped; ARP and the rest go to the stack. */
	if (data + 34 > data_end || eth[12] != 0x08 || eth[13] != 0x00 || eth[23] != 17)
		return XDP_PASS;
	n = bpf_map_lookup_elem(&bench_rx, &zero);
	if (n)
		*n += 1;
	return XDP_DROP;
}

/* The sender of the live packet-rate benchmark's XDP mode: run by
 * BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (as xdp-trafficgen
 * does), in the client's namespace. Each run writes the frame's headers
 * back from bench_frame (the kernel recycles a frame's page without
 * restoring its bytes, and the node's NAT rewrote them), gives it the next
 * of bench_gen's source ports, and redirects it out of bench_gen's device:
 * the client's veth, which hands it to the node's NAPI as an XDP frame, as
 * a NIC would, with no socket buffer on the way. */
struct bench_gen {
	__u32 ifindex; /* where the frames leave */
	__u32 flows;   /* source ports 1024 .. 1024 + flows - 1 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_gen);
} bench_gen SEC(".maps");

SEC("xdp")
int bench_xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct bench_frame *f = bpf_map_lookup_elem(&bench_frame, &zero);
	struct bench_gen *g = bpf_map_lookup_elem(&bench_gen, &zero);
	__u32 *c = bpf_map_lookup_elem(&bench_counter, &zero);
	__u16 *sport, *csum, port;
	__u32 sum;

	if (!f || !g || !c || !g->flows || data + BENCH_HEAD > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, f->head, BENCH_HEAD);
	*c += 1;
	sport = data + (f->sport_off & 0x3f);
	if ((void *)(sport + 1) > data_end)
		return XDP_ABORTED;
	port = __builtin_bswap16((__u16)(1024 + *c % g->flows));
	/* The UDP checksum (bytes 40-41 of an IPv4 frame without options) made
	 * right for the new port: + old port's complement + new port (RFC 1624). */
	csum = data + 40;
	if ((void *)(csum + 1) > data_end)
		return XDP_ABORTED;
	if (*csum) {
		sum = (__u16)~*csum + (__u16)~*sport + port;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		*csum = (__u16)~sum ? (__u16)~sum : 0xffff;
	}
	*sport = port;
	return bpf_redirect(g->ifindex, 0);
}
