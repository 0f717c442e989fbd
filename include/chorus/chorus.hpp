// chorus — umbrella header: on-device LLM inference and model fusion.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "chorus/config.hpp"
#include "chorus/version.hpp"

// core/
#include "chorus/core/error.hpp"
#include "chorus/core/fp16.hpp"
#include "chorus/core/mapped_file.hpp"
#include "chorus/core/utf8.hpp"

// gguf/
#include "chorus/gguf/tensor_type.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/gguf/writer.hpp"

// quant/
#include "chorus/quant/traits.hpp"
#include "chorus/quant/formats.hpp"

// simd/
#include "chorus/simd/int8_dot.hpp"
#include "chorus/simd/dot_small.hpp"
#include "chorus/simd/float_kernels.hpp"
#include "chorus/simd/dot.hpp"
#include "chorus/simd/gemv.hpp"
#include "chorus/core/json.hpp"
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

// sample/, generate/
#include "chorus/sample/sampler.hpp"
#include "chorus/generate/stop_strings.hpp"
#include "chorus/generate/session.hpp"

// fusion/
#include "chorus/fusion/request.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/policy.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/local_member.hpp"
#include "chorus/fusion/report.hpp"
#include "chorus/fusion/fuse.hpp"
#include "chorus/fusion/judges/prompts.hpp"
#include "chorus/fusion/judges/parse.hpp"
#include "chorus/fusion/judges/confidence.hpp"
#include "chorus/fusion/judges/vote.hpp"
#include "chorus/fusion/judges/best_of.hpp"
#include "chorus/fusion/judges/merge.hpp"
#include "chorus/fusion/judges/debate.hpp"
