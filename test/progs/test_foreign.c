/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only: an XDP program tendril did not write (its name lacks the tnd_
 * prefix), standing in for another tool's program on a device. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int other_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
