#!/usr/bin/env python3
"""Builds the demo model's training corpus from unpacked Debian packages.

Input: a folder into which these packages were unpacked with `dpkg-deb -x`:
  r-cran-janeaustenr  (usr/lib/R/site-library/janeaustenr/data/Rdata.rd[bx]: six novels)
  r-cran-tokenizers   (usr/lib/R/site-library/tokenizers/data/Rdata.rd[bx]: Moby Dick)
  bible-kjv-text      (usr/lib/bible.data: the King James Bible, LZW-compressed windows)
Output, in --out:
  train.txt    documents separated by a line holding only <|endoftext|>
  heldout.txt  one contiguous excerpt (~1%) of each book, excerpts separated by a blank line
Text is UTF-8 with '\\n' line ends. Novels: one paragraph per line, paragraphs separated by a
blank line, hard line wraps and _italic_ markers removed. Bible: one verse per line without its
reference (book, chapter and verse numbers are dropped), chapters separated by a blank line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kjvdata  # noqa: E402
import rdata  # noqa: E402

DOC_SEPARATOR = "<|endoftext|>"
AUSTEN = [  # (variable in the R package, title)
    ("sensesensibility", "Sense and Sensibility"),
    ("prideprejudice", "Pride and Prejudice"),
    ("mansfieldpark", "Mansfield Park"),
    ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"),
    ("persuasion", "Persuasion"),
]


def paragraphs_from_lines(lines: list[str]) -> list[str]:
    """Groups hard-wrapped lines into paragraphs (blank lines separate them). A block whose lines
    are all indented (verse, tables) keeps its line breaks; other blocks are joined with spaces."""
    out, block = [], []

    def flush():
        if not block:
            return
        if all(l[:1] in (" ", "\t") for l in block) and len(block) > 1:
            text = "\n".join(re.sub(r"\s+", " ", l).strip() for l in block)
        else:
            text = re.sub(r"\s+", " ", " ".join(l.strip() for l in block)).strip()
        if text:
            out.append(text)
        block.clear()

    for line in lines:
        if line.strip():
            block.append(line.rstrip())
        else:
            flush()
    flush()
    return out


def clean_austen(lines: list) -> list[str]:
    lines = ["" if l is None else l.replace("_", "") for l in lines]
    paras = paragraphs_from_lines(lines)
    # One edition appends a modern editor's note after the novel: not part of the public-domain text.
    if "A NOTE ON THE TEXT" in paras:
        paras = paras[:paras.index("A NOTE ON THE TEXT")]
    return paras


def clean_moby_dick(text: str) -> list[str]:
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    start = text.find("CHAPTER 1. Loomings.")
    end = text.find("End of Project Gutenberg")
    if start < 0 or end < start:
        raise SystemExit("build_corpus: expected the Moby Dick text between 'CHAPTER 1. Loomings.' "
                         "and the closing Project Gutenberg line, found neither")
    body = text[start:end].replace("_", "")
    return ["MOBY DICK; OR THE WHALE", "By Herman Melville"] + paragraphs_from_lines(body.split("\n"))


VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def clean_bible(raw: bytes) -> list[str]:
    """Returns one paragraph per chapter, verses separated by newlines."""
    text = raw.decode("utf-8")
    chapters, current, last_key = [], [], None
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        m = VERSE.match(line)
        if not m:
            continue  # the file's title line
        key = (m.group(1), m.group(2))
        if key != last_key and current:
            chapters.append("\n".join(current))
            current = []
        last_key = key
        current.append(re.sub(r"\s+", " ", m.group(4)).strip())
    if current:
        chapters.append("\n".join(current))
    if len(chapters) != 1189:
        raise SystemExit(f"build_corpus: expected 1189 chapters in the KJV Bible, found {len(chapters)}")
    return ["THE HOLY BIBLE, KING JAMES VERSION"] + chapters


def split_heldout(paragraphs: list[str], fraction: float, at: float) -> tuple[list[str], list[str], list[str]]:
    """Cuts a contiguous run of paragraphs holding about `fraction` of the characters, starting at
    relative position `at`. Returns (before, heldout, after)."""
    total = sum(len(p) + 2 for p in paragraphs)
    target = fraction * total
    pos, start = 0, 0
    for i, p in enumerate(paragraphs):
        if pos >= at * total:
            start = i
            break
        pos += len(p) + 2
    size, end = 0, start
    while end < len(paragraphs) and size < target:
        size += len(paragraphs[end]) + 2
        end += 1
    return paragraphs[:start], paragraphs[start:end], paragraphs[end:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder the .deb packages were unpacked into")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--heldout-fraction", type=float, default=0.01)
    ap.add_argument("--heldout-at", type=float, default=0.6, help="relative position of the cut")
    args = ap.parse_args()

    lib = os.path.join(args.root, "usr", "lib", "R", "site-library")
    austen = rdata.read_lazyload_db(os.path.join(lib, "janeaustenr", "data", "Rdata"))
    tok = rdata.read_lazyload_db(os.path.join(lib, "tokenizers", "data", "Rdata"))

    books = []  # (name, paragraphs)
    for var, title in AUSTEN:
        vec = austen.get(var)
        if vec is None or vec.kind != "character":
            raise SystemExit(f"build_corpus: expected a character vector '{var}' in janeaustenr")
        books.append((title, clean_austen(vec.values)))
    md = tok.get("mobydick")
    if md is None or md.kind != "character" or len(md.values) != 1:
        raise SystemExit("build_corpus: expected a one-element character vector 'mobydick' in tokenizers")
    books.append(("Moby Dick", clean_moby_dick(md.values[0])))
    books.append(("King James Bible", clean_bible(kjvdata.read_kjv_text(os.path.join(args.root, "usr", "lib", "bible.data")))))

    os.makedirs(args.out, exist_ok=True)
    train_docs, heldout_parts = [], []
    print(f"{'book':<24}{'paragraphs':>11}{'chars':>10}{'heldout':>9}")
    for name, paras in books:
        before, held, after = split_heldout(paras, args.heldout_fraction, args.heldout_at)
        for part in (before, after):
            if part:
                train_docs.append("\n\n".join(part))
        heldout_parts.append("\n\n".join(held))
        chars = sum(len(p) for p in paras)
        print(f"{name:<24}{len(paras):>11}{chars:>10}{sum(len(p) for p in held):>9}")

    train_text = ("\n" + DOC_SEPARATOR + "\n").join(d + "\n" for d in train_docs)
    heldout_text = "\n\n".join(heldout_parts) + "\n"
    for name, text in (("train.txt", train_text), ("heldout.txt", heldout_text)):
        if DOC_SEPARATOR in text.replace("\n" + DOC_SEPARATOR + "\n", "") or "\r" in text:
            raise SystemExit(f"build_corpus: unexpected separator or CR inside {name}")
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"{path}: {len(text.encode('utf-8'))} bytes, {len(text)} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
