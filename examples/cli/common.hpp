// chorus CLI — options shared by the generating commands.
#pragma once

#include <chorus/chorus.hpp>

#include <cstdio>
#include <string_view>

#include "command.hpp"

namespace chorus_cli {

// A vocabulary whose tokenizer.ggml.pre chorus does not know is split with the default BPE
// patterns; ids may then differ from the model's training tokenizer, so say it once on stderr.
inline void warn_about(const chorus::tokenizer::vocab& vocab, std::string_view model_path) {
  if (vocab.pre_tokenizer_is_fallback()) {
    std::fprintf(stderr, "warning: %.*s: unknown pre-tokenizer '%s'; splitting with the default BPE patterns\n",
                 static_cast<int>(model_path.size()), model_path.data(), vocab.pre_tokenizer().c_str());
  }
}

inline chorus::sample::sampling_params sampling_from(const arguments& a) {
  chorus::sample::sampling_params p;
  p.temperature = a.number<float>("temp", p.temperature);
  p.top_k = a.number<std::int32_t>("top-k", p.top_k);
  p.top_p = a.number<float>("top-p", p.top_p);
  p.min_p = a.number<float>("min-p", p.min_p);
  p.repeat_penalty = a.number<float>("repeat-penalty", p.repeat_penalty);
  p.seed = a.number<std::uint64_t>("seed", p.seed);
  p.validate();
  return p;
}

}  // namespace chorus_cli
