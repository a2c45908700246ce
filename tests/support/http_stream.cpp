#include "tests/support/http_stream.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

namespace moemesh::testing {

PostResult http_post_stream(const std::string& url, const std::string& body,
                            const std::function<void(const std::string& data)>& on_data) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  const std::string rest = url.substr(url.find("://") + 3);
  const std::string hostport = rest.substr(0, rest.find('/')), path = rest.substr(rest.find('/'));
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(hostport.substr(0, hostport.find(':')), hostport.substr(hostport.find(':') + 1)));
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, hostport);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);

  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(stream, buf, parser);
  PostResult out;
  out.status = static_cast<int>(parser.get().result_int());
  std::string pending;
  char chunk[4096];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    beast::error_code ec;
    http::read_some(stream, buf, parser, ec);  // what has arrived, not a full buffer
    if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    const size_t got = sizeof(chunk) - parser.get().body().size;
    out.body.append(chunk, got);
    pending.append(chunk, got);
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data: ", 0) == 0) on_data(line.substr(6));
    }
  }
  return out;
}

}  // namespace moemesh::testing
