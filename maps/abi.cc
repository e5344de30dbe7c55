#include "maps/abi.h"

namespace tendril::abi {

const char* DropReasonName(uint8_t reason) {
  switch (reason) {
    case TND_DROP_NONE: return "none";
    case TND_DROP_PREFILTER_DENIED: return "prefilter-denied";
    case TND_DROP_MISSED_TAIL_CALL: return "missed-tail-call";
    case TND_DROP_NO_SERVICE_BACKEND: return "no-service-backend";
    case TND_DROP_BACKEND_MISSING: return "backend-missing";
    case TND_DROP_SOURCE_RANGE: return "source-range-denied";
    case TND_DROP_NO_LOCAL_BACKEND: return "no-local-backend";
    case TND_DROP_NAT_EXHAUSTED: return "nat-ports-exhausted";
    case TND_DROP_NO_ROUTE: return "no-route";
    case TND_DROP_NO_NODE_ADDR: return "no-node-address";
    case TND_DROP_REWRITE: return "rewrite-failed";
    case TND_DROP_TOO_BIG: return "packet-too-big";
    default: return "unknown";
  }
}

const char* ObsPointName(uint8_t point) {
  switch (point) {
    case TND_OBS_FROM_ENDPOINT: return "from-endpoint";
    case TND_OBS_FROM_NETWORK: return "from-network";
    case TND_OBS_TO_NETWORK: return "to-network";
    case TND_OBS_XDP: return "xdp";
    default: return "unknown";
  }
}

const char* TraceVerdictName(uint8_t verdict) {
  switch (verdict) {
    case TND_TRACE_TO_ENDPOINT: return "to-endpoint";
    case TND_TRACE_REDIRECT: return "redirect";
    case TND_TRACE_REDIRECT_NEIGH: return "redirect-neigh";
    case TND_TRACE_TO_STACK: return "to-stack";
    case TND_TRACE_MASQUERADE: return "masquerade";
    default: return "none";
  }
}

const char* DirectionName(uint8_t dir) {
  switch (dir) {
    case TND_DIR_INGRESS: return "ingress";
    case TND_DIR_EGRESS: return "egress";
    default: return "unknown";
  }
}

}  // namespace tendril::abi
