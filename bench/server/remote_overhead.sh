#!/usr/bin/env bash
# What a remote member costs over the same model local, both warm: server A serves the model;
# server B serves two fusions of one member each, the model loaded in B (fusion/local) and A's
# over loopback HTTP (fusion/remote, and fusion/streamed with stream=1). Same seed, same tokens;
# the member's latency from B's report, RUNS times each, alternating; medians.
#   bench/server/remote_overhead.sh [RUNS=21] [TOKENS=32]
set -euo pipefail
cd "$(dirname "$0")/../.."
chorus=${CHORUS:-build/release/examples/chorus}
model=${MODEL:-../shared/models/stories260K.gguf}
runs=${RUNS:-21}
tokens=${TOKENS:-32}
la=$(mktemp); lb=$(mktemp)
start() {  # log, args...
  local log=$1; shift
  "$chorus" serve --port 0 --quiet ${SERVE_ARGS:-} "$@" >"$log" 2>&1 &
  echo $!
}
a=$(start "$la" --model "stories=$model" --parallel 2)
for _ in $(seq 600); do grep -q ready "$la" && break; sleep 0.1; done
pa=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$la" | head -1)
b=$(start "$lb" --model "stories=$model" --parallel 2 \
      --fusion "local=member=stories:seed=1" \
      --fusion "remote=member=http://127.0.0.1:$pa/v1#stories,seed=1" \
      --fusion "streamed=member=http://127.0.0.1:$pa/v1#stories,seed=1,stream=1")
trap 'kill $a $b 2>/dev/null; wait $a $b 2>/dev/null; rm -f "$la" "$lb"' EXIT
for _ in $(seq 600); do grep -q ready "$lb" && break; sleep 0.1; done
pb=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$lb" | head -1)
ask() {
  curl -s "http://127.0.0.1:$pb/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"fusion/$1\",\"max_tokens\":$tokens,\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]}" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["chorus_fusion"]; m=r["members"][0]; assert m["status"]=="ok", m; print(m["latency_ms"], m["completion_tokens"], r["wall_ms"])'
}
for f in local remote streamed; do ask $f >/dev/null; done  # warm up
declare -A lat wall count
for _ in $(seq "$runs"); do
  for f in local remote streamed; do
    read -r l n w < <(ask $f)
    lat[$f]+="$l "; wall[$f]+="$w "; count[$f]=$n
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| member | tokens | median member latency ms | median fusion wall ms |"
echo "|---|---:|---:|---:|"
for f in local remote streamed; do echo "| $f | ${count[$f]} | $(median "${lat[$f]}") | $(median "${wall[$f]}") |"; done
