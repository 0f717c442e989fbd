// chorus server — what an operator sets: where to listen, who may call, and the limits that
// keep one bad client from hurting the others (body size, header and body timeouts,
// connections, queued sequences).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "chorus/config.hpp"

namespace chorus::inline CHORUS_ABI::server {

struct server_options {
  std::string host = "127.0.0.1";   // loopback only unless told otherwise
  std::uint16_t port = 8080;        // 0: any free port (server::port() says which)
  std::vector<std::string> api_keys;  // when set, every route but /health needs "Authorization: Bearer KEY"
  std::string tls_cert;             // PEM certificate chain and key: serve https instead of http
  std::string tls_key;

  std::size_t max_body = 1u << 20;          // bytes of a request body (413 above)
  std::size_t max_header = 16u << 10;       // bytes of a request header (431 above)
  std::chrono::milliseconds header_timeout{15000};  // to receive a whole header (also the keep-alive idle time)
  std::chrono::milliseconds body_timeout{30000};    // to receive a whole body once its header came
  std::chrono::milliseconds write_timeout{30000};   // for a client to take one write (a stalled reader is dropped)
  std::chrono::milliseconds request_timeout{0};     // generation time per request (0: none; max_tokens bounds it)
  std::size_t max_connections = 4096;       // open at once; more are answered 503 and closed
  std::size_t max_queued = 64;              // per model: sequences waiting for a batch slot beyond the running ones (429 above)
  std::size_t max_fusions = 16;             // fusion requests at once (429 above)
  std::size_t io_threads = 1;               // threads running the connections (generation has its own)
  std::chrono::seconds retry_after{1};      // what a 429 tells the client to wait
  std::chrono::milliseconds stream_keepalive{5000};  // a comment line while a streamed fusion thinks
};

}  // namespace chorus::inline CHORUS_ABI::server
