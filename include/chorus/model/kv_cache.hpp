// chorus — the key/value cache: for each sequence and layer, one row of n_embd_kv keys and
// values per position, sized once. The element type is a compile-time choice (fp16 by
// default, as the reference implementation stores them; float for exactness).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"

namespace chorus::inline CHORUS_ABI::model {

template <class Element = fp16>
class kv_cache {
 public:
  using element = Element;

  kv_cache() = default;
  kv_cache(std::size_t n_layer, std::size_t n_ctx, std::size_t n_embd_kv, std::size_t n_seq)
      : n_layer_(n_layer), n_ctx_(n_ctx), n_embd_kv_(n_embd_kv), n_seq_(n_seq),
        keys_(n_seq * n_layer * n_ctx * n_embd_kv), values_(keys_.size()), length_(n_seq, 0) {}

  std::size_t n_ctx() const noexcept { return n_ctx_; }
  std::size_t n_seq() const noexcept { return n_seq_; }
  std::size_t length(std::size_t seq) const { return length_.at(seq); }
  std::size_t bytes() const noexcept { return 2 * keys_.size() * sizeof(Element); }

  Element* key(std::size_t seq, std::size_t layer, std::size_t pos) noexcept { return keys_.data() + offset(seq, layer, pos); }
  Element* value(std::size_t seq, std::size_t layer, std::size_t pos) noexcept {
    return values_.data() + offset(seq, layer, pos);
  }
  const Element* key(std::size_t seq, std::size_t layer, std::size_t pos) const noexcept {
    return keys_.data() + offset(seq, layer, pos);
  }
  const Element* value(std::size_t seq, std::size_t layer, std::size_t pos) const noexcept {
    return values_.data() + offset(seq, layer, pos);
  }

  void check_sequence(std::size_t seq) const {
    if (seq >= n_seq_) fail(errc::out_of_range, "sequence ", seq, " does not exist (the context has ", n_seq_, ")");
  }
  // Forgets positions from `n` on.
  void truncate(std::size_t seq, std::size_t n) {
    check_sequence(seq);
    if (n < length_[seq]) length_[seq] = n;
  }
  void set_length(std::size_t seq, std::size_t n) { length_.at(seq) = n; }

  // Makes `dst` start with the first `n` positions of `src` (e.g. a shared prompt), copying
  // them; `dst`'s later positions are forgotten.
  void copy_prefix(std::size_t src, std::size_t dst, std::size_t n) {
    check_sequence(src);
    check_sequence(dst);
    if (n > length_[src]) fail(errc::out_of_range, "copy_prefix: sequence ", src, " has only ", length_[src], " positions");
    if (src != dst) {
      for (std::size_t layer = 0; layer < n_layer_; ++layer) {
        std::memcpy(key(dst, layer, 0), key(src, layer, 0), n * n_embd_kv_ * sizeof(Element));
        std::memcpy(value(dst, layer, 0), value(src, layer, 0), n * n_embd_kv_ * sizeof(Element));
      }
    }
    length_[dst] = n;
  }

 private:
  std::size_t offset(std::size_t seq, std::size_t layer, std::size_t pos) const noexcept {
    return ((seq * n_layer_ + layer) * n_ctx_ + pos) * n_embd_kv_;
  }

  std::size_t n_layer_ = 0, n_ctx_ = 0, n_embd_kv_ = 0, n_seq_ = 0;
  std::vector<Element> keys_, values_;
  std::vector<std::size_t> length_;
};

}  // namespace chorus::inline CHORUS_ABI::model
