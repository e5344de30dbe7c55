/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TND_BPF_METRICS_H_
#define TND_BPF_METRICS_H_

#include "maps.h"

/* Counts one packet of `bytes` under (reason, dir) in the per-CPU metrics map.
 * The first packet of a reason on a CPU creates the entry. */
static __always_inline void tnd_count(__u8 reason, __u8 dir, __u64 bytes)
{
	struct tnd_metrics_key key = { .reason = reason, .dir = dir };
	struct tnd_metrics_val *val;

	val = bpf_map_lookup_elem(&tnd_metrics, &key);
	if (likely(val)) {
		val->packets += 1;
		val->bytes += bytes;
		return;
	}
	struct tnd_metrics_val init = { .packets = 1, .bytes = bytes };
	/* Another CPU may have created it meanwhile; per-CPU values make the
	 * NOEXIST failure harmless only for that CPU's slot, so retry once. */
	if (bpf_map_update_elem(&tnd_metrics, &key, &init, BPF_NOEXIST) < 0) {
		val = bpf_map_lookup_elem(&tnd_metrics, &key);
		if (val) {
			val->packets += 1;
			val->bytes += bytes;
		}
	}
}

#endif
