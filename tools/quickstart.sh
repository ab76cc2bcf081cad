#!/usr/bin/env bash
# Installs what is missing, builds slm, generates text with the bundled demo model and sends two
# requests through slm serve with a router over two local tiers of it
# (models/demo/demo-q8_0.gguf: a 5.8M-parameter Llama trained on public-domain books).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/install_deps.sh"
"$root/tools/build.sh" slm
slm="$root/build/slm"
demo="$root/models/demo/demo-q8_0.gguf"
"$slm" info "$demo"
"$slm" run "$demo" --prompt "It is a truth universally acknowledged" -n 64 --temp 0 --echo
"$slm" run "$demo" --prompt "Call me Ishmael." -n 64 --temp 0.8 --seed 7 --echo
"$slm" score "$demo" --file "$root/models/demo/heldout.txt" --chunk 256 --summary

# The same model behind the tier router: `slm serve --config` with two local tiers (the Q8_0 file
# and the f16 folder); the rules in models/demo/router.yaml send short prompts to "small" and
# requests tagged as stories to "workhorse". The answer's "model" says which tier's model answered.
tmp="$(mktemp -d)"
"$slm" serve --config "$root/models/demo/router.yaml" --port 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 300); do
  grep -q "^listening on " "$tmp/serve.out" && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$tmp/serve.out")"
[ -n "$url" ] || { echo "slm serve did not start" >&2; cat "$tmp/serve.err" >&2; exit 1; }
ask() {  # ask TASK PROMPT: one chat completion through the router, printed as "tier model: answer"
  curl -sS --fail-with-body "$url/v1/chat/completions" -H "content-type: application/json" -H "x-slm-task: $1" \
    -d "{\"model\": \"auto\", \"max_tokens\": 32, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"$2\"}]}" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["model"] + ": " + r["choices"][0]["message"]["content"].strip())'
}
echo "router, a short question  -> $(ask chat "It is a truth universally acknowledged")"
echo "router, a story request   -> $(ask story "Call me Ishmael.")"
