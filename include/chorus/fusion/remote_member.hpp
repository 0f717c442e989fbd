// chorus — a fusion member served elsewhere: any OpenAI-compatible chat-completions endpoint
// (another machine's `chorus serve`, llama.cpp's llama-server, vLLM, Ollama, OpenRouter).
//
// One remote_endpoint per base URL holds what its members share: the TLS context (certificates
// verified by default, against the system's CAs or a given CA file), keep-alive connections for
// reuse (cached by the io_context they belong to), and a cap on requests in flight (the rest
// wait their turn). A remote_member asks
// one model there: each call is one HTTP request (streamed or not) under a deadline, retried
// with backoff on 429, 5xx and connection failures (a 429's Retry-After is honoured). Whatever
// goes wrong ends as a candidate that says why (failed, timed out, cancelled), never as an
// exception out of answer(): a remote failure degrades the panel, it does not fail the fusion.
// The API key comes from an environment variable and appears in no report, error or log.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <atomic>
#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/parse_json.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/openai.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

namespace beast = boost::beast;
namespace http = boost::beast::http;

// The header a fusion's remote calls carry: a chorus server refuses to start a fusion for a
// request that has it (fusions do not recurse across machines).
inline constexpr std::string_view fusion_depth_header = "x-chorus-fusion-depth";

// "http://host:port/v1" -> its parts. The path is the API's base; "/chat/completions" follows.
struct endpoint_url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base_path;  // without a trailing '/'

  static endpoint_url parse(std::string_view url) {
    endpoint_url u;
    std::string_view rest;
    if (url.starts_with("http://")) {
      rest = url.substr(7);
    } else if (url.starts_with("https://")) {
      u.tls = true;
      rest = url.substr(8);
    } else {
      fail(errc::invalid_argument, "remote member: URL '", url, "' must start with http:// or https://");
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    u.base_path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
    while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
    if (authority.find('@') != std::string_view::npos) {
      fail(errc::invalid_argument, "remote member: URL '", url, "' carries credentials; give the API key through an environment variable");
    }
    if (authority.starts_with("[")) {  // [::1]:8080
      const auto close = authority.find(']');
      if (close == std::string_view::npos) fail(errc::invalid_argument, "remote member: URL '", url, "' has an unclosed IPv6 address");
      u.host = std::string(authority.substr(1, close - 1));
      authority.remove_prefix(close + 1);
      if (authority.starts_with(":")) u.port = std::string(authority.substr(1));
    } else {
      const auto colon = authority.rfind(':');
      u.host = std::string(authority.substr(0, colon));
      if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
    }
    if (u.host.empty()) fail(errc::invalid_argument, "remote member: URL '", url, "' names no host");
    if (u.port.empty()) u.port = u.tls ? "443" : "80";
    for (const char c : u.port) {
      if (c < '0' || c > '9') fail(errc::invalid_argument, "remote member: URL '", url, "' has a port that is not a number");
    }
    return u;
  }
  std::string origin() const { return std::string(tls ? "https://" : "http://") + host + ":" + port; }
  std::string host_header() const {
    const bool v6 = host.find(':') != std::string::npos;
    const std::string h = v6 ? "[" + host + "]" : host;
    return (port == (tls ? "443" : "80")) ? h : h + ":" + port;
  }
};

struct endpoint_options {
  std::string url;                 // http[s]://host[:port]/base, e.g. http://10.0.0.2:8080/v1
  std::size_t max_in_flight = 4;   // requests at once to this endpoint; more wait their turn
  std::size_t max_idle = 8;        // keep-alive connections kept for reuse
  bool verify_certificate = true;  // https: the server's certificate and host name are checked
  std::string ca_file;             // https: a PEM file of CAs to trust (besides the system's)
};

// One connection to an endpoint: plain or TLS, with the bytes read past the last response.
struct remote_connection {
  using tls_stream = beast::ssl_stream<beast::tcp_stream>;
  std::variant<std::unique_ptr<beast::tcp_stream>, std::unique_ptr<tls_stream>> stream;
  beast::flat_buffer buffer;
  std::size_t uses = 0;
  beast::tcp_stream& lowest() {
    if (auto* p = std::get_if<0>(&stream)) return **p;
    return beast::get_lowest_layer(*std::get<1>(stream));
  }
};

namespace detail {

// Idle keep-alive connections, kept by the io_context they belong to (an Asio service of it):
// a socket must not outlive its io_context, so the cache goes when the context does, whatever
// the endpoints' lifetimes. Keyed by endpoint id.
class idle_connection_cache : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  explicit idle_connection_cache(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  std::unique_ptr<remote_connection> take(std::uint64_t endpoint) {
    std::lock_guard lock(mutex_);
    for (auto it = idle_.find(endpoint); it != idle_.end() && it->first == endpoint;) {
      auto c = std::move(it->second);
      it = idle_.erase(it);
      if (c->lowest().socket().is_open()) return c;
    }
    return nullptr;
  }
  void put(std::uint64_t endpoint, std::unique_ptr<remote_connection> c, std::size_t max_idle) {
    std::lock_guard lock(mutex_);
    if (idle_.count(endpoint) < max_idle) idle_.emplace(endpoint, std::move(c));
  }

 private:
  void shutdown() override {
    std::lock_guard lock(mutex_);
    idle_.clear();
  }
  std::mutex mutex_;
  std::multimap<std::uint64_t, std::unique_ptr<remote_connection>> idle_;
};

inline std::uint64_t next_endpoint_id() {
  static std::atomic<std::uint64_t> n{0};
  return ++n;
}

}  // namespace detail

// What the members of one base URL share. Thread-safe (members on several executors may use it).
class remote_endpoint {
 public:
  using tcp = asio::ip::tcp;
  using tls_stream = remote_connection::tls_stream;
  using connection = remote_connection;

  explicit remote_endpoint(endpoint_options o) : options_(std::move(o)), url_(endpoint_url::parse(options_.url)) {
    if (options_.max_in_flight == 0) fail(errc::invalid_argument, "remote endpoint ", url_.origin(), ": max_in_flight must be at least 1");
    if (url_.tls) {
      tls_.emplace(asio::ssl::context::tls_client);
      tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3);
      boost::system::error_code ec;
      tls_->set_default_verify_paths(ec);  // the system's CAs; a missing store leaves only ca_file
      if (!options_.ca_file.empty()) {
        tls_->load_verify_file(options_.ca_file, ec);
        if (ec) fail(errc::file_unreadable, "remote endpoint ", url_.origin(), ": CA file ", options_.ca_file, ": ", ec.message());
      }
      tls_->set_verify_mode(options_.verify_certificate ? asio::ssl::verify_peer : asio::ssl::verify_none);
    }
  }

  const endpoint_url& url() const noexcept { return url_; }
  const endpoint_options& options() const noexcept { return options_; }
  std::size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  std::size_t connections_opened() const {
    std::lock_guard lock(mutex_);
    return opened_;
  }

  // A turn under the in-flight cap, released when the returned object goes. Waits (cancellably:
  // `cancelled` is checked when woken) while the cap is reached.
  class turn {
   public:
    turn() = default;
    explicit turn(remote_endpoint* e) : owner_(e) {}
    turn(turn&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
    turn& operator=(turn&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
      }
      return *this;
    }
    ~turn() { release(); }
    void release() {
      if (owner_) std::exchange(owner_, nullptr)->release_turn();
    }

   private:
    remote_endpoint* owner_ = nullptr;
  };

  // Waits for a turn until `deadline`; the timer is the waiter's own. nullopt when the deadline
  // passed or cancel_wait() stopped the wait.
  asio::awaitable<std::optional<turn>> acquire(asio::steady_timer& wake, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      std::shared_ptr<waiter> w;
      {
        std::lock_guard lock(mutex_);
        if (in_flight_ < options_.max_in_flight) {
          ++in_flight_;
          co_return turn(this);
        }
        w = std::make_shared<waiter>(waiter{wake.get_executor(), &wake});
        waiting_.push_back(w);
      }
      boost::system::error_code ec;
      wake.expires_at(deadline);
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      bool leave = false;
      {
        std::lock_guard lock(mutex_);
        w->timer = nullptr;  // the timer may die once we return
        std::erase(waiting_, w);
        leave = w->cancelled || std::chrono::steady_clock::now() >= deadline;
        // A wake-up meant for us that we do not use goes to the next in line.
        if (leave && w->notified) wake_next_locked();
      }
      if (leave) co_return std::nullopt;
    }
  }

  // Stops a waiter (from its own executor): its acquire() returns nullopt.
  void cancel_wait(asio::steady_timer& wake) {
    std::lock_guard lock(mutex_);
    for (auto& w : waiting_) {
      if (w->timer == &wake) w->cancelled = true;
    }
    wake.cancel();
  }

  // An idle connection of `ex`'s io_context to reuse, or none.
  std::unique_ptr<connection> reuse(const asio::any_io_executor& ex) {
    return asio::use_service<detail::idle_connection_cache>(asio::query(ex, asio::execution::context)).take(id_);
  }
  // A connection whose last response left it reusable goes back to its io_context's cache.
  void give_back(const asio::any_io_executor& ex, std::unique_ptr<connection> c) {
    if (options_.max_idle == 0) return;
    asio::use_service<detail::idle_connection_cache>(asio::query(ex, asio::execution::context)).put(id_, std::move(c), options_.max_idle);
  }

  // A new connection (resolved, connected, TLS handshake with SNI and host-name check), before `deadline`.
  asio::awaitable<std::unique_ptr<connection>> open(std::chrono::steady_clock::time_point deadline) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto c = std::make_unique<connection>();
    auto tcp_stream = std::make_unique<beast::tcp_stream>(ex);
    tcp_stream->expires_at(deadline);
    const auto hosts = co_await resolver.async_resolve(url_.host, url_.port, asio::use_awaitable);
    co_await tcp_stream->async_connect(hosts, asio::use_awaitable);
    tcp_stream->socket().set_option(tcp::no_delay(true));
    if (!url_.tls) {
      c->stream = std::move(tcp_stream);
    } else {
      auto s = std::make_unique<tls_stream>(std::move(*tcp_stream), *tls_);
      if (!SSL_set_tlsext_host_name(s->native_handle(), url_.host.c_str())) {
        fail(errc::network, "remote endpoint ", url_.origin(), ": cannot set the TLS server name");
      }
      if (options_.verify_certificate) s->set_verify_callback(asio::ssl::host_name_verification(url_.host));
      beast::get_lowest_layer(*s).expires_at(deadline);
      co_await s->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      c->stream = std::move(s);
    }
    {
      std::lock_guard lock(mutex_);
      ++opened_;
    }
    co_return c;
  }

 private:
  struct waiter {
    asio::any_io_executor executor;
    asio::steady_timer* timer;
    bool cancelled = false;
    bool notified = false;
  };

  void release_turn() {
    std::lock_guard lock(mutex_);
    --in_flight_;
    wake_next_locked();
  }
  // Wakes the first waiter not yet woken, on its own executor (a timer is not thread-safe).
  void wake_next_locked() {
    for (auto& w : waiting_) {
      if (w->timer && !w->cancelled && !w->notified) {
        w->notified = true;
        asio::post(w->executor, [w] {
          if (w->timer) w->timer->cancel();
        });
        return;
      }
    }
  }

  endpoint_options options_;
  endpoint_url url_;
  std::optional<asio::ssl::context> tls_;
  mutable std::mutex mutex_;
  std::size_t in_flight_ = 0;
  std::size_t opened_ = 0;
  std::deque<std::shared_ptr<waiter>> waiting_;
  std::uint64_t id_ = detail::next_endpoint_id();
};

struct remote_member_options {
  std::string model;                // the model name the endpoint knows
  std::string name;                 // in the report; default: model@host:port
  std::string api_key_env;          // environment variable holding the API key (sent as Bearer)
  bool stream = false;              // ask for server-sent events (tokens reach request.stream as they come)
  std::chrono::milliseconds timeout{120000};  // per call, retries included
  int retries = 2;                  // extra attempts after a 429, a 5xx or a connection failure
  std::chrono::milliseconds backoff{250};     // before retry k: backoff * 2^k (or the server's Retry-After)
  std::size_t max_response = 16u << 20;       // bytes of one answer
  generation_options defaults;      // what this member sets where the request leaves a field unset
  std::string system_prompt;        // this member's instructions, before the request's own
};

class remote_member {
 public:
  remote_member(std::shared_ptr<remote_endpoint> endpoint, remote_member_options options)
      : endpoint_(std::move(endpoint)), options_(std::move(options)) {
    if (!endpoint_) fail(errc::invalid_argument, "remote member: no endpoint");
    if (options_.model.empty()) fail(errc::invalid_argument, "remote member ", endpoint_->url().origin(), ": no model name");
    if (options_.retries < 0 || options_.retries > 10) fail(errc::invalid_argument, "remote member: retries must be in [0, 10]");
    if (options_.name.empty()) options_.name = options_.model + "@" + endpoint_->url().host_header();
    if (!options_.api_key_env.empty()) {
      const char* key = std::getenv(options_.api_key_env.c_str());
      if (key == nullptr || *key == '\0') {
        fail(errc::invalid_argument, "remote member ", options_.name, ": environment variable ", options_.api_key_env, " is not set");
      }
      api_key_ = key;
    }
  }

  std::string name() const { return options_.name; }
  const remote_endpoint& endpoint() const noexcept { return *endpoint_; }
  const remote_member_options& options() const noexcept { return options_; }

  // The body this member sends for `r` (one sample; the member's defaults under the request's).
  json body_for(const request& r) const {
    request ask = r;
    auto& g = ask.generation;
    const auto& d = options_.defaults;
    if (!g.max_tokens) g.max_tokens = d.max_tokens;
    if (!g.temperature) g.temperature = d.temperature;
    if (!g.top_p) g.top_p = d.top_p;
    if (!g.top_k) g.top_k = d.top_k;
    if (!g.min_p) g.min_p = d.min_p;
    if (!g.seed) g.seed = d.seed;
    if (!options_.system_prompt.empty()) {
      if (!ask.messages.empty() && ask.messages.front().role == "system") {
        ask.messages.front().content = options_.system_prompt + "\n\n" + ask.messages.front().content;
      } else {
        ask.messages.insert(ask.messages.begin(), chat_message{"system", options_.system_prompt});
      }
    }
    json body = openai::to_json(ask, options_.model, options_.stream);
    // Always ask for the tokens' log-probabilities: the confidence judges rank members by them
    // (a remote answer without them would read as certain). Kept in the candidate only when the
    // request asked.
    body["logprobs"] = true;
    return body;
  }

  asio::awaitable<candidate> answer(const request& r) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + options_.timeout;
    auto ex = co_await asio::this_coro::executor;
    candidate c;
    c.member = options_.name;
    c.sample = r.sample;
    c.path = options_.stream ? "remote (stream)" : "remote";
    auto cancel = std::make_shared<cancel_state>(ex);
    // The caller's cancellation (a client gone) arrives on any thread: hop to ours.
    std::optional<std::stop_callback<std::function<void()>>> caller_stop;
    if (r.cancel.stop_possible()) {
      caller_stop.emplace(r.cancel, std::function<void()>([cancel, e = endpoint_] {
        asio::post(cancel->executor, [cancel, e] { cancel->trigger(*e); });
      }));
    }
    std::string body;
    try {
      body = body_for(r).dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const std::exception& e) {
      co_return failed(std::move(c), member_status::failed, e.what(), start);
    }
    std::string last_problem;
    for (int attempt = 0;; ++attempt) {
      attempt_result a = co_await attempt_once(r, body, deadline, *cancel);
      if (a.kind == outcome::answered) {
        candidate got = std::move(a.answer);
        if (!r.generation.logprobs && r.generation.top_logprobs == 0) got.logprobs.clear();  // mean_logprob stays
        got.member = options_.name;
        got.sample = r.sample;
        got.compute_ms = elapsed(start);
        if (attempt > 0) got.path += " after " + std::to_string(attempt) + " retr" + (attempt == 1 ? "y" : "ies");
        co_return got;
      }
      if (a.kind == outcome::cancelled || cancel->cancelled || (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
        co_return failed(std::move(c), member_status::cancelled, "cancelled", start, std::move(a.answer));
      }
      last_problem = a.problem;
      if (a.kind == outcome::timed_out || std::chrono::steady_clock::now() >= deadline) {
        co_return failed(std::move(c), member_status::timed_out, "timed out after " + std::to_string(options_.timeout.count()) +
                                                                   " ms" + (last_problem.empty() ? "" : " (" + last_problem + ")"), start);
      }
      if (a.kind == outcome::final_failure || attempt >= options_.retries) {
        const std::string tries = attempt > 0 ? " (after " + std::to_string(attempt + 1) + " attempts)" : "";
        co_return failed(std::move(c), member_status::failed, last_problem + tries, start, std::move(a.answer));
      }
      // Back off before the next attempt: the server's Retry-After when it gave one.
      auto wait = options_.backoff * (1 << attempt);
      if (a.retry_after) wait = std::min<std::chrono::milliseconds>(*a.retry_after, std::chrono::milliseconds(30000));
      const auto until = std::min(deadline, std::chrono::steady_clock::now() + wait);
      boost::system::error_code ec;
      asio::steady_timer pause(ex);
      cancel->timer = &pause;
      pause.expires_at(until);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      cancel->timer = nullptr;
      if (cancel->cancelled || (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
        co_return failed(std::move(c), member_status::cancelled, "cancelled", start);
      }
    }
  }

 private:
  enum class outcome { answered, retry, final_failure, timed_out, cancelled };
  struct attempt_result {
    outcome kind = outcome::final_failure;
    std::string problem;
    candidate answer;  // what a broken stream had delivered, or the answer
    std::optional<std::chrono::milliseconds> retry_after;
  };

  // What the caller's cancellation reaches: the connection in use, the wait for a turn, a pause.
  struct cancel_state {
    explicit cancel_state(asio::any_io_executor e) : executor(std::move(e)) {}
    asio::any_io_executor executor;
    bool cancelled = false;
    remote_endpoint::connection* conn = nullptr;
    asio::steady_timer* turn_wait = nullptr;
    asio::steady_timer* timer = nullptr;
    void trigger(remote_endpoint& e) {
      cancelled = true;
      if (conn) conn->lowest().cancel();
      if (turn_wait) e.cancel_wait(*turn_wait);
      if (timer) timer->cancel();
    }
  };

  static double elapsed(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
  }

  static candidate failed(candidate c, member_status status, std::string why, std::chrono::steady_clock::time_point start,
                          candidate partial = {}) {
    c.text = std::move(partial.text);
    c.tokens = partial.tokens;
    c.status = status;
    c.finish = status == member_status::cancelled ? finish_reason::cancelled : finish_reason::error;
    c.error = std::move(why);
    c.compute_ms = elapsed(start);
    return c;
  }

  static bool retryable_status(unsigned status) { return status == 429 || status == 408 || (status >= 500 && status <= 599); }

  // The message of an OpenAI-style error body, or the start of the body.
  static std::string error_message_of(std::string_view body) {
    try {
      const json j = parse_json(body, "error body");
      if (j.is_object() && j.contains("error")) {
        const json& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
        if (e.is_string()) return e.get<std::string>();
      }
    } catch (const chorus::error&) {
    }
    std::string head(body.substr(0, 160));
    for (char& ch : head) {
      if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    }
    return head;
  }

  asio::awaitable<attempt_result> attempt_once(const request& r, const std::string& body,
                                               std::chrono::steady_clock::time_point deadline, cancel_state& cancel) {
    attempt_result out;
    auto ex = co_await asio::this_coro::executor;
    // A turn under the endpoint's cap, waited for until the deadline.
    asio::steady_timer turn_wait(ex);
    cancel.turn_wait = &turn_wait;
    std::optional<remote_endpoint::turn> my_turn = co_await endpoint_->acquire(turn_wait, deadline);
    cancel.turn_wait = nullptr;
    if (!my_turn) {
      const bool late = std::chrono::steady_clock::now() >= deadline;
      out.kind = late ? outcome::timed_out : outcome::cancelled;
      out.problem = late ? "waited for a free slot at " + endpoint_->url().origin() + " past the deadline" : "cancelled";
      co_return out;
    }
    if (cancel.cancelled) {
      out.kind = outcome::cancelled;
      co_return out;
    }
    // A connection: a reused one may have been closed by the server meanwhile; then one fresh try.
    for (int fresh = 0; fresh < 2; ++fresh) {
      std::unique_ptr<remote_endpoint::connection> conn = fresh == 0 ? endpoint_->reuse(ex) : nullptr;
      const bool reused = conn != nullptr;
      if (!conn) {
        try {
          conn = co_await endpoint_->open(deadline);
        } catch (const boost::system::system_error& e) {
          // A certificate that does not verify will not verify on a retry either.
          const bool tls_refused = e.code().category() == asio::error::get_ssl_category();
          out.kind = std::chrono::steady_clock::now() >= deadline ? outcome::timed_out
                     : cancel.cancelled                           ? outcome::cancelled
                     : tls_refused                                ? outcome::final_failure
                                                                  : outcome::retry;
          out.problem = "cannot connect to " + endpoint_->url().origin() + ": " + e.code().message();
          co_return out;
        } catch (const std::exception& e) {
          out.kind = outcome::retry;
          out.problem = "cannot connect to " + endpoint_->url().origin() + ": " + e.what();
          co_return out;
        }
      }
      cancel.conn = conn.get();
      bool stale = false;
      if (auto* plain = std::get_if<0>(&conn->stream)) {
        co_await exchange(**plain, *conn, r, body, deadline, cancel, reused, out, stale);
      } else {
        co_await exchange(*std::get<1>(conn->stream), *conn, r, body, deadline, cancel, reused, out, stale);
      }
      cancel.conn = nullptr;
      if (stale && reused) continue;  // the pooled connection was dead: open a new one
      if (out.kind == outcome::answered && conn->uses > 0) endpoint_->give_back(ex, std::move(conn));
      co_return out;
    }
    co_return out;
  }

  // One request/response on a connection. Sets out; `stale` when a reused connection failed before
  // any byte of a response came (the server closed it while idle).
  template <class Stream>
  asio::awaitable<void> exchange(Stream& s, remote_endpoint::connection& conn, const request& r, const std::string& body,
                                 std::chrono::steady_clock::time_point deadline, cancel_state& cancel, bool reused,
                                 attempt_result& out, bool& stale) {
    const auto& url = endpoint_->url();
    http::request<http::string_body> req{http::verb::post, url.base_path + "/chat/completions", 11};
    req.set(http::field::host, url.host_header());
    req.set(http::field::user_agent, "chorus");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, options_.stream ? "text/event-stream" : "application/json");
    if (!api_key_.empty()) req.set(http::field::authorization, "Bearer " + api_key_);
    req.set(fusion_depth_header, "1");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    conn.lowest().expires_at(deadline);
    auto lost = [&](const boost::system::error_code& ec, std::string_view when) {
      if (cancel.cancelled || ec == asio::error::operation_aborted) {
        out.kind = std::chrono::steady_clock::now() >= deadline ? outcome::timed_out : outcome::cancelled;
      } else if (ec == beast::error::timeout) {
        out.kind = outcome::timed_out;
      } else {
        out.kind = outcome::retry;
      }
      out.problem = std::string(when) + " " + url.origin() + ": " + ec.message();
    };
    boost::system::error_code ec;
    co_await http::async_write(s, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      stale = reused && !cancel.cancelled && ec != beast::error::timeout;
      lost(ec, "sending to");
      co_return;
    }
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(options_.max_response);
    co_await http::async_read_header(s, conn.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      stale = reused && !cancel.cancelled && ec != beast::error::timeout &&
              (ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == asio::error::eof);
      lost(ec, "reading the answer of");
      co_return;
    }
    const unsigned status = parser.get().result_int();
    const bool event_stream = parser.get()[http::field::content_type].find("text/event-stream") != beast::string_view::npos;
    if (status == 429 || status == 503) {
      const auto ra = parser.get()[http::field::retry_after];
      if (!ra.empty()) {
        long seconds = 0;
        const auto [p, e] = std::from_chars(ra.data(), ra.data() + ra.size(), seconds);
        if (e == std::errc() && seconds >= 0) out.retry_after = std::chrono::milliseconds(seconds * 1000);
      }
    }
    // Read the body; SSE events are handed on as they come.
    std::string text;  // a whole body, or the SSE bytes not yet split into events
    openai::stream_assembler assembled;
    bool done = false;
    std::string stream_error;
    const bool streaming = status == 200 && options_.stream && event_stream;
    auto handle_events = [&]() {
      for (;;) {
        auto end = text.find("\n\n");
        std::size_t sep = 2;
        if (const auto crlf = text.find("\r\n\r\n"); crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
          end = crlf;
          sep = 4;
        }
        if (end == std::string::npos) return;
        const std::string event = text.substr(0, end);
        text.erase(0, end + sep);
        std::string data;
        std::size_t pos = 0;
        while (pos <= event.size()) {
          auto nl = event.find('\n', pos);
          std::string_view line(event.data() + pos, (nl == std::string::npos ? event.size() : nl) - pos);
          pos = nl == std::string::npos ? event.size() + 1 : nl + 1;
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (line.starts_with("data:")) {
            line.remove_prefix(5);
            if (line.starts_with(" ")) line.remove_prefix(1);
            if (!data.empty()) data += '\n';
            data += line;
          }
        }
        if (data.empty()) continue;  // a comment or keep-alive
        if (data == "[DONE]") {
          done = true;
          return;
        }
        const json chunk = parse_json(data, "a stream chunk");
        const std::string added = assembled.push(chunk);
        if (!added.empty() && r.stream) r.stream(options_.name, r.sample, generate::token_event{-1, added, 0.0f});
      }
    };
    char buf[8192];
    for (;;) {
      if (parser.is_done()) break;
      parser.get().body().data = buf;
      parser.get().body().size = sizeof(buf);
      co_await http::async_read(s, conn.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t got = sizeof(buf) - parser.get().body().size;
      if (streaming) {
        text.append(buf, got);
        if (text.size() > options_.max_response) {
          out.kind = outcome::final_failure;
          out.problem = url.origin() + " sent an event longer than " + std::to_string(options_.max_response) + " bytes";
          co_return;
        }
        try {
          handle_events();
        } catch (const chorus::error& e) {
          stream_error = e.what();
          break;
        }
      } else {
        text.append(buf, got);
      }
      if (ec) break;
    }
    if (ec && ec != http::error::end_of_stream) {
      if (streaming && !cancel.cancelled && ec != beast::error::timeout && ec != asio::error::operation_aborted) {
        // Broken mid-stream: what came so far is kept in the report, no retry (tokens already streamed).
        out.kind = assembled.pieces() > 0 ? outcome::final_failure : outcome::retry;
        out.problem = "the stream from " + url.origin() + " broke after " + std::to_string(assembled.pieces()) + " pieces: " + ec.message();
        out.answer = assembled.take();
        co_return;
      }
      lost(ec, "reading the answer of");
      if (streaming) out.answer = assembled.take();
      co_return;
    }
    if (status != 200) {
      out.kind = retryable_status(status) ? outcome::retry : outcome::final_failure;
      out.problem = url.origin() + " answered HTTP " + std::to_string(status) + ": " + error_message_of(text);
      co_return;
    }
    if (!stream_error.empty()) {
      out.kind = outcome::final_failure;
      out.problem = url.origin() + ": " + stream_error;
      out.answer = assembled.take();
      co_return;
    }
    try {
      if (streaming) {
        if (!done && !assembled.finished()) {
          out.kind = outcome::final_failure;
          out.problem = "the stream from " + url.origin() + " ended without [DONE] after " + std::to_string(assembled.pieces()) + " pieces";
          out.answer = assembled.take();
          co_return;
        }
        out.answer = assembled.take();
      } else {
        out.answer = openai::candidate_from_completion(parse_json(text, "the answer"));
        if (r.stream && !out.answer.text.empty()) r.stream(options_.name, r.sample, generate::token_event{-1, out.answer.text, 0.0f});
      }
    } catch (const chorus::error& e) {
      out.kind = outcome::final_failure;
      out.problem = url.origin() + " answered something that is not a chat completion: " + e.what();
      co_return;
    }
    out.kind = outcome::answered;
    ++conn.uses;
    if (!parser.keep_alive()) conn.uses = 0;  // not reusable: give_back skips it
  }

  std::shared_ptr<remote_endpoint> endpoint_;
  remote_member_options options_;
  std::string api_key_;  // never written into a candidate, error or log
};

static_assert(member<remote_member>);

}  // namespace chorus::inline CHORUS_ABI::fusion
