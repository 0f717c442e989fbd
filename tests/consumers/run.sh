#!/usr/bin/env bash
# Builds and runs the three consumer projects: an installed package found with
# find_package, add_subdirectory, and the copied single header with nothing else.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model="${CHORUS_SHARED_DIR:-$root/../shared}/models/stories260K.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== consumer: install + find_package"
cmake -S "$root" -B "$work/chorus-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCHORUS_BUILD_TESTS=OFF -DCHORUS_BUILD_EXAMPLES=OFF -DCHORUS_BUILD_BENCH=OFF >/dev/null
cmake --install "$work/chorus-build" --prefix "$work/prefix" >/dev/null
cmake -S "$root/tests/consumers/find_package" -B "$work/fp" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/fp" >/dev/null
"$work/fp/consumer" "$model"

echo "== consumer: add_subdirectory"
cmake -S "$root/tests/consumers/add_subdirectory" -B "$work/as" -G Ninja >/dev/null
cmake --build "$work/as" >/dev/null
"$work/as/consumer" "$model"

echo "== consumer: single header only"
mkdir -p "$work/single/chorus"
cp "$root/single_include/chorus.hpp" "$work/single/chorus/chorus.hpp"
${CXX:-c++} -std=c++20 -O1 -I"$work/single" "$root/tests/consumers/consumer_main.cpp" -o "$work/single-consumer" -pthread
"$work/single-consumer" "$model"
echo "consumers: 3 passed, 0 failed"
