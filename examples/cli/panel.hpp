// chorus CLI — building a fusion panel from command-line member specs, shared by the commands
// that fuse (fuse, eval, serve). A model file is loaded once however many members use it, and
// all its members (and a judge on it) share one batched engine. A file that does not load makes
// a failed member that reports why, not a failed command.
#pragma once

// The tool is built with CHORUS_NETWORK (examples/CMakeLists.txt): <chorus/chorus.hpp> then has
// the remote members and the server, from the modular headers and from the single header alike.
#if !defined(CHORUS_NETWORK)
#error "the chorus tool is compiled with CHORUS_NETWORK defined"
#endif
#include <chorus/chorus.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "command.hpp"

namespace chorus_cli {

// A member served elsewhere: "http://host:port/v1#model-name,key=value,..."
struct remote_spec {
  chorus::fusion::endpoint_options endpoint;
  chorus::fusion::remote_member_options options;
};

// "model.gguf:seed=2,temp=0.8,name=x" -> path + options; "http[s]://.../v1#model,..." -> remote
struct member_spec {
  std::string path;
  chorus::fusion::local_member_options options;
  std::optional<remote_spec> remote;
};

// "http://host:port/v1#model-name[,name=N,key-env=VAR,stream=1,timeout-ms=T,retries=R,
// max-in-flight=K,ca=FILE,insecure=1,temp=T,seed=S,top-p=P,top-k=K,min-p=M,system=TEXT]".
// The model name ends at the first ',' (names may hold ':' and '/', never ',').
inline remote_spec parse_remote_member(const std::string& text, const chorus::sample::sampling_params& defaults,
                                       std::int32_t max_tokens) {
  remote_spec spec;
  const auto hash = text.find('#');
  if (hash == std::string::npos) throw usage_error("remote member '" + text + "' names no model: write URL#model-name");
  spec.endpoint.url = text.substr(0, hash);
  const std::string rest = text.substr(hash + 1);
  const auto comma = rest.find(',');
  spec.options.model = rest.substr(0, comma);
  if (spec.options.model.empty()) throw usage_error("remote member '" + text + "' names no model after '#'");
  auto& d = spec.options.defaults;
  d.max_tokens = max_tokens;
  d.temperature = defaults.temperature;
  d.seed = defaults.seed;
  std::size_t pos = comma == std::string::npos ? rest.size() + 1 : comma + 1;
  while (pos <= rest.size()) {
    const auto next = rest.find(',', pos);
    const std::string item = rest.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    pos = next == std::string::npos ? rest.size() + 1 : next + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw usage_error("remote member option '" + item + "' needs key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "name") spec.options.name = value;
    else if (key == "key-env") spec.options.api_key_env = value;
    else if (key == "stream") spec.options.stream = value != "0";
    else if (key == "timeout-ms") spec.options.timeout = std::chrono::milliseconds(arguments::parse_number<long>(value, "member timeout-ms"));
    else if (key == "retries") spec.options.retries = arguments::parse_number<int>(value, "member retries");
    else if (key == "max-in-flight") spec.endpoint.max_in_flight = arguments::parse_number<std::size_t>(value, "member max-in-flight");
    else if (key == "ca") spec.endpoint.ca_file = value;
    else if (key == "insecure") spec.endpoint.verify_certificate = value == "0";
    else if (key == "temp") d.temperature = arguments::parse_number<float>(value, "member temp");
    else if (key == "seed") d.seed = arguments::parse_number<std::uint64_t>(value, "member seed");
    else if (key == "top-p") d.top_p = arguments::parse_number<float>(value, "member top-p");
    else if (key == "top-k") d.top_k = arguments::parse_number<std::int32_t>(value, "member top-k");
    else if (key == "min-p") d.min_p = arguments::parse_number<float>(value, "member min-p");
    else if (key == "system") spec.options.system_prompt = value;
    else {
      throw usage_error("unknown remote member option '" + key +
                        "' (name, key-env, stream, timeout-ms, retries, max-in-flight, ca, insecure, temp, seed, top-p, top-k, min-p, system)");
    }
  }
  try {
    (void)chorus::fusion::endpoint_url::parse(spec.endpoint.url);
  } catch (const chorus::error& e) {
    throw usage_error(e.what());
  }
  return spec;
}

inline member_spec parse_member(const std::string& text, const chorus::sample::sampling_params& defaults,
                                std::int32_t max_tokens) {
  member_spec spec;
  if (text.starts_with("http://") || text.starts_with("https://")) {
    spec.remote = parse_remote_member(text, defaults, max_tokens);
    spec.path = spec.remote->endpoint.url;
    spec.options.name = spec.remote->options.name;
    return spec;
  }
  spec.options.generation.sampling = defaults;
  spec.options.generation.max_tokens = max_tokens;
  // Options follow the last ':' that comes after the file name's extension (paths may hold ':').
  const auto gguf = text.rfind(".gguf");
  const auto colon = gguf == std::string::npos ? text.rfind(':') : text.find(':', gguf);
  spec.path = text.substr(0, colon);
  if (spec.path.empty()) throw usage_error("member '" + text + "' names no model file");
  if (colon == std::string::npos) return spec;
  const std::string rest = text.substr(colon + 1);
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string item = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? rest.size() + 1 : comma + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw usage_error("member option '" + item + "' needs key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    auto& s = spec.options.generation.sampling;
    if (key == "seed") s.seed = arguments::parse_number<std::uint64_t>(value, "member seed");
    else if (key == "temp") s.temperature = arguments::parse_number<float>(value, "member temp");
    else if (key == "top-k") s.top_k = arguments::parse_number<std::int32_t>(value, "member top-k");
    else if (key == "top-p") s.top_p = arguments::parse_number<float>(value, "member top-p");
    else if (key == "min-p") s.min_p = arguments::parse_number<float>(value, "member min-p");
    else if (key == "name") spec.options.name = value;
    else if (key == "system") spec.options.system_prompt = value;
    else if (key == "path") {
      if (value == "chat") spec.options.path = chorus::fusion::prompt_path::chat;
      else if (value == "completion") spec.options.path = chorus::fusion::prompt_path::completion;
      else throw usage_error("member option path must be chat or completion, not '" + value + "'");
    } else if (key == "chat") {  // the chat format to write, when the model's template names another
      try {
        spec.options.chat_format = chorus::tokenizer::chat_template_from_name(value);
      } catch (const chorus::error& e) {
        throw usage_error("member option chat: " + std::string(e.what()));
      }
    } else {
      throw usage_error("unknown member option '" + key + "' (seed, temp, top-k, top-p, min-p, name, system, path, chat)");
    }
  }
  try {
    spec.options.generation.sampling.validate();
  } catch (const chorus::error& e) {
    throw usage_error("member " + spec.path + ": " + e.what());
  }
  return spec;
}

// Loads each model file once and builds members and judges on the loaded models.
class panel_builder {
 public:
  // `parallel`: sequences each model decodes together; `threads`: the shared matrix threads.
  panel_builder(std::size_t threads, std::uint32_t n_ctx) : math_(threads), n_ctx_(n_ctx) {}

  // How many calls will go to `path` (members x samples, a judge): sizes its batch. Call before member().
  void expect(const std::string& path, std::size_t calls) { expected_[path] += calls; }

  // A local member, or a failed one naming why its model did not load; a remote member (one
  // endpoint per base URL, shared by its members), or a failed one naming what is wrong.
  chorus::fusion::any_member member(const member_spec& spec, bool warn = true) {
    if (spec.remote) return remote(*spec.remote, warn);
    std::string label = spec.options.name;
    if (label.empty()) label = std::filesystem::path(spec.path).stem().string() + "#seed" + std::to_string(spec.options.generation.sampling.seed);
    auto m = load(spec.path, warn);
    if (!m) return std::make_shared<chorus::fusion::failed_member>(chorus::fusion::failed_member{label, errors_[spec.path]});
    auto options = spec.options;
    options.name = label;
    return std::make_shared<chorus::fusion::local_member>(m, options);
  }

  // The judge model: greedy, named "judge".
  chorus::fusion::any_member judge(const std::string& path) {
    member_spec spec;
    spec.path = path;
    spec.options.name = "judge";
    spec.options.generation.sampling.temperature = 0.0f;
    spec.options.generation.max_tokens = 160;
    return member(spec);
  }

  std::shared_ptr<chorus::fusion::local_model> load(const std::string& path, bool warn = true) {
    if (auto it = loaded_.find(path); it != loaded_.end()) return it->second;
    if (errors_.count(path) != 0) return nullptr;
    try {
      auto model = chorus::generate::language_model::load(path);
      if (warn && model->tokens().vocabulary().pre_tokenizer_is_fallback()) {
        std::fprintf(stderr, "warning: %s: unknown pre-tokenizer '%s'; splitting with the default BPE patterns\n", path.c_str(),
                     model->tokens().vocabulary().pre_tokenizer().c_str());
      }
      const std::size_t calls = std::max<std::size_t>(1, expected_[path]);
      const auto parallel = static_cast<std::uint32_t>(std::min<std::size_t>(calls, 64));
      auto local = std::make_shared<chorus::fusion::local_model>(
          model, chorus::fusion::local_model_options{.n_ctx = n_ctx_, .parallel = parallel, .pool = &math_});
      loaded_[path] = local;
      return local;
    } catch (const chorus::error& e) {
      errors_[path] = e.what();
      if (warn) std::fprintf(stderr, "warning: %s\n", e.what());
      return nullptr;
    }
  }

  chorus::fusion::any_member remote(const remote_spec& spec, bool warn = true) {
    try {
      const std::string key = spec.endpoint.url + "|" + spec.endpoint.ca_file + (spec.endpoint.verify_certificate ? "" : "|insecure");
      auto& endpoint = endpoints_[key];
      if (!endpoint) endpoint = std::make_shared<chorus::fusion::remote_endpoint>(spec.endpoint);
      return std::make_shared<chorus::fusion::remote_member>(endpoint, spec.options);
    } catch (const chorus::error& e) {
      if (warn) std::fprintf(stderr, "warning: %s\n", e.what());
      std::string label = spec.options.name.empty() ? spec.options.model + "@" + spec.endpoint.url : spec.options.name;
      return std::make_shared<chorus::fusion::failed_member>(chorus::fusion::failed_member{label, e.what()});
    }
  }

  chorus::thread_pool& math() noexcept { return math_; }

 private:
  std::map<std::string, std::shared_ptr<chorus::fusion::remote_endpoint>> endpoints_;
  chorus::thread_pool math_;
  std::uint32_t n_ctx_;
  std::map<std::string, std::size_t> expected_;
  std::map<std::string, std::shared_ptr<chorus::fusion::local_model>> loaded_;
  std::map<std::string, std::string> errors_;
};

}  // namespace chorus_cli
