// The expert-host role as an actor: serves Dispatch messages on its ROUTER
// socket (compute on its compute queue), registers with a router and
// heartbeats, and loads, unloads or leaves when the router says so.
#pragma once

#include "kernels/cpu/precision.h"

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <zmq.hpp>

namespace moemesh {

struct ExpertHostOptions {
  std::string model;
  std::string name;                    // unique in the mesh (default: the bound endpoint)
  std::string bind = "tcp://127.0.0.1:0";
  std::string router;                  // router endpoint to register with; empty: none
  std::string advertise;               // endpoint the router should dial (default: the one bound)
  std::vector<int32_t> experts;        // held from the start; empty: the router assigns (join)
  int64_t capacity = -1;               // experts it may hold (-1: all)
  std::chrono::milliseconds heartbeat{250};
  std::string metrics;                 // Prometheus endpoint (port 0: any); empty: none
  std::string device = "cpu";          // "cuda": experts on the GPU (a build with CUDA and a device)
  cpu::Precision compute = cpu::Precision::Fast;
};

class ExpertHostService {
 public:
  ExpertHostService(ExpertHostOptions opts, zmq::context_t& ctx);
  ~ExpertHostService();
  // Loads its experts, binds, registers; returns the bound endpoint.
  std::string start();
  // Graceful stop: tells the router, finishes the dispatches it was sent and
  // waits up to `deadline` for the router's leave; true when all was done.
  bool drain(std::chrono::milliseconds deadline);
  void stop();
  // Becomes ready when the router told this host to leave (after a drain).
  std::shared_future<void> left() const { return left_; }
  const std::string& metrics_url() const { return metrics_url_; }

 private:
  ExpertHostOptions opts_;
  zmq::context_t& ctx_;
  caf::actor actor_;
  std::promise<void> leave_;
  std::shared_future<void> left_;
  std::string metrics_url_;
};

}  // namespace moemesh
