/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TND_BPF_METRICS_H_
#define TND_BPF_METRICS_H_

#include "maps.h"

/* Counts one packet of `bytes` under (reason, dir) in the per-CPU metrics
 * array. Per-CPU slots need no atomics: XDP and tc run to completion on
 * their CPU. */
static __always_inline void tnd_count(__u8 reason, __u8 dir, __u64 bytes)
{
	__u32 idx = tnd_metrics_index(reason, dir);
	struct tnd_metrics_val *val;

	if (tnd_dry_run)
		return;
	val = bpf_map_lookup_elem(&tnd_metrics, &idx);
	if (likely(val)) {
		val->packets += 1;
		val->bytes += bytes;
	}
}

#endif
