#!/usr/bin/env bash
# Installs chorus's build and test dependencies from Debian 12's packages.
set -euo pipefail
packages=(cmake ninja-build g++ python3 libxsimd-dev libboost1.81-dev librange-v3-dev
          libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev)
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "chorus dependencies installed: ${packages[*]}"
