// chorus — command-line tool: dispatches to the registered sub-commands.
#include <chorus/chorus.hpp>

#include <exception>
#include <iostream>
#include <string_view>
#include <vector>

#include "command.hpp"

namespace {

void print_help() {
  std::cout << "chorus " << chorus::version_string << " — on-device LLM inference and model fusion\n\n"
            << "usage: chorus <command> [options]\n\ncommands:\n";
  for (const auto& [name, entry] : chorus_cli::commands()) {
    std::cout << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') << entry.summary << "\n";
  }
  std::cout << "\nrun 'chorus <command> --help' for a command's options\n";
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "chorus " << chorus::version_string << "\n";
    return 0;
  }
  const auto found = chorus_cli::commands().find(args[0]);
  if (found == chorus_cli::commands().end()) {
    std::cerr << "chorus: unknown command '" << args[0] << "'\n\n";
    print_help();
    return 2;
  }
  const auto& [name, command] = *found;
  const std::span<const std::string_view> rest(args.data() + 1, args.size() - 1);
  for (auto arg : rest) {
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: chorus " << name << " " << command.usage << "\n";
      return 0;
    }
  }
  try {
    return command.run(rest);
  } catch (const chorus_cli::usage_error& e) {
    std::cerr << "chorus " << name << ": " << e.what() << "\nusage: chorus " << name << " " << command.usage << "\n";
    return 2;
  } catch (const chorus::error& e) {
    std::cerr << "chorus " << name << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "chorus " << name << ": unexpected error: " << e.what() << "\n";
    return 1;
  }
}
