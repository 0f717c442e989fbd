// The OpenAI-compatible server and remote members, against real peers on 127.0.0.1: the server
// in-process and as the built `chorus serve`, called by chorus's remote member, by curl for raw
// protocol cases, by plain sockets (slow clients, a thousand connections, clients that vanish)
// and by misbehaving peers (500s, garbage, silence, a server killed mid-stream), and by the Node
// `openai` client (ServerNode).
#define CHORUS_NETWORK 1
#include "test_support.hpp"
#include "derived_models.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace fusion = chorus::fusion;
namespace srv = chorus::server;
using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

// --- plumbing ---------------------------------------------------------------------------

template <class Body>
auto run_coro(Body body) {
  asio::io_context io;
  std::optional<decltype(std::declval<Body>()().await_resume())> out;
  std::exception_ptr failure;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out.emplace(co_await body()); }, [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

struct http_result {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  json parsed() const { return json::parse(body); }
};

// One request with Beast's synchronous client (a fresh connection).
http_result call(std::uint16_t port, http::verb method, const std::string& target, const std::string& body = {},
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  asio::io_context io;
  beast::tcp_stream s(io);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  http::read(s, buf, parser);
  http_result out;
  out.status = parser.get().result_int();
  out.body = parser.get().body();
  for (const auto& f : parser.get()) out.headers[std::string(f.name_string())] = std::string(f.value());
  boost::system::error_code ignored;
  s.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return out;
}

http_result post_chat(std::uint16_t port, const json& body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  return call(port, http::verb::post, "/v1/chat/completions", body.dump(), std::move(headers));
}

// Runs a shell command, returning its stdout.
std::string shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool have(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }

// A raw client socket (for slow headers, many connections, vanishing clients).
int connect_raw(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}
void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const auto n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}
// Reads until the peer closes or `until` appears, waiting at most `limit`.
std::string read_raw(int fd, std::chrono::milliseconds limit, std::string_view until = {}) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
    if (::poll(&p, 1, std::max(1, left)) <= 0) continue;
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (!until.empty() && out.find(until) != std::string::npos) break;
  }
  return out;
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::signal(SIGPIPE, SIG_IGN);
}

// The content of the SSE `data:` lines of a streamed answer, in order.
std::vector<std::string> sse_data(const std::string& raw) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = raw.find("data: ", pos)) != std::string::npos) {
    const auto end = raw.find('\n', pos);
    out.push_back(raw.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

// tiny-mistral with a Qwen2.5-family chat template (the detection's markers): a fixture model
// whose template writes tool specs into the prompt.
std::filesystem::path tools_model() {
  static const std::filesystem::path path = [] {
    const auto src = chorus::gguf::file::open(chorus_test::model_path("tiny-mistral-Q4_0.gguf"));
    const auto out = chorus_test::scratch_dir("server-tools-model") / "tiny-mistral-qwen-template.gguf";
    chorus::gguf::writer w;
    using chorus::gguf::value_type;
    for (const auto& e : src.metadata()) {
      if (e.key == "general.alignment" || e.key == "tokenizer.chat_template") continue;
      const std::string key(e.key);
      if (e.type == value_type::array) {
        switch (e.element_type) {
          case value_type::string: w.set_array(key, src.get_array<std::string>(e.key)); break;
          case value_type::float32: w.set_array(key, src.get_array<float>(e.key)); break;
          case value_type::int32: w.set_array(key, src.get_array<std::int32_t>(e.key)); break;
          case value_type::uint32: w.set_array(key, src.get_array<std::uint32_t>(e.key)); break;
          default: throw std::runtime_error("unhandled array type of " + key);
        }
        continue;
      }
      switch (e.type) {
        case value_type::string: w.set(key, src.get<std::string>(e.key)); break;
        case value_type::boolean: w.set(key, src.get<bool>(e.key)); break;
        case value_type::uint32: w.set(key, src.get<std::uint32_t>(e.key)); break;
        case value_type::int32: w.set(key, src.get<std::int32_t>(e.key)); break;
        case value_type::uint64: w.set(key, src.get<std::uint64_t>(e.key)); break;
        case value_type::float32: w.set(key, src.get<float>(e.key)); break;
        default: throw std::runtime_error("unhandled type of " + key);
      }
    }
    w.set("tokenizer.chat_template", std::string_view("{# You are Qwen, created by Alibaba Cloud #}<|im_start|>... <tool_call>"));
    for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, chorus_test::dims_of(t), t.data);
    const auto tmp = out.string() + "." + std::to_string(::getpid());
    w.write(tmp);
    std::filesystem::rename(tmp, out);
    return out;
  }();
  return path;
}

std::shared_ptr<fusion::local_model> load_local(const std::filesystem::path& file, std::uint32_t parallel, std::uint32_t n_ctx) {
  auto m = chorus::generate::language_model::load(file);
  return std::make_shared<fusion::local_model>(m, fusion::local_model_options{.n_ctx = n_ctx, .parallel = parallel, .threads = 1});
}

fusion::local_member_options greedy_defaults(std::int32_t max_tokens = 24) {
  fusion::local_member_options o;
  o.generation.max_tokens = max_tokens;
  o.generation.sampling.seed = 7;
  return o;
}

// The shared in-process server of most tests: three models and a fusion of two seeds.
struct shared_server {
  std::shared_ptr<fusion::local_model> stories = load_local(chorus_test::model_path("stories260K.gguf"), 4, 512);
  std::shared_ptr<fusion::local_model> mistral = load_local(chorus_test::model_path("tiny-mistral-Q4_0.gguf"), 2, 512);
  std::shared_ptr<fusion::local_model> qwen = load_local(tools_model(), 2, 1024);
  std::unique_ptr<srv::server> server;
  std::uint16_t port = 0;

  shared_server() {
    raise_fd_limit();
    srv::server_options o;
    o.port = 0;
    o.max_body = 64 * 1024;
    o.header_timeout = 600ms;
    o.body_timeout = 600ms;
    o.max_connections = 1500;
    server = std::make_unique<srv::server>(o);
    server->add_model({"stories", stories, greedy_defaults()});
    server->add_model({"mistral", mistral, greedy_defaults()});
    server->add_model({"qwen-tools", qwen, greedy_defaults()});
    fusion::plan pair;
    for (std::uint64_t seed : {1, 2}) {
      auto o2 = greedy_defaults();
      o2.generation.sampling.seed = seed;
      o2.name = "stories#" + std::to_string(seed);
      pair.members.emplace_back(std::make_shared<fusion::local_member>(stories, o2));
    }
    pair.mode = fusion::fusion_mode::confidence;
    server->add_fusion({"pair", std::move(pair), "mode=confidence;member=stories:seed=1;member=stories:seed=2"});
    port = server->start();
    server->set_ready();
  }
};

shared_server& shared() {
  static shared_server s;
  return s;
}

json chat_body(const std::string& model, const std::string& prompt, int max_tokens = 16) {
  return {{"model", model}, {"messages", json::array({json{{"role", "user"}, {"content", prompt}}})}, {"max_tokens", max_tokens},
          {"seed", 11}, {"temperature", 0.8}};
}

// The same question asked of the same model in-process, without the server.
fusion::candidate local_answer(const std::shared_ptr<fusion::local_model>& model, const fusion::request& r) {
  fusion::local_member m(model, greedy_defaults());
  return run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await m.answer(r); });
}

// --- the OpenAI wire format alone ------------------------------------------------------

TEST(ServerWire, RequestFieldsAndTheirErrors) {
  const json body = json::parse(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"42"}],
      "max_completion_tokens":5,"temperature":0.5,"top_p":0.9,"seed":3,"stop":["x","y"],"n":2,"logprobs":true,"top_logprobs":2,
      "stream":true,"stream_options":{"include_usage":true},"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],
      "tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}}})");
  const auto a = fusion::openai::parse_chat_completion(body);
  EXPECT_EQ(a.model, "m");
  ASSERT_EQ(a.request.messages.size(), 4u);
  EXPECT_EQ(a.request.messages[1].content, "hi there");
  ASSERT_EQ(a.request.messages[2].tool_calls.size(), 1u);
  EXPECT_EQ(a.request.messages[2].tool_calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ(a.request.messages[3].tool_call_id, "c1");
  EXPECT_EQ(a.request.generation.max_tokens, 5);
  EXPECT_EQ(a.request.generation.seed, 3u);
  EXPECT_EQ(a.request.generation.stop.size(), 2u);
  EXPECT_EQ(a.request.n, 2u);
  EXPECT_EQ(a.request.generation.top_logprobs, 2);
  EXPECT_TRUE(a.stream && a.include_usage);
  EXPECT_EQ(a.request.tools.size(), 1u);
  EXPECT_EQ(a.request.tool_choice, "f");
  ASSERT_TRUE(a.request.format);
  EXPECT_EQ(a.request.format->type, "json_schema");
  EXPECT_EQ(a.request.format->schema["type"], "object");

  // Back to a body (a remote member's request) and read again: the same request.
  const json again = fusion::openai::to_json(a.request, "m", false);
  const auto b = fusion::openai::parse_chat_completion(again);
  EXPECT_EQ(b.request.messages.size(), 4u);
  EXPECT_EQ(b.request.messages[2].tool_calls[0].name, "f");
  EXPECT_EQ(b.request.tool_choice, "f");
  EXPECT_EQ(b.request.generation.temperature, a.request.generation.temperature);

  auto expect_bad = [](const std::string& text, std::string_view fragment) {
    chorus_test::expect_error(chorus::errc::type_mismatch, fragment, [&] { fusion::openai::parse_chat_completion(json::parse(text)); });
  };
  expect_bad(R"({"model":"m","messages":"hello"})", "messages must be an array");
  expect_bad(R"({"model":5,"messages":[]})", "model must be a string");
  expect_bad(R"({"model":"m","messages":[{"role":"user","content":1}]})", "messages[0].content must be a string");
  expect_bad(R"({"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":"9"})", "max_tokens must be an integer");
  chorus_test::expect_error(chorus::errc::invalid_argument, "temperature", [] {
    fusion::openai::parse_chat_completion(json::parse(R"({"model":"m","messages":[{"role":"user","content":"a"}],"temperature":7})"));
  });
  chorus_test::expect_error(chorus::errc::invalid_argument, "role 'wizard'", [] {
    fusion::openai::parse_chat_completion(json::parse(R"({"model":"m","messages":[{"role":"wizard","content":"a"}]})"));
  });
}

TEST(ServerWire, CompletionAndStreamChunksReadBack) {
  fusion::candidate c;
  c.text = "hello";
  c.tokens = {7, 2};
  c.finish = fusion::finish_reason::length;
  c.logprobs = {{"he", -0.5f, {{"he", -0.5f}, {"ha", -1.5f}}}, {"llo", -0.25f, {}}};
  const json body = fusion::openai::completion_json("id1", 1, "m", std::span(&c, 1), true);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["total_tokens"], 9);
  const auto back = fusion::openai::candidate_from_completion(body);
  EXPECT_EQ(back.text, "hello");
  EXPECT_EQ(back.finish, fusion::finish_reason::length);
  EXPECT_EQ(back.tokens.prompt_tokens, 7u);
  ASSERT_EQ(back.logprobs.size(), 2u);
  EXPECT_EQ(back.logprobs[0].top.size(), 2u);
  EXPECT_DOUBLE_EQ(back.mean_logprob, (-0.5 - 0.25) / 2);

  fusion::openai::stream_assembler s;
  EXPECT_EQ(s.push(json::parse(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})")), "");
  EXPECT_EQ(s.push(json::parse(R"({"choices":[{"index":0,"delta":{"content":"hel"}}]})")), "hel");
  s.push(json::parse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\""}}]}}]})"));
  s.push(json::parse(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})"));
  s.push(json::parse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})"));
  s.push(json::parse(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})"));
  EXPECT_TRUE(s.finished());
  const auto streamed = s.take();
  EXPECT_EQ(streamed.text, "hel");
  ASSERT_EQ(streamed.tool_calls.size(), 1u);
  EXPECT_EQ(streamed.tool_calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ(streamed.finish, fusion::finish_reason::tool_calls);
  EXPECT_EQ(streamed.tokens.completion_tokens, 4u);
  chorus_test::expect_error(chorus::errc::protocol, "no choices", [] { fusion::openai::candidate_from_completion(json::object()); });
  chorus_test::expect_error(chorus::errc::protocol, "quota", [] {
    fusion::openai::candidate_from_completion(json::parse(R"({"error":{"message":"quota exceeded"}})"));
  });
}

// --- routes ---------------------------------------------------------------------------------

TEST(ServerRoutes, HealthModelsAndMetrics) {
  auto& s = shared();
  const auto health = call(s.port, http::verb::get, "/health");
  EXPECT_EQ(health.status, 200u);
  EXPECT_EQ(health.parsed()["status"], "ok");
  const auto models = call(s.port, http::verb::get, "/v1/models").parsed();
  std::vector<std::string> ids;
  for (const auto& m : models["data"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "stories"), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "fusion/pair"), ids.end());
  const auto metrics = call(s.port, http::verb::get, "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("chorus_requests_total{route=\"models\",code=\"200\"}"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("chorus_queued_sequences{model=\"stories\"}"), std::string::npos);
  EXPECT_NE(metrics.body.find("chorus_request_duration_seconds_bucket{route=\"health\""), std::string::npos);
}

TEST(ServerRoutes, HealthSaysLoadingUntilReady) {
  srv::server loading({.port = 0});
  const auto port = loading.start();
  const auto health = call(port, http::verb::get, "/health");
  EXPECT_EQ(health.status, 503u);
  EXPECT_EQ(health.parsed()["status"], "loading");
  const auto chat = post_chat(port, chat_body("stories", "x"));
  EXPECT_EQ(chat.status, 503u);
  EXPECT_EQ(chat.parsed()["error"]["code"], "loading");
  loading.set_ready();
  EXPECT_EQ(call(port, http::verb::get, "/health").status, 200u);
}

TEST(ServerChat, AnswersAsTheModelDoesInProcess) {
  auto& s = shared();
  const json body = chat_body("stories", "Once upon a time", 16);
  const auto res = post_chat(s.port, body);
  ASSERT_EQ(res.status, 200u) << res.body;
  const json j = res.parsed();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "stories");
  ASSERT_EQ(j["choices"].size(), 1u);
  const auto& choice = j["choices"][0];
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_TRUE(choice["finish_reason"] == "length" || choice["finish_reason"] == "stop");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

  const auto same = local_answer(s.stories, fusion::openai::parse_chat_completion(body).request);
  EXPECT_EQ(choice["message"]["content"], same.text);
  EXPECT_EQ(j["usage"]["completion_tokens"], same.tokens.completion_tokens);
}

TEST(ServerChat, NSamplesAreSeedPlusK) {
  auto& s = shared();
  json body = chat_body("stories", "The cat", 12);
  body["n"] = 3;
  const auto j = post_chat(s.port, body).parsed();
  ASSERT_EQ(j["choices"].size(), 3u);
  auto one = fusion::openai::parse_chat_completion(body).request;
  one.n = 1;
  for (std::size_t k = 0; k < 3; ++k) {
    one.sample = k;
    EXPECT_EQ(j["choices"][k]["index"], k);
    EXPECT_EQ(j["choices"][k]["message"]["content"], local_answer(s.stories, one).text) << "sample " << k;
  }
}

TEST(ServerChat, StreamedEventsAddUpToTheAnswer) {
  auto& s = shared();
  json body = chat_body("mistral", "Tell me a story", 20);
  const auto whole = post_chat(s.port, body).parsed();
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["logprobs"] = true;
  const auto res = post_chat(s.port, body);
  ASSERT_EQ(res.status, 200u);
  EXPECT_EQ(res.headers.at("Content-Type"), "text/event-stream");
  const auto events = sse_data(res.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  std::size_t logprob_tokens = 0;
  std::optional<std::string> finish;
  json usage;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk.contains("usage")) usage = chunk["usage"];
    for (const auto& c : chunk["choices"]) {
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
      if (c["logprobs"].is_object()) logprob_tokens += c["logprobs"]["content"].size();
      if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
    }
  }
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"].get<std::string>());
  EXPECT_EQ(usage["completion_tokens"], whole["usage"]["completion_tokens"]);
  EXPECT_EQ(logprob_tokens, whole["usage"]["completion_tokens"].get<std::size_t>());
}

TEST(ServerChat, ToolsReachTheChatTemplate) {
  auto& s = shared();
  json plain = chat_body("qwen-tools", "What is the weather in Paris?", 4);
  json with_tools = plain;
  with_tools["tools"] = json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");
  with_tools["tool_choice"] = "auto";
  const auto a = post_chat(s.port, plain);
  const auto b = post_chat(s.port, with_tools);
  ASSERT_EQ(a.status, 200u) << a.body;
  ASSERT_EQ(b.status, 200u) << b.body;
  // The tool's spec is written into the prompt by the Qwen2.5 format.
  EXPECT_GT(b.parsed()["usage"]["prompt_tokens"].get<int>(), a.parsed()["usage"]["prompt_tokens"].get<int>() + 20);
  // A model whose format has no tools says so, naming it.
  json to_mistral = with_tools;
  to_mistral["model"] = "mistral";
  const auto c = post_chat(s.port, to_mistral);
  EXPECT_EQ(c.status, 400u);
  EXPECT_NE(c.parsed()["error"]["message"].get<std::string>().find("tool specs"), std::string::npos) << c.body;
  // A conversation with a tool call and its result is rendered (assistant tool_calls + tool).
  json turn = with_tools;
  turn["messages"].push_back(json::parse(R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
      "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})"));
  turn["messages"].push_back(json::parse(R"({"role":"tool","tool_call_id":"call_1","content":"sunny, 24 C"})"));
  const auto d = post_chat(s.port, turn);
  ASSERT_EQ(d.status, 200u) << d.body;
  EXPECT_GT(d.parsed()["usage"]["prompt_tokens"].get<int>(), b.parsed()["usage"]["prompt_tokens"].get<int>());
}

TEST(ServerChat, FusionAnswersWithItsReport) {
  auto& s = shared();
  const auto res = post_chat(s.port, chat_body("fusion/pair", "Once upon a time", 12));
  ASSERT_EQ(res.status, 200u) << res.body;
  const json j = res.parsed();
  EXPECT_EQ(j["model"], "fusion/pair");
  const json& report = j["chorus_fusion"];
  EXPECT_EQ(report["mode"], "confidence");
  ASSERT_EQ(report["members"].size(), 2u);
  EXPECT_EQ(report["answered"], 2);
  EXPECT_EQ(j["choices"][0]["message"]["content"], report["decision"]["answer"]);
  EXPECT_EQ(j["usage"]["completion_tokens"], report["completion_tokens"]);

  // A panel of the request's own, on served models.
  json own = chat_body("my-panel", "Once upon a time", 8);
  own["chorus_fusion"] = json::parse(R"({"members":["stories",{"model":"stories","seed":5,"name":"five"},"mistral"],"mode":"vote"})");
  const auto p = post_chat(s.port, own);
  ASSERT_EQ(p.status, 200u) << p.body;
  EXPECT_EQ(p.parsed()["chorus_fusion"]["members"].size(), 3u);
  EXPECT_EQ(p.parsed()["chorus_fusion"]["members"][1]["name"], "five");
  own["chorus_fusion"]["members"] = json::array({"/etc/passwd"});
  const auto q = post_chat(s.port, own);
  EXPECT_EQ(q.status, 404u);
  EXPECT_EQ(q.parsed()["error"]["code"], "model_not_found");

  // A request that comes from a fusion may not start one.
  const auto r = post_chat(s.port, chat_body("fusion/pair", "x"), {{std::string(fusion::fusion_depth_header), "1"}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.parsed()["error"]["code"], "fusion_recursion");

  // Streamed: the fused answer, then a chunk with the report.
  json streamed = chat_body("fusion/pair", "Once upon a time", 12);
  streamed["stream"] = true;
  const auto ev = sse_data(post_chat(s.port, streamed).body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_EQ(json::parse(ev[0])["choices"][0]["delta"]["content"], j["choices"][0]["message"]["content"]);
  EXPECT_TRUE(json::parse(ev[ev.size() - 2]).contains("chorus_fusion"));
}

// --- bad input: every error is an OpenAI error with its status; the server keeps serving ----

TEST(ServerErrors, CurlSeesProperStatusesAndBodies) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  auto& s = shared();
  const std::string base = "http://127.0.0.1:" + std::to_string(s.port);
  // -w: the status after the body, on a line of its own.
  auto curl = [&](const std::string& args) {
    const std::string out = shell("curl -s -w '\\n%{http_code}' " + args);
    const auto nl = out.rfind('\n');
    return std::pair<int, std::string>(std::stoi(out.substr(nl + 1)), out.substr(0, nl));
  };
  const std::string post = "-X POST -H 'Content-Type: application/json' " + base + "/v1/chat/completions ";
  struct expectation {
    std::string args;
    int status;
    std::string code;
  };
  const std::string big(100 * 1024, 'x');
  const std::string big_file = (chorus_test::scratch_dir("server-curl") / "big.json").string();
  std::ofstream(big_file) << R"({"model":"stories","messages":[{"role":"user","content":")" << big << "\"}]}";
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += "once upon a time there was a cat ";
  const std::string long_file = (chorus_test::scratch_dir("server-curl-long") / "long.json").string();
  std::ofstream(long_file) << json{{"model", "stories"}, {"messages", json::array({json{{"role", "user"}, {"content", long_prompt}}})}}.dump();
  const std::vector<expectation> cases = {
      {post + "-d '{\"model\": \"stories\", \"messages\": [}'", 400, "invalid_json"},
      {post + "-d '{\"model\": \"stories\", \"messages\": \"hi\"}'", 400, "invalid_request"},
      {post + "-d '{\"model\": \"stories\", \"messages\": [{\"role\":\"user\",\"content\":\"a\"}], \"n\": 0}'", 400, "invalid_request"},
      {post + "-d '{\"model\": \"nope\", \"messages\": [{\"role\":\"user\",\"content\":\"a\"}]}'", 404, "model_not_found"},
      {post + "-d '{\"model\": \"fusion/nope\", \"messages\": [{\"role\":\"user\",\"content\":\"a\"}]}'", 404, "model_not_found"},
      {post + "--data-binary @" + big_file, 413, "request_too_large"},
      {post + "--data-binary @" + long_file, 400, "context_length_exceeded"},
      {base + "/v1/nothing", 404, "not_found"},
      {"-X DELETE " + base + "/v1/models", 405, "method_not_allowed"},
      {base + "/v1/chat/completions", 405, "method_not_allowed"},
  };
  for (const auto& c : cases) {
    const auto [status, body] = curl(c.args);
    EXPECT_EQ(status, c.status) << c.args << "\n" << body;
    json j;
    ASSERT_NO_THROW(j = json::parse(body)) << c.args << "\n" << body;
    EXPECT_EQ(j["error"]["code"], c.code) << body;
    EXPECT_TRUE(j["error"]["message"].is_string() && !j["error"]["message"].get<std::string>().empty()) << body;
    EXPECT_TRUE(j["error"]["type"].is_string()) << body;
  }
  // Still serving.
  EXPECT_EQ(curl(base + "/health").first, 200);
}

TEST(ServerErrors, ApiKeysGuardEveryRouteButHealth) {
  auto& s = shared();
  srv::server guarded({.port = 0, .api_keys = {"sesame"}});
  guarded.add_model({"stories", s.stories, greedy_defaults(4)});
  guarded.set_ready();
  const auto port = guarded.start();
  EXPECT_EQ(call(port, http::verb::get, "/health").status, 200u);
  const auto no_key = call(port, http::verb::get, "/v1/models");
  EXPECT_EQ(no_key.status, 401u);
  EXPECT_EQ(no_key.parsed()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(call(port, http::verb::get, "/metrics", {}, {{"Authorization", "Bearer wrong"}}).status, 401u);
  EXPECT_EQ(post_chat(port, chat_body("stories", "a", 2), {{"Authorization", "Bearer sesame"}}).status, 200u);
  EXPECT_EQ(call(port, http::verb::get, "/v1/models", {}, {{"Authorization", "Bearer sesame"}}).status, 200u);
}

TEST(ServerErrors, SlowHeadersAndBodiesTimeOut) {
  auto& s = shared();
  // A header trickling in, one byte at a time.
  const int slow = connect_raw(s.port);
  ASSERT_GE(slow, 0);
  send_all(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
  // Meanwhile the others are served.
  EXPECT_EQ(call(s.port, http::verb::get, "/health").status, 200u);
  std::string answer;
  for (int i = 0; i < 40 && answer.empty(); ++i) {
    send_all(slow, "X");
    answer = read_raw(slow, 100ms);
  }
  EXPECT_NE(answer.find("408"), std::string::npos) << answer;
  EXPECT_NE(answer.find("request_timeout"), std::string::npos) << answer;
  ::close(slow);
  // A body that never finishes.
  const int stalled = connect_raw(s.port);
  send_all(stalled, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":");
  const std::string got = read_raw(stalled, 5000ms, "}}");
  EXPECT_NE(got.find("408"), std::string::npos) << got;
  ::close(stalled);
  // Garbage instead of HTTP.
  const int junk = connect_raw(s.port);
  send_all(junk, "\x16\x03\x01 this is not http\r\n\r\n");
  const std::string refused = read_raw(junk, 3000ms);
  EXPECT_NE(refused.find("400"), std::string::npos) << refused;
  ::close(junk);
  EXPECT_EQ(call(s.port, http::verb::get, "/health").status, 200u);
}

TEST(ServerErrors, AThousandConnectionsAtOnce) {
  raise_fd_limit();
  srv::server many({.port = 0, .header_timeout = 60s, .max_connections = 1500});
  many.set_ready();
  struct { std::uint16_t port; } s{many.start()};
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_raw(s.port);
    ASSERT_GE(fd, 0) << "connection " << i;
    fds.push_back(fd);
  }
  EXPECT_EQ(call(s.port, http::verb::get, "/health").status, 200u);
  // Every one of them gets an answer.
  for (int fd : fds) send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  std::size_t ok = 0;
  for (int fd : fds) {
    const std::string r = read_raw(fd, 10000ms, "}");
    ok += r.find("200 OK") != std::string::npos;
    ::close(fd);
  }
  EXPECT_EQ(ok, fds.size());
  EXPECT_EQ(call(s.port, http::verb::get, "/health").status, 200u);
}

// A generation long enough to be cut short: a 50257-token vocabulary, a thousand tokens.
std::shared_ptr<fusion::local_model> slow_model(std::uint32_t parallel) {
  return load_local(chorus_test::model_path("tiny-llama-bpe-Q4_K_M.gguf"), parallel, 1024);
}

TEST(ServerLoad, AClientVanishingMidStreamCancelsItsGeneration) {
  auto model = slow_model(1);
  srv::server server({.port = 0});
  server.add_model({"slow", model, greedy_defaults(4000)});
  server.set_ready();
  const auto port = server.start();
  json body = chat_body("slow", "Once upon a time", 4000);
  body["stream"] = true;
  const std::string text = body.dump();
  const int fd = connect_raw(port);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(text.size()) + "\r\n\r\n" + text);
  // The stream has begun (its first event came); the client goes away.
  const std::string got = read_raw(fd, 30000ms, "data: ");
  ASSERT_NE(got.find("data: "), std::string::npos) << got;
  ::close(fd);
  for (int i = 0; i < 500 && model->batch().running() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(model->batch().running(), 0u) << "the sequence still runs after its client left";
  for (int i = 0; i < 500 && server.stats().requests("chat", 499) == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server.stats().requests("chat", 499), 1u);
  EXPECT_EQ(server.stats().requests("chat", 200), 0u);
  EXPECT_GE(server.stats().disconnects.load(), 1u);
  // And the server goes on.
  EXPECT_EQ(post_chat(port, chat_body("slow", "Hello", 3)).status, 200u);
}

TEST(ServerLoad, AFullQueueAnswers429WithRetryAfter) {
  auto model = slow_model(1);
  srv::server server({.port = 0, .max_queued = 1});
  server.add_model({"slow", model, greedy_defaults(4000)});
  server.set_ready();
  const auto port = server.start();
  // Two long requests: one decoding, one queued (the limit: 1 slot + 1 queued).
  const std::string text = chat_body("slow", "Once upon a time", 4000).dump();
  std::vector<int> busy;
  for (int i = 0; i < 2; ++i) {
    busy.push_back(connect_raw(port));
    send_all(busy.back(), "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(text.size()) + "\r\n\r\n" + text);
  }
  for (int i = 0; i < 500 && model->batch().running() + model->batch().queued() < 2; ++i) std::this_thread::sleep_for(10ms);
  const auto third = post_chat(port, chat_body("slow", "Hello", 3));
  EXPECT_EQ(third.status, 429u) << third.body;
  EXPECT_EQ(third.headers.at("Retry-After"), "1");
  EXPECT_EQ(third.parsed()["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(server.stats().rejections("queue_full"), 1u);
  for (int fd : busy) ::close(fd);  // both cancelled: their clients are gone
  for (int i = 0; i < 500 && (model->batch().running() > 0 || server.stats().in_flight.load() > 0); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(post_chat(port, chat_body("slow", "Hello", 3)).status, 200u);
}

TEST(ServerLoad, ConcurrentRequestsAllEndWithAnAnswer) {
  auto& s = shared();
  std::vector<std::future<unsigned>> calls;
  for (int i = 0; i < 24; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      json body = chat_body(i % 3 == 0 ? "mistral" : "stories", "Once upon a time " + std::to_string(i), 10);
      if (i % 2 == 0) body["stream"] = true;
      return post_chat(s.port, body).status;
    }));
  }
  for (auto& c : calls) EXPECT_EQ(c.get(), 200u);
}

// --- remote members ------------------------------------------------------------------------

fusion::remote_member remote_to(std::uint16_t port, std::string model, bool stream = false, std::string scheme = "http",
                                std::string ca = {}) {
  auto e = std::make_shared<fusion::remote_endpoint>(fusion::endpoint_options{
      .url = scheme + "://127.0.0.1:" + std::to_string(port) + "/v1", .max_in_flight = 2, .ca_file = std::move(ca)});
  fusion::remote_member_options o;
  o.model = std::move(model);
  o.stream = stream;
  o.timeout = 60s;
  o.retries = 1;
  o.backoff = 20ms;
  return fusion::remote_member(e, o);
}

TEST(ServerRemote, ARemoteMemberAnswersAsTheLocalModel) {
  auto& s = shared();
  fusion::request r = fusion::request::from_prompt("Once upon a time", "", 16);
  r.generation.seed = 11;
  r.generation.temperature = 0.8f;
  const auto local = local_answer(s.stories, r);
  for (const bool stream : {false, true}) {
    auto m = remote_to(s.port, "stories", stream);
    std::string streamed;
    struct sink {
      static void on(void* self, std::string_view, std::size_t, const chorus::generate::token_event& e) {
        *static_cast<std::string*>(self) += e.text;
      }
    };
    fusion::request ask = r;
    ask.stream = {&sink::on, &streamed};
    const auto c = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await m.answer(ask); });
    EXPECT_EQ(c.status, fusion::member_status::ok) << c.error;
    EXPECT_EQ(c.text, local.text) << (stream ? "streamed" : "whole");
    EXPECT_EQ(streamed, local.text);
    EXPECT_EQ(c.tokens.completion_tokens, local.tokens.completion_tokens);
    EXPECT_EQ(c.finish, local.finish);
    // The confidence the judges rank by travels too (asked for even when the request did not).
    EXPECT_NEAR(c.mean_logprob, local.mean_logprob, 1e-9);
    EXPECT_TRUE(c.logprobs.empty());
  }
  // Several calls (in one io_context: its connections live there) reuse one connection.
  auto m = remote_to(s.port, "stories");
  const auto statuses = run_coro([&]() -> asio::awaitable<std::vector<fusion::member_status>> {
    std::vector<fusion::member_status> out;
    for (int i = 0; i < 3; ++i) {
      fusion::candidate c = co_await m.answer(r);
      out.push_back(c.status);
    }
    co_return out;
  });
  EXPECT_EQ(statuses, std::vector<fusion::member_status>(3, fusion::member_status::ok));
  EXPECT_EQ(m.endpoint().connections_opened(), 1u);
  // An unknown model is a failed member with the server's reason, not an exception.
  auto unknown = remote_to(s.port, "nope");
  const auto u = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await unknown.answer(r); });
  EXPECT_EQ(u.status, fusion::member_status::failed);
  EXPECT_NE(u.error.find("404"), std::string::npos) << u.error;
  EXPECT_NE(u.error.find("nope"), std::string::npos) << u.error;
}

TEST(ServerRemote, ApiKeyFromTheEnvironmentIsSentAndNeverShown) {
  auto& s = shared();
  srv::server guarded({.port = 0, .api_keys = {"k-123-secret"}});
  guarded.add_model({"stories", s.stories, greedy_defaults(4)});
  guarded.set_ready();
  const auto port = guarded.start();
  ::setenv("CHORUS_TEST_KEY", "k-123-secret", 1);
  ::setenv("CHORUS_TEST_WRONG_KEY", "k-456-wrong", 1);
  auto e = std::make_shared<fusion::remote_endpoint>(fusion::endpoint_options{.url = "http://127.0.0.1:" + std::to_string(port) + "/v1"});
  fusion::remote_member good(e, {.model = "stories", .api_key_env = "CHORUS_TEST_KEY"});
  fusion::remote_member bad(e, {.model = "stories", .api_key_env = "CHORUS_TEST_WRONG_KEY"});
  const auto r = fusion::request::from_prompt("Hi", "", 4);
  const auto g = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await good.answer(r); });
  EXPECT_EQ(g.status, fusion::member_status::ok) << g.error;
  const auto b = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await bad.answer(r); });
  EXPECT_EQ(b.status, fusion::member_status::failed);
  EXPECT_NE(b.error.find("401"), std::string::npos) << b.error;
  EXPECT_EQ(b.error.find("k-456"), std::string::npos) << b.error;
  chorus_test::expect_error(chorus::errc::invalid_argument, "CHORUS_TEST_UNSET", [&] {
    fusion::remote_member(e, {.model = "stories", .api_key_env = "CHORUS_TEST_UNSET"});
  });
}

// Reads one whole request (header, then Content-Length bytes of body): a peer that closes with
// unread bytes would reset the connection and lose its own answer.
void read_request(int fd) {
  std::string got = read_raw(fd, 2000ms, "\r\n\r\n");
  const auto end = got.find("\r\n\r\n");
  if (end == std::string::npos) return;
  std::size_t length = 0;
  for (auto name : {"Content-Length: ", "content-length: "}) {
    if (const auto at = got.find(name); at != std::string::npos) length = std::stoul(got.substr(at + std::strlen(name)));
  }
  while (got.size() < end + 4 + length) {
    const std::string more = read_raw(fd, 2000ms);
    if (more.empty()) return;
    got += more;
  }
}

// A misbehaving OpenAI-compatible peer on a free port: every connection gets `answer(request
// number, fd)` (which writes what it likes, sleeps, or closes).
class bad_peer {
 public:
  explicit bad_peer(std::function<void(int call, int fd)> answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 64);
    thread_ = std::thread([this] { loop(); });
  }
  ~bad_peer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : workers_) t.join();
  }
  std::uint16_t port() const { return port_; }
  int calls() const { return calls_.load(); }

  static void respond(int fd, int status, const std::string& body, const std::string& extra = {}) {
    send_all(fd, "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n" + body);
  }
  static std::string completion(const std::string& text) {
    return json{{"id", "x"}, {"object", "chat.completion"}, {"choices", json::array({json{{"index", 0},
               {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}})},
                {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}}}}.dump();
  }

 private:
  void loop() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      const int n = calls_.fetch_add(1);
      workers_.emplace_back([this, c, n] {
        read_request(c);
        answer_(n, c);
        ::close(c);
      });
    }
  }
  std::function<void(int, int)> answer_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
};

// A fusion of the local stories model and one remote member: the answer, and the report.
fusion::report fuse_with(fusion::remote_member remote) {
  auto& s = shared();
  std::vector<fusion::any_member> members{std::make_shared<fusion::local_member>(s.stories, greedy_defaults(8)),
                                          std::make_shared<fusion::remote_member>(std::move(remote))};
  const fusion::request r = fusion::request::from_prompt("Once upon a time", "", 8);
  fusion::confidence_judge judge;
  return run_coro([&]() -> asio::awaitable<fusion::report> { co_return co_await fusion::fuse(members, judge, r); });
}

TEST(ServerFaults, Peer500IsRetriedThenReported) {
  bad_peer peer([](int, int fd) { bad_peer::respond(fd, 500, R"({"error":{"message":"the GPU caught fire","type":"server_error"}})"); });
  const auto rep = fuse_with(remote_to(peer.port(), "m"));
  ASSERT_EQ(rep.members.size(), 2u);
  EXPECT_EQ(rep.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(rep.members[1].status, fusion::member_status::failed);
  EXPECT_NE(rep.members[1].error.find("HTTP 500"), std::string::npos) << rep.members[1].error;
  EXPECT_NE(rep.members[1].error.find("the GPU caught fire"), std::string::npos) << rep.members[1].error;
  EXPECT_NE(rep.members[1].error.find("after 2 attempts"), std::string::npos) << rep.members[1].error;
  EXPECT_EQ(peer.calls(), 2);  // one retry
  EXPECT_EQ(rep.verdict.answer, rep.members[0].text);
  EXPECT_EQ(rep.to_json()["failed_members"].size(), 1u);
}

TEST(ServerFaults, Peer429ThenAnswerSucceedsOnRetry) {
  bad_peer peer([](int call, int fd) {
    if (call == 0) bad_peer::respond(fd, 429, R"({"error":{"message":"slow down"}})", "Retry-After: 0\r\n");
    else bad_peer::respond(fd, 200, bad_peer::completion("from the peer"));
  });
  auto m = remote_to(peer.port(), "m");
  const auto r = fusion::request::from_prompt("x", "", 4);
  const auto c = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await m.answer(r); });
  EXPECT_EQ(c.status, fusion::member_status::ok) << c.error;
  EXPECT_EQ(c.text, "from the peer");
  EXPECT_NE(c.path.find("after 1 retry"), std::string::npos) << c.path;
  EXPECT_EQ(peer.calls(), 2);
}

TEST(ServerFaults, PeerGarbageIsReported) {
  bad_peer peer([](int, int fd) { bad_peer::respond(fd, 200, "<html>definitely not JSON</html>"); });
  const auto rep = fuse_with(remote_to(peer.port(), "m"));
  EXPECT_EQ(rep.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(rep.members[1].status, fusion::member_status::failed);
  EXPECT_NE(rep.members[1].error.find("not a chat completion"), std::string::npos) << rep.members[1].error;
  EXPECT_EQ(peer.calls(), 1);  // garbage is not retried
}

TEST(ServerFaults, SilentPeerTimesOut) {
  bad_peer peer([](int, int fd) { read_raw(fd, 3000ms, "never"); });
  auto e = std::make_shared<fusion::remote_endpoint>(fusion::endpoint_options{.url = "http://127.0.0.1:" + std::to_string(peer.port()) + "/v1"});
  fusion::remote_member silent(e, {.model = "m", .timeout = 300ms, .retries = 2});
  const auto rep = fuse_with(std::move(silent));
  EXPECT_EQ(rep.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(rep.members[1].status, fusion::member_status::timed_out);
  EXPECT_NE(rep.members[1].error.find("timed out after 300 ms"), std::string::npos) << rep.members[1].error;
}

TEST(ServerFaults, UnreachablePeerIsRetriedThenReported) {
  int port = 0;
  {
    bad_peer gone([](int, int) {});
    port = gone.port();
  }  // closed: nothing listens there now
  const auto rep = fuse_with(remote_to(static_cast<std::uint16_t>(port), "m"));
  EXPECT_EQ(rep.members[1].status, fusion::member_status::failed);
  EXPECT_NE(rep.members[1].error.find("cannot connect"), std::string::npos) << rep.members[1].error;
}

TEST(ServerFaults, PeerBreakingMidStreamKeepsWhatCame) {
  bad_peer peer([](int, int fd) {
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" upon\"}}]}\n\n");
    ::shutdown(fd, SHUT_RDWR);  // gone, no [DONE]
  });
  const auto rep = fuse_with(remote_to(peer.port(), "m", true));
  EXPECT_EQ(rep.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(rep.members[1].status, fusion::member_status::failed);
  EXPECT_EQ(rep.members[1].text, "Once upon");
  EXPECT_NE(rep.members[1].error.find("2 pieces"), std::string::npos) << rep.members[1].error;
}

// --- TLS ------------------------------------------------------------------------------------

TEST(ServerTls, VerificationFailsWithoutTheCaAndSucceedsWithIt) {
  if (!have("openssl")) GTEST_SKIP() << "the openssl command is not installed";
  auto& s = shared();
  const auto dir = chorus_test::scratch_dir("server-tls");
  const std::string key = (dir / "key.pem").string(), cert = (dir / "cert.pem").string();
  const std::string make = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                           key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(make.c_str()), 0);
  srv::server tls({.port = 0, .tls_cert = cert, .tls_key = key});
  tls.add_model({"stories", s.stories, greedy_defaults(6)});
  tls.set_ready();
  const auto port = tls.start();
  const auto r = fusion::request::from_prompt("Once upon a time", "", 6);
  auto untrusted = remote_to(port, "stories", false, "https");
  const auto u = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await untrusted.answer(r); });
  EXPECT_EQ(u.status, fusion::member_status::failed);
  EXPECT_NE(u.error.find("certificate verify failed"), std::string::npos) << u.error;
  for (const bool stream : {false, true}) {
    auto trusted = remote_to(port, "stories", stream, "https", cert);
    const auto t = run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await trusted.answer(r); });
    EXPECT_EQ(t.status, fusion::member_status::ok) << t.error;
    EXPECT_EQ(t.text, local_answer(s.stories, r).text);
  }
  // Plain HTTP to the TLS port is refused without harm.
  EXPECT_ANY_THROW(call(port, http::verb::get, "/health"));
  auto trusted = remote_to(port, "stories", false, "https", cert);
  EXPECT_EQ(run_coro([&]() -> asio::awaitable<fusion::candidate> { co_return co_await trusted.answer(r); }).status, fusion::member_status::ok);
}

// --- the built `chorus serve` --------------------------------------------------------------

// Starts `chorus serve ARGS` and waits for its "ready" line; kills it when done.
class serve_process {
 public:
  explicit serve_process(const std::string& args) {
    const std::string cli = CHORUS_CLI_PATH;
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::execl("/bin/sh", "sh", "-c", ("exec " + cli + " serve --port 0 --quiet " + args).c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    std::string lines;
    char buf[512];
    const auto end = std::chrono::steady_clock::now() + 120s;
    while (lines.find("ready") == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const auto n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      lines.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    const auto at = lines.find("127.0.0.1:");
    if (at == std::string::npos || lines.find("ready") == std::string::npos) throw std::runtime_error("chorus serve did not start: " + lines);
    port_ = static_cast<std::uint16_t>(std::stoi(lines.substr(at + 10)));
  }
  ~serve_process() { kill(SIGTERM); }
  void kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_status_ = status;
    pid_ = -1;
  }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  int exit_status() const { return exit_status_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  int exit_status_ = -1;
};

bool have_cli() { return std::string(CHORUS_CLI_PATH).size() > 0 && std::filesystem::exists(CHORUS_CLI_PATH); }

TEST(ServerProcess, ServeFuseAcrossTwoServersAndStopCleanly) {
  if (!have_cli()) GTEST_SKIP() << "the chorus tool is not built";
  const auto stories = chorus_test::model_path("stories260K.gguf").string();
  serve_process far("--model " + stories + " --parallel 2 -n 12 --seed 3");
  // A second server fuses its own model with the first server's.
  serve_process near("--model local=" + stories + " --fusion 'both=mode=confidence;member=local:seed=1;member=http://127.0.0.1:" +
                     std::to_string(far.port()) + "/v1#stories260K,name=far'");
  const auto models = call(near.port(), http::verb::get, "/v1/models").parsed();
  EXPECT_EQ(models["data"].size(), 2u);
  const auto res = post_chat(near.port(), chat_body("fusion/both", "Once upon a time", 8));
  ASSERT_EQ(res.status, 200u) << res.body;
  const json report = res.parsed()["chorus_fusion"];
  ASSERT_EQ(report["members"].size(), 2u);
  EXPECT_EQ(report["members"][1]["name"], "far");
  EXPECT_EQ(report["members"][1]["status"], "ok") << report.dump();
  EXPECT_EQ(report["members"][1]["path"], "remote");
  near.kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(near.exit_status()) && WEXITSTATUS(near.exit_status()) == 0) << near.exit_status();
}

TEST(ServerProcess, AMemberServerKilledMidStreamLeavesTheOthersToAnswer) {
  if (!have_cli()) GTEST_SKIP() << "the chorus tool is not built";
  serve_process far("--model " + chorus_test::model_path("tiny-llama-bpe-Q4_K_M.gguf").string() + " --ctx 1024 --parallel 1");
  auto& s = shared();
  auto remote = remote_to(far.port(), "tiny-llama-bpe-Q4_K_M", true);
  // Kill the member's server when its first piece arrives (from the stream callback).
  struct killer {
    serve_process* target;
    std::atomic<bool> done{false};
    static void on(void* self, std::string_view member, std::size_t, const chorus::generate::token_event&) {
      auto* k = static_cast<killer*>(self);
      if (member.find("tiny-llama") != std::string_view::npos && !k->done.exchange(true)) ::kill(k->target->pid(), SIGKILL);
    }
  } kill_on_first{&far};
  std::vector<fusion::any_member> members{std::make_shared<fusion::local_member>(s.stories, greedy_defaults(8)),
                                          std::make_shared<fusion::remote_member>(std::move(remote))};
  fusion::request r = fusion::request::from_prompt("Once upon a time", "", 3000);
  r.stream = {&killer::on, &kill_on_first};
  fusion::confidence_judge judge;
  const auto rep = run_coro([&]() -> asio::awaitable<fusion::report> { co_return co_await fusion::fuse(members, judge, r); });
  EXPECT_TRUE(kill_on_first.done.load());
  EXPECT_EQ(rep.members[0].status, fusion::member_status::ok);
  EXPECT_EQ(rep.members[1].status, fusion::member_status::failed);
  EXPECT_NE(rep.members[1].error.find("pieces"), std::string::npos) << rep.members[1].error;  // "broke after N pieces"
  EXPECT_FALSE(rep.members[1].text.empty());
  EXPECT_EQ(rep.verdict.answer, rep.members[0].text);
}

}  // namespace

// --- the official OpenAI client for Node ----------------------------------------------------

namespace {

TEST(ServerNode, TheOfficialOpenAIClientTalksToChorusServe) {
  if (!have_cli()) GTEST_SKIP() << "the chorus tool is not built";
  if (!have("node") || !have("npm")) GTEST_SKIP() << "Node.js / npm are not installed";
  const auto dir = chorus_test::scratch_dir("server-node");
  const std::string install = "cd " + dir.string() + " && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund openai >npm.log 2>&1";
  ASSERT_EQ(std::system(install.c_str()), 0) << shell("cat " + (dir / "npm.log").string());
  std::filesystem::copy_file(std::filesystem::path(CHORUS_TEST_NODE_DIR) / "client.mjs", dir / "client.mjs");
  const auto models = chorus_test::model_path("stories260K.gguf").string();
  serve_process server("--model stories=" + models + " --model mistral=" + chorus_test::model_path("tiny-mistral-Q4_0.gguf").string() +
                       " --model qwen-tools=" + tools_model().string() +
                       " --fusion 'pair=mode=confidence;member=stories:seed=1;member=stories:seed=2' --parallel 4 --ctx 1024");
  const std::string out = shell("cd " + dir.string() + " && node client.mjs http://127.0.0.1:" + std::to_string(server.port()) + "/v1 2>&1; echo exit=$?");
  EXPECT_NE(out.find("exit=0"), std::string::npos) << out;
  EXPECT_NE(out.find("\"passed\":8"), std::string::npos) << out;
}

}  // namespace
