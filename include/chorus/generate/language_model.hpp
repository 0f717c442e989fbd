// chorus — a model together with its tokenizer and its conversation format: what sessions,
// engines and fusion members run. Immutable once loaded, shared by all of them.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include "chorus/config.hpp"
#include "chorus/model/model.hpp"
#include "chorus/tokenizer/chat_template.hpp"
#include "chorus/tokenizer/tokenizer.hpp"

namespace chorus::inline CHORUS_ABI::generate {

class language_model {
 public:
  static std::shared_ptr<const language_model> load(const std::filesystem::path& path) {
    const auto start = std::chrono::steady_clock::now();
    auto m = std::shared_ptr<language_model>(new language_model(path));
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return m;
  }

  const model::model& network() const noexcept { return model_; }
  const tokenizer::tokenizer& tokens() const noexcept { return tokenizer_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  double load_ms() const noexcept { return load_ms_; }
  // The conversation format recognised from the file's tokenizer.chat_template (ChatML, with
  // fell_back and a warning, when it has none or an unknown one).
  const tokenizer::chat_template_choice& chat_format() const noexcept { return chat_format_; }
  // Whether the file names a chat template at all: a model without one (a plain story or task
  // model) is prompted with plain text, not with a conversation format it never saw.
  bool has_chat_template() const noexcept { return has_chat_template_; }

 private:
  explicit language_model(const std::filesystem::path& path)
      : model_(path),
        tokenizer_(tokenizer::tokenizer::from_gguf(model_.file())),
        chat_format_(tokenizer::choose_chat_template(model_.file())),
        has_chat_template_(model_.file().find<std::string_view>("tokenizer.chat_template").has_value()),
        path_(path) {}

  model::model model_;
  tokenizer::tokenizer tokenizer_;
  tokenizer::chat_template_choice chat_format_;
  bool has_chat_template_ = false;
  std::filesystem::path path_;
  double load_ms_ = 0.0;
};

}  // namespace chorus::inline CHORUS_ABI::generate
