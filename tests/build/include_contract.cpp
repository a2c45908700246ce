// The control for include_violation.cpp: the same setup compiles when it uses
// only other roles' public contracts.
#include "services/attention/api.h"
#include "services/expert_host/api.h"
#include "services/expert_host/client.h"
#include "services/mtp_draft/client.h"
#include "services/router/api.h"
#include "services/router/client.h"

int probe() { return sizeof(moemesh::RouterOptions) > 0 ? 0 : 1; }
