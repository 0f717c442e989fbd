// A consumer of the inference-only header: load a model, generate a few tokens greedily.
// Built from the copied single_include/chorus/inference.hpp with no Boost header read
// (tests/consumers/single_header.cmake checks the compiler's dependency list).
#include <chorus/inference.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
    return 2;
  }
  try {
    const auto model = chorus::generate::language_model::load(argv[1]);
    chorus::generate::session session(model);
    chorus::generate::options opts;
    opts.max_tokens = 8;
    opts.sampling.temperature = 0.0f;  // greedy: the same text on every run
    const auto result = session.complete("Once upon a time", opts);
    std::printf("chorus %s (inference only): %zu tokens: %s\n", chorus::version_string, result.ids.size(),
                result.text.c_str());
    return result.ids.empty() ? 1 : 0;
  } catch (const chorus::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
