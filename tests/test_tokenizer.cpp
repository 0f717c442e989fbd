// Tests of tokenizer/: token ids identical to llama.cpp on every golden case, pieces and
// decoded text of the golden generations, streaming decoding, malformed input.
#include <gtest/gtest.h>

#include <chorus/chorus.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace chorus;
using json = nlohmann::json;  // golden files: order of members does not matter

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}
std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}
using chorus_test::ids_of;

// Vocabularies whose BPE pre-tokenizer chorus does not implement yet are reported as skipped.
std::optional<tokenizer::tokenizer> load_vocab(const std::filesystem::path& vocab_file) {
  const auto file = gguf::file::open(vocab_file);
  try {
    return tokenizer::tokenizer::from_gguf(file);
  } catch (const chorus::error& e) {
    if (e.kind() == errc::unsupported) return std::nullopt;
    throw;
  }
}

std::vector<std::filesystem::path> vocab_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(chorus_test::golden_dir() / "tokenizer")) {
    if (e.path().extension() == ".gguf") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class GoldenVocab : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(GoldenVocab, TestVectorsMatchExactly) {
  const auto tk = load_vocab(GetParam());
  if (!tk) GTEST_SKIP() << GetParam().filename() << ": pre-tokenizer not implemented yet";
  const std::string input = slurp(GetParam().string() + ".inp");
  const std::string expected = slurp(GetParam().string() + ".out");
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (std::size_t pos = 0;;) {
    const auto at = input.find(separator, pos);
    if (at == std::string::npos) break;
    texts.push_back(input.substr(pos, at - pos));
    pos = at + separator.size();
  }
  std::vector<std::string> lines;
  std::stringstream stream(expected);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  ASSERT_EQ(texts.size(), 46u);
  ASSERT_EQ(lines.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::string got;
    for (const auto id : tk->encode(texts[i], false, false)) got += " " + std::to_string(id);
    EXPECT_EQ(got, lines[i]) << "text: '" << texts[i] << "'";
  }
}

TEST_P(GoldenVocab, HardCasesMatchExactly) {
  const auto tk = load_vocab(GetParam());
  if (!tk) GTEST_SKIP() << GetParam().filename() << ": pre-tokenizer not implemented yet";
  auto extra_path = GetParam();
  extra_path.replace_extension(".extra.json");
  const auto extra = json::parse(slurp(extra_path));
  EXPECT_EQ(tk->vocabulary().add_bos() && tk->vocabulary().bos().has_value(), extra.at("llama_cpp_adds_bos").get<bool>());
  std::size_t cases = 0;
  for (const auto& c : extra.at("cases")) {
    const std::string text = unhex(c.at("text_hex").get<std::string>());
    EXPECT_EQ(tk->encode(text, false, false), ids_of(c.at("ids"))) << c.at("name").get<std::string>();
    EXPECT_EQ(tk->encode(text, false, true), ids_of(c.at("ids_parse_special"))) << c.at("name").get<std::string>();
    EXPECT_EQ(tk->encode(text, true, false), ids_of(c.at("ids_add_special"))) << c.at("name").get<std::string>();
    ++cases;
  }
  EXPECT_GE(cases, 20u);
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, GoldenVocab, ::testing::ValuesIn(vocab_files()), [](const auto& info) {
  std::string name = info.param.stem().string();
  for (auto& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
});

// Every golden logits file: the prompt's ids, and the pieces/text of the generated ids.
TEST(GoldenPrompts, IdsPiecesAndTextMatch) {
  std::map<std::string, tokenizer::tokenizer> tokenizers;
  std::size_t checked = 0;
  for (const auto& dir : std::filesystem::directory_iterator(chorus_test::golden_dir() / "logits")) {
    const std::string model = dir.path().filename().string();
    const auto file = gguf::file::open(chorus_test::model_path(model + ".gguf"));
    const auto tk = tokenizer::tokenizer::from_gguf(file);
    for (const auto& golden_file : std::filesystem::directory_iterator(dir.path())) {
      SCOPED_TRACE(model + "/" + golden_file.path().filename().string());
      const auto golden = json::parse(slurp(golden_file.path()));
      const std::string prompt = unhex(golden.at("prompt_hex").get<std::string>());
      EXPECT_EQ(tk.encode(prompt, true, false), ids_of(golden.at("tokens")));
      const auto generated = ids_of(golden.at("generation").at("tokens"));
      const auto& pieces = golden.at("generation").at("pieces_hex");
      ASSERT_EQ(pieces.size(), generated.size());
      for (std::size_t i = 0; i < generated.size(); ++i) {
        EXPECT_EQ(hex(tk.token_to_piece(generated[i])), pieces[i].get<std::string>()) << "token " << generated[i];
      }
      EXPECT_EQ(hex(tk.decode(generated)), golden.at("generation").at("text_hex").get<std::string>());

      // Streaming gives the same bytes and never ends a chunk inside a UTF-8 character.
      tokenizer::stream_decoder stream(tk);
      std::string streamed, previous;
      for (const auto id : generated) {
        const std::string chunk(stream.push(id));
        if (chunk.empty()) continue;
        // A character started in one chunk is never finished in the next (invalid bytes, which
        // random-weight models do produce, are passed through as they are).
        if ((static_cast<unsigned char>(chunk[0]) & 0xC0) == 0x80) {
          EXPECT_EQ(tokenizer::utf8::complete_prefix(previous), previous.size());
        }
        streamed += chunk;
        previous = chunk;
      }
      streamed += stream.flush();
      EXPECT_EQ(hex(streamed), golden.at("generation").at("text_hex").get<std::string>());
      ++checked;
    }
  }
  EXPECT_EQ(checked, 17u * 4u);
}

TEST(Tokenizer, RoundTripsText) {
  const auto spm = tokenizer::tokenizer::from_gguf(gguf::file::open(chorus_test::golden_dir() / "tokenizer/ggml-vocab-llama-spm.gguf"));
  const auto bpe = tokenizer::tokenizer::from_gguf(gguf::file::open(chorus_test::golden_dir() / "tokenizer/ggml-vocab-gpt-2.gguf"));
  for (const std::string text : {"Hello world", "  two leading spaces", "tabs\tand\nnewlines", "Ünïcödé ∑ 漢字 🎉",
                                 "numbers 1234567890", "<s> as text"}) {
    EXPECT_EQ(spm.decode(spm.encode(text, false, false)), text);
    EXPECT_EQ(bpe.decode(bpe.encode(text, false, false)), text);
  }
}

TEST(Tokenizer, MalformedAndLargeInputNeverCrash) {
  const auto spm = tokenizer::tokenizer::from_gguf(gguf::file::open(chorus_test::golden_dir() / "tokenizer/ggml-vocab-llama-spm.gguf"));
  const auto bpe = tokenizer::tokenizer::from_gguf(gguf::file::open(chorus_test::golden_dir() / "tokenizer/ggml-vocab-gpt-2.gguf"));
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  bytes += std::string("\0\xff\xfe\xc0\xaf\xed\xa0\x80", 8);
  EXPECT_FALSE(spm.encode(bytes).empty());
  EXPECT_FALSE(bpe.encode(bytes).empty());
  EXPECT_EQ(spm.decode(spm.encode(bytes, false, false)), bytes);  // byte fallback is lossless
  std::string large;
  while (large.size() < (1u << 20)) large += "The quick brown fox jumps over the lazy dog. ";
  EXPECT_GT(spm.encode(large).size(), 100000u);
  EXPECT_GT(bpe.encode(large).size(), 100000u);
  EXPECT_THROW(spm.token_to_piece(-1), chorus::error);
  EXPECT_THROW(spm.token_to_piece(32000), chorus::error);
}

// A small byte-level BPE vocabulary written with the GGUF writer: 256 byte tokens, one merge.
gguf::file write_bpe_vocab(const std::filesystem::path& path, std::string_view model, std::string_view pre) {
  gguf::writer w;
  w.set("general.architecture", std::string_view("llama"));
  w.set("tokenizer.ggml.model", model);
  if (!pre.empty()) w.set("tokenizer.ggml.pre", pre);
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>('!' + b % 90)) + std::to_string(b));
  tokens[0] = "a";
  tokens[1] = "b";
  tokens.push_back("ab");
  w.set_array("tokenizer.ggml.tokens", tokens);
  w.set_array("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
  w.set("tokenizer.ggml.add_bos_token", false);
  w.write(path);
  return gguf::file::open(path);
}

TEST(Tokenizer, UnsupportedTokenizerModelIsNamed) {
  const auto path = std::filesystem::temp_directory_path() / "chorus_test_bert_vocab.gguf";
  try {
    tokenizer::tokenizer::from_gguf(write_bpe_vocab(path, "bert", "default"));
    FAIL() << "a 'bert' vocabulary was accepted";
  } catch (const chorus::error& e) {
    EXPECT_EQ(e.kind(), errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Tokenizer, UnknownPreTokenizerFallsBackToDefaultAndSaysSo) {
  const auto path = std::filesystem::temp_directory_path() / "chorus_test_unknown_pre.gguf";
  const auto unknown = tokenizer::tokenizer::from_gguf(write_bpe_vocab(path, "gpt2", "no-such-pre-tokenizer"));
  EXPECT_TRUE(unknown.vocabulary().pre_tokenizer_is_fallback());
  EXPECT_EQ(unknown.vocabulary().pre_tokenizer(), "no-such-pre-tokenizer");
  EXPECT_EQ(unknown.vocabulary().pre_kind(), tokenizer::pre_tokenizer_kind::default_bpe);
  std::filesystem::remove(path);

  // Every named pre-tokenizer of the golden vocabularies is known (none falls back).
  for (const char* name : {"deepseek-llm", "falcon", "gpt-2"}) {
    const auto file = gguf::file::open(chorus_test::golden_dir() / ("tokenizer/ggml-vocab-" + std::string(name) + ".gguf"));
    const auto known = tokenizer::tokenizer::from_gguf(file);
    EXPECT_FALSE(known.vocabulary().pre_tokenizer_is_fallback()) << name;
    EXPECT_EQ(known.vocabulary().pre_tokenizer(), name);
  }
}

}  // namespace
