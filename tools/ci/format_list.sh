#!/usr/bin/env bash
# CI: the tests built with a two-format list (chorus::quant::formats<block_q4_k, block_q6_k>, what
# a game shipping one Q4_K_M model compiles): the tests of those formats pass, the Q4_K_M models'
# golden logits match, and a model in a third format is refused at load with a clear error.
#
#   tools/ci/format_list.sh [BUILD_DIR]      (default: build/format-list)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/format-list}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCHORUS_NATIVE=OFF -DCHORUS_BUILD_BENCH=OFF \
  -DCHORUS_BUILD_EXAMPLES=OFF -DCHORUS_TEST_CONSUMERS=OFF "-DCHORUS_TEST_FORMATS=block_q4_k;block_q6_k" \
  "-DCHORUS_TEST_ONLY=test_quant;test_kquant;test_simd;test_model" >/dev/null
cmake --build "$build" --target chorus_tests
ctest --test-dir "$build" -j2 --output-on-failure \
  -R 'KQuant/Q4_K|KQuant/Q6_K|QuantFormat|QuantFormatList|QuantDispatch|Simd|GoldenLogits.*Q4_K_M'
echo "format_list: passed"
