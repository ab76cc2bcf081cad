#!/usr/bin/env python3
"""Seeds for chat_template_fuzz: the real templates and the construct templates of
tests/data/chat_templates, one file each.

usage: make_chat_template_corpus.py OUT_DIR
"""

import hashlib
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data", "chat_templates")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = []
    for name in sorted(os.listdir(DATA)):
        if name.endswith(".jinja"):
            with open(os.path.join(DATA, name), "rb") as f:
                seeds.append(f.read())
    with open(os.path.join(DATA, "constructs.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                seeds.append(json.loads(line)["template"].encode("utf-8"))
    for seed in seeds:
        with open(os.path.join(out, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
    print(f"{len(seeds)} seeds in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
