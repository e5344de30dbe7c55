#include "maps/abi.h"

namespace tendril::abi {

// Each name from the list that defines the enum (maps/tendril_maps.h).
const char* DropReasonName(uint8_t reason) {
  switch (reason) {
#define TND_X_NAME(name, num, text) case TND_DROP_##name: return text;
    TND_DROP_REASONS(TND_X_NAME)
#undef TND_X_NAME
    default: return "unknown";
  }
}

const char* ObsPointName(uint8_t point) {
  switch (point) {
#define TND_X_NAME(name, num, text) case TND_OBS_##name: return text;
    TND_OBS_POINTS(TND_X_NAME)
#undef TND_X_NAME
    default: return "unknown";
  }
}

const char* TraceVerdictName(uint8_t verdict) {
  switch (verdict) {
#define TND_X_NAME(name, num, text) case TND_TRACE_##name: return text;
    TND_TRACE_VERDICTS(TND_X_NAME)
#undef TND_X_NAME
    default: return "none";
  }
}

// The enum's MAX is kept by hand next to the list; this keeps them equal.
#define TND_X_COUNT(name, num, text) +1
static_assert(0 TND_DROP_REASONS(TND_X_COUNT) == TND_DROP_REASON_MAX, "TND_DROP_REASON_MAX != number of reasons");
#undef TND_X_COUNT

#define TND_X_COUNT(name, bit, text, doc) +1
static_assert(0 TND_EXPLAIN_STEPS(TND_X_COUNT) == TND_XS_MAX, "TND_XS_MAX != number of explain steps");
#undef TND_X_COUNT
static_assert(TND_XS_MAX <= 64, "explain steps are bits of a __u64");

const std::vector<ExplainStepName>& ExplainSteps() {
  static const std::vector<ExplainStepName> steps = {
#define TND_X_STEP(name, bit, text, doc) {bit, text, doc},
      TND_EXPLAIN_STEPS(TND_X_STEP)
#undef TND_X_STEP
  };
  return steps;
}

const char* ExplainProgName(uint8_t prog) {
  switch (prog) {
#define TND_X_NAME(name, id, text) case TND_XP_##name: return text;
    TND_EXPLAIN_PROGS(TND_X_NAME)
#undef TND_X_NAME
    default: return "unknown";
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
