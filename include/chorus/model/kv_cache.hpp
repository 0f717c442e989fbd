// chorus — the key/value cache, in pages shared copy-on-write between sequences.
//
// Positions are grouped in pages of `page_positions`; a page holds the keys (and, separately,
// the values) of those positions for every layer. Each sequence has a page table. Sharing a
// prompt between sequences (copy_prefix) points the new sequence's table at the same pages and
// counts references: nothing is copied until a sequence writes into a page another sequence
// still reads, and then only that page. Everything is sized once, at construction: the page
// pool, the tables and the free list, so decoding allocates nothing. The element type is a
// compile-time choice (fp16 by default, as the reference implementation stores them).
#pragma once

#include <algorithm>
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
  static constexpr std::size_t page_positions = 32;

  kv_cache() = default;
  // n_pages = 0: enough pages for every sequence to fill the context without sharing. A smaller
  // pool serves more sequences in less memory when they share prompts.
  kv_cache(std::size_t n_layer, std::size_t n_ctx, std::size_t n_embd_kv, std::size_t n_seq, std::size_t n_pages = 0)
      : n_layer_(n_layer), n_ctx_(n_ctx), n_embd_kv_(n_embd_kv), n_seq_(n_seq),
        pages_per_seq_((n_ctx + page_positions - 1) / page_positions),
        n_pages_(n_pages != 0 ? n_pages : n_seq * pages_per_seq_),
        page_elements_(n_layer * page_positions * n_embd_kv),
        keys_(n_pages_ * page_elements_),
        values_(keys_.size()),
        length_(n_seq, 0),
        table_(n_seq * pages_per_seq_, no_page),
        references_(n_pages_, 0) {
    free_.reserve(n_pages_);
    for (std::size_t p = n_pages_; p-- > 0;) free_.push_back(static_cast<std::uint32_t>(p));
  }

  std::size_t n_ctx() const noexcept { return n_ctx_; }
  std::size_t n_seq() const noexcept { return n_seq_; }
  std::size_t length(std::size_t seq) const { return length_.at(seq); }
  std::size_t bytes() const noexcept { return 2 * keys_.size() * sizeof(Element); }
  std::size_t pages_total() const noexcept { return n_pages_; }
  std::size_t pages_in_use() const noexcept { return n_pages_ - free_.size(); }

  // Rows of n_embd_kv elements. Valid for positions whose page exists (below length(seq), or
  // made writable by prepare_write).
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

  // The free pages prepare_write(seq, begin, end) would take (new pages and copies of shared ones).
  std::size_t pages_needed(std::size_t seq, std::size_t begin, std::size_t end) const {
    check_sequence(seq);
    if (begin >= end) return 0;
    const std::uint32_t* table = table_.data() + seq * pages_per_seq_;
    const std::size_t first = begin / page_positions, last = std::min(end - 1, n_ctx_ - 1) / page_positions;
    std::size_t needed = 0;
    for (std::size_t i = first; i <= last; ++i) needed += table[i] == no_page || references_[table[i]] > 1;
    return needed;
  }
  std::size_t pages_free() const noexcept { return free_.size(); }

  // Gives `seq` pages of its own for positions [begin, end): allocates missing pages and copies
  // the pages it still shares with another sequence. Call before writing those positions.
  void prepare_write(std::size_t seq, std::size_t begin, std::size_t end) {
    check_sequence(seq);
    if (end > n_ctx_) fail(errc::out_of_range, "KV cache: position ", end - 1, " is beyond the context of ", n_ctx_);
    if (begin >= end) return;
    std::uint32_t* table = table_.data() + seq * pages_per_seq_;
    const std::size_t first = begin / page_positions, last = (end - 1) / page_positions;
    std::size_t needed = 0;  // check before changing anything, so that a failure leaves the cache as it was
    for (std::size_t i = first; i <= last; ++i) needed += table[i] == no_page || references_[table[i]] > 1;
    if (needed > free_.size()) {
      fail(errc::out_of_range, "KV cache: no free page for sequence ", seq, " (", n_pages_,
           " pages of ", page_positions, " positions, all in use)");
    }
    for (std::size_t i = first; i <= last; ++i) {
      if (table[i] == no_page) {
        table[i] = take_page();
      } else if (references_[table[i]] > 1) {
        const std::uint32_t shared = table[i];
        const std::uint32_t own = take_page();
        std::memcpy(keys_.data() + own * page_elements_, keys_.data() + shared * page_elements_, page_elements_ * sizeof(Element));
        std::memcpy(values_.data() + own * page_elements_, values_.data() + shared * page_elements_, page_elements_ * sizeof(Element));
        --references_[shared];
        table[i] = own;
      }
    }
  }

  // Forgets positions from `n` on (pages no longer needed go back to the pool).
  void truncate(std::size_t seq, std::size_t n) {
    check_sequence(seq);
    if (n < length_[seq]) length_[seq] = n;
    std::uint32_t* table = table_.data() + seq * pages_per_seq_;
    for (std::size_t i = (length_[seq] + page_positions - 1) / page_positions; i < pages_per_seq_; ++i) {
      if (table[i] != no_page) release(table[i]);
      table[i] = no_page;
    }
  }
  void set_length(std::size_t seq, std::size_t n) { length_.at(seq) = n; }

  // Makes `dst` start with the first `n` positions of `src` (e.g. one prompt shared by several
  // candidates): `dst` refers to `src`'s pages, copy-on-write; its later positions are forgotten.
  void copy_prefix(std::size_t src, std::size_t dst, std::size_t n) {
    check_sequence(src);
    check_sequence(dst);
    if (n > length_[src]) fail(errc::out_of_range, "copy_prefix: sequence ", src, " has only ", length_[src], " positions");
    if (src == dst) {
      truncate(dst, n);
      return;
    }
    truncate(dst, 0);
    const std::uint32_t* from = table_.data() + src * pages_per_seq_;
    std::uint32_t* to = table_.data() + dst * pages_per_seq_;
    for (std::size_t i = 0; i < (n + page_positions - 1) / page_positions; ++i) {
      to[i] = from[i];
      ++references_[from[i]];
    }
    length_[dst] = n;
  }

 private:
  static constexpr std::uint32_t no_page = 0xFFFFFFFFu;

  std::uint32_t take_page() noexcept {  // callers checked that one is free
    const std::uint32_t page = free_.back();
    free_.pop_back();
    references_[page] = 1;
    return page;
  }
  void release(std::uint32_t page) noexcept {
    if (--references_[page] == 0) free_.push_back(page);
  }

  std::size_t offset(std::size_t seq, std::size_t layer, std::size_t pos) const noexcept {
    const std::size_t page = table_[seq * pages_per_seq_ + pos / page_positions];
    return page * page_elements_ + (layer * page_positions + pos % page_positions) * n_embd_kv_;
  }

  std::size_t n_layer_ = 0, n_ctx_ = 0, n_embd_kv_ = 0, n_seq_ = 0, pages_per_seq_ = 0, n_pages_ = 0, page_elements_ = 0;
  std::vector<Element> keys_, values_;
  std::vector<std::size_t> length_;
  std::vector<std::uint32_t> table_;       // n_seq x pages_per_seq page numbers (no_page: none yet)
  std::vector<std::uint32_t> references_;  // sequences using each page
  std::vector<std::uint32_t> free_;        // unused pages, a stack (capacity reserved for all)
};

}  // namespace chorus::inline CHORUS_ABI::model
