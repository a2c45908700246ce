#include "services/mtp_draft/client.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "actors/control_call.h"
#include "actors/transport.h"
#include "services/mtp_draft/api.h"

namespace moemesh {

struct RemoteDrafter::Impl {
  RequestChannel channel;
  int64_t vocab, hidden;
  std::chrono::milliseconds timeout;
  std::chrono::steady_clock::time_point retry_at{};
  std::chrono::milliseconds backoff{1000};
  // The deadline follows the drafter's measured answer times: ten times their
  // moving average, at least 300 ms, at most `timeout` (and `timeout` until a
  // few are measured), so a stopped drafter holds its replica's steps up for
  // a fraction of a second, not seconds.
  double latency_ms = 0;
  int measured = 0;
  std::chrono::milliseconds deadline() const {
    if (measured < 8) return timeout;
    const auto d = std::chrono::milliseconds(static_cast<int64_t>(10 * latency_ms));
    return std::clamp(d, std::min(std::chrono::milliseconds(300), timeout), timeout);
  }
};

RemoteDrafter::RemoteDrafter(zmq::context_t& ctx, const std::string& endpoint, int64_t vocab, int64_t hidden,
                             std::chrono::milliseconds timeout)
    : impl_(new Impl{RequestChannel(ctx, endpoint, "mtp-draft"), vocab, hidden, timeout, {}, std::chrono::milliseconds(1000)}) {}

RemoteDrafter::~RemoteDrafter() = default;

std::vector<Draft> RemoteDrafter::draft(const std::vector<DraftCall>& c) {
  if (std::chrono::steady_clock::now() < impl_->retry_at) throw std::runtime_error("mtp-draft is unavailable (backing off)");
  try {
    std::vector<Draft> d = draft_once(c);
    impl_->backoff = std::chrono::milliseconds(1000);
    return d;
  } catch (const std::exception& e) {
    spdlog::warn("drafter: {}; no drafts for {} ms", e.what(), impl_->backoff.count());
    impl_->retry_at = std::chrono::steady_clock::now() + impl_->backoff;
    impl_->backoff = std::min(impl_->backoff * 2, std::chrono::milliseconds(30000));
    throw;
  }
}

std::vector<Draft> RemoteDrafter::draft_once(const std::vector<DraftCall>& c) {
  const auto deadline = impl_->deadline();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = impl_->channel.call(encode_draft_request(impl_->channel.next_id(), c, impl_->hidden), deadline);
  if (!r) {
    impl_->channel.reconnect();
    throw std::runtime_error("mtp-draft did not answer within " + std::to_string(deadline.count()) + " ms");
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  impl_->latency_ms = impl_->measured++ == 0 ? ms : 0.9 * impl_->latency_ms + 0.1 * ms;
  if (r->header.type == wire::MsgType::Error) throw error_of(*r);
  return decode_draft_response(*r, c, impl_->vocab);
}

void RemoteDrafter::release(SeqId seq) {
  // No answer expected.
  impl_->channel.send(wire::json_message(wire::MsgType::Control, impl_->channel.next_id(), release_command(seq)));
}

}  // namespace moemesh
