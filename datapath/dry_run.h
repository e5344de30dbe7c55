// The explain loader's side of bpf/lib/explain.h: an object opened (not yet
// loaded) made a dry run of the node's: tnd_dry_run set in its .rodata, its
// by-name maps the node's pinned ones as they are (sizes read from the
// pins; a map the node has not pinned is the object's own, never pinned),
// its prog arrays and scratch its own. Nothing is pinned or replaced.
#pragma once

#include <bpf/libbpf.h>

#include "absl/status/status.h"

namespace tendril {

absl::Status PrepareDryRun(bpf_object* obj);

}  // namespace tendril
