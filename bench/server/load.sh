#!/usr/bin/env bash
# requests/s and latency (p50, p99) of `chorus serve` under wrk, for 1, 8 and 64 concurrent
# clients, streamed and not, on loopback, each for a bounded time.
#   bench/server/load.sh [DURATION=10s] [TOKENS=16] [MODEL=../shared/models/stories260K.gguf]
# Prints a Markdown table. Latency is to the last byte (for a stream: through data: [DONE]).
set -euo pipefail
cd "$(dirname "$0")/../.."
chorus=${CHORUS:-build/release/examples/chorus}
model=${MODEL:-../shared/models/stories260K.gguf}
duration=${DURATION:-10s}
tokens=${TOKENS:-16}
log=$(mktemp)
"$chorus" serve --model "stories=$model" --port 0 --parallel 64 --max-queued 512 -n "$tokens" --quiet ${SERVE_ARGS:-} >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q ready "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
echo "| clients | stream | requests/s | p50 ms | p99 ms | non-200 |"
echo "|---:|---|---:|---:|---:|---:|"
for stream in 0 1; do
  for clients in 1 8 64; do
    threads=$((clients < 2 ? clients : 2))
    out=$(STREAM=$stream TOKENS=$tokens wrk -t"$threads" -c"$clients" -d"$duration" --latency -s bench/server/chat.lua \
          "http://127.0.0.1:$port/v1/chat/completions")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    to_ms() { awk '{v=$1; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.1f", v}'; }
    p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
    p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
    bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "| $clients | $([ "$stream" = 1 ] && echo yes || echo no) | $rps | $p50 | $p99 | ${bad:-0} |"
  done
done
