#!/usr/bin/env bash
# Builds the demo model's corpus (train.txt, heldout.txt) from public-domain texts in Debian
# packages: the six Jane Austen novels (r-cran-janeaustenr), Moby Dick (r-cran-tokenizers) and the
# King James Bible (bible-kjv-text). The packages are only downloaded and unpacked, not installed;
# the text is read from their R data files and the Bible's compressed data file by Python alone.
#
# Usage: tools/train/prepare_corpus.sh [OUT_DIR]   (default: <repo>/.cache/corpus)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/.cache/corpus}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

packages=(r-cran-janeaustenr r-cran-tokenizers bible-kjv-text)
(cd "$work" && apt-get download "${packages[@]}")
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
python3 "$here/build_corpus.py" --root "$work/root" --out "$out"
ls -l "$out"
