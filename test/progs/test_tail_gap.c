/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only: a prog array whose initialiser leaves slot 1 empty, which the
 * loader must refuse (a tail call through it would be a silent drop). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int test_tail_a(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));   /* no BTF key/value: prog arrays refuse it */
	__uint(value_size, sizeof(__u32));
	__array(values, int(struct xdp_md *));
} test_gap_calls SEC(".maps") = {
	.values = {
		[0] = (void *)&test_tail_a,
	},
};

SEC("xdp")
int test_tail_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &test_gap_calls, 1);
	return XDP_PASS;
}

SEC("xdp")
int test_tail_a(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
