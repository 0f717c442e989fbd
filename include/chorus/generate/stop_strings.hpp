// chorus — stop strings over streamed text: emits text as soon as it cannot be the start
// of a stop string, holds back a possible partial match, and cuts at the first match.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::generate {

class stop_string_filter {
 public:
  stop_string_filter() = default;
  explicit stop_string_filter(std::vector<std::string> stops) : stops_(std::move(stops)) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
    for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
    text_.reserve(4096);
  }

  // Appends a piece of generated text. Returns the text that is now safe to show; sets
  // stopped() when a stop string appeared (the stop string and anything after it are dropped).
  std::string_view push(std::string_view piece) {
    if (stopped_) return {};
    // a new match must end inside the new piece, so it starts at most longest_ - 1 bytes back
    const std::size_t search_from = text_.size() >= longest_ ? text_.size() - longest_ + 1 : 0;
    text_.append(piece);
    std::size_t cut = std::string::npos;
    for (const auto& stop : stops_) {
      const auto at = text_.find(stop, search_from);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
      stopped_ = true;
      text_.resize(cut);
      return release(text_.size());
    }
    return release(text_.size() - held_back_suffix());
  }

  // At the end of generation: everything not yet shown.
  std::string_view flush() { return release(text_.size()); }

  bool stopped() const noexcept { return stopped_; }
  const std::string& text() const noexcept { return text_; }  // the whole text so far, cut at a stop

 private:
  // Length of the longest suffix of text_ that is a proper prefix of some stop string.
  std::size_t held_back_suffix() const {
    std::size_t hold = 0;
    for (const auto& stop : stops_) {
      const std::size_t max_len = std::min(stop.size() - 1, text_.size() - shown_);
      for (std::size_t len = max_len; len > hold; --len) {
        if (std::string_view(text_).substr(text_.size() - len) == std::string_view(stop).substr(0, len)) {
          hold = len;
          break;
        }
      }
    }
    return hold;
  }
  std::string_view release(std::size_t up_to) {
    if (up_to <= shown_) return {};
    const std::string_view out = std::string_view(text_).substr(shown_, up_to - shown_);
    shown_ = up_to;
    return out;
  }

  std::vector<std::string> stops_;
  std::size_t longest_ = 0;
  std::string text_;
  std::size_t shown_ = 0;
  bool stopped_ = false;
};

}  // namespace chorus::inline CHORUS_ABI::generate
