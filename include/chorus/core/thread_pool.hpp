// chorus — a fixed pool of worker threads for the forward pass: parallel_for over task
// indices with the calling thread taking part. No allocation and no std::function per call:
// the job is a pointer to the caller's stack object; workers spin briefly on a generation
// counter (a decode step runs dozens of short parallel_for calls) and then sleep on it.
//
// Every wait spins only a few hundred pauses and then yields the core: when more threads are
// runnable than there are cores (two processes using chorus, a game's own threads), the thread
// being waited for may be the one that is not running, and a pure spin would burn the core it
// needs until the scheduler preempts the spinner (measured: a 60 ms test took 5 s with a second
// copy running beside it).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/cpu.hpp"
#include "chorus/core/error.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define CHORUS_CPU_RELAX() _mm_pause()
#else
#define CHORUS_CPU_RELAX() ((void)0)
#endif

namespace chorus::inline CHORUS_ABI {

class thread_pool {
 public:
  // `threads` counts the calling thread: thread_pool(2) starts one worker. 0 = one per
  // physical core this process may run on (core/cpu.hpp).
  explicit thread_pool(std::size_t threads = 0) {
    if (threads == 0) threads = physical_core_count();
    if (threads > 1024) fail(errc::invalid_argument, "thread_pool: ", threads, " threads requested (at most 1024)");
    size_ = threads;
    workers_.reserve(threads - 1);
    for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
  }

  std::size_t size() const noexcept { return size_; }

  // Runs fn(task, thread) for every task in [0, n_tasks), spread over the pool; returns when
  // all are done. The first exception thrown by a task is rethrown here. Not reentrant: a
  // task must not call parallel_for on the same pool (calls from several threads serialise).
  template <class Fn>
  void parallel_for(std::size_t n_tasks, Fn&& fn) {
    if (n_tasks == 0) return;
    if (size_ == 1 || n_tasks == 1) {
      for (std::size_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    std::lock_guard lock(call_mutex_);
    job current;
    current.call = &invoke<std::remove_reference_t<Fn>>;
    current.fn = &fn;
    current.n_tasks = n_tasks;
    job_ = &current;
    pending_.store(workers_.size(), std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    run_tasks(current, 0);
    for (unsigned spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) relax(spin);
    job_ = nullptr;
    if (current.failure) std::rethrow_exception(current.failure);
  }

 private:
  struct job {
    void (*call)(void*, std::size_t, std::size_t) = nullptr;
    void* fn = nullptr;
    std::size_t n_tasks = 0;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr failure;
  };

  // One step of a wait: pause while a short spin may still catch the event, then yield.
  static void relax(unsigned spin) noexcept {
    if (spin < spin_pauses) {
      CHORUS_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
  static constexpr unsigned spin_pauses = 256;
  static constexpr unsigned spin_yields = 4096;  // then a worker sleeps until the next call

  template <class Fn>
  static void invoke(void* fn, std::size_t task, std::size_t thread) {
    (*static_cast<Fn*>(fn))(task, thread);
  }

  static void run_tasks(job& j, std::size_t thread) noexcept {
    for (;;) {
      const std::size_t task = j.next.fetch_add(1, std::memory_order_relaxed);
      if (task >= j.n_tasks) return;
      if (j.failed.load(std::memory_order_relaxed)) continue;
      try {
        j.call(j.fn, task, thread);
      } catch (...) {
        if (!j.failed.exchange(true)) j.failure = std::current_exception();
      }
    }
  }

  void work(std::size_t thread) {
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t now = generation_.load(std::memory_order_acquire);
      for (unsigned spin = 0; now == seen && spin < spin_pauses + spin_yields; ++spin) {
        relax(spin);
        now = generation_.load(std::memory_order_acquire);
      }
      while (now == seen) {
        generation_.wait(seen, std::memory_order_acquire);
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stop_.load(std::memory_order_acquire)) return;
      run_tasks(*job_, thread);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::size_t size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;
  job* job_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::size_t> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace chorus::inline CHORUS_ABI
