#!/usr/bin/env bash
# Installs chorus's build and test dependencies from Debian 12's packages.
set -euo pipefail
packages=(cmake ninja-build g++ python3 libxsimd-dev libboost1.81-dev
          nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev
          doxygen libssl-dev openssl curl wrk)
# libssl-dev: remote members over https and the server's TLS; openssl, curl, nodejs + npm: the
# server tests (a self-signed certificate, raw HTTP cases, the official `openai` client); wrk:
# bench/server_load.sh. A Node.js already installed (say, a newer one from nodesource) is kept.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "chorus dependencies installed: ${packages[*]}"
