// game_loop — a 60 Hz loop that stays smooth while a model generates.
//   game_loop MODEL.gguf [max_tokens=200] [cancel_at_frame=0 (never)]
//
// A game cannot wait for a model: one token can take longer than a frame. So the generation
// runs on a thread of its own and hands its text over through a small mailbox; each frame
// takes what has arrived without ever waiting for it (try_lock: if the generator holds the
// lock this very microsecond, the text is picked up next frame). The player can cancel: the
// loop asks the generator's stop token, and generation ends after the token in progress.
//
// The program prints each frame's new text, then the worst frame time (the time a frame's
// work took, the wait for the next tick not counted) and exits with 1 if it exceeded 16.7 ms.
#include <chorus/inference.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

namespace {

using clock_type = std::chrono::steady_clock;
using milliseconds = std::chrono::duration<double, std::milli>;

// What the generator hands to the game: text so far not taken, and whether it has finished.
struct mailbox {
  std::mutex lock;
  std::string text;
  bool finished = false;
  std::size_t tokens = 0;
};

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) return std::fprintf(stderr, "usage: %s MODEL.gguf [max_tokens] [cancel_at_frame]\n", argv[0]), 2;
  const int max_tokens = argc > 2 ? std::atoi(argv[2]) : 200;
  const long cancel_at_frame = argc > 3 ? std::atol(argv[3]) : 0;

  // Loading belongs to the loading screen: it maps the file and takes milliseconds.
  const auto model = chorus::generate::language_model::load(argv[1]);
  // One compute thread, so that the game's own thread keeps a core on a small machine.
  chorus::generate::session session(model, {.threads = 1});

  mailbox box;
  // The generator: std::jthread passes its stop token, which complete() checks between tokens.
  std::jthread generator([&](std::stop_token stop) {
    chorus::generate::options opts;
    opts.max_tokens = max_tokens;
    opts.sampling.seed = 7;
    session.complete("Once upon a time", opts, [&](const chorus::generate::token_event& e) {
      const std::lock_guard hold(box.lock);  // held for an append: microseconds
      box.text += e.text;
      ++box.tokens;
      return true;
    }, stop);
    const std::lock_guard hold(box.lock);
    box.finished = true;
  });

  constexpr auto frame = std::chrono::microseconds(16'667);  // 60 Hz
  milliseconds worst{0};
  long frames = 0;
  bool finished = false;
  std::string story;
  auto next_tick = clock_type::now();
  while (!finished) {
    const auto frame_start = clock_type::now();
    // 1. Input: here, a scripted "cancel" key press.
    if (cancel_at_frame > 0 && frames == cancel_at_frame) generator.request_stop();
    // 2. Take what the generator sent, if the mailbox is free this instant; never wait.
    std::string arrived;
    if (box.lock.try_lock()) {
      arrived.swap(box.text);
      finished = box.finished;
      box.lock.unlock();
    }
    // 3. Update and draw: the text box grows by what arrived.
    story += arrived;
    if (!arrived.empty()) {
      std::fwrite(arrived.data(), 1, arrived.size(), stdout);
      std::fflush(stdout);
    }
    worst = std::max(worst, milliseconds(clock_type::now() - frame_start));
    ++frames;
    // 4. Wait for the next tick (a real game would present the frame here).
    next_tick += frame;
    std::this_thread::sleep_until(next_tick);
  }

  const double limit_ms = 1000.0 / 60.0;
  const bool smooth = worst.count() < limit_ms;
  std::printf("\n[%ld frames, %zu tokens%s; worst frame %.3f ms: %s]\n", frames, box.tokens,
              generator.get_stop_token().stop_requested() ? ", cancelled" : "", worst.count(),
              smooth ? "within a frame (16.7 ms)" : "LONGER than a frame (16.7 ms)");
  return smooth ? 0 : 1;
} catch (const chorus::error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
