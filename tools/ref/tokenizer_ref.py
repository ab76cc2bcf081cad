#!/usr/bin/env python3
"""Reference token ids from Hugging Face `tokenizers` for the tokenizer parity tests.

usage: tokenizer_ref.py CORPUS OUT_DIR NAME=PATH/tokenizer.json [NAME=PATH ...]

For each tokenizer it writes OUT_DIR/expected_NAME.jsonl: one line per corpus string with
  text            the string
  ids             encode(text, add_special_tokens=True).ids
  ids_no_special  encode(text, add_special_tokens=False).ids
  decoded         decode(ids, skip_special_tokens=False)
  ids_no_parse    ids_no_special with special-token texts encoded as plain text
                  (encode_special_tokens=True); absent where `tokenizers` lacks the option
"""

import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    corpus, out_dir = sys.argv[1], sys.argv[2]
    with open(corpus, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    for spec in sys.argv[3:]:
        name, path = spec.split("=", 1)
        tok = Tokenizer.from_file(path)
        out = os.path.join(out_dir, f"expected_{name}.jsonl")
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            for text in texts:
                ids = tok.encode(text, add_special_tokens=True).ids
                ids_no_special = tok.encode(text, add_special_tokens=False).ids
                decoded = tok.decode(ids, skip_special_tokens=False)
                row = {"text": text, "ids": ids, "ids_no_special": ids_no_special, "decoded": decoded}
                if hasattr(tok, "encode_special_tokens"):
                    tok.encode_special_tokens = True
                    row["ids_no_parse"] = tok.encode(text, add_special_tokens=False).ids
                    tok.encode_special_tokens = False
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"tokenizers {tokenizers.__version__}: {len(texts)} strings, {name} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
