#!/usr/bin/env bash
# Compile time as a new user meets it: the single headers copied into a folder of their own,
# `c++ -std=c++20 -O2 -pthread`, one translation unit each:
#   inference  bench/compile_time/inference.cpp: chorus/inference.hpp, one generation (goal <= 8 s)
#   fusion     bench/compile_time/fusion.cpp:    chorus/chorus.hpp, one fusion       (goal <= 12 s)
#   yardstick  an empty main() including <bits/stdc++.h>: the machine's own speed, so that
#              figures taken under different loads compare as ratios
#   inference-extern, fusion-extern   the same files with CHORUS_EXTERN_KERNELS (compiled, not
#              linked: the kernel tables come from one other file, docs/build-time.md)
#   kernels    that one file (CHORUS_DEFINE_KERNELS), paid once per program
# Each is compiled RUNS times, interleaved; the medians of the wall time and of the CPU time
# (user + sys: what the compiler itself spent, less sensitive to other work on the machine)
# are printed. The headers are generated from include/ first (tools/amalgamate.py
# --output-dir), so the figures are those of the working tree.
#
#   bench/compile_time.sh [RUNS=5]        CXX=clang++-14 bench/compile_time.sh
#   EXTRA_FLAGS="-ftime-report" bench/compile_time.sh 1   (where the time goes, per TU)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
cxx=${CXX:-c++}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 "$root/tools/amalgamate.py" --output-dir "$work/include" >/dev/null
echo 'int main() {}' | cat <(echo '#include <bits/stdc++.h>') - > "$work/yardstick.cpp"
printf '#define CHORUS_DEFINE_KERNELS\n#include <chorus/inference.hpp>\n' > "$work/kernels.cpp"
declare -A sources=([inference]="$root/bench/compile_time/inference.cpp" [fusion]="$root/bench/compile_time/fusion.cpp"
                    [yardstick]="$work/yardstick.cpp" [inference-extern]="$root/bench/compile_time/inference.cpp"
                    [fusion-extern]="$root/bench/compile_time/fusion.cpp" [kernels]="$work/kernels.cpp")
declare -A flags=([inference-extern]="-DCHORUS_EXTERN_KERNELS -c" [fusion-extern]="-DCHORUS_EXTERN_KERNELS -c"
                  [kernels]="-DCHORUS_EXTERN_KERNELS -c")
names=(yardstick inference fusion inference-extern fusion-extern kernels)
declare -A times cpu
TIMEFORMAT='%R %U %S'
for ((run = 1; run <= runs; ++run)); do
  for name in "${names[@]}"; do
    # shellcheck disable=SC2086  # EXTRA_FLAGS and flags[] are lists of flags
    { time "$cxx" -std=c++20 -O2 -pthread -I"$work/include" ${EXTRA_FLAGS:-} ${flags[$name]:-} "${sources[$name]}" -o "$work/$name" 2>&3; } 3>&2 2> "$work/time"
    read -r wall user sys < "$work/time"
    times[$name]+="$wall "
    cpu[$name]+="$(echo "$user + $sys" | bc) "
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "compiler: $("$cxx" --version | head -n 1); flags: -std=c++20 -O2 -pthread ${EXTRA_FLAGS:-}; runs: $runs"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| TU | wall s (median) | CPU s (median) | CPU runs (s) | CPU / yardstick |\n|---|---:|---:|---|---:|\n'
yard=$(echo "${cpu[yardstick]}" | median)
for name in "${names[@]}"; do
  wall=$(echo "${times[$name]}" | median)
  c=$(echo "${cpu[$name]}" | median)
  # shellcheck disable=SC2086  # a list of numbers
  printf '| %s | %.2f | %.2f | %s| %.2f |\n' "$name" "$wall" "$c" "$(printf '%.2f ' ${cpu[$name]})" "$(echo "$c / $yard" | bc -l)"
done
