#!/usr/bin/env bash
# The test suite at every instruction-set level this CPU has, forced with CHORUS_ISA, so the
# scalar, SSE4.1, AVX2 and AVX-512 kernels are tested on one machine, whichever it is. The best
# level runs the whole suite; the others the kernel, quantization and golden-logit tests (the
# end-to-end oracle).
#
#   tools/ci/isa_levels.sh                            configure and build the `baseline` preset
#                                                     (no -march=native, against the single
#                                                     header: what a game ships), every level
#   tools/ci/isa_levels.sh [--lower-levels] BUILD_DIR an existing build; with --lower-levels the
#                                                     best level is skipped (CI: the release
#                                                     stage has just run the suite there)
set -euo pipefail
cd "$(dirname "$0")/../.."

lower_only=0
if [ "${1:-}" = --lower-levels ]; then lower_only=1; shift; fi
build=${1:-build/baseline}
if [ $# -eq 0 ]; then
  cmake --preset baseline >/dev/null
  cmake --build --preset baseline   # the tests, the tool and the examples: what a game ships
fi
tests="$build/tests/chorus_tests"

# The levels this build has and this CPU runs: one SimdLevel test per level, named after it.
levels=$(CHORUS_ISA= "$tests" --gtest_list_tests --gtest_filter='Usable/SimdLevel.*' | sed -n 's/^  RunsHere\/\([a-z0-9]*\).*/\1/p')
[ -n "$levels" ] || { echo "isa_levels: no usable levels listed by $tests" >&2; exit 1; }
best=$(echo "$levels" | tail -n 1)
echo "levels: $(echo $levels) (best: $best)"

# the binary must contain the wider kernels, whatever it was compiled for
if command -v objdump >/dev/null && [ "$(uname -m)" = x86_64 ]; then
  disassembly=$(objdump -d --no-show-raw-insn "$tests")
  for insn in vpmaddubsw vpdpbusd vpdpwssd; do  # AVX2, AVX-512 VNNI (the SSE4.1 level runs below)
    count=$(grep -cw "$insn" <<<"$disassembly" || true)
    [ "$count" -gt 0 ] || { echo "isa_levels: no $insn in $tests" >&2; exit 1; }
    echo "$insn: $count instructions in the test binary"
  done
fi

kernels='Simd|SmallBlock|KQuant|Quant|Iq4|ModelContext'
for level in $levels; do
  start=$SECONDS
  if [ "$level" = "$best" ] && [ $lower_only = 1 ]; then
    echo "--- CHORUS_ISA=$level: skipped (the suite ran at this level already)"
    continue
  elif [ "$level" = "$best" ]; then
    echo "--- CHORUS_ISA=$level: whole suite"
    CHORUS_ISA=$level ctest --test-dir "$build" -j2 --output-on-failure
  elif [ "$level" = scalar ]; then
    # the portable C++ level is ten times slower: every model's golden logits on the short prompt
    echo "--- CHORUS_ISA=$level: kernel and quantization tests, golden logits of the short prompts"
    CHORUS_ISA=$level ctest --test-dir "$build" -j2 --output-on-failure -R "$kernels|GoldenLogits.*_p1_short"
  else
    echo "--- CHORUS_ISA=$level: kernel, quantization and golden-logit tests"
    CHORUS_ISA=$level ctest --test-dir "$build" -j2 --output-on-failure -R "$kernels|GoldenLogits"
  fi
  echo "--- CHORUS_ISA=$level: $((SECONDS - start)) s"
done

# a level the CPU lacks, or an unknown one, is refused with a clear error
CHORUS_ISA=avx9000 "$tests" --gtest_filter='ModelContext.PrefillThenDecodeEqualsOneBatch' >/tmp/isa_refusal.txt 2>&1 && {
  echo "isa_levels: CHORUS_ISA=avx9000 was not refused" >&2
  exit 1
}
grep -q "unknown instruction-set level" /tmp/isa_refusal.txt || { cat /tmp/isa_refusal.txt; exit 1; }
echo "isa_levels: all levels passed"
