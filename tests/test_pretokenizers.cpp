// Differential tests of the BPE pre-tokenizers against the reference (llama.cpp): for every
// tokenizer.ggml.pre name in tests/data/pretokenizers.json, a synthetic byte-level BPE vocabulary
// (tests/synthetic_bpe_vocab.hpp: every byte pair merges, so a different word boundary gives
// different ids) is written with the GGUF writer and every text must give exactly the ids that
// llama-tokenize gave. Regenerate the data with tools/gen_pretokenizer_goldens.py.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "synthetic_bpe_vocab.hpp"
#include "test_support.hpp"

namespace {

using namespace chorus;
using json = nlohmann::json;  // golden files: order of members does not matter

const json& goldens() {
  static const json data = [] {
    std::ifstream in(chorus_test::test_data_dir() / "pretokenizers.json", std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return json::parse(s.str());
  }();
  return data;
}

std::vector<std::string> pre_names() {
  std::vector<std::string> names;
  for (const auto& [name, ids] : goldens().at("ids").items()) names.push_back(name);
  return names;
}

// The text with control and non-ASCII characters escaped, for failure messages.
std::string printable(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string join(const std::vector<std::int32_t>& ids) {
  std::string out;
  for (const auto id : ids) out += (out.empty() ? "" : " ") + std::to_string(id);
  return out;
}

class PretokVsReference : public ::testing::TestWithParam<std::string> {};

TEST_P(PretokVsReference, IdsMatchExactly) {
  const std::string& name = GetParam();
  const auto path = chorus_test::scratch_dir("pretok-" + name) / "vocab.gguf";
  chorus_test::synthetic_bpe::write(path, name);
  const auto tk = tokenizer::tokenizer::from_gguf(gguf::file::open(path));
  EXPECT_FALSE(tk.vocabulary().pre_tokenizer_is_fallback()) << name;
  EXPECT_FALSE(tk.vocabulary().add_bos());

  const auto& texts = goldens().at("texts");
  const auto& expected = goldens().at("ids").at(name);
  ASSERT_EQ(texts.size(), expected.size());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto& text = texts[i].get_ref<const std::string&>();
    std::vector<std::int32_t> want;
    for (const auto& v : expected[i]) want.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
    const auto got = tk.encode(text, false, false);
    if (got != want) ++mismatches;
    EXPECT_EQ(join(got), join(want)) << name << ", text " << i << ": \"" << printable(text) << "\"";
  }
  EXPECT_EQ(mismatches, 0u) << name << ": " << mismatches << " of " << texts.size() << " texts differ";
}

INSTANTIATE_TEST_SUITE_P(PretokNames, PretokVsReference, ::testing::ValuesIn(pre_names()), [](const auto& info) {
  std::string name = info.param;
  for (auto& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
});

// The data covers every pre-tokenizer kind chorus implements, and enough texts.
TEST(PretokGoldens, CoverEveryKind) {
  std::vector<tokenizer::pre_tokenizer_kind> kinds;
  for (const auto& name : pre_names()) {
    const auto traits = tokenizer::pre_tokenizer_by_name(name);
    ASSERT_TRUE(traits.has_value()) << name;
    kinds.push_back(traits->kind);
  }
  using k = tokenizer::pre_tokenizer_kind;
  for (const auto kind : {k::default_bpe, k::gpt2, k::llama3, k::qwen2, k::deepseek_llm, k::deepseek_coder, k::falcon, k::smollm, k::tekken}) {
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), kind), kinds.end()) << tokenizer::to_string(kind);
  }
  EXPECT_GE(goldens().at("texts").size(), 150u);
}

}  // namespace
