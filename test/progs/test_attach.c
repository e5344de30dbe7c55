/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only programs for the loader's attach tests: each counts the packets
 * or connects it sees in its own slot of a pinned array, so a test can tell
 * which program the kernel ran. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

enum { SLOT_TC_A, SLOT_TC_B, SLOT_XDP_A, SLOT_XDP_B, SLOT_CONNECT4, SLOT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tnd_test_hits SEC(".maps");

static __always_inline void hit(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&tnd_test_hits, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tc")
int tnd_test_tc_a(struct __sk_buff *skb)
{
	hit(SLOT_TC_A);
	return TC_ACT_OK;
}

SEC("tc")
int tnd_test_tc_b(struct __sk_buff *skb)
{
	hit(SLOT_TC_B);
	return TC_ACT_OK;
}

SEC("xdp")
int tnd_test_xdp_a(struct xdp_md *ctx)
{
	hit(SLOT_XDP_A);
	return XDP_PASS;
}

SEC("xdp")
int tnd_test_xdp_b(struct xdp_md *ctx)
{
	hit(SLOT_XDP_B);
	return XDP_PASS;
}

SEC("cgroup/connect4")
int tnd_test_connect4(struct bpf_sock_addr *ctx)
{
	hit(SLOT_CONNECT4);
	return 1;
}

char _license[] SEC("license") = "GPL";
