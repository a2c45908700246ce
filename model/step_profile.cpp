#include "model/step_profile.h"

namespace moemesh {

const char* op_class_name(OpClass c) {
  switch (c) {
    case OpClass::AttentionProjections: return "attention projections";
    case OpClass::MlaCore: return "MLA core";
    case OpClass::Gate: return "gate";
    case OpClass::RoutedExperts: return "routed experts";
    case OpClass::SharedExperts: return "shared experts";
    case OpClass::DenseFfn: return "dense FFN";
    case OpClass::LmHead: return "LM head";
    case OpClass::Norms: return "norms";
    case OpClass::Rest: return "rest";
    case OpClass::kCount: break;
  }
  return "?";
}

double StepProfile::total() const {
  double t = 0;
  for (double s : seconds_) t += s;
  return t;
}

}  // namespace moemesh
