#!/usr/bin/env bash
# Installs what is missing, builds slm, converts the bundled demo model to GGUF and generates text
# with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/install_deps.sh"
"$root/tools/build.sh"
slm="$root/build/slm"
demo="$root/build/demo-f16.gguf"
if [[ ! -f "$demo" || "$root/models/demo/hf/model.safetensors" -nt "$demo" ]]; then
  "$slm" convert "$root/models/demo/hf" -o "$demo" --outtype f16
fi
"$slm" info "$demo"
"$slm" run "$demo" --prompt "It is a truth universally acknowledged" -n 64 --temp 0 --echo
"$slm" run "$demo" --prompt "Call me Ishmael." -n 64 --temp 0.8 --seed 7 --echo
