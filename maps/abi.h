// C++ view of the map ABI in tendril_maps.h: layout checks, reason names,
// and the one table of pinned maps that the CLI and the agent look up by name.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <vector>


extern "C" {
#include "tendril_maps.h"
}

namespace tendril::abi {

static_assert(sizeof(tnd_lpm_v4_key) == 8);
static_assert(sizeof(tnd_lpm_v6_key) == 20);
static_assert(sizeof(tnd_prefilter_val) == 4);
static_assert(sizeof(tnd_metrics_val) == 16);
static_assert(sizeof(tnd_svc4_key) == 12);
static_assert(sizeof(tnd_svc6_key) == 24);
static_assert(sizeof(tnd_svc_val) == 16);
static_assert(sizeof(tnd_backend) == 28);
static_assert(sizeof(tnd_revnat) == 20);
static_assert(sizeof(tnd_sk_revnat4_key) == 16);
static_assert(sizeof(tnd_sk_revnat6_key) == 32);
static_assert(sizeof(tnd_sk_revnat_val) == 24);
static_assert(sizeof(tnd_affinity_key) == 16);
static_assert(sizeof(tnd_affinity_val) == 8);
static_assert(sizeof(tnd_device) == 28);
static_assert(sizeof(tnd_ct_key) == 40);
static_assert(sizeof(tnd_ct_val) == 96);
static_assert(sizeof(tnd_nat_key) == 40);
static_assert(sizeof(tnd_nat_val) == 40);
static_assert(sizeof(tnd_srange_v4_key) == 12);
static_assert(sizeof(tnd_srange_v6_key) == 24);
static_assert(sizeof(tnd_event) == 96);
static_assert(sizeof(tnd_ep_key) == 20);
static_assert(sizeof(tnd_endpoint) == 24);
static_assert(sizeof(tnd_hop_key) == 24);
static_assert(sizeof(tnd_hop_val) == 28);
static_assert(sizeof(tnd_nomasq_val) == 4);
static_assert(sizeof(tnd_frag_key) == 12);
static_assert(sizeof(tnd_node_info) == 32);
static_assert(sizeof(tnd_svc_ports) == 8200);
static_assert(sizeof(tnd_dsr_opt) == TND_DSR_OPT_LEN);
static_assert(sizeof(tnd_dsr_opt6) == TND_DSR_OPT6_LEN);
static_assert(sizeof(tnd_explain) == 48);

// A metrics array slot, decoded.
struct MetricsSlot {
  uint8_t reason;
  uint8_t dir;
};
inline MetricsSlot DecodeMetricsIndex(uint32_t idx) {
  return {static_cast<uint8_t>(idx & 0xff), static_cast<uint8_t>(idx >> 8)};
}

// Name of a drop reason as shown by `tendril metrics list` and `monitor`.
const char* DropReasonName(uint8_t reason);
const char* ObsPointName(uint8_t point);
const char* TraceVerdictName(uint8_t verdict);
const char* DirectionName(uint8_t dir);

// The steps a dry run records (maps/tendril_maps_explain.h), in bit order.
struct ExplainStepName {
  int bit;
  const char* name;
  const char* doc;
};
const std::vector<ExplainStepName>& ExplainSteps();
const char* ExplainProgName(uint8_t prog);

struct PinnedMapSpec {
  const char* name;  // pin file name under the bpffs root
  bpf_map_type type;
  uint32_t key_size;
  uint32_t value_size;
  uint32_t max_entries;  // the objects' default (settings size most)
  const char* what;  // one line for `tendril status`
  // A growable table (maps/growable.h): pinned is a one-slot array of maps;
  // type, key and value sizes are the table's in it.
  bool growable = false;
};

// Every map that tendril pins. Inspection iterates this table.
inline constexpr PinnedMapSpec kPinnedMaps[] = {
    {TND_MAP_PREFILTER_V4, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_lpm_v4_key),
     sizeof(tnd_prefilter_val), TND_PREFILTER_MAX, "prefilter deny CIDRs, IPv4"},
    {TND_MAP_PREFILTER_V6, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_lpm_v6_key),
     sizeof(tnd_prefilter_val), TND_PREFILTER_MAX, "prefilter deny CIDRs, IPv6"},
    {TND_MAP_PREFILTER_STATE, BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(tnd_prefilter_state), 1,
     "prefilter first level: pass, deny or ask the trie, by the first 16 bits"},
    {TND_MAP_METRICS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint32_t),
     sizeof(tnd_metrics_val), TND_METRICS_MAX, "drop counters by reason and direction"},
    {TND_MAP_SVC_V4, BPF_MAP_TYPE_HASH, sizeof(tnd_svc4_key), sizeof(tnd_svc_val), TND_SVC_MAX_DEFAULT,
     "services, IPv4: masters and backend slots (growable)", true},
    {TND_MAP_SVC_V6, BPF_MAP_TYPE_HASH, sizeof(tnd_svc6_key), sizeof(tnd_svc_val), TND_SVC_MAX_DEFAULT,
     "services, IPv6: masters and backend slots (growable)", true},
    {TND_MAP_SVC_PORTS, BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(tnd_svc_ports), 1,
     "the ports service frontends use (a bitmap)"},
    {TND_MAP_BACKENDS, BPF_MAP_TYPE_HASH, sizeof(uint32_t), sizeof(tnd_backend), TND_BACKENDS_MAX_DEFAULT,
     "backends by id (growable)", true},
    {TND_MAP_REVNAT, BPF_MAP_TYPE_HASH, sizeof(uint32_t), sizeof(tnd_revnat), TND_REVNAT_MAX_DEFAULT,
     "service id -> frontend (growable)", true},
    {TND_MAP_SK_REVNAT_V4, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_sk_revnat4_key),
     sizeof(tnd_sk_revnat_val), TND_SK_REVNAT_MAX_DEFAULT, "socket reverse NAT, IPv4 (LRU)"},
    {TND_MAP_SK_REVNAT_V6, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_sk_revnat6_key),
     sizeof(tnd_sk_revnat_val), TND_SK_REVNAT_MAX_DEFAULT, "socket reverse NAT, IPv6 (LRU)"},
    {TND_MAP_AFFINITY, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_affinity_key),
     sizeof(tnd_affinity_val), TND_AFFINITY_MAX_DEFAULT, "session affinity (LRU)"},
    {TND_MAP_MAGLEV, BPF_MAP_TYPE_HASH_OF_MAPS, sizeof(uint32_t), sizeof(uint32_t),
     TND_MAGLEV_SVC_MAX_DEFAULT, "service id -> Maglev table"},
    {TND_MAP_CT_V4, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_ct_key), sizeof(tnd_ct_val), TND_CT_MAX_DEFAULT,
     "conntrack, IPv4 (LRU)"},
    {TND_MAP_CT_V6, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_ct_key), sizeof(tnd_ct_val), TND_CT_MAX_DEFAULT,
     "conntrack, IPv6 (LRU)"},
    {TND_MAP_NAT_V4, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_nat_key), sizeof(tnd_nat_val), TND_NAT_MAX_DEFAULT,
     "SNAT port mappings, IPv4 (LRU)"},
    {TND_MAP_NAT_V6, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_nat_key), sizeof(tnd_nat_val), TND_NAT_MAX_DEFAULT,
     "SNAT port mappings, IPv6 (LRU)"},
    {TND_MAP_DEVICES, BPF_MAP_TYPE_HASH, sizeof(uint32_t), sizeof(tnd_device), TND_DEVICES_MAX,
     "native devices: ifindex -> addresses"},
    {TND_MAP_SRCRANGE_V4, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_srange_v4_key), sizeof(uint32_t),
     TND_SRCRANGE_MAX_DEFAULT, "loadBalancerSourceRanges, IPv4"},
    {TND_MAP_SRCRANGE_V6, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_srange_v6_key), sizeof(uint32_t),
     TND_SRCRANGE_MAX_DEFAULT, "loadBalancerSourceRanges, IPv6"},
    {TND_MAP_FRAG_V4, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_frag_key), sizeof(tnd_frag_val),
     TND_FRAG_MAX, "IPv4 fragments -> ports of their datagram (LRU)"},
    {TND_MAP_EVENTS, BPF_MAP_TYPE_RINGBUF, 0, 0, TND_EVENTS_BYTES, "drop and trace events (ring buffer)"},
    {TND_MAP_ENDPOINTS, BPF_MAP_TYPE_HASH, sizeof(tnd_ep_key), sizeof(tnd_endpoint), TND_ENDPOINTS_MAX,
     "local endpoints: address -> veth, MACs, id"},
    {TND_MAP_NOMASQ_V4, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_lpm_v4_key), sizeof(tnd_nomasq_val),
     TND_NOMASQ_MAX, "destinations not masqueraded, IPv4"},
    {TND_MAP_NOMASQ_V6, BPF_MAP_TYPE_LPM_TRIE, sizeof(tnd_lpm_v6_key), sizeof(tnd_nomasq_val),
     TND_NOMASQ_MAX, "destinations not masqueraded, IPv6"},
    {TND_MAP_NODE, BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(tnd_node_info), 1,
     "this node: its network namespace (socket LB of 127.0.0.1 node ports), generation, flags"},
    {TND_MAP_HOPS, BPF_MAP_TYPE_LRU_HASH, sizeof(tnd_hop_key), sizeof(tnd_hop_val), TND_HOPS_MAX,
     "next hops by ingress device and destination, shared by new flows (LRU)"},
};

}  // namespace tendril::abi
