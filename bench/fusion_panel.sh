#!/usr/bin/env bash
# What a fusion panel of N samples of one model costs, against the batched decode it runs on:
# `chorus fuse --samples N` (the whole fusion: prompt, N sequences decoded together, vote) beside
# `chorus bench --parallel N` (the bare decode_batch loop), interleaved round by round in one run.
#
#   bench/fusion_panel.sh [CHORUS] [MODEL.gguf] [ROUNDS]
#
# MODEL defaults to the synthetic Llama-3.2-1B-shaped Q4_0 file, made with `chorus synth` if
# missing. Prints a markdown table: fusion wall time per N, its ratio to N = 1, and the tokens/s
# of the fusion's generation against bench --parallel N's (medians of ROUNDS).
set -euo pipefail
chorus=${1:-build/release/examples/chorus}
model=${2:-/tmp/chorus-synth/llama1b-q4_0.gguf}
rounds=${3:-3}
threads=${THREADS:-2}
tokens=64
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  "$chorus" synth --vocab "$here/../shared/golden/tokenizer/ggml-vocab-gpt-2.gguf" --out "$model" --type q4_0 >&2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for n in 1 2 4 8; do
    # a random-weight model may emit its end token early: --seed fixes what it emits, and the
    # tokens/s below count the tokens actually generated
    "$chorus" fuse --member "$model" --samples "$n" --mode confidence --prompt "The quick brown fox" -n "$tokens" \
      --threads "$threads" --ctx 256 --json > "$out/fuse-$n-$r.json"
    "$chorus" bench --model "$model" -p 8 -n "$tokens" -r 1 --threads "$threads" --parallel "$n" --json > "$out/bench-$n-$r.json"
  done
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(xs): return statistics.median(xs)
rows = {}
for n in (1, 2, 4, 8):
    walls, fuse_tps, bench_tps = [], [], []
    for r in range(1, rounds + 1):
        f = json.load(open(f"{out}/fuse-{n}-{r}.json"))
        b = json.load(open(f"{out}/bench-{n}-{r}.json"))
        tokens = sum(m["completion_tokens"] for m in f["members"])
        walls.append(f["wall_ms"])
        # generation throughput of the panel: its tokens over the time from the first token on
        # (both sides count the tokens after the first: bench's tg runs after its prompt)
        span = max(m["compute_ms"] for m in f["members"]) - min(m["first_token_ms"] for m in f["members"])
        fuse_tps.append(1000.0 * (tokens - len(f["members"])) / span)
        bench_tps.append(b["generation_tokens_per_second"])
    rows[n] = (med(walls), med(fuse_tps), med(bench_tps))
print(f"| N | fuse wall ms | vs N=1 | fuse tok/s | bench --parallel N tok/s | fuse / bench |")
print("|---:|---:|---:|---:|---:|---:|")
for n, (wall, ftps, btps) in rows.items():
    print(f"| {n} | {wall:.0f} | {wall / rows[1][0]:.2f}x | {ftps:.1f} | {btps:.1f} | {ftps / btps:.2f} |")
EOF
