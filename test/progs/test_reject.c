/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only: a program the verifier must reject (packet read without a
 * bounds check), so tests can check that its log reaches the error. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int tnd_test_reject(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[20] == 1 ? XDP_DROP : XDP_PASS; /* no check against data_end */
}

char _license[] SEC("license") = "GPL";
