// chorus server — the OpenAI-compatible HTTP server as a library object: give it models and
// fusions, start() it (it listens at once and answers /health with 503 until set_ready()),
// stop() it. Connections run on io_threads threads, each on a strand of its own; generation
// runs on the models' batcher threads.
//
//   chorus::server::server s({.port = 0});
//   s.add_model({"stories", local_model, {}});
//   s.set_ready();
//   auto port = s.start();   // then POST http://127.0.0.1:<port>/v1/chat/completions
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/server/http.hpp"
#include "chorus/server/metrics.hpp"
#include "chorus/server/options.hpp"
#include "chorus/server/service.hpp"

namespace chorus::inline CHORUS_ABI::server {

class server {
 public:
  using tcp = asio::ip::tcp;

  explicit server(server_options options = {}) : service_(options, stats_), options_(std::move(options)) {
    if (options_.io_threads == 0) fail(errc::invalid_argument, "server: io_threads must be at least 1");
    if (options_.tls_cert.empty() != options_.tls_key.empty()) fail(errc::invalid_argument, "server: give both a TLS certificate and its key");
    if (!options_.tls_cert.empty()) {
      tls_.emplace(asio::ssl::context::tls_server);
      tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                        asio::ssl::context::single_dh_use);
      boost::system::error_code ec;
      tls_->use_certificate_chain_file(options_.tls_cert, ec);
      if (ec) fail(errc::file_unreadable, "server: TLS certificate ", options_.tls_cert, ": ", ec.message());
      tls_->use_private_key_file(options_.tls_key, asio::ssl::context::pem, ec);
      if (ec) fail(errc::file_unreadable, "server: TLS key ", options_.tls_key, ": ", ec.message());
    }
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() { stop(); }

  void add_model(served_model m) { service_.add_model(std::move(m)); }
  void add_fusion(served_fusion f) { service_.add_fusion(std::move(f)); }
  void set_ready() { service_.set_ready(); }
  bool ready() const noexcept { return service_.ready(); }
  metrics& stats() noexcept { return stats_; }
  const server_options& options() const noexcept { return options_; }
  bool tls() const noexcept { return tls_.has_value(); }

  // Binds host:port and starts serving; returns the port (the one chosen when port was 0).
  std::uint16_t start() {
    if (!threads_.empty()) fail(errc::invalid_argument, "server: already started");
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(options_.host, ec);
    if (ec) fail(errc::invalid_argument, "server: host '", options_.host, "' is not an IP address");
    const tcp::endpoint where(address, options_.port);
    acceptor_.open(where.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(where, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail(errc::network, "server: cannot listen on ", options_.host, ":", options_.port, ": ", ec.message());
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
    for (std::size_t i = 0; i < options_.io_threads; ++i) threads_.emplace_back([this] { io_.run(); });
    return port_;
  }

  std::uint16_t port() const noexcept { return port_; }

  // Stops accepting, cancels the generation in flight and waits (up to `grace`) for those
  // requests to end, then closes every connection.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000)) {
    if (threads_.empty()) return;
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
    });
    service_.shut_down();
    // Requests hold sequences on the batchers, whose completions come back to this io_context:
    // it must run until they are all in.
    const auto until = std::chrono::steady_clock::now() + grace;
    while (stats_.in_flight.load() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto strand = asio::make_strand(io_);
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(strand, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) {
        // Out of file descriptors (or a transient failure): wait a little rather than spin.
        asio::steady_timer pause(io_);
        pause.expires_after(std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      stats_.connections_total.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<std::size_t>(stats_.connections_open.load(std::memory_order_relaxed)) >= options_.max_connections) {
        stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
        asio::co_spawn(strand, refuse(std::move(socket)), asio::detached);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(strand, session(std::move(socket)), asio::detached);
    }
  }

  // Over the connection limit: a 503 written once (without waiting long), then closed.
  asio::awaitable<void> refuse(tcp::socket socket) {
    beast::tcp_stream s(std::move(socket));
    connection<beast::tcp_stream> c(std::move(s), options_, stats_);
    reply r = error_reply(503, "too many connections (limit " + std::to_string(options_.max_connections) + ")", "server_error", "too_many_connections");
    r.headers.push_back({"Retry-After", std::to_string(options_.retry_after.count())});
    co_await c.send(r, false);
    boost::system::error_code ignored;
    c.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<void> session(tcp::socket socket) {
    stats_.connections_open.fetch_add(1, std::memory_order_relaxed);
    struct closing {
      metrics& stats;
      ~closing() { stats.connections_open.fetch_sub(1, std::memory_order_relaxed); }
    } on_exit{stats_};
    if (!tls_) {
      connection<beast::tcp_stream> c(beast::tcp_stream(std::move(socket)), options_, stats_);
      co_await serve_requests(c, service_);
      boost::system::error_code ignored;
      c.lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    using tls_stream = beast::ssl_stream<beast::tcp_stream>;
    connection<tls_stream> c(tls_stream(beast::tcp_stream(std::move(socket)), *tls_), options_, stats_);
    boost::system::error_code ec;
    c.lowest().expires_after(options_.header_timeout);
    co_await c.stream().async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == beast::error::timeout) stats_.timeouts.fetch_add(1, std::memory_order_relaxed);
      co_return;  // not TLS, a failed handshake, or too slow: nothing to answer over
    }
    c.lowest().expires_never();
    co_await serve_requests(c, service_);
    c.lowest().expires_after(std::chrono::seconds(2));
    co_await c.stream().async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  }

  metrics stats_;
  service service_;
  server_options options_;
  std::optional<asio::ssl::context> tls_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace chorus::inline CHORUS_ABI::server
