// chorus server — the routes: GET /health, GET /v1/models, GET /metrics and
// POST /v1/chat/completions, for the models and fusions it serves.
//
// A request for a model becomes one sequence per sample on that model's batcher (continuous
// batching: requests decode together; the batcher queues what does not fit). The server admits
// at most capacity + max_queued sequences per model and answers 429 with Retry-After beyond.
// A request for "fusion/NAME" (or one that brings its own panel in `chorus_fusion`) runs the
// fusion and answers with the fused text and a `chorus_fusion` field holding the report. A
// client that goes away cancels its sequences between two tokens. Every failure is an
// OpenAI-style error with its HTTP status; nothing a client sends can throw out of here.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/parse_json.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/local_member.hpp"
#include "chorus/fusion/openai.hpp"
#include "chorus/fusion/plan.hpp"
#include "chorus/fusion/remote_member.hpp"
#include "chorus/server/http.hpp"
#include "chorus/server/metrics.hpp"
#include "chorus/server/options.hpp"

namespace chorus::inline CHORUS_ABI::server {

// A model the server answers for under `name`, with the settings a request does not override.
struct served_model {
  std::string name;
  std::shared_ptr<fusion::local_model> model;
  fusion::local_member_options defaults;  // sampling, max_tokens, stop strings, system prompt
};

// A fusion the server answers for as "fusion/<name>".
struct served_fusion {
  std::string name;
  fusion::plan plan;
  std::string description;  // shown in /v1/models (the spec it was made from)
};

namespace detail {

// The tokens one streamed request produces, handed from the batcher's thread to the
// connection's executor: appended under a short lock, and one wake-up posted per batch of
// tokens (not per token when the writer is behind).
class token_relay : public std::enable_shared_from_this<token_relay> {
 public:
  struct piece {
    std::size_t sample;
    std::int32_t id;
    float logprob;
    std::size_t text_at, text_size;
    std::size_t top_at, top_size;
  };

  explicit token_relay(asio::any_io_executor ex) : wake(ex), executor_(std::move(ex)) {
    wake.expires_at(std::chrono::steady_clock::time_point::max());
    pieces_.reserve(256);
    text_.reserve(4096);
  }

  static void on_token(void* self, std::string_view, std::size_t sample, const generate::token_event& e) {
    static_cast<token_relay*>(self)->push(sample, e);
  }

  // Takes what came since the last call (the buffers are swapped, not copied).
  bool take(std::vector<piece>& pieces, std::string& text, std::vector<sample::token_logprob>& top) {
    pieces.clear();
    text.clear();
    top.clear();
    std::lock_guard lock(mutex_);
    pieces.swap(pieces_);
    text.swap(text_);
    top.swap(top_);
    notified_ = false;
    return !pieces.empty();
  }
  bool pending() {
    std::lock_guard lock(mutex_);
    return !pieces_.empty();
  }

  asio::steady_timer wake;  // cancelled to wake the writer (on the connection's executor)

 private:
  void push(std::size_t sample, const generate::token_event& e) {
    bool notify = false;
    {
      std::lock_guard lock(mutex_);
      pieces_.push_back({sample, e.id, e.logprob, text_.size(), e.text.size(), top_.size(), e.top.size()});
      text_.append(e.text);
      top_.insert(top_.end(), e.top.begin(), e.top.end());
      notify = !std::exchange(notified_, true);
    }
    if (notify) asio::post(executor_, [self = shared_from_this()] { self->wake.cancel(); });
  }

  asio::any_io_executor executor_;
  std::mutex mutex_;
  std::vector<piece> pieces_;
  std::string text_;
  std::vector<sample::token_logprob> top_;
  bool notified_ = false;
};

// Completion of a background job (the members' generation), seen from the connection.
template <class T>
struct job_state {
  explicit job_state(asio::any_io_executor ex) : wake(std::move(ex)) { wake.expires_at(std::chrono::steady_clock::time_point::max()); }
  asio::steady_timer wake;
  bool done = false;
  std::optional<T> value;
  std::exception_ptr failure;
};

inline std::string hex_id(std::uint64_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, n >>= 4) s[static_cast<std::size_t>(i)] = digits[n & 15];
  return s;
}

// Constant-time comparison of an API key (the time taken says nothing about how much matched).
inline bool same_key(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace detail

class service {
 public:
  service(server_options options, metrics& stats)
      : options_(std::move(options)), stats_(stats), ids_(std::random_device{}()) {}

  const server_options& options() const noexcept { return options_; }
  metrics& stats() noexcept { return stats_; }

  // Registers a model or a fusion; before set_ready() (the routes read the tables without a lock).
  void add_model(served_model m) {
    if (ready()) fail(errc::invalid_argument, "server: add models before the server is ready");
    if (m.name.empty() || m.name.starts_with("fusion/")) fail(errc::invalid_argument, "server: model name '", m.name, "' is empty or starts with fusion/");
    if (!m.model) fail(errc::invalid_argument, "server: model ", m.name, " has no loaded model");
    if (models_.count(m.name) != 0) fail(errc::invalid_argument, "server: two models are named ", m.name);
    auto slot = std::make_unique<model_slot>();
    slot->limit = m.model->batch().capacity() + options_.max_queued;
    slot->served = std::move(m);
    slot->served.defaults.name = slot->served.name;
    models_.emplace(slot->served.name, std::move(slot));
  }
  void add_fusion(served_fusion f) {
    if (ready()) fail(errc::invalid_argument, "server: add fusions before the server is ready");
    if (f.name.empty()) fail(errc::invalid_argument, "server: a fusion has no name");
    f.plan.validate();
    if (fusions_.count(f.name) != 0) fail(errc::invalid_argument, "server: two fusions are named ", f.name);
    fusions_.emplace(f.name, std::move(f));
  }
  // From now on the routes answer (before: 503, /health says "loading").
  void set_ready() { ready_.store(true, std::memory_order_release); }

  // Shutting down: new requests get 503, and every generation in flight is cancelled (its
  // sequences stop between two tokens; the answers end as the client's would on disconnect).
  void shut_down() {
    stopping_.store(true, std::memory_order_release);
    std::lock_guard lock(running_mutex_);
    for (auto& weak : running_) {
      if (auto s = weak.lock()) s->request_stop();
    }
  }
  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }

  std::vector<std::string> model_names() const {
    std::vector<std::string> out;
    for (const auto& [name, _] : models_) out.push_back(name);
    return out;
  }

  // One request: answers it and says whether the connection may carry another.
  template <class Stream>
  asio::awaitable<bool> handle(connection<Stream>& c, http_request& req) {
    const auto start = std::chrono::steady_clock::now();
    std::string_view target(req.target().data(), req.target().size());
    if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const std::string route = route_name(target);
    stats_.in_flight.fetch_add(1, std::memory_order_relaxed);
    unsigned status = 500;
    bool keep = true;
    std::optional<reply> broke;
    try {
      outcome o = co_await dispatch(c, req, target, route);
      status = o.status;
      keep = o.keep;
    } catch (const std::exception& e) {
      // Nothing should get here; if it does, the client still gets an answer (unless the
      // stream had begun) and the connection closes.
      broke = error_reply(500, std::string("internal error: ") + e.what(), "server_error", "internal_error");
    }
    if (broke) {
      status = 500;
      keep = false;
      if (!c.broken()) co_await c.send(*broke, false);
    }
    stats_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    stats_.count_request(route, status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    co_return keep;
  }

 private:
  struct model_slot {
    served_model served;
    std::size_t limit = 0;
    std::atomic<std::size_t> admitted{0};
  };
  struct outcome {
    unsigned status;
    bool keep;
  };
  // Keeps a request's stop source where shut_down() finds it, while the request runs.
  class registration {
   public:
    registration(service& s, std::shared_ptr<std::stop_source> stop) : owner_(s), stop_(stop) {
      std::lock_guard lock(owner_.running_mutex_);
      std::erase_if(owner_.running_, [](const std::weak_ptr<std::stop_source>& w) { return w.expired(); });
      owner_.running_.push_back(stop);
      if (owner_.stopping_.load(std::memory_order_acquire)) stop->request_stop();
    }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    ~registration() {
      std::lock_guard lock(owner_.running_mutex_);
      std::erase_if(owner_.running_, [this](const std::weak_ptr<std::stop_source>& w) { return w.expired() || w.lock() == stop_; });
    }

   private:
    service& owner_;
    std::shared_ptr<std::stop_source> stop_;
  };
  // Releases admitted sequences when a request ends, however it ends.
  struct admission {
    std::atomic<std::size_t>* counter = nullptr;
    std::size_t n = 0;
    admission() = default;
    admission(std::atomic<std::size_t>* c, std::size_t k) : counter(c), n(k) {}
    admission(admission&& o) noexcept : counter(std::exchange(o.counter, nullptr)), n(o.n) {}
    admission& operator=(admission&&) = delete;
    ~admission() {
      if (counter) counter->fetch_sub(n, std::memory_order_acq_rel);
    }
  };
  // A request's error before any byte of the answer was written.
  struct rejection {
    reply r;
  };

  static std::string route_name(std::string_view target) {
    if (target == "/health") return "health";
    if (target == "/v1/models" || target == "/models") return "models";
    if (target == "/v1/chat/completions" || target == "/chat/completions") return "chat";
    if (target == "/metrics") return "metrics";
    return "other";
  }

  template <class Stream>
  asio::awaitable<outcome> answer(connection<Stream>& c, const reply& r, bool keep = true) {
    const bool sent = co_await c.send(r, keep);
    co_return outcome{r.status, sent && keep && !r.close};
  }

  template <class Stream>
  asio::awaitable<outcome> dispatch(connection<Stream>& c, http_request& req, std::string_view target, const std::string& route) {
    const auto method = req.method();
    if (route == "health") {
      if (method != http::verb::get && method != http::verb::head) {
      const reply answer_ = not_allowed("GET");
      co_return co_await answer(c, answer_);
    }
      if (!ready()) {
        reply r = error_reply(503, "loading models", "server_error", "loading");
        r.body = dump(json{{"status", "loading"}, {"error", {{"message", "loading models"}, {"type", "server_error"}, {"param", nullptr}, {"code", "loading"}}}});
        r.headers.push_back({"Retry-After", "1"});
        co_return co_await answer(c, r);
      }
      {
      const reply answer_ = reply{200, dump(json{{"status", "ok"}})};
      co_return co_await answer(c, answer_);
    }
    }
    if (!options_.api_keys.empty() && !authorized(req)) {
      reply r = error_reply(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'", "invalid_request_error", "invalid_api_key");
      r.headers.push_back({"WWW-Authenticate", "Bearer"});
      co_return co_await answer(c, r);
    }
    if (route == "metrics") {
      if (method != http::verb::get) {
      const reply answer_ = not_allowed("GET");
      co_return co_await answer(c, answer_);
    }
      reply r{200, stats_.prometheus(gauges()), "text/plain; version=0.0.4"};
      co_return co_await answer(c, r);
    }
    if (route == "other") {
      {
      const reply answer_ = error_reply(404, "no route " + std::string(target) + " (routes: GET /health, GET /v1/models, POST /v1/chat/completions, GET /metrics)",
                                               "invalid_request_error", "not_found");
      co_return co_await answer(c, answer_);
    }
    }
    if (stopping_.load(std::memory_order_acquire)) {
      reply r = error_reply(503, "the server is shutting down", "server_error", "shutting_down");
      r.close = true;
      co_return co_await answer(c, r);
    }
    if (!ready()) {
      reply r = error_reply(503, "the server is still loading its models", "server_error", "loading");
      r.headers.push_back({"Retry-After", "1"});
      co_return co_await answer(c, r);
    }
    if (route == "models") {
      if (method != http::verb::get) {
      const reply answer_ = not_allowed("GET");
      co_return co_await answer(c, answer_);
    }
      {
      const reply answer_ = reply{200, dump(models_json())};
      co_return co_await answer(c, answer_);
    }
    }
    // chat
    if (method != http::verb::post) {
      const reply answer_ = not_allowed("POST");
      co_return co_await answer(c, answer_);
    }
    co_return co_await chat(c, req);
  }

  static reply not_allowed(std::string_view allow) {
    reply r = error_reply(405, "method not allowed here; use " + std::string(allow), "invalid_request_error", "method_not_allowed");
    r.headers.push_back({"Allow", std::string(allow)});
    return r;
  }

  bool authorized(const http_request& req) const {
    const auto h = req[http::field::authorization];
    std::string_view v(h.data(), h.size());
    if (!v.starts_with("Bearer ")) return false;
    v.remove_prefix(7);
    bool ok = false;
    for (const auto& key : options_.api_keys) ok |= detail::same_key(v, key);
    return ok;
  }

  std::vector<metrics::model_gauge> gauges() const {
    std::vector<metrics::model_gauge> out;
    if (!ready()) return out;
    for (const auto& [name, slot] : models_) {
      auto& b = slot->served.model->batch();
      out.push_back({name, b.queued(), b.running(), slot->admitted.load(std::memory_order_relaxed)});
    }
    return out;
  }

  json models_json() const {
    json data = json::array();
    const auto created = created_;
    for (const auto& [name, slot] : models_) {
      const auto& m = slot->served.model->model();
      data.push_back({{"id", name}, {"object", "model"}, {"created", created}, {"owned_by", "chorus"},
                      {"chorus", {{"kind", "model"}, {"file", m.path().filename().string()}, {"context", slot->served.model->batch().n_ctx()},
                                  {"parallel", slot->served.model->batch().capacity()}, {"chat_template", m.has_chat_template()}}}});
    }
    for (const auto& [name, f] : fusions_) {
      json members = json::array();
      for (const auto& m : f.plan.members) members.push_back(m.name());
      data.push_back({{"id", "fusion/" + name}, {"object", "model"}, {"created", created}, {"owned_by", "chorus"},
                      {"chorus", {{"kind", "fusion"}, {"mode", std::string(fusion::plan::name_of(f.plan.mode))}, {"members", std::move(members)},
                                  {"spec", f.description}}}});
    }
    return {{"object", "list"}, {"data", std::move(data)}};
  }

  std::string next_id() {
    std::lock_guard lock(id_mutex_);
    return "chatcmpl-" + detail::hex_id(ids_());
  }

  static std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  // --- POST /v1/chat/completions --------------------------------------------------------

  template <class Stream>
  asio::awaitable<outcome> chat(connection<Stream>& c, http_request& req) {
    fusion::openai::chat_completion_request ask;
    std::optional<reply> refused;
    try {
      const json body = parse_json(req.body(), "request body");
      ask = fusion::openai::parse_chat_completion(body);
    } catch (const chorus::error& e) {
      refused = error_reply(400, e.what(), "invalid_request_error", e.kind() == errc::bad_format ? "invalid_json" : "invalid_request");
    }
    if (refused) co_return co_await answer(c, *refused);
    const auto depth_header = req[fusion::fusion_depth_header];
    const bool from_a_fusion = !depth_header.empty() && depth_header != "0";
    if (ask.panel || ask.model.starts_with("fusion/")) {
      if (from_a_fusion) {
        {
      const reply answer_ = error_reply(400, "this request comes from a fusion (header " + std::string(fusion::fusion_depth_header) +
                                                          "); fusions do not start other fusions", "invalid_request_error", "fusion_recursion");
      co_return co_await answer(c, answer_);
    }
      }
      co_return co_await chat_fusion(c, ask);
    }
    const auto found = models_.find(ask.model);
    if (found == models_.end()) {
      {
      const reply answer_ = error_reply(404, "the model '" + ask.model + "' does not exist here; GET /v1/models lists what is served",
                                               "invalid_request_error", "model_not_found");
      co_return co_await answer(c, answer_);
    }
    }
    co_return co_await chat_model(c, ask, *found->second);
  }

  // Checks what can be checked before anything is written: the sampling settings, the rendering
  // through the chat template, and that the prompt fits the context.
  std::optional<reply> precheck(const fusion::local_member& member, const fusion::request& r, std::size_t n_ctx) const {
    try {
      (void)member.options_for(r);
      auto [text, path] = member.render(r);
      const bool chat = member.path() == fusion::prompt_path::chat;
      const auto ids = member.model().tokens().encode(text, true, chat);
      if (ids.size() >= n_ctx) {
        return error_reply(400, "the prompt has " + std::to_string(ids.size()) + " tokens; the model's context holds " + std::to_string(n_ctx) +
                                    " (including the answer)", "invalid_request_error", "context_length_exceeded");
      }
    } catch (const chorus::error& e) {
      return error_reply(400, e.what(), "invalid_request_error", "invalid_request");
    }
    return std::nullopt;
  }

  reply busy(std::string_view what, std::string_view reason) {
    stats_.count_rejection(reason);
    reply r = error_reply(429, std::string(what), "rate_limit_error", "rate_limit_exceeded");
    r.headers.push_back({"Retry-After", std::to_string(options_.retry_after.count())});
    return r;
  }

  template <class Stream>
  asio::awaitable<outcome> chat_model(connection<Stream>& c, fusion::openai::chat_completion_request& ask, model_slot& slot) {
    fusion::request& r = ask.request;
    const std::size_t n = r.n;
    // Admission: the batcher's slots plus a bounded queue.
    std::size_t before = slot.admitted.load(std::memory_order_relaxed);
    do {
      if (before + n > slot.limit) {
        {
      const reply answer_ = busy("model " + slot.served.name + " is at capacity (" + std::to_string(before) + " sequences running or queued, limit " +
                                              std::to_string(slot.limit) + "); retry later", "queue_full");
      co_return co_await answer(c, answer_);
    }
      }
    } while (!slot.admitted.compare_exchange_weak(before, before + n, std::memory_order_acq_rel));
    admission admitted(&slot.admitted, n);

    auto member = std::make_shared<fusion::local_member>(slot.served.model, slot.served.defaults);
    if (auto problem = precheck(*member, r, slot.served.model->batch().n_ctx())) co_return co_await answer(c, *problem);

    auto ex = co_await asio::this_coro::executor;
    auto stop = std::make_shared<std::stop_source>();
    registration registered(*this, stop);
    r.cancel = stop->get_token();
    std::shared_ptr<detail::token_relay> relay;
    if (ask.stream) {
      relay = std::make_shared<detail::token_relay>(ex);
      r.stream = {&detail::token_relay::on_token, relay.get()};
    }
    // The samples run as a panel of one member (gather asks it n times, seeds seed + k).
    auto job = std::make_shared<detail::job_state<fusion::gathered>>(ex);
    std::vector<fusion::any_member> members{fusion::any_member(member)};
    fusion::policy rule = fusion::policy::all();
    rule.minimum = 0;
    if (options_.request_timeout.count() > 0) rule = rule || fusion::policy::within(options_.request_timeout);
    rule.minimum = 0;
    auto work = [](std::vector<fusion::any_member> m, fusion::request q, fusion::policy p) -> asio::awaitable<fusion::gathered> {
      co_return co_await fusion::gather(m, std::span(&q, 1), std::move(p));
    };
    asio::co_spawn(ex, work(std::move(members), r, std::move(rule)),
                   [job, relay](std::exception_ptr e, fusion::gathered g) {
                     if (e) job->failure = e;
                     else job->value = std::move(g);
                     job->done = true;
                     job->wake.cancel();
                     if (relay) relay->wake.cancel();
                   });
    c.watch_disconnect(stop);
    const std::string id = next_id();
    const auto created = now_seconds();
    const bool with_logprobs = r.generation.logprobs || r.generation.top_logprobs > 0;

    if (!ask.stream) {
      while (!job->done) {
        boost::system::error_code ec;
        co_await job->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      c.stop_watching();
      if (c.client_gone()) co_return outcome{499, false};
      if (job->failure) {
      const reply answer_ = internal(job->failure);
      co_return co_await answer(c, answer_);
    }
      auto& candidates = job->value->candidates;
      for (const auto& cand : candidates) {
        if (cand.status == fusion::member_status::failed) {
          {
      const reply answer_ = error_reply(500, "generation failed: " + cand.error, "server_error", "generation_failed");
      co_return co_await answer(c, answer_);
    }
        }
      }
      count_tokens(slot.served.name, candidates);
      {
      const reply answer_ = reply{200, dump(fusion::openai::completion_json(id, created, slot.served.name, candidates, with_logprobs))};
      co_return co_await answer(c, answer_);
    }
    }

    // Streamed: the header now, then one event per token as the batcher makes them.
    bool writing = co_await c.start_events();
    auto event = [](std::string& out, const json& chunk) {
      out += "data: ";
      out += dump(chunk);
      out += "\n\n";
    };
    std::string out;
    for (std::size_t k = 0; k < n; ++k) {
      json choice{{"index", k}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      event(out, fusion::openai::chunk_json(id, created, slot.served.name, json::array({std::move(choice)})));
    }
    if (writing) writing = co_await c.write_chunk(out);
    std::vector<detail::token_relay::piece> pieces;
    std::string text;
    std::vector<sample::token_logprob> top;
    const auto& tok = slot.served.model->model().tokens();
    for (;;) {
      if (!relay->pending() && !job->done) {
        boost::system::error_code ec;
        co_await relay->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        relay->wake.expires_at(std::chrono::steady_clock::time_point::max());
      }
      const bool finished = job->done;  // read before taking: whatever came before the end is in this take
      if (relay->take(pieces, text, top) && writing) {
        out.clear();
        for (const auto& p : pieces) {
          if (p.text_size == 0 && !with_logprobs) continue;
          json choice{{"index", p.sample}, {"delta", {{"content", text.substr(p.text_at, p.text_size)}}}};
          if (with_logprobs && p.id >= 0) {
            fusion::token_logprob t{std::string(tok.token_to_piece(p.id)), p.logprob, {}};
            for (std::size_t j = 0; j < p.top_size; ++j) {
              const auto& alt = top[p.top_at + j];
              t.top.push_back({std::string(tok.token_to_piece(alt.id)), alt.logprob});
            }
            choice["logprobs"] = {{"content", json::array({fusion::openai::logprob_entry(t)})}};
          } else {
            choice["logprobs"] = nullptr;
          }
          choice["finish_reason"] = nullptr;
          event(out, fusion::openai::chunk_json(id, created, slot.served.name, json::array({std::move(choice)})));
        }
        if (!out.empty()) writing = co_await c.write_chunk(out);
        if (!writing) stop->request_stop();  // the client is gone: stop generating
      }
      if (finished && !relay->pending()) break;
    }
    c.stop_watching();
    if (!writing || c.client_gone()) {
      stop->request_stop();
      co_return outcome{499, false};
    }
    out.clear();
    if (job->failure) {
      event(out, fusion::openai::error_json("internal error", "server_error", "internal_error"));
    } else {
      auto& candidates = job->value->candidates;
      for (const auto& cand : candidates) {
        if (cand.status == fusion::member_status::failed) {
          event(out, fusion::openai::error_json("generation failed: " + cand.error, "server_error", "generation_failed"));
        }
        json choice{{"index", cand.sample}, {"delta", json::object()}, {"logprobs", nullptr},
                    {"finish_reason", std::string(fusion::openai::finish_reason_name(cand))}};
        event(out, fusion::openai::chunk_json(id, created, slot.served.name, json::array({std::move(choice)})));
      }
      if (ask.include_usage) {
        std::size_t prompt = 0, completion = 0;
        for (const auto& cand : candidates) {
          prompt = std::max(prompt, cand.tokens.prompt_tokens);
          completion += cand.tokens.completion_tokens;
        }
        json chunk = fusion::openai::chunk_json(id, created, slot.served.name, json::array());
        chunk["usage"] = fusion::openai::usage_json(prompt, completion);
        event(out, chunk);
      }
      count_tokens(slot.served.name, candidates);
    }
    out += "data: [DONE]\n\n";
    writing = co_await c.write_chunk(out);
    if (writing) writing = co_await c.end_events();
    co_return outcome{200, writing};
  }

  void count_tokens(const std::string& model, std::span<const fusion::candidate> candidates) {
    std::size_t prompt = 0, completion = 0;
    for (const auto& cand : candidates) {
      prompt = std::max(prompt, cand.tokens.prompt_tokens);
      completion += cand.tokens.completion_tokens;
    }
    stats_.count_tokens(model, prompt, completion);
  }

  static reply internal(std::exception_ptr e) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    return error_reply(500, "internal error: " + what, "server_error", "internal_error");
  }

  // --- fusions ----------------------------------------------------------------------------

  // A panel the request brings: {"members": ["name" | {"model": name, "seed", "temperature",
  // "top_p", "top_k", "min_p", "system", "name"}], "mode", "judge", "samples", "quorum",
  // "deadline_ms", "vote", "rounds"}. Members are models this server serves (a request cannot
  // make the server load files or call other hosts).
  fusion::plan panel_from(const json& p) const {
    using fusion::openai::detail::integer_field;
    using fusion::openai::detail::number_field;
    using fusion::openai::detail::string_field;
    fusion::plan plan;
    const auto members = p.find("members");
    if (members == p.end() || !members->is_array() || members->empty()) fail(errc::invalid_argument, "chorus_fusion.members must be a non-empty array");
    if (members->size() > 16) fail(errc::invalid_argument, "chorus_fusion.members has ", members->size(), " members (at most 16)");
    auto served = [&](const std::string& name, const std::string& where) -> const model_slot& {
      const auto it = models_.find(name);
      if (it == models_.end()) fail(errc::not_found, where, ": the model '", name, "' is not served here");
      return *it->second;
    };
    for (std::size_t i = 0; i < members->size(); ++i) {
      const json& m = (*members)[i];
      const std::string where = "chorus_fusion.members[" + std::to_string(i) + "]";
      fusion::local_member_options o;
      const model_slot* slot = nullptr;
      if (m.is_string()) {
        slot = &served(m.get<std::string>(), where);
        o = slot->served.defaults;
        o.name = slot->served.name + "#" + std::to_string(i);
      } else if (m.is_object()) {
        const auto model = m.find("model");
        if (model == m.end()) fail(errc::invalid_argument, where, ".model is missing");
        slot = &served(string_field(*model, where + ".model"), where);
        o = slot->served.defaults;
        o.name = slot->served.name + "#" + std::to_string(i);
        auto& s = o.generation.sampling;
        if (auto v = m.find("name"); v != m.end()) o.name = string_field(*v, where + ".name");
        if (auto v = m.find("seed"); v != m.end()) s.seed = static_cast<std::uint64_t>(integer_field(*v, where + ".seed", 0, std::numeric_limits<std::int64_t>::max()));
        if (auto v = m.find("temperature"); v != m.end()) s.temperature = static_cast<float>(number_field(*v, where + ".temperature", 0.0, 2.0));
        if (auto v = m.find("top_p"); v != m.end()) s.top_p = static_cast<float>(number_field(*v, where + ".top_p", 1e-6, 1.0));
        if (auto v = m.find("top_k"); v != m.end()) s.top_k = static_cast<std::int32_t>(integer_field(*v, where + ".top_k", 0, 1 << 20));
        if (auto v = m.find("min_p"); v != m.end()) s.min_p = static_cast<float>(number_field(*v, where + ".min_p", 0.0, 1.0));
        if (auto v = m.find("system"); v != m.end()) o.system_prompt = string_field(*v, where + ".system");
      } else {
        fail(errc::type_mismatch, where, " must be a model name or an object");
      }
      plan.members.emplace_back(std::make_shared<fusion::local_member>(slot->served.model, o));
    }
    if (auto v = p.find("mode"); v != p.end()) plan.mode = fusion::fusion_mode_from(string_field(*v, "chorus_fusion.mode"));
    if (auto v = p.find("judge"); v != p.end()) {
      const model_slot& j = served(string_field(*v, "chorus_fusion.judge"), "chorus_fusion.judge");
      fusion::local_member_options o = j.served.defaults;
      o.name = "judge";
      o.generation.sampling.temperature = 0.0f;
      o.generation.max_tokens = 160;
      plan.judge_model.emplace(std::make_shared<fusion::local_member>(j.served.model, o));
    }
    if (auto v = p.find("samples"); v != p.end()) plan.samples = static_cast<std::size_t>(integer_field(*v, "chorus_fusion.samples", 1, 64));
    if (auto v = p.find("quorum"); v != p.end()) plan.quorum = static_cast<std::size_t>(integer_field(*v, "chorus_fusion.quorum", 0, 1024));
    if (auto v = p.find("deadline_ms"); v != p.end()) plan.deadline = std::chrono::milliseconds(integer_field(*v, "chorus_fusion.deadline_ms", 1, 3600000));
    if (auto v = p.find("vote"); v != p.end()) plan.vote_extractor = fusion::extractor_from(string_field(*v, "chorus_fusion.vote"));
    if (auto v = p.find("agree"); v != p.end()) {
      if (v->is_string() && v->get_ref<const std::string&>() == "all") plan.unanimous = true;
      else plan.agree = static_cast<std::size_t>(integer_field(*v, "chorus_fusion.agree (\"all\" or a count)", 1, 1024));
    }
    if (auto v = p.find("rounds"); v != p.end()) plan.rounds = static_cast<int>(integer_field(*v, "chorus_fusion.rounds", 1, 8));
    plan.validate();
    return plan;
  }

  template <class Stream>
  asio::awaitable<outcome> chat_fusion(connection<Stream>& c, fusion::openai::chat_completion_request& ask) {
    std::optional<fusion::plan> own;
    const fusion::plan* plan = nullptr;
    std::string model_name = ask.model;
    if (ask.panel) {
      std::optional<reply> refused;
      try {
        own = panel_from(*ask.panel);
      } catch (const chorus::error& e) {
        refused = error_reply(e.kind() == errc::not_found ? 404 : 400, e.what(), "invalid_request_error",
                              e.kind() == errc::not_found ? "model_not_found" : "invalid_request");
      }
      if (refused) co_return co_await answer(c, *refused);
      plan = &*own;
    } else {
      const auto it = fusions_.find(ask.model.substr(7));
      if (it == fusions_.end()) {
        {
      const reply answer_ = error_reply(404, "the fusion '" + ask.model + "' does not exist here; GET /v1/models lists what is served",
                                                 "invalid_request_error", "model_not_found");
      co_return co_await answer(c, answer_);
    }
      }
      plan = &it->second.plan;
    }
    // Fusions at once are bounded: each may hold several sequences on several models.
    std::size_t before = fusions_running_.load(std::memory_order_relaxed);
    do {
      if (before >= options_.max_fusions) {
        {
      const reply answer_ = busy(std::to_string(before) + " fusions are running (limit " + std::to_string(options_.max_fusions) + "); retry later", "fusions_busy");
      co_return co_await answer(c, answer_);
    }
      }
    } while (!fusions_running_.compare_exchange_weak(before, before + 1, std::memory_order_acq_rel));
    admission admitted(&fusions_running_, 1);
    // A request the members cannot take (tools into a template without them, a prompt over the
    // context) fails in each member and shows in the report; the whole request fails only when
    // no member answers.
    auto ex = co_await asio::this_coro::executor;
    auto stop = std::make_shared<std::stop_source>();
    registration registered(*this, stop);
    fusion::request r = ask.request;
    r.cancel = stop->get_token();
    auto job = std::make_shared<detail::job_state<fusion::report>>(ex);
    auto work = [](const fusion::plan* p, std::optional<fusion::plan> keep, fusion::request q) -> asio::awaitable<fusion::report> {
      (void)keep;  // the request's own panel lives as long as its run
      fusion::report rep = co_await fusion::run(keep ? *keep : *p, std::move(q));
      co_return rep;
    };
    asio::co_spawn(ex, work(plan, std::move(own), std::move(r)), [job](std::exception_ptr e, fusion::report rep) {
      if (e) job->failure = e;
      else job->value = std::move(rep);
      job->done = true;
      job->wake.cancel();
    });
    c.watch_disconnect(stop);
    const std::string id = next_id();
    const auto created = now_seconds();
    bool writing = true;
    if (ask.stream) writing = co_await c.start_events();
    while (!job->done) {
      boost::system::error_code ec;
      if (ask.stream) job->wake.expires_after(options_.stream_keepalive);
      co_await job->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ask.stream && !job->done && writing) {
        // A comment line keeps proxies and clients from giving up, and finds a client gone.
        writing = co_await c.write_chunk(": the members are answering\n\n");
        if (!writing) stop->request_stop();
      }
    }
    c.stop_watching();
    if (!writing || c.client_gone()) co_return outcome{499, false};
    if (job->failure) {
      reply failed = internal(job->failure);
      try {
        std::rethrow_exception(job->failure);
      } catch (const chorus::error& e) {
        if (e.kind() == errc::not_enough_answers) failed = error_reply(502, e.what(), "server_error", "fusion_failed");
        else if (e.kind() == errc::invalid_argument) failed = error_reply(400, e.what(), "invalid_request_error", "invalid_request");
      } catch (...) {
      }
      if (!ask.stream) co_return co_await answer(c, failed);
      std::string out = "data: " + failed.body + "\n\ndata: [DONE]\n\n";
      writing = co_await c.write_chunk(out) && co_await c.end_events();
      co_return outcome{failed.status, writing};
    }
    fusion::report& rep = *job->value;
    fusion::candidate fused;
    fused.text = rep.verdict.answer;
    fused.tool_calls = rep.verdict.tool_calls;
    if (rep.verdict.chosen && *rep.verdict.chosen < rep.members.size()) fused.finish = rep.members[*rep.verdict.chosen].finish;
    std::size_t prompt = 0, completion = 0;
    for (const auto& m : rep.members) {
      prompt += m.tokens.prompt_tokens;
      completion += m.tokens.completion_tokens;
      if (!m.path.starts_with("remote")) stats_.count_tokens(m.member, m.tokens.prompt_tokens, m.tokens.completion_tokens);
    }
    fused.tokens = {prompt, completion};
    json report = rep.to_json();
    if (!ask.stream) {
      json body = fusion::openai::completion_json(id, created, model_name, std::span(&fused, 1), false);
      body["chorus_fusion"] = std::move(report);
      {
      const reply answer_ = reply{200, dump(body)};
      co_return co_await answer(c, answer_);
    }
    }
    std::string out;
    auto event = [&out](const json& chunk) {
      out += "data: ";
      out += dump(chunk);
      out += "\n\n";
    };
    json delta{{"role", "assistant"}, {"content", fused.text}};
    if (!fused.tool_calls.empty()) {
      json calls = fusion::openai::tool_calls_json(fused.tool_calls);
      for (std::size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = i;
      delta["tool_calls"] = std::move(calls);
    }
    event(fusion::openai::chunk_json(id, created, model_name, json::array({json{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", nullptr}}})));
    json last = fusion::openai::chunk_json(id, created, model_name, json::array({json{{"index", 0}, {"delta", json::object()}, {"logprobs", nullptr},
                                                                                     {"finish_reason", std::string(fusion::openai::finish_reason_name(fused))}}}));
    last["chorus_fusion"] = std::move(report);
    event(last);
    if (ask.include_usage) {
      json chunk = fusion::openai::chunk_json(id, created, model_name, json::array());
      chunk["usage"] = fusion::openai::usage_json(prompt, completion);
      event(chunk);
    }
    out += "data: [DONE]\n\n";
    writing = co_await c.write_chunk(out);
    if (writing) writing = co_await c.end_events();
    co_return outcome{200, writing};
  }

  server_options options_;
  metrics& stats_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::mutex running_mutex_;
  std::vector<std::weak_ptr<std::stop_source>> running_;
  std::map<std::string, std::unique_ptr<model_slot>, std::less<>> models_;
  std::map<std::string, served_fusion, std::less<>> fusions_;
  std::atomic<std::size_t> fusions_running_{0};
  std::mutex id_mutex_;
  std::mt19937_64 ids_;
  std::int64_t created_ = now_seconds();
};

}  // namespace chorus::inline CHORUS_ABI::server
