/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TND_BPF_COMMON_H_
#define TND_BPF_COMMON_H_

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tendril_config.h"
#include "tendril_maps.h"
#include "explain.h"

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define TND_ETH_P_8021Q 0x8100
#define TND_ETH_P_8021AD 0x88A8
#define TND_MAX_VLAN_DEPTH 2

struct tnd_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

#endif
