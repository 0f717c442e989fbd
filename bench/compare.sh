#!/usr/bin/env bash
# chorus against llama.cpp on the same files, same machine, same threads, in one run: prompt
# processing (ppP) and generation (tgN) tokens/s, medians of R repeats, and their ratios.
#
#   bench/compare.sh CHORUS_CLI LLAMA_BENCH [-p 512] [-n 128] [-r 3] [-t 2] [--bandwidth GB/S] MODEL.gguf...
#
# LLAMA_BENCH is a llama-bench binary you built yourself (chorus never vendors or builds it).
# The two programs run one after the other per file, so a busy machine slows both alike; run it
# twice if a ratio matters. --bandwidth (read bandwidth, e.g. from bench/bench_memory) adds
# generation as a fraction of the memory roofline: weight bytes per token / bandwidth.
# Prints a Markdown table; the CPU line says which machine the figures came from.
set -euo pipefail
usage() { sed -n 5p "$0" | sed 's/^# *//' >&2; exit 2; }
[[ $# -ge 3 ]] || usage
chorus=$1 llama_bench=$2
shift 2
[[ -x $chorus ]] || { echo "compare.sh: chorus CLI '$chorus' is not an executable" >&2; exit 2; }
[[ -x $llama_bench ]] || { echo "compare.sh: llama-bench '$llama_bench' is not an executable" >&2; exit 2; }
p=512 n=128 r=3 t=2 bandwidth=
models=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -p) p=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -r) r=$2; shift 2 ;;
    -t) t=$2; shift 2 ;;
    --bandwidth) bandwidth=$2; shift 2 ;;
    -*) echo "compare.sh: unknown option '$1'" >&2; usage ;;
    *) [[ -f $1 ]] || { echo "compare.sh: no model file '$1'" >&2; exit 2; }; models+=("$1"); shift ;;
  esac
done
[[ ${#models[@]} -gt 0 ]] || usage

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), threads $t, pp$p, tg$n, median of $r"
echo
header="| file | isa | chorus pp$p | llama.cpp pp$p | ratio | chorus tg$n | llama.cpp tg$n | ratio |"
rule="|---|---|---:|---:|---:|---:|---:|---:|"
[[ -n $bandwidth ]] && header+=" chorus tg of roofline |" rule+="---:|"
echo "$header"
echo "$rule"
for model in "${models[@]}"; do
  "$chorus" bench --model "$model" -p "$p" -n "$n" -r "$r" --threads "$t" --json >"$tmp/chorus.json"
  "$llama_bench" -m "$model" -p "$p" -n "$n" -r "$r" -t "$t" -o json >"$tmp/llama.json" 2>"$tmp/llama.err" ||
    { echo "compare.sh: llama-bench failed on $model:" >&2; cat "$tmp/llama.err" >&2; exit 1; }
  python3 - "$tmp/chorus.json" "$tmp/llama.json" "$model" "$bandwidth" <<'EOF'
import json, os, statistics, sys
chorus = json.load(open(sys.argv[1]))
llama = json.load(open(sys.argv[2]))
def llama_median(prompt, gen):
    for rec in llama:
        if rec["n_prompt"] == prompt and rec["n_gen"] == gen:
            return statistics.median(rec["samples_ts"])
    return None
pp_c, tg_c = chorus["prompt_tokens_per_second"], chorus["generation_tokens_per_second"]
pp_l = llama_median(chorus["prompt_tokens"], 0)
tg_l = llama_median(0, chorus["generated_tokens"])
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
num = lambda x: f"{x:,.1f}" if x else "-"
row = f"| {os.path.basename(sys.argv[3])} | {chorus['isa']} | {num(pp_c)} | {num(pp_l)} | {ratio(pp_c, pp_l)} | {num(tg_c)} | {num(tg_l)} | {ratio(tg_c, tg_l)} |"
if sys.argv[4]:
    row += f" {tg_c * chorus['weight_bytes'] / (float(sys.argv[4]) * 1e9):.2f} |"
print(row)
EOF
done
