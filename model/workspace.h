// Scratch memory for one forward pass, reused across steps so that a decode step
// allocates nothing once the largest step shape has been seen: buffers come from
// a stack of blocks; a Frame gives back what was taken inside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace moemesh {

class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // n uninitialised elements, 64-byte aligned, valid until the enclosing Frame ends.
  template <class T>
  T* get(size_t n) {
    return static_cast<T*>(take(n * sizeof(T)));
  }
  float* floats(size_t n) { return get<float>(n); }

  // Restores the workspace to where it was when the frame began.
  class Frame {
   public:
    explicit Frame(Workspace& ws) : ws_(ws), block_(ws.block_), used_(ws.used_) {}
    ~Frame() {
      ws_.block_ = block_;
      ws_.used_ = used_;
    }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    Workspace& ws_;
    size_t block_, used_;
  };

  // Bytes reserved in all blocks (grows only when a step needs more than any before).
  size_t capacity() const;

 private:
  void* take(size_t bytes);

  struct Block {
    std::unique_ptr<std::byte[]> data;
    size_t size = 0;
  };
  std::vector<Block> blocks_;
  size_t block_ = 0, used_ = 0;  // current block and bytes used in it
};

}  // namespace moemesh
