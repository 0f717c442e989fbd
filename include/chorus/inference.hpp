// chorus — umbrella header for inference alone: GGUF models, tokenizers and chat templates,
// sampling, generation sessions. No fusion, and so no Boost (Asio): what a game or a tool that
// runs one model includes. Needs xsimd and nlohmann/json. chorus/chorus.hpp adds fusion.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "chorus/config.hpp"
#include "chorus/version.hpp"

// core/
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/core/mapped_file.hpp"
#include "chorus/core/utf8.hpp"
#include "chorus/core/parse_json.hpp"

// gguf/
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/gguf/writer.hpp"

// quant/
#include "chorus/quant/traits.hpp"
#include "chorus/quant/formats.hpp"

// simd/
#include "chorus/simd/isa.hpp"
#include "chorus/simd/dispatch.hpp"
#include "chorus/simd/float_kernels.hpp"
#include "chorus/simd/dot.hpp"
#include "chorus/simd/gemv.hpp"
#include "chorus/core/cpu.hpp"
#include "chorus/core/thread_pool.hpp"

// model/
#include "chorus/model/hparams.hpp"
#include "chorus/model/weights.hpp"
#include "chorus/model/kv_cache.hpp"
#include "chorus/model/rope.hpp"
#include "chorus/model/model.hpp"

// tokenizer/
#include "chorus/tokenizer/utf8.hpp"
#include "chorus/tokenizer/unicode_tables.hpp"
#include "chorus/tokenizer/vocab.hpp"
#include "chorus/tokenizer/pre_tokenize.hpp"
#include "chorus/tokenizer/tokenizer.hpp"
#include "chorus/tokenizer/chat_template.hpp"
#include "chorus/tokenizer/tool_calls.hpp"

// sample/, generate/
#include "chorus/sample/sampler.hpp"
#include "chorus/sample/grammar.hpp"
#include "chorus/sample/grammar_constraint.hpp"
#include "chorus/sample/json_schema.hpp"
#include "chorus/sample/tool_choice.hpp"
#include "chorus/generate/stop_strings.hpp"
#include "chorus/generate/options.hpp"
#include "chorus/generate/language_model.hpp"
#include "chorus/generate/engine.hpp"
#include "chorus/generate/batcher.hpp"
#include "chorus/generate/session.hpp"
