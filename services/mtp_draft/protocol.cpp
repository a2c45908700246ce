// The DraftRequest/DraftResponse codecs (api.h).
#include <nlohmann/json.hpp>

#include "services/mtp_draft/api.h"

namespace moemesh {

wire::Message encode_draft_request(uint64_t request_id, const DraftCall& c, int64_t hidden) {
  const int64_t rows = static_cast<int64_t>(c.tokens.size());
  wire::Message m;
  m.header.type = wire::MsgType::DraftRequest;
  m.header.request_id = request_id;
  m.header.aux = static_cast<uint32_t>(c.k);
  m.header.dtype = DType::F32;
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(hidden), 0, 0};
  m.add_payload(c.hidden, static_cast<size_t>(rows * hidden) * 4);
  m.add_payload(c.tokens);
  const std::string params = nlohmann::json{{"seq", c.seq}, {"base", c.base}, {"temperature", c.sampling.temperature},
                                            {"top_k", c.sampling.top_k}, {"top_p", c.sampling.top_p},
                                            {"min_p", c.sampling.min_p}, {"seed", c.sampling.seed}, {"fed_logits", c.want_fed_logits}}
                                 .dump();
  m.add_payload(params.data(), params.size());
  return m;
}

DraftCall decode_draft_request(const wire::Message& m, int64_t hidden) {
  using wire::WireError;
  const wire::Header& h = m.header;
  if (m.payloads.size() != 3) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: DraftRequest needs 3 payload frames");
  if (h.dtype != DType::F32 || h.rank != 2 || h.shape[1] != hidden || h.shape[0] == 0)
    throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: hidden states must be F32 [rows > 0, hidden]");
  const int64_t rows = h.shape[0];
  if (m.payload_size(1) != static_cast<size_t>(rows * 4)) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: tokens must be int32 [rows]");
  if (h.aux > kMaxDrafts) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: at most " + std::to_string(kMaxDrafts) + " drafts per request");
  try {
    const nlohmann::json p = nlohmann::json::parse(std::string(m.payload_as<char>(2), m.payload_size(2)));
    DraftCall c;
    c.seq = p.at("seq").get<uint64_t>();
    c.base = p.at("base").get<int64_t>();
    c.sampling.temperature = p.value("temperature", 0.0f);
    c.sampling.top_k = p.value("top_k", int64_t{0});
    c.sampling.top_p = p.value("top_p", 1.0f);
    c.sampling.min_p = p.value("min_p", 0.0f);
    if (!(c.sampling.min_p >= 0.0f && c.sampling.min_p <= 1.0f)) throw std::invalid_argument("min_p must be between 0 and 1");
    c.sampling.seed = p.value("seed", uint64_t{0});
    c.want_fed_logits = p.value("fed_logits", false);
    c.k = static_cast<int>(h.aux);
    c.tokens.assign(m.payload_as<int32_t>(1), m.payload_as<int32_t>(1) + rows);
    c.hidden = m.payload_as<float>(0);
    if (c.base < 0) throw std::invalid_argument("base must be >= 0");
    return c;
  } catch (const std::exception& e) {
    throw WireError(wire::ErrorCode::BadFrame, std::string("mtp-draft: bad draft parameters: ") + e.what());
  }
}

wire::Message encode_draft_response(uint64_t request_id, const Draft& d) {
  wire::Message r;
  r.header.type = wire::MsgType::DraftResponse;
  r.header.request_id = request_id;
  r.header.aux = static_cast<uint32_t>(d.tokens.size());
  r.add_payload(d.tokens);
  r.add_payload(d.logits);
  r.add_payload(d.fed_logits);
  return r;
}

Draft decode_draft_response(const wire::Message& r, const DraftCall& c, int64_t vocab) {
  const size_t rows = c.tokens.size(), k = static_cast<size_t>(c.k), V = static_cast<size_t>(vocab);
  if (r.header.type != wire::MsgType::DraftResponse || r.payloads.size() != 3 || r.payload_size(0) != k * 4 ||
      (r.payload_size(1) != 0 && r.payload_size(1) != k * V * 4) || (c.want_fed_logits && r.payload_size(2) != rows * V * 4))
    throw std::runtime_error("malformed DraftResponse");
  Draft d;
  d.tokens.assign(r.payload_as<int32_t>(0), r.payload_as<int32_t>(0) + k);
  d.logits.assign(r.payload_as<float>(1), r.payload_as<float>(1) + r.payload_size(1) / 4);
  d.fed_logits.assign(r.payload_as<float>(2), r.payload_as<float>(2) + r.payload_size(2) / 4);
  if (!c.sampling.greedy() && d.logits.size() != k * V) throw std::runtime_error("DraftResponse lacks draft logits");
  return d;
}

nlohmann::json release_command(SeqId seq) { return {{"cmd", "release"}, {"seq", seq}}; }

}  // namespace moemesh
