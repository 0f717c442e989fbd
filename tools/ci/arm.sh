#!/usr/bin/env bash
# CI: chorus on 64-bit ARM. Cross-builds the test suite for armv8-a (baseline: NEON, with the
# dot-product kernels chosen at run time) with Debian's g++-aarch64-linux-gnu and the arm64 test
# dependencies from Debian multiarch, then runs it under qemu-aarch64: the CPU-dependent tests, goldens
# included, on an emulated CPU with the dot-product extension (-cpu max), and the kernel tests on
# one without it (cortex-a53), where the plain NEON kernels run. Emulated timings mean nothing:
# this is for correctness.
#
#   tools/ci/arm.sh            install the arm64 dependencies (root or sudo), build, test
#   tools/ci/arm.sh --no-deps  skip the installation
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" != --no-deps ]; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  dpkg --print-foreign-architectures | grep -qx arm64 || "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user \
    libgtest-dev:arm64 libgmock-dev:arm64 libboost1.81-dev:arm64 libssl-dev:arm64 libxsimd-dev:arm64 nlohmann-json3-dev >/dev/null
fi

build=build/arm64
# The files whose code depends on the CPU (kernels, quantization, the forward pass and its
# goldens, tokenizers, sampling, generation and batching). The server, fusion and grammar tests
# run the same portable C++ on every CPU and take minutes under emulation: they run natively.
arm_tests="test_core;test_gguf;test_quant;test_kquant;test_iq4;test_simd;test_rope;test_model;test_sample;test_tokenizer;test_pretokenizers;test_generate;test_engine"
cmake -S . -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DCHORUS_NATIVE=OFF -DCHORUS_BUILD_BENCH=OFF -DCHORUS_BUILD_EXAMPLES=OFF \
  -DCHORUS_TEST_CONSUMERS=OFF "-DCHORUS_TEST_ONLY=$arm_tests" >/dev/null
cmake --build "$build" --target chorus_tests
tests="$build/tests/chorus_tests"

export QEMU_CPU=max
levels=$(qemu-aarch64 "$tests" --gtest_list_tests --gtest_filter='Usable/SimdLevel.*' | sed -n 's/^  RunsHere\/\([a-z0-9]*\).*/\1/p')
echo "levels under qemu -cpu max: $(echo $levels)"
echo "$levels" | grep -qx dotprod || { echo "arm: the dot-product level is not usable under -cpu max" >&2; exit 1; }
# The goldens' long prompts (p3_long) are left out under emulation: they take 10 of the 13
# minutes there, and the short, two-turn and Unicode prompts run the same code.
echo "--- qemu -cpu max (NEON + dot product): the tests of $arm_tests (goldens: all but the long prompts)"
ctest --test-dir "$build" -j2 --output-on-failure -E 'GoldenLogits.*_p3_long'

export QEMU_CPU=cortex-a53
levels=$(qemu-aarch64 "$tests" --gtest_list_tests --gtest_filter='Usable/SimdLevel.*' | sed -n 's/^  RunsHere\/\([a-z0-9]*\).*/\1/p')
echo "levels under qemu -cpu cortex-a53: $(echo $levels)"
if echo "$levels" | grep -qx dotprod; then echo "arm: dotprod claimed on a CPU without it" >&2; exit 1; fi
echo "--- qemu -cpu cortex-a53 (NEON, no dot product): kernel and quantization tests, golden logits of the short prompts"
ctest --test-dir "$build" -j2 --output-on-failure -R 'Simd|SmallBlock|KQuant|Quant|GoldenLogits.*_p1_short'
echo "arm: passed"
