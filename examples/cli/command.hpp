// chorus CLI — sub-command registry and a small argument parser shared by the commands.
//
// Each sub-command lives in its own cmd_<name>.cpp, in namespace cmd_<name> (the tool builds
// as unity sources: no two commands may share a name), and registers itself with
// `const chorus_cli::registration reg{"name", "summary", "usage", &run};`.
#pragma once

#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace chorus_cli {

// A mistake on the command line: printed with the command's usage, exit code 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using command_fn = int (*)(std::span<const std::string_view> args);

struct command_entry {
  std::string summary;
  std::string usage;
  command_fn run;
};

inline std::map<std::string, command_entry, std::less<>>& commands() {
  static std::map<std::string, command_entry, std::less<>> registry;
  return registry;
}

struct registration {
  registration(std::string name, std::string summary, std::string usage, command_fn run) {
    commands().emplace(std::move(name), command_entry{std::move(summary), std::move(usage), run});
  }
};

// Options as `--name value`, `--name=value` or flags `--name`; everything else is positional.
class arguments {
 public:
  // `flags` lists the options that take no value.
  arguments(std::span<const std::string_view> args, std::initializer_list<std::string_view> flags = {}) {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string_view arg = args[i];
      if (arg.size() > 2 && arg.starts_with("--")) {
        std::string_view name = arg.substr(2);
        if (const auto eq = name.find('='); eq != std::string_view::npos) {
          options_.emplace_back(std::string(name.substr(0, eq)), std::string(name.substr(eq + 1)));
          continue;
        }
        bool is_flag = false;
        for (auto f : flags) is_flag = is_flag || f == name;
        if (is_flag) {
          options_.emplace_back(std::string(name), std::nullopt);
        } else {
          if (i + 1 >= args.size()) throw usage_error("option --" + std::string(name) + " needs a value");
          options_.emplace_back(std::string(name), std::string(args[++i]));
        }
      } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-' && i + 1 < args.size()) {
        options_.emplace_back(std::string(arg.substr(1)), std::string(args[++i]));  // short: -n 16
      } else {
        positional_.emplace_back(arg);
      }
    }
  }

  bool flag(std::string_view name) const {
    for (auto& [key, value] : options_) {
      if (key == name) {
        used_.push_back(std::string(name));
        return true;
      }
    }
    return false;
  }
  std::optional<std::string> get(std::string_view name) const {
    std::optional<std::string> result;
    for (auto& [key, value] : options_) {
      if (key == name) {
        if (!value) throw usage_error("option --" + std::string(name) + " needs a value");
        result = value;  // the last occurrence wins
      }
    }
    used_.push_back(std::string(name));
    return result;
  }
  std::vector<std::string> get_all(std::string_view name) const {
    std::vector<std::string> result;
    for (auto& [key, value] : options_) {
      if (key == name && value) result.push_back(*value);
    }
    used_.push_back(std::string(name));
    return result;
  }
  std::string require(std::string_view name) const {
    auto value = get(name);
    if (!value) throw usage_error("missing required option --" + std::string(name));
    return *value;
  }
  template <class Number>
  Number number(std::string_view name, Number fallback) const {
    auto value = get(name);
    if (!value) return fallback;
    return parse_number<Number>(*value, name);
  }
  template <class Number>
  static Number parse_number(const std::string& text, std::string_view what) {
    Number result{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, result);
    if (ec != std::errc() || ptr != end) {
      throw usage_error("--" + std::string(what) + " expects a number, got '" + text + "'");
    }
    return result;
  }
  const std::vector<std::string>& positional() const { return positional_; }

  // Call after reading every option: an option the command never asked for is a typo.
  void reject_unknown() const {
    for (auto& [key, value] : options_) {
      bool known = false;
      for (auto& u : used_) known = known || u == key;
      if (!known) throw usage_error("unknown option --" + key);
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> options_;
  std::vector<std::string> positional_;
  mutable std::vector<std::string> used_;
};

}  // namespace chorus_cli
