// A streaming HTTP POST for tests: the body of a Server-Sent Events answer
// read as it arrives, each `data:` line handed over with when it came.
#pragma once

#include <functional>
#include <string>

namespace moemesh::testing {

struct PostResult {
  int status = 0;
  std::string body;  // the whole body (for a non-stream answer, or an error's)
};

// POSTs JSON `body` to `url` (http://host:port/path); `on_data` gets each SSE
// `data:` payload. Throws on connection errors.
PostResult http_post_stream(const std::string& url, const std::string& body,
                            const std::function<void(const std::string& data)>& on_data);

}  // namespace moemesh::testing
