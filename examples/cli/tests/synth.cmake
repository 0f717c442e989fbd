# `chorus synth` (ctest: cli.synth): a Q4_K_M mix as llama-quantize lays it out, a vocabulary padded
# to --vocab-size, the qwen2 layout with its attention biases, the same bytes whatever --threads;
# each file loads and generates, and the mistakes (an unknown shape, a vocabulary larger than the
# shape's, no threads) are refused with a reason.
#   cmake -DCHORUS=<chorus binary> -DVOCAB=<ggml-vocab-llama-spm.gguf> -DWORK=<scratch dir> -P synth.cmake
foreach(var CHORUS VOCAB WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "synth.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(expect what haystack regex)
  if(NOT haystack MATCHES "${regex}")
    message(FATAL_ERROR "${what}: expected to match\n  ${regex}\nin\n${haystack}")
  endif()
endfunction()
function(chorus out_var expected_rc)
  execute_process(COMMAND "${CHORUS}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expected_rc)
    message(FATAL_ERROR "chorus ${ARGN}: exit status ${rc}, expected ${expected_rc}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}${err}" PARENT_SCOPE)
endfunction()

# Q4_K_M on 4 layers: the tied token_embd (the output matrix) in Q6_K, attn_v and ffn_down of
# blk.2-3 in Q6_K (the last eighth, and every third layer from the first eighth on), the rest Q4_K:
# the layout of tiny-llama-spm512-Q4_K_M.gguf in ../shared/models/README.md.
chorus(out 0 synth --shape tiny --type q4_k_m --vocab "${VOCAB}" --out "${WORK}/mix.gguf")
chorus(info 0 info "${WORK}/mix.gguf" --tensors)
expect("tied output" "${info}" "token_embd.weight +Q6_K")
foreach(layer 0 1)
  expect("blk.${layer}" "${info}" "blk.${layer}.attn_v.weight +Q4_K")
  expect("blk.${layer}" "${info}" "blk.${layer}.ffn_down.weight +Q4_K")
endforeach()
foreach(layer 2 3)
  expect("blk.${layer}" "${info}" "blk.${layer}.attn_v.weight +Q6_K")
  expect("blk.${layer}" "${info}" "blk.${layer}.ffn_down.weight +Q6_K")
endforeach()
expect("attn_q" "${info}" "blk.3.attn_q.weight +Q4_K")
chorus(out 0 run --model "${WORK}/mix.gguf" --prompt "Hello" -n 4)

# The file does not depend on the number of quantizing threads (one generator, rows split after).
file(SHA256 "${WORK}/mix.gguf" default_threads)
foreach(threads 1 3)
  chorus(out 0 synth --shape tiny --type q4_k_m --threads ${threads} --vocab "${VOCAB}" --out "${WORK}/mix-${threads}.gguf")
  file(SHA256 "${WORK}/mix-${threads}.gguf" digest)
  if(NOT digest STREQUAL default_threads)
    message(FATAL_ERROR "synth --threads ${threads} wrote a different file from the default")
  endif()
endforeach()

# The vocabulary padded to 40000 tokens (32000 from the file): the output matrix has 40000 rows.
chorus(out 0 synth --shape tiny-qwen2 --type q8_0 --vocab-size 40000 --vocab "${VOCAB}" --out "${WORK}/qwen2.gguf")
chorus(info 0 info "${WORK}/qwen2.gguf" --tensors)
expect("architecture" "${info}" "general.architecture = \"qwen2\"")
expect("vocabulary size" "${info}" "qwen2.vocab_size = 40000")
expect("padded tokens" "${info}" "tokenizer.ggml.tokens = \\[string x 40000")
expect("padded embedding" "${info}" "token_embd.weight +Q8_0 +\\[256 x 40000\\]")
expect("attention bias" "${info}" "blk.0.attn_k.bias +F32 +\\[64\\]")
chorus(out 0 run --model "${WORK}/qwen2.gguf" --prompt "Hello" -n 4)

chorus(err 2 synth --shape llama-9b --vocab "${VOCAB}" --out "${WORK}/x.gguf")
expect("unknown shape" "${err}" "unknown --shape 'llama-9b' \\(llama-3.2-1b, llama-3.2-3b, qwen2.5-3b, mistral-7b, ministral-8b, tiny, tiny-qwen2\\)")
chorus(err 2 synth --shape tiny --vocab-size 1000 --vocab "${VOCAB}" --out "${WORK}/x.gguf")
expect("vocabulary too large" "${err}" "has 32000 tokens, more than the 1000 of --vocab-size")
chorus(err 2 synth --shape tiny --threads 0 --vocab "${VOCAB}" --out "${WORK}/x.gguf")
expect("no threads" "${err}" "--threads must be at least 1")
if(EXISTS "${WORK}/x.gguf")
  message(FATAL_ERROR "a refused synth wrote ${WORK}/x.gguf")
endif()
message(STATUS "cli.synth: passed")
