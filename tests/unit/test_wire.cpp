// Wire format v2: round trips, and every malformed header refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "actors/wire_message.h"
#include "core/activations.h"
#include "core/wire.h"

using namespace moemesh;
using namespace moemesh::wire;

namespace {
Header activations(uint32_t tokens, uint32_t hidden) {
  Header h;
  h.type = MsgType::Dispatch;
  h.dtype = DType::BF16;
  h.rank = 2;
  h.shape = {tokens, hidden, 0, 0};
  h.request_id = 0x1122334455667788ull;
  h.sequence = 7;
  h.layer = 3;
  h.payloads = 1;
  h.payload_bytes[0] = uint64_t{tokens} * hidden * 2;
  return h;
}

std::string refusal(std::array<uint8_t, kHeaderBytes> frame, std::vector<size_t> sizes) {
  try {
    decode_header(frame, sizes);
  } catch (const WireError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Wire, HeaderRoundTrips) {
  Header h = activations(5, 7168);
  h.aux = 8;
  const auto frame = encode_header(h);
  const std::vector<size_t> sizes{5 * 7168 * 2};
  const Header d = decode_header(frame, sizes);
  EXPECT_EQ(d.type, MsgType::Dispatch);
  EXPECT_EQ(d.request_id, h.request_id);
  EXPECT_EQ(d.sequence, 7u);
  EXPECT_EQ(d.layer, 3);
  EXPECT_EQ(d.aux, 8u);
  EXPECT_EQ(d.rank, 2);
  EXPECT_EQ(d.shape[1], 7168u);
  EXPECT_EQ(d.numel(), 5u * 7168);
  EXPECT_EQ(encode_header(d), frame);
  // Little-endian on the wire: the magic spells MMSH.
  EXPECT_EQ(std::string(frame.begin(), frame.begin() + 4), "MMSH");
}

TEST(Wire, MalformedHeadersAreRefusedNamingTheField) {
  const Header good = activations(2, 64);
  const std::vector<size_t> sizes{2 * 64 * 2};
  struct Case { size_t off; uint8_t value; std::string expect; };
  const std::vector<Case> cases = {
      {0, 'X', "magic"}, {4, 9, "version"}, {6, 200, "message type"}, {8, 0x80, "flags"},
      {10, 99, "dtype"}, {11, 9, "rank"}, {31, 0x40, "layer"}, {44, 1, "shape beyond rank"},
      {52, 9, "payload count"}, {53, 1, "reserved"}, {93, 1, "reserved"}, {36, 3, "shape and dtype"},
      {64, 1, "payload size beyond"}, {56, 1, "payload 0 is"},
  };
  for (const auto& c : cases) {
    auto f = encode_header(good);
    f[c.off] = c.value;
    const std::string msg = refusal(f, sizes);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "offset " << c.off << " -> '" << msg << "'";
  }
  EXPECT_NE(refusal(encode_header(good), {}).find("announces 1 payload frames, 0 came"), std::string::npos);
  EXPECT_NE(refusal(encode_header(good), {sizes[0], 4}).find("announces"), std::string::npos);
  std::vector<uint8_t> shortframe(10, 0);
  EXPECT_THROW(decode_header(shortframe, sizes), WireError);
  try {
    auto f = encode_header(good);
    f[4] = 1;  // version 1 routed activations through the router: a v2 role refuses it
    decode_header(f, sizes);
    ADD_FAILURE() << "version 1 accepted";
  } catch (const WireError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
  }
  for (uint8_t retired : {3, 4}) {  // version 1's MoeRequest / MoeResponse
    auto f = encode_header(good);
    f[6] = retired;
    EXPECT_NE(refusal(f, sizes).find("message type"), std::string::npos) << int(retired);
  }
}

TEST(Wire, RandomHeadersNeverCrash) {
  std::mt19937_64 rng(3);
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    auto f = encode_header(activations(1 + rng() % 8, 1 + rng() % 512));
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) f[rng() % kHeaderBytes] = static_cast<uint8_t>(rng());
    std::vector<size_t> sizes(rng() % 3);
    for (auto& s : sizes) s = rng() % 4096;
    try {
      decode_header(f, sizes);
      ++accepted;
    } catch (const WireError&) {
    }
  }
  EXPECT_LT(accepted, 200000);
}

TEST(Wire, ActivationsRoundTripInEachEncoding) {
  const int64_t rows = 3, cols = 300;  // a partial 128-block at the end of each row
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = nd(rng);
  x[5] = 0.0f;
  for (WireActivations w : {WireActivations::F32, WireActivations::BF16, WireActivations::FP8}) {
    SCOPED_TRACE(wire_activations_name(w));
    EXPECT_EQ(wire_activations_from_name(wire_activations_name(w)), w);
    const size_t vb = activation_value_bytes(rows, cols, w), sb = activation_scale_bytes(rows, cols, w);
    EXPECT_EQ(vb, size_t(rows * cols) * (w == WireActivations::F32 ? 4 : w == WireActivations::BF16 ? 2 : 1));
    EXPECT_EQ(sb, w == WireActivations::FP8 ? size_t(rows * 3 * 4) : 0u);
    std::vector<uint8_t> values(vb);
    std::vector<float> scales(sb / 4);
    encode_activations(x.data(), rows, cols, w, values.data(), scales.data());
    std::vector<float> y(rows * cols, -1.0f);
    const bool fp8 = w == WireActivations::FP8;
    decode_activations(activation_dtype(w), fp8, values.data(), vb, scales.data(), sb, rows, cols, y.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float a = x[r * cols + c], b = y[r * cols + c];
        if (w == WireActivations::F32) {
          ASSERT_EQ(a, b);
        } else if (w == WireActivations::BF16) {
          ASSERT_LE(std::fabs(a - b), std::fabs(a) / 256) << r << "," << c;  // 8 mantissa bits, round to nearest
        } else {
          const float s = scales[r * 3 + c / 128];
          // e4m3 keeps 3 mantissa bits: relative error ≤ 2^-4, absolute ≥ the subnormal step.
          ASSERT_LE(std::fabs(a - b), std::fabs(a) / 16 + s * std::ldexp(1.0f, -10)) << r << "," << c;
        }
      }
    EXPECT_EQ(y[5], 0.0f);
    // Sizes that do not match the shape are refused, not read past.
    EXPECT_THROW(decode_activations(activation_dtype(w), fp8, values.data(), vb - 1, scales.data(), sb, rows, cols, y.data()),
                 WireError);
    if (fp8) {
      EXPECT_THROW(decode_activations(activation_dtype(w), true, values.data(), vb, scales.data(), sb - 4, rows, cols, y.data()),
                   WireError);
    }
  }
  // A header for the scaled form must carry both frames with consistent sizes.
  Header h;
  h.type = MsgType::Dispatch;
  h.flags = kFlagFp8Scaled;
  h.dtype = DType::F8_E4M3;
  h.rank = 2;
  h.shape = {3, 300, 0, 0};
  h.payloads = 2;
  h.payload_bytes = {900, 36, 0, 0};
  EXPECT_NO_THROW(decode_header(encode_header(h), std::vector<size_t>{900, 36}));
  h.payload_bytes[1] = 24;
  EXPECT_THROW(decode_header(encode_header(h), std::vector<size_t>{900, 24}), WireError);
}

// Frames of odd sizes over tcp land at odd offsets of ZeroMQ's receive buffer;
// received payloads are still aligned for the int32/float/bf16 reads of every role.
TEST(Wire, ReceivedPayloadsAreAligned) {
  zmq::context_t ctx;
  zmq::socket_t rx(ctx, zmq::socket_type::pair), tx(ctx, zmq::socket_type::pair);
  rx.set(zmq::sockopt::rcvtimeo, 5000);
  rx.bind("tcp://127.0.0.1:0");
  tx.connect(rx.get(zmq::sockopt::last_endpoint));
  std::vector<float> v(1001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f;
  for (int round = 0; round < 4; ++round) {
    Message m;  // sending empties its frames
    m.header.type = MsgType::Hello;
    m.add_payload(std::vector<uint8_t>(35, 1));
    m.add_payload(v);
    m.add_payload(std::vector<uint8_t>(3, 2));
    m.add_payload(v);
    wire::send(tx, m);
  }
  for (int round = 0; round < 4; ++round) {
    auto r = wire::receive(rx);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->payloads.size(), 4u);
    for (size_t i = 0; i < 4; ++i)
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r->payloads[i].data()) % alignof(uint64_t), 0u) << "payload " << i;
    EXPECT_EQ(std::vector<float>(r->payload_as<float>(3), r->payload_as<float>(3) + v.size()), v);
  }
}
