// The attention side's client of the mtp-draft role: a Drafter whose drafts
// come over the wire. It waits for an answer ten times the drafter's recent
// answer time (at least 300 ms, at most `timeout`); after a failure it refuses
// at once for a back-off (1 s, doubling up to 30 s), so a dead or stopped
// drafter costs one short wait, not one per request.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "model/drafter.h"

namespace moemesh {

class RemoteDrafter : public Drafter {
 public:
  RemoteDrafter(zmq::context_t& ctx, const std::string& endpoint, int64_t vocab, int64_t hidden,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  ~RemoteDrafter() override;
  using Drafter::draft;
  // All calls in one DraftRequest: the mtp-draft role drafts them as one batch.
  std::vector<Draft> draft(const std::vector<DraftCall>& calls) override;
  void release(SeqId seq) override;

 private:
  std::vector<Draft> draft_once(const std::vector<DraftCall>& calls);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moemesh
