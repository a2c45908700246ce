// A plain HTTP GET for tests (metrics endpoints).
#pragma once

#include <string>

namespace moemesh::testing {

// The body of GET `url` (http://host:port/path); throws on connection errors.
std::string http_get(const std::string& url);

}  // namespace moemesh::testing
