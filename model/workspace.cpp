#include "model/workspace.h"

#include <algorithm>

namespace moemesh {

void* Workspace::take(size_t bytes) {
  bytes = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  for (;;) {
    if (block_ < blocks_.size()) {
      Block& b = blocks_[block_];
      if (used_ + bytes <= b.size) {
        void* p = b.data.get() + used_;
        used_ += bytes;
        return p;
      }
      // The rest of this block is skipped; later blocks are reused when they fit.
      if (block_ + 1 < blocks_.size()) {
        ++block_;
        used_ = 0;
        continue;
      }
    }
    // A new block, at least as large as all before (so growth stops quickly).
    size_t total = 0;
    for (const auto& b : blocks_) total += b.size;
    const size_t size = std::max<size_t>({bytes + 64, total, size_t{1} << 20});
    Block nb;
    nb.data.reset(new std::byte[size + 64]);
    nb.size = size;
    blocks_.push_back(std::move(nb));
    block_ = blocks_.size() - 1;
    // 64-byte alignment of the block start.
    const auto addr = reinterpret_cast<uintptr_t>(blocks_[block_].data.get());
    used_ = static_cast<size_t>((64 - addr % 64) % 64);
    blocks_[block_].size = size + used_;
  }
}

size_t Workspace::capacity() const {
  size_t total = 0;
  for (const auto& b : blocks_) total += b.size;
  return total;
}

}  // namespace moemesh
