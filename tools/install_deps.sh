#!/usr/bin/env bash
# Installs the Debian 12 packages slm needs to build and test (only the missing ones).
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libpcre2-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcurl4-openssl-dev libssl-dev
  libboost-dev libboost-system-dev libyaml-cpp-dev libsqlite3-dev zlib1g-dev
  tmux curl
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Tools that may come from elsewhere than Debian (a newer Node.js, a pyenv Python): only a missing
# command asks for Debian's package.
command -v python3 >/dev/null || missing+=(python3)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
