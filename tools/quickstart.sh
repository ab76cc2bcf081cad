#!/usr/bin/env bash
# Installs what is missing, builds slm, and generates text with the bundled demo model
# (models/demo/demo-q8_0.gguf: a 5.8M-parameter Llama trained on public-domain books).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/install_deps.sh"
"$root/tools/build.sh"
slm="$root/build/slm"
demo="$root/models/demo/demo-q8_0.gguf"
"$slm" info "$demo"
"$slm" run "$demo" --prompt "It is a truth universally acknowledged" -n 64 --temp 0 --echo
"$slm" run "$demo" --prompt "Call me Ishmael." -n 64 --temp 0.8 --seed 7 --echo
"$slm" score "$demo" --file "$root/models/demo/heldout.txt" --chunk 256 --summary
