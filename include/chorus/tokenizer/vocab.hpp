// chorus — a tokenizer vocabulary read from a GGUF file's tokenizer.ggml.* metadata: token
// texts, scores, types, special ids, merge ranks (BPE) and the flags that drive encoding.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"

namespace chorus::inline CHORUS_ABI::tokenizer {

using token_id = std::int32_t;

enum class token_type : std::int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
enum class model_kind { spm, bpe };

class vocab {
 public:
  struct token_data {
    std::string text;
    float score = 0.0f;
    token_type type = token_type::normal;
    bool lstrip = false;  // whitespace before the token is absorbed when it is matched as special
    bool rstrip = false;  // whitespace after it is absorbed
  };

  static vocab from_gguf(const gguf::file& file) {
    vocab v;
    const auto name = file.get<std::string>("tokenizer.ggml.model");
    if (name == "llama") {
      v.kind_ = model_kind::spm;
    } else if (name == "gpt2") {
      v.kind_ = model_kind::bpe;
    } else {
      fail(errc::unsupported, file.source_name(), ": tokenizer.ggml.model '", name,
           "' is not supported (chorus reads 'llama' SentencePiece and 'gpt2' byte-level BPE vocabularies)");
    }
    v.pre_ = file.find<std::string>("tokenizer.ggml.pre").value_or("default");
    const auto texts = file.get_array<std::string_view>("tokenizer.ggml.tokens");
    if (texts.empty()) fail(errc::bad_format, file.source_name(), ": tokenizer.ggml.tokens is empty");
    std::vector<float> scores;
    if (file.has("tokenizer.ggml.scores")) scores = file.get_array<float>("tokenizer.ggml.scores");
    std::vector<std::int32_t> types;
    if (file.has("tokenizer.ggml.token_type")) types = file.get_array<std::int32_t>("tokenizer.ggml.token_type");
    if (!scores.empty() && scores.size() != texts.size()) {
      fail(errc::bad_format, file.source_name(), ": ", scores.size(), " token scores for ", texts.size(), " tokens");
    }
    if (!types.empty() && types.size() != texts.size()) {
      fail(errc::bad_format, file.source_name(), ": ", types.size(), " token types for ", texts.size(), " tokens");
    }
    v.tokens_.resize(texts.size());
    v.by_text_.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      auto& t = v.tokens_[i];
      t.text = std::string(texts[i]);
      t.score = scores.empty() ? 0.0f : scores[i];
      t.type = types.empty() ? token_type::normal : static_cast<token_type>(types[i]);
      v.by_text_.emplace(t.text, static_cast<token_id>(i));
    }
    auto id_key = [&](const char* key) -> std::optional<token_id> {
      const auto value = file.find<std::int64_t>(key);
      if (!value) return std::nullopt;
      if (*value < 0 || static_cast<std::size_t>(*value) >= texts.size()) {
        if (*value == -1 || *value == 0xFFFFFFFF) return std::nullopt;  // "no such token"
        fail(errc::bad_format, file.source_name(), ": ", key, " = ", *value, " is outside the vocabulary of ",
             texts.size(), " tokens");
      }
      return static_cast<token_id>(*value);
    };
    v.bos_ = id_key("tokenizer.ggml.bos_token_id");
    v.eos_ = id_key("tokenizer.ggml.eos_token_id");
    v.eot_ = id_key("tokenizer.ggml.eot_token_id");
    v.unk_ = id_key("tokenizer.ggml.unknown_token_id");
    v.pad_ = id_key("tokenizer.ggml.padding_token_id");
    // Defaults when the keys are absent: SentencePiece vocabularies add BOS, BPE ones do not.
    v.add_bos_ = file.find<bool>("tokenizer.ggml.add_bos_token").value_or(v.kind_ == model_kind::spm);
    v.add_eos_ = file.find<bool>("tokenizer.ggml.add_eos_token").value_or(false);
    v.add_space_prefix_ = file.find<bool>("tokenizer.ggml.add_space_prefix").value_or(v.kind_ == model_kind::spm);
    if (v.kind_ == model_kind::bpe) {
      const auto merges = file.get_array<std::string_view>("tokenizer.ggml.merges");
      v.merge_ranks_.reserve(merges.size());
      for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const auto space = merges[rank].find(' ', 1);
        if (space == std::string_view::npos) {
          fail(errc::bad_format, file.source_name(), ": merge ", rank, " '", merges[rank], "' has no space");
        }
        v.merge_ranks_.emplace(std::string(merges[rank]), static_cast<int>(rank));
      }
    }
    // Tokens matched as whole units inside the text: control, user-defined and unknown,
    // longest first so that a longer special token wins over its prefix.
    for (std::size_t i = 0; i < v.tokens_.size(); ++i) {
      const auto type = v.tokens_[i].type;
      if (type == token_type::control || type == token_type::user_defined || type == token_type::unknown) {
        if (!v.tokens_[i].text.empty()) v.specials_.push_back(static_cast<token_id>(i));
      }
    }
    std::stable_sort(v.specials_.begin(), v.specials_.end(), [&](token_id a, token_id b) {
      return v.tokens_[a].text.size() > v.tokens_[b].text.size();
    });
    // Phi-3's tokenizer absorbs the whitespace after its special tokens, except these.
    std::string model_name = file.find<std::string>("general.name").value_or("");
    std::transform(model_name.begin(), model_name.end(), model_name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (model_name.find("phi-3") != std::string::npos || model_name.find("phi3") != std::string::npos) {
      for (auto id : v.specials_) v.tokens_[id].rstrip = true;
      for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) {
        if (auto id = v.find(text)) v.tokens_[*id].rstrip = false;
      }
    }
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      const auto id = v.find(hex);
      v.byte_tokens_[b] = id ? *id : -1;
    }
    return v;
  }

  model_kind kind() const noexcept { return kind_; }
  const std::string& pre_tokenizer() const noexcept { return pre_; }
  std::size_t size() const noexcept { return tokens_.size(); }
  const token_data& operator[](token_id id) const { return tokens_.at(static_cast<std::size_t>(id)); }
  const std::string& text(token_id id) const { return (*this)[id].text; }

  std::optional<token_id> find(std::string_view text) const {
    const auto it = by_text_.find(text);
    if (it == by_text_.end()) return std::nullopt;
    return it->second;
  }
  // The id of the <0xNN> byte-fallback token, or -1.
  token_id byte_token(std::uint8_t byte) const noexcept { return byte_tokens_[byte]; }
  // BPE merge rank of "left right", or -1.
  int merge_rank(std::string_view pair) const {
    const auto it = merge_ranks_.find(pair);
    return it == merge_ranks_.end() ? -1 : it->second;
  }
  const std::vector<token_id>& special_tokens() const noexcept { return specials_; }

  std::optional<token_id> bos() const noexcept { return bos_; }
  std::optional<token_id> eos() const noexcept { return eos_; }
  std::optional<token_id> eot() const noexcept { return eot_; }
  std::optional<token_id> unk() const noexcept { return unk_; }
  bool add_bos() const noexcept { return add_bos_; }
  bool add_eos() const noexcept { return add_eos_; }
  bool add_space_prefix() const noexcept { return add_space_prefix_; }

  // End of generation: EOS, EOT, and control tokens such as <|im_end|> or <|eot_id|>.
  bool is_end_of_generation(token_id id) const noexcept {
    if ((eos_ && id == *eos_) || (eot_ && id == *eot_)) return true;
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return false;
    const auto& t = tokens_[static_cast<std::size_t>(id)];
    return t.type == token_type::control &&
           (t.text == "<|im_end|>" || t.text == "<|eot_id|>" || t.text == "<|end|>" || t.text == "<end_of_turn>" ||
            t.text == "<|endoftext|>" || t.text == "</s>");
  }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using string_map = std::unordered_map<std::string, token_id, string_hash, std::equal_to<>>;

  model_kind kind_ = model_kind::spm;
  std::string pre_;
  std::vector<token_data> tokens_;
  string_map by_text_;
  std::unordered_map<std::string, int, string_hash, std::equal_to<>> merge_ranks_;
  std::vector<token_id> specials_;
  token_id byte_tokens_[256] = {};
  std::optional<token_id> bos_, eos_, eot_, unk_, pad_;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
};

}  // namespace chorus::inline CHORUS_ABI::tokenizer
