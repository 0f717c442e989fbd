// chorus CLI — what the commands show only on a terminal: colours and progress bars.
//
// Colours follow the common conventions: only when the stream is a terminal, never when
// NO_COLOR is set (https://no-color.org) or TERM is "dumb". Piped output stays plain text.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <unistd.h>

namespace chorus_cli {

inline bool is_terminal(std::FILE* stream) { return isatty(fileno(stream)) == 1; }

inline bool colours_for(std::FILE* stream) {
  if (!is_terminal(stream)) return false;
  if (const char* no_colour = std::getenv("NO_COLOR"); no_colour != nullptr && *no_colour != '\0') return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::string_view(term) != "dumb";
}

// SGR sequences, empty when colours are off.
struct palette {
  std::string_view prompt, answer, note, error, reset;
  static palette for_stream(std::FILE* stream) {
    if (!colours_for(stream)) return {};
    return {"\x1b[1;32m", "\x1b[36m", "\x1b[2m", "\x1b[1;31m", "\x1b[0m"};
  }
};

// A one-line bar on stderr, redrawn in place: "[#######.........] 1024/4096 tokens, 812 tok/s".
// Shown only when stderr is a terminal and the work is long enough to be worth it.
class progress_bar {
 public:
  progress_bar(std::string_view what, bool enabled) : what_(what), enabled_(enabled && is_terminal(stderr)) {}
  ~progress_bar() { finish(); }
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;

  void update(std::size_t done, std::size_t total) {
    if (!enabled_ || total == 0) return;
    constexpr int width = 30;
    const int filled = static_cast<int>(width * done / total);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    std::fprintf(stderr, "\r[%.*s%.*s] %zu/%zu %.*s, %.0f tok/s ", filled, "##############################",
                 width - filled, "..............................", done, total, static_cast<int>(what_.size()),
                 what_.data(), rate);
    std::fflush(stderr);
    drawn_ = true;
  }
  // Clears the line, so that what follows starts at column 0.
  void finish() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\x1b[2K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  std::string_view what_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace chorus_cli
