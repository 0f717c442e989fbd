// chorus logits — the top-k logits at every position of a prompt.
#include <chorus/chorus.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "command.hpp"
#include "common.hpp"

namespace cmd_logits {

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments a(args, {"json"});
  const auto model_path = a.require("model");
  const auto prompt = a.require("prompt");
  const auto top = a.number<std::size_t>("top", 10);
  const auto threads = a.number<std::size_t>("threads", 0);
  const bool json = a.flag("json");
  a.reject_unknown();
  const auto model = chorus::generate::language_model::load(model_path);
  chorus_cli::warn_about(model->tokens().vocabulary(), model_path);
  const auto ids = model->tokens().encode(prompt, true, false);
  if (ids.empty()) throw chorus_cli::usage_error("the prompt has no tokens");
  chorus::model::context ctx(model->network(), {.n_ctx = static_cast<std::uint32_t>(ids.size() + 1), .threads = threads});
  const auto logits = ctx.decode(ids, 0, true);
  const std::size_t n_vocab = model->network().params().n_vocab;
  const std::size_t k = std::min(top, n_vocab);
  std::vector<std::int32_t> order(n_vocab);
  // --json: {"ids": [...], "positions": [{"top": [[id, logit], ...]}, ...]}, each logit the
  // float's exact value.
  chorus_cli::json positions = chorus_cli::json::array();
  for (std::size_t pos = 0; pos < ids.size(); ++pos) {
    const auto row = logits.subspan(pos * n_vocab, n_vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), [&](auto x, auto y) {
      return row[x] > row[y] || (row[x] == row[y] && x < y);
    });
    if (json) {
      chorus_cli::json top = chorus_cli::json::array();
      for (std::size_t i = 0; i < k; ++i) top.push_back({order[i], static_cast<double>(row[order[i]])});
      positions.push_back({{"top", std::move(top)}});
    } else {
      std::printf("position %zu (token %d):", pos, ids[pos]);
      for (std::size_t i = 0; i < k; ++i) std::printf(" %d:%.3f", order[i], static_cast<double>(row[order[i]]));
      std::printf("\n");
    }
  }
  if (json) std::cout << chorus_cli::dump({{"ids", ids}, {"positions", std::move(positions)}}) << "\n";
  return 0;
}

const chorus_cli::registration logits_command{"logits", "print the top-k logits at every prompt position",
                                              "--model M.gguf --prompt P [--top K] [--threads N] [--json]", &run};

}  // namespace cmd_logits
