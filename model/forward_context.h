// What every layer's forward needs besides its inputs: the attention form, the
// product precision, scratch memory and (optionally) a profile to charge time to.
#pragma once

#include "kernels/cpu/precision.h"
#include "model/step_profile.h"
#include "model/workspace.h"

namespace moemesh {

enum class MlaMode {
  Auto,      // naive for prefill chunks, absorbed for decode
  Naive,     // keys and values expanded from the latents with kv_b
  Absorbed,  // kv_b folded into the query and the output; attends over latents
};

struct ForwardContext {
  MlaMode mla = MlaMode::Auto;
  cpu::Precision precision = cpu::Precision::Exact;
  Workspace* ws = nullptr;
  StepProfile* profile = nullptr;
};

}  // namespace moemesh
