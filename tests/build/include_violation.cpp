// Compiled as a source of a role (it links moemesh_attention like one): the
// router's membership is internal to the router, so this must not compile.
#include "services/router/membership.h"

int probe() { return 0; }
