// A consumer program: what a user of chorus writes first. Shared by the three consumer
// projects (installed package, add_subdirectory, copied single headers).
#include <chorus/inference.hpp>  // as a header of the program's might, before the full one:
#include <chorus/chorus.hpp>     // each single header guards its parts, so both go in one file

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  try {
    const auto file = chorus::gguf::file::open(argv[1]);
    std::printf("chorus %s: %s (%s), %zu tensors\n", chorus::version_string,
                std::string(file.get<std::string_view>("general.name")).c_str(),
                std::string(file.get<std::string_view>("general.architecture")).c_str(), file.tensors().size());
    return 0;
  } catch (const chorus::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
