#include "tests/support/http_get.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

namespace moemesh::testing {

std::string http_get(const std::string& url) {
  namespace beast = boost::beast;
  const std::string rest = url.substr(url.find("://") + 3);
  const std::string hostport = rest.substr(0, rest.find('/')), path = rest.substr(rest.find('/'));
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(hostport.substr(0, hostport.find(':')), hostport.substr(hostport.find(':') + 1)));
  beast::http::request<beast::http::empty_body> req{beast::http::verb::get, path, 11};
  req.set(beast::http::field::host, hostport);
  beast::http::write(stream, req);
  beast::flat_buffer buf;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(stream, buf, res);
  return res.body();
}

}  // namespace moemesh::testing
