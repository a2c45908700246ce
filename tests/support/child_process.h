// Child processes for integration tests: the same class `moemesh up --processes` uses.
#pragma once

#include "services/mesh/child_process.h"

namespace moemesh::testing {
using moemesh::ChildProcess;
}  // namespace moemesh::testing
