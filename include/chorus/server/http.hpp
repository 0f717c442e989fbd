// chorus server — HTTP/1.1 on Boost.Beast with C++20 coroutines: one coroutine per connection
// reads requests one after another (keep-alive), each under a header and a body timeout and
// size limits, and hands them to the routes. A connection is plain TCP or TLS; the routes see it
// through `connection<Stream>`: whole responses, server-sent events (chunked), and a watch that
// notices a client that went away while its answer is being made.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include "chorus/config.hpp"
#include "chorus/fusion/openai.hpp"
#include "chorus/server/metrics.hpp"
#include "chorus/server/options.hpp"

namespace chorus::inline CHORUS_ABI::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using json = nlohmann::ordered_json;
using http_request = http::request<http::string_body>;

// A whole response.
struct reply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers = {};
  bool close = false;  // close the connection after it
};

inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// An OpenAI-style error: {"error": {"message", "type", "param", "code"}}.
inline reply error_reply(unsigned status, std::string_view message, std::string_view type, std::string_view code) {
  return {status, dump(fusion::openai::error_json(message, type, code))};
}

// One client connection, as the routes use it.
template <class Stream>
class connection {
 public:
  connection(Stream stream, const server_options& options, metrics& stats)
      : stream_(std::move(stream)), options_(options), stats_(stats), deadline_(stream_.get_executor()) {}
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() { *alive_ = false; }

  // A deadline for the reads of one request. When it passes the pending read is cancelled, not
  // the socket closed (as tcp_stream's own timeout would), so that a 408 can still be written.
  void arm(std::chrono::milliseconds d) {
    timed_out_ = false;
    deadline_.expires_after(d);
    deadline_.async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (ec || !*alive) return;
      timed_out_ = true;
      boost::system::error_code ignored;
      lowest().socket().cancel(ignored);
    });
  }
  void disarm() { deadline_.cancel(); }
  bool timed_out() const noexcept { return timed_out_; }

  Stream& stream() noexcept { return stream_; }
  beast::tcp_stream& lowest() noexcept { return beast::get_lowest_layer(stream_); }
  beast::flat_buffer& buffer() noexcept { return buffer_; }
  const server_options& options() const noexcept { return options_; }
  metrics& stats() noexcept { return stats_; }
  bool broken() const noexcept { return broken_; }

  // Writes a whole response; false when the client did not take it (gone, or too slow).
  asio::awaitable<bool> send(const reply& r, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, "chorus");
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.keep_alive(keep_alive && !r.close);
    res.body() = r.body;
    res.prepare_payload();
    boost::system::error_code ec;
    lowest().expires_after(options_.write_timeout);
    co_await http::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
    lowest().expires_never();
    if (ec) note_write_failure(ec);
    co_return !ec;
  }

  // Starts a server-sent event stream (chunked); then event() for each `data:` line, end() last.
  asio::awaitable<bool> start_events() {
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::server, "chorus");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.set("x-accel-buffering", "no");
    res.keep_alive(true);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    lowest().expires_after(options_.write_timeout);
    co_await http::async_write_header(stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
    lowest().expires_never();
    if (ec) note_write_failure(ec);
    co_return !ec;
  }
  // Writes `text` (one or more whole events, "data: ...\n\n") as one chunk.
  asio::awaitable<bool> write_chunk(std::string_view text) {
    if (broken_) co_return false;
    boost::system::error_code ec;
    lowest().expires_after(options_.write_timeout);
    co_await asio::async_write(stream_, http::make_chunk(asio::const_buffer(text.data(), text.size())),
                               asio::redirect_error(asio::use_awaitable, ec));
    lowest().expires_never();
    if (ec) note_write_failure(ec);
    co_return !ec;
  }
  asio::awaitable<bool> end_events() {
    if (broken_) co_return false;
    boost::system::error_code ec;
    lowest().expires_after(options_.write_timeout);
    co_await asio::async_write(stream_, http::make_chunk_last(), asio::redirect_error(asio::use_awaitable, ec));
    lowest().expires_never();
    if (ec) note_write_failure(ec);
    co_return !ec;
  }

  // Watches the socket while an answer is made: a client that closes its side (or resets)
  // gets `stop` requested. Bytes that arrive instead (a pipelined request, a TLS alert) end the
  // watch without stopping. stop_watching() before reading the next request.
  void watch_disconnect(std::shared_ptr<std::stop_source> stop) {
    auto w = std::make_shared<watch>();
    w->stop = std::move(stop);
    watch_ = w;
    gone_ = false;
    metrics* stats = &stats_;
    lowest().socket().async_wait(asio::ip::tcp::socket::wait_read, [w, stats, sock = &lowest().socket()](boost::system::error_code ec) {
      if (ec || !w->active) return;
      char byte;
      const auto n = ::recv(sock->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        stats->disconnects.fetch_add(1, std::memory_order_relaxed);
        w->gone = true;
        w->stop->request_stop();
      }
    });
  }
  void stop_watching() {
    if (!watch_) return;
    gone_ = gone_ || watch_->gone;  // what the watch saw stays known after it ends
    watch_->active = false;
    boost::system::error_code ignored;
    lowest().socket().cancel(ignored);
    watch_.reset();
  }
  bool client_gone() const noexcept { return gone_ || (watch_ && watch_->gone); }

 private:
  struct watch {
    std::shared_ptr<std::stop_source> stop;
    bool active = true;
    bool gone = false;
  };

  void note_write_failure(const boost::system::error_code& ec) {
    broken_ = true;
    if (ec == beast::error::timeout) stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  const server_options& options_;
  metrics& stats_;
  std::shared_ptr<watch> watch_;
  bool broken_ = false;
  bool gone_ = false;
  asio::steady_timer deadline_;
  bool timed_out_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// After an error answer that ends the connection: stop sending, then read and drop what the
// client still sends (briefly), so that closing does not reset the connection before the client
// has read the answer (a client still sending its oversized body, say).
template <class Stream>
asio::awaitable<void> linger_close(connection<Stream>& c) {
  boost::system::error_code ec;
  c.lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  c.lowest().expires_after(std::chrono::milliseconds(500));
  char sink[4096];
  std::size_t dropped = 0;
  while (!ec && dropped < (4u << 20)) {
    const std::size_t n = co_await c.lowest().async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    dropped += n;
  }
  c.lowest().expires_never();
}

// Reads requests off a connection until it closes, answering each through
// `routes.handle(connection&, http_request&) -> awaitable<bool>` (false: close the connection).
// Malformed, oversized or too slow requests are answered (400, 413, 431, 408) and close it.
template <class Stream, class Routes>
asio::awaitable<void> serve_requests(connection<Stream>& c, Routes& routes) {
  const auto& o = c.options();
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(o.max_header));
    parser.body_limit(o.max_body);
    boost::system::error_code ec;
    c.arm(o.header_timeout);
    co_await http::async_read_header(c.stream(), c.buffer(), parser, asio::redirect_error(asio::use_awaitable, ec));
    c.disarm();
    if (ec && c.timed_out()) ec = beast::error::timeout;
    if (ec) {
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated) {
        co_return;  // the client closed the connection between requests
      }
      if (ec == beast::error::timeout) {
        c.stats().timeouts.fetch_add(1, std::memory_order_relaxed);
        // A header that trickled in too slowly gets an answer; an idle keep-alive just closes.
        if (parser.got_some() || c.buffer().size() > 0) {
          c.lowest().expires_never();
          const reply timeout_reply = error_reply(408, "the request header did not arrive within " + std::to_string(o.header_timeout.count()) + " ms",
                                      "invalid_request_error", "request_timeout");
          co_await c.send(timeout_reply, false);
          c.stats().count_request("other", 408, 0.0);
        }
        co_return;
      }
      reply r = ec == http::error::body_limit
                    ? error_reply(413, "the request body is larger than the limit of " + std::to_string(o.max_body) + " bytes",
                                  "invalid_request_error", "request_too_large")
                : ec == http::error::header_limit
                    ? error_reply(431, "the request header is larger than the limit of " + std::to_string(o.max_header) + " bytes",
                                  "invalid_request_error", "header_too_large")
                    : error_reply(400, "malformed HTTP request: " + ec.message(), "invalid_request_error", "bad_request");
      c.lowest().expires_never();
      co_await c.send(r, false);
      c.stats().count_request("other", r.status, 0.0);
      co_await linger_close(c);
      co_return;
    }
    const auto expect = parser.get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      http::response<http::empty_body> go_on{http::status::continue_, 11};
      c.lowest().expires_after(o.write_timeout);
      co_await http::async_write(c.stream(), go_on, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
    if (!parser.is_done()) {
      c.arm(o.body_timeout);
      co_await http::async_read(c.stream(), c.buffer(), parser, asio::redirect_error(asio::use_awaitable, ec));
      c.disarm();
      if (ec && c.timed_out()) ec = beast::error::timeout;
      if (ec) {
        c.lowest().expires_never();
        if (ec == beast::error::timeout) {
          c.stats().timeouts.fetch_add(1, std::memory_order_relaxed);
          const reply timeout_reply = error_reply(408, "the request body did not arrive within " + std::to_string(o.body_timeout.count()) + " ms",
                                      "invalid_request_error", "request_timeout");
          co_await c.send(timeout_reply, false);
          c.stats().count_request("other", 408, 0.0);
        } else if (ec == http::error::body_limit) {
          const reply timeout_reply = error_reply(413, "the request body is larger than the limit of " + std::to_string(o.max_body) + " bytes",
                                      "invalid_request_error", "request_too_large");
          co_await c.send(timeout_reply, false);
          c.stats().count_request("other", 413, 0.0);
          co_await linger_close(c);
        } else if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset) {
          const reply timeout_reply = error_reply(400, "malformed HTTP request body: " + ec.message(), "invalid_request_error", "bad_request");
          co_await c.send(timeout_reply, false);
          c.stats().count_request("other", 400, 0.0);
        }
        co_return;
      }
    }
    c.lowest().expires_never();
    http_request req = parser.release();
    const bool keep = req.keep_alive();
    const bool go_on = co_await routes.handle(c, req);
    c.stop_watching();
    if (!go_on || !keep || c.broken()) co_return;
  }
}

}  // namespace chorus::inline CHORUS_ABI::server
