// chorus — continuous batching: an engine driven by a thread of its own. Any thread submits
// sequences; they join the running batch at the next step (when a slot is free; the rest wait
// in a queue) and leave it when they finish, without stalling the others. This is how fusion
// panels of one model and the server's requests share one forward pass per step.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/generate/engine.hpp"

namespace chorus::inline CHORUS_ABI::generate {

struct batcher_config {
  engine_config engine;          // n_seq: sequences decoded together
  std::size_t max_queued = 256;  // sequences waiting for a slot; submit() refuses more
};

template <class KvElement = fp16>
class basic_batcher {
 public:
  // Called once per sequence, on the batcher's thread, with its result (reason error and the
  // message for a request the engine refused). Must not throw; keep it short (post elsewhere).
  using completion = std::function<void(result)>;

  basic_batcher(std::shared_ptr<const language_model> m, batcher_config config = {})
      : engine_(std::move(m), config.engine), max_queued_(config.max_queued), thread_([this] { loop(); }) {}

  basic_batcher(const basic_batcher&) = delete;
  basic_batcher& operator=(const basic_batcher&) = delete;

  // Sequences still queued or running finish as cancelled.
  ~basic_batcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  const language_model& model() const noexcept { return engine_.model(); }
  std::size_t capacity() const noexcept { return engine_.capacity(); }
  std::size_t n_ctx() const noexcept { return engine_.n_ctx(); }
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }
  std::size_t running() const noexcept { return running_.load(std::memory_order_relaxed); }

  // Queues a sequence. Its sink is called on the batcher's thread; stop it through the request's
  // stop_token (seen between tokens, or while it waits). Throws errc::busy-like
  // errc::out_of_range when max_queued sequences already wait.
  void submit(sequence_request r, completion done) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) fail(errc::invalid_argument, "batcher: shutting down");
      if (queue_.size() >= max_queued_) {
        fail(errc::out_of_range, "batcher: ", queue_.size(), " sequences already wait for ", engine_.capacity(), " slots");
      }
      queue_.push_back({std::move(r), std::move(done)});
      pending_.store(true, std::memory_order_release);
    }
    wake_.notify_one();
  }

 private:
  struct job {
    sequence_request request;
    completion done;
  };

  static void complete(completion& done, result r) noexcept {
    try {
      done(std::move(r));
    } catch (...) {  // a completion must not throw; nothing sensible can be done with it here
    }
  }
  static result refused(std::exception_ptr why) {
    result r;
    r.reason = stop_reason::error;
    r.failure = why;
    try {
      std::rethrow_exception(why);
    } catch (const std::exception& e) {
      r.error = e.what();
    } catch (...) {
      r.error = "unknown error";
    }
    return r;
  }

  // Moves queued jobs into free slots. Cancelled jobs complete without running.
  void admit(std::unique_lock<std::mutex>& lock) {
    while (!queue_.empty() && engine_.has_free_slot()) {
      job j = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      if (j.request.stop.stop_requested()) {
        result r;
        r.reason = stop_reason::cancelled;
        r.prompt_ids = std::move(j.request.prompt);
        complete(j.done, std::move(r));
      } else {
        try {
          const auto h = engine_.start(std::move(j.request));
          running_jobs_[h] = std::move(j.done);
          running_.fetch_add(1, std::memory_order_relaxed);
        } catch (...) {
          complete(j.done, refused(std::current_exception()));
        }
      }
      lock.lock();
    }
    pending_.store(!queue_.empty(), std::memory_order_release);
  }

  void loop() {
    running_jobs_.resize(engine_.capacity());
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || engine_.active() > 0; });
      if (stopping_) break;
      admit(lock);
      lock.unlock();
      // Step while sequences run; the queue is looked at (under the lock) only when something
      // was submitted, so a step takes no lock.
      while (engine_.active() > 0) {
        engine_.step();
        collect();
        if (pending_.load(std::memory_order_acquire)) {
          lock.lock();
          if (stopping_) break;
          admit(lock);
          lock.unlock();
        }
      }
      if (!lock.owns_lock()) lock.lock();
    }
    // Shutting down: whatever is left finishes as cancelled.
    std::deque<job> left = std::move(queue_);
    lock.unlock();
    for (auto& j : left) {
      result r;
      r.reason = stop_reason::cancelled;
      complete(j.done, std::move(r));
    }
    for (std::size_t h = 0; h < running_jobs_.size(); ++h) {
      if (!running_jobs_[h]) continue;
      if (!engine_.finished(h)) {
        result r;
        r.reason = stop_reason::cancelled;
        complete(running_jobs_[h], std::move(r));
      } else {
        complete(running_jobs_[h], engine_.take(h));
      }
      running_jobs_[h] = nullptr;
    }
  }

  void collect() {
    for (std::size_t h = 0; h < running_jobs_.size(); ++h) {
      if (!running_jobs_[h] || !engine_.finished(h)) continue;
      completion done = std::move(running_jobs_[h]);
      running_jobs_[h] = nullptr;
      running_.fetch_sub(1, std::memory_order_relaxed);
      complete(done, engine_.take(h));
    }
  }

  basic_engine<KvElement> engine_;
  std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<job> queue_;
  bool stopping_ = false;
  std::atomic<bool> pending_{false};
  std::atomic<std::size_t> running_{0};
  std::vector<completion> running_jobs_;  // per engine slot (touched only by the thread)
  std::thread thread_;                    // last: starts after everything above exists
};

using batcher = basic_batcher<fp16>;

}  // namespace chorus::inline CHORUS_ABI::generate
