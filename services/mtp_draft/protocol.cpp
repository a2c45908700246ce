// The DraftRequest/DraftResponse codecs (api.h).
#include <nlohmann/json.hpp>

#include "services/mtp_draft/api.h"

namespace moemesh {
namespace {

nlohmann::json call_params(const DraftCall& c) {
  return {{"seq", c.seq}, {"base", c.base}, {"temperature", c.sampling.temperature}, {"top_k", c.sampling.top_k},
          {"top_p", c.sampling.top_p}, {"min_p", c.sampling.min_p}, {"seed", c.sampling.seed}, {"fed_logits", c.want_fed_logits}};
}

DraftCall parse_call(const nlohmann::json& p, int k) {
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
  c.k = k;
  if (c.base < 0) throw std::invalid_argument("base must be >= 0");
  if (k < 0 || k > static_cast<int>(kMaxDrafts)) throw std::invalid_argument("k must be between 0 and " + std::to_string(kMaxDrafts));
  return c;
}

}  // namespace

wire::Message encode_draft_request(uint64_t request_id, const std::vector<DraftCall>& calls, int64_t hidden) {
  int64_t rows = 0;
  int max_k = 0;
  for (const auto& c : calls) {
    rows += static_cast<int64_t>(c.tokens.size());
    max_k = std::max(max_k, c.k);
  }
  wire::Message m;
  m.header.type = wire::MsgType::DraftRequest;
  m.header.request_id = request_id;
  m.header.aux = static_cast<uint32_t>(max_k);
  m.header.dtype = DType::F32;
  m.header.rank = 2;
  m.header.shape = {static_cast<uint32_t>(rows), static_cast<uint32_t>(hidden), 0, 0};
  std::vector<float> h;
  std::vector<int32_t> tokens;
  h.reserve(static_cast<size_t>(rows * hidden));
  for (const auto& c : calls) {
    h.insert(h.end(), c.hidden, c.hidden + c.tokens.size() * static_cast<size_t>(hidden));
    tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
  }
  m.add_payload(h);
  m.add_payload(tokens);
  // A single call keeps the one-call form, which roles of the previous version read.
  nlohmann::json params;
  if (calls.size() == 1) {
    params = call_params(calls[0]);
  } else {
    params["calls"] = nlohmann::json::array();
    for (const auto& c : calls) {
      nlohmann::json p = call_params(c);
      p["rows"] = c.tokens.size();
      p["k"] = c.k;
      params["calls"].push_back(std::move(p));
    }
  }
  const std::string text = params.dump();
  m.add_payload(text.data(), text.size());
  return m;
}

std::vector<DraftCall> decode_draft_request(const wire::Message& m, int64_t hidden) {
  using wire::WireError;
  const wire::Header& h = m.header;
  if (m.payloads.size() != 3) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: DraftRequest needs 3 payload frames");
  if (h.dtype != DType::F32 || h.rank != 2 || h.shape[1] != hidden || h.shape[0] == 0)
    throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: hidden states must be F32 [rows > 0, hidden]");
  const int64_t rows = h.shape[0];
  if (m.payload_size(0) != static_cast<size_t>(rows * hidden) * 4)
    throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: hidden states must be F32 [rows, hidden]");
  if (m.payload_size(1) != static_cast<size_t>(rows * 4)) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: tokens must be int32 [rows]");
  if (h.aux > kMaxDrafts) throw WireError(wire::ErrorCode::BadFrame, "mtp-draft: at most " + std::to_string(kMaxDrafts) + " drafts per request");
  std::vector<DraftCall> calls;
  try {
    const nlohmann::json p = nlohmann::json::parse(std::string(m.payload_as<char>(2), m.payload_size(2)));
    const int32_t* tokens = m.payload_as<int32_t>(1);
    const float* states = m.payload_as<float>(0);
    if (!p.contains("calls")) {
      calls.push_back(parse_call(p, static_cast<int>(h.aux)));
      calls[0].tokens.assign(tokens, tokens + rows);
      calls[0].hidden = states;
      return calls;
    }
    const auto& list = p.at("calls");
    if (!list.is_array() || list.empty() || list.size() > kMaxDraftCalls)
      throw std::invalid_argument("calls must be an array of 1.." + std::to_string(kMaxDraftCalls));
    int64_t row = 0;
    for (const auto& cj : list) {
      const int64_t n = cj.at("rows").get<int64_t>();
      if (n < 1 || row + n > rows) throw std::invalid_argument("the calls' rows do not add up to the header's");
      DraftCall c = parse_call(cj, cj.at("k").get<int>());
      if (static_cast<uint32_t>(c.k) > h.aux) throw std::invalid_argument("a call's k exceeds the header's");
      c.tokens.assign(tokens + row, tokens + row + n);
      c.hidden = states + row * hidden;
      row += n;
      calls.push_back(std::move(c));
    }
    if (row != rows) throw std::invalid_argument("the calls' rows do not add up to the header's");
    for (size_t i = 0; i < calls.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (calls[i].seq == calls[j].seq) throw std::invalid_argument("a sequence appears twice in one request");
    return calls;
  } catch (const std::exception& e) {
    throw WireError(wire::ErrorCode::BadFrame, std::string("mtp-draft: bad draft parameters: ") + e.what());
  }
}

wire::Message encode_draft_response(uint64_t request_id, const std::vector<Draft>& drafts) {
  wire::Message r;
  r.header.type = wire::MsgType::DraftResponse;
  r.header.request_id = request_id;
  std::vector<int32_t> tokens;
  std::vector<float> logits, fed;
  for (const auto& d : drafts) {
    tokens.insert(tokens.end(), d.tokens.begin(), d.tokens.end());
    logits.insert(logits.end(), d.logits.begin(), d.logits.end());
    fed.insert(fed.end(), d.fed_logits.begin(), d.fed_logits.end());
  }
  r.header.aux = static_cast<uint32_t>(tokens.size());
  r.add_payload(tokens);
  r.add_payload(logits);
  r.add_payload(fed);
  return r;
}

std::vector<Draft> decode_draft_response(const wire::Message& r, const std::vector<DraftCall>& calls, int64_t vocab) {
  const size_t V = static_cast<size_t>(vocab);
  size_t k_all = 0, logits_all = 0, fed_all = 0;
  for (const auto& c : calls) {
    k_all += static_cast<size_t>(c.k);
    if (!c.sampling.greedy()) logits_all += static_cast<size_t>(c.k) * V;
    if (c.want_fed_logits) fed_all += c.tokens.size() * V;
  }
  if (r.header.type != wire::MsgType::DraftResponse || r.payloads.size() != 3 || r.payload_size(0) != k_all * 4 ||
      r.payload_size(1) != logits_all * 4 || r.payload_size(2) != fed_all * 4)
    throw std::runtime_error("malformed DraftResponse");
  std::vector<Draft> out(calls.size());
  const int32_t* t = r.payload_as<int32_t>(0);
  const float* l = r.payload_as<float>(1);
  const float* f = r.payload_as<float>(2);
  for (size_t i = 0; i < calls.size(); ++i) {
    const auto& c = calls[i];
    const size_t k = static_cast<size_t>(c.k);
    out[i].tokens.assign(t, t + k);
    t += k;
    if (!c.sampling.greedy()) {
      out[i].logits.assign(l, l + k * V);
      l += k * V;
    }
    if (c.want_fed_logits) {
      out[i].fed_logits.assign(f, f + c.tokens.size() * V);
      f += c.tokens.size() * V;
    }
  }
  return out;
}

nlohmann::json release_command(SeqId seq) { return {{"cmd", "release"}, {"seq", seq}}; }

}  // namespace moemesh
