// chorus server — counters for GET /metrics in Prometheus' text format: requests by route and
// status, requests in flight, connections, tokens per model, rejections, cancellations, and a
// latency histogram per route. Updated once per request (never per token); the labelled maps
// are locked, the plain gauges are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::server {

class metrics {
 public:
  static constexpr std::array<double, 12> buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};

  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::int64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_refused{0};  // over max_connections
  std::atomic<std::uint64_t> disconnects{0};          // clients gone before their answer: generation cancelled
  std::atomic<std::uint64_t> timeouts{0};             // header / body / write timeouts

  void count_request(std::string_view route, unsigned status, double seconds) {
    std::lock_guard lock(mutex_);
    ++requests_[{std::string(route), status}];
    auto& h = latency_[std::string(route)];
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      if (seconds <= buckets[i]) ++h.counts[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  void count_tokens(std::string_view model, std::size_t prompt, std::size_t completion) {
    std::lock_guard lock(mutex_);
    auto& t = tokens_[std::string(model)];
    t.first += prompt;
    t.second += completion;
  }
  void count_rejection(std::string_view reason) {
    std::lock_guard lock(mutex_);
    ++rejected_[std::string(reason)];
  }
  std::uint64_t requests(std::string_view route, unsigned status) const {
    std::lock_guard lock(mutex_);
    const auto it = requests_.find({std::string(route), status});
    return it == requests_.end() ? 0 : it->second;
  }
  std::uint64_t rejections(std::string_view reason) const {
    std::lock_guard lock(mutex_);
    const auto it = rejected_.find(std::string(reason));
    return it == rejected_.end() ? 0 : it->second;
  }

  // Gauges sampled when /metrics is read: per model, sequences queued and running.
  struct model_gauge {
    std::string model;
    std::size_t queued = 0;
    std::size_t running = 0;
    std::size_t admitted = 0;  // sequences the server let in (running + waiting)
  };

  std::string prometheus(const std::vector<model_gauge>& models) const {
    std::string out;
    auto line = [&out](const std::string& s) {
      out += s;
      out += '\n';
    };
    auto num = [](double v) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", v);
      return std::string(buf);
    };
    std::lock_guard lock(mutex_);
    line("# HELP chorus_requests_total HTTP requests answered, by route and status.");
    line("# TYPE chorus_requests_total counter");
    for (const auto& [key, n] : requests_) {
      line("chorus_requests_total{route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"} " + std::to_string(n));
    }
    line("# HELP chorus_requests_in_flight Requests being answered now.");
    line("# TYPE chorus_requests_in_flight gauge");
    line("chorus_requests_in_flight " + std::to_string(in_flight.load()));
    line("# HELP chorus_connections_open Client connections open now.");
    line("# TYPE chorus_connections_open gauge");
    line("chorus_connections_open " + std::to_string(connections_open.load()));
    line("# HELP chorus_connections_total Client connections accepted.");
    line("# TYPE chorus_connections_total counter");
    line("chorus_connections_total " + std::to_string(connections_total.load()));
    line("# HELP chorus_connections_refused_total Connections refused over the connection limit.");
    line("# TYPE chorus_connections_refused_total counter");
    line("chorus_connections_refused_total " + std::to_string(connections_refused.load()));
    line("# HELP chorus_client_disconnects_total Clients that went away before their answer (generation cancelled).");
    line("# TYPE chorus_client_disconnects_total counter");
    line("chorus_client_disconnects_total " + std::to_string(disconnects.load()));
    line("# HELP chorus_timeouts_total Connections closed for a header, body or write timeout.");
    line("# TYPE chorus_timeouts_total counter");
    line("chorus_timeouts_total " + std::to_string(timeouts.load()));
    line("# HELP chorus_rejected_total Requests refused for load (queue_full, fusions_busy).");
    line("# TYPE chorus_rejected_total counter");
    for (const auto& [reason, n] : rejected_) line("chorus_rejected_total{reason=\"" + reason + "\"} " + std::to_string(n));
    line("# HELP chorus_queued_sequences Sequences waiting for a batch slot, per model.");
    line("# TYPE chorus_queued_sequences gauge");
    for (const auto& m : models) line("chorus_queued_sequences{model=\"" + m.model + "\"} " + std::to_string(m.queued));
    line("# HELP chorus_running_sequences Sequences decoding now, per model.");
    line("# TYPE chorus_running_sequences gauge");
    for (const auto& m : models) line("chorus_running_sequences{model=\"" + m.model + "\"} " + std::to_string(m.running));
    line("# HELP chorus_admitted_sequences Sequences admitted by the server and not finished, per model.");
    line("# TYPE chorus_admitted_sequences gauge");
    for (const auto& m : models) line("chorus_admitted_sequences{model=\"" + m.model + "\"} " + std::to_string(m.admitted));
    line("# HELP chorus_prompt_tokens_total Prompt tokens of answered requests, per model.");
    line("# TYPE chorus_prompt_tokens_total counter");
    for (const auto& [model, t] : tokens_) line("chorus_prompt_tokens_total{model=\"" + model + "\"} " + std::to_string(t.first));
    line("# HELP chorus_completion_tokens_total Generated tokens, per model.");
    line("# TYPE chorus_completion_tokens_total counter");
    for (const auto& [model, t] : tokens_) line("chorus_completion_tokens_total{model=\"" + model + "\"} " + std::to_string(t.second));
    line("# HELP chorus_request_duration_seconds Time from a request's header to its last byte, by route.");
    line("# TYPE chorus_request_duration_seconds histogram");
    for (const auto& [route, h] : latency_) {
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        line("chorus_request_duration_seconds_bucket{route=\"" + route + "\",le=\"" + num(buckets[i]) + "\"} " + std::to_string(h.counts[i]));
      }
      line("chorus_request_duration_seconds_bucket{route=\"" + route + "\",le=\"+Inf\"} " + std::to_string(h.count));
      line("chorus_request_duration_seconds_sum{route=\"" + route + "\"} " + num(h.sum));
      line("chorus_request_duration_seconds_count{route=\"" + route + "\"} " + std::to_string(h.count));
    }
    return out;
  }

 private:
  struct histogram {
    std::array<std::uint64_t, buckets.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0.0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, unsigned>, std::uint64_t> requests_;
  std::map<std::string, histogram> latency_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> tokens_;
  std::map<std::string, std::uint64_t> rejected_;
};

}  // namespace chorus::inline CHORUS_ABI::server
