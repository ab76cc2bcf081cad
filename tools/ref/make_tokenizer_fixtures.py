#!/usr/bin/env python3
"""Small trained tokenizers and reference ids for the tokenizer parity tests.

usage: make_tokenizer_fixtures.py --out OUT_DIR [--train-text FILE ...] [NAME=PATH/tokenizer.json ...]

1. Trains two small tokenizers with Hugging Face `tokenizers` on the committed text files given
   with --train-text (deterministic: one thread, fixed order):
     unigram_small  SentencePiece-style Unigram: NFKC normalizer, Metaspace pre-tokenizer
                    (prepend_scheme "always"), byte fallback (<0x00>..<0xFF> appended to the vocab),
                    <s> ... </s> added by the post-processor, added tokens with lstrip/rstrip and a
                    non-special normalized one.
     o200k_small    byte-level BPE with the GPT-4o (o200k_base) Split regex, as Phi-4-mini's
                    tokenizer.json declares it, followed by ByteLevel without its own regex.
   Each is written to OUT_DIR/tokenizer_NAME.json.
   With --spm, also trains a SentencePiece BPE model (the `sentencepiece` library: identity
   normalization, byte fallback, dummy prefix) and writes its pieces, scores and types as
   OUT_DIR/spm_bpe_small.json and sentencepiece's own ids as OUT_DIR/expected_spm_bpe_small.jsonl:
   what a GGUF converted by llama.cpp from a tokenizer.model holds, and what it must produce.
   With --variants LLAMA2_JSON, also uses a variant of Llama 2's tokenizer.json:
     llama2_metaspace  no normalizer; Metaspace pre-tokenizer (prepend_scheme "first", split
                       false) and decoder, as newer transformers saves Llama and Mistral files
                       (legacy false)
   (its tokenizer.json is not written: the parity test derives it the same way.)
   With --spm-unigram, also trains a SentencePiece Unigram model with sentencepiece's default
   normalization (nmt_nfkc: a precompiled character map, extra whitespace removed, dummy prefix)
   and byte fallback, and writes OUT_DIR/spm_unigram_small.json (pieces, scores, types, the
   character map in base64, the normalizer flags) and OUT_DIR/expected_spm_unigram_small.jsonl.
2. Runs tokenizer_ref.py's encoding over the corpus for those two and for every NAME=PATH given,
   writing OUT_DIR/expected_NAME.jsonl.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

O200K = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def read_lines(paths, corpus_texts):
    lines = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            lines.extend(l.rstrip("\n") for l in f)
    lines.extend(corpus_texts)
    return [l for l in lines if l]


def train_unigram(lines):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
                                      max_piece_length=12, shrinking_factor=0.75, n_sub_iterations=2)
    tok.train_from_iterator(lines, trainer=trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    present = {p for p, _ in vocab}
    lowest = min(s for _, s in vocab)
    for b in range(256):
        piece = f"<0x{b:02X}>"
        if piece not in present:
            vocab.append([piece, lowest - 1.0])
    j["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_special_tokens([
        AddedToken("<|im_start|>", special=True, rstrip=True, normalized=False),
        AddedToken("<|im_end|>", special=True, lstrip=True, normalized=False),
        AddedToken("<|endoftext|>", special=True, normalized=False),
    ])
    tok.add_tokens([AddedToken("\uff57\uff49\uff4b\uff49", special=False, normalized=True),
                    AddedToken("[todo]", special=False, normalized=False, single_word=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    return tok


def train_o200k(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(O200K), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.add_tokens([AddedToken("<|tool|>", special=False, normalized=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def llama2_variants(path):
    with open(path, encoding="utf-8") as f:
        base = json.load(f)
    meta = json.loads(json.dumps(base))
    meta["normalizer"] = None
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    meta["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    return [("llama2_metaspace", Tokenizer.from_str(json.dumps(meta)))]


def write_expected(tok, texts, path):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            ids = tok.encode(text, add_special_tokens=True).ids
            ids_no_special = tok.encode(text, add_special_tokens=False).ids
            row = {"text": text, "ids": ids, "ids_no_special": ids_no_special,
                   "decoded": tok.decode(ids, skip_special_tokens=False),
                   "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
            tok.encode_special_tokens = True
            row["ids_no_parse"] = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def train_spm(lines, texts, out):
    import tempfile

    import sentencepiece as spm
    work = tempfile.mkdtemp()
    src = os.path.join(work, "train.txt")
    with open(src, "w", encoding="utf-8") as f:
        for l in lines:
            if "\n" not in l and "\r" not in l:
                f.write(l + "\n")
    spm.SentencePieceTrainer.train(
        input=src, model_prefix=os.path.join(work, "m"), model_type="bpe", vocab_size=1000,
        byte_fallback=True, character_coverage=0.995, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, num_threads=1, split_digits=True,
        allow_whitespace_only_pieces=True, max_sentence_length=1 << 20, hard_vocab_limit=False,
        minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(work, "m.model"))
    pieces = []
    for i in range(sp.get_piece_size()):
        t = 1
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_unused(i):
            t = 5
        elif sp.is_byte(i):
            t = 6
        pieces.append([sp.id_to_piece(i), sp.get_score(i), t])
    meta = {"pieces": pieces, "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(),
            "sentencepiece": spm.__version__}
    with open(os.path.join(out, "spm_bpe_small.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
    n = 0
    with open(os.path.join(out, "expected_spm_bpe_small.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                continue
            ids = sp.encode(text)
            f.write(json.dumps({"text": text, "ids": ids, "decoded": sp.decode(ids)}, ensure_ascii=False) + "\n")
            n += 1
    print(f"sentencepiece {spm.__version__}: {n} strings, vocab {sp.get_piece_size()}, spm_bpe_small")


def train_spm_unigram(lines, texts, out):
    import base64
    import tempfile

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    work = tempfile.mkdtemp()
    src = os.path.join(work, "train.txt")
    with open(src, "w", encoding="utf-8") as f:
        for l in lines:
            if "\n" not in l and "\r" not in l:
                f.write(l + "\n")
    spm.SentencePieceTrainer.train(
        input=src, model_prefix=os.path.join(work, "u"), model_type="unigram", vocab_size=800,
        byte_fallback=True, character_coverage=0.995, num_threads=1, max_sentence_length=1 << 20,
        hard_vocab_limit=False, minloglevel=2)
    proto = pb.ModelProto()
    with open(os.path.join(work, "u.model"), "rb") as f:
        proto.ParseFromString(f.read())
    sp = spm.SentencePieceProcessor(model_file=os.path.join(work, "u.model"))
    pieces = [[p.piece, p.score, int(p.type)] for p in proto.pieces]  # types: 1 normal .. 6 byte
    ns = proto.normalizer_spec
    meta = {"pieces": pieces, "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(),
            "normalizer": ns.name, "add_dummy_prefix": ns.add_dummy_prefix,
            "remove_extra_whitespaces": ns.remove_extra_whitespaces, "escape_whitespaces": ns.escape_whitespaces,
            "precompiled_charsmap": base64.b64encode(ns.precompiled_charsmap).decode("ascii"),
            "sentencepiece": spm.__version__}
    with open(os.path.join(out, "spm_unigram_small.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
    n = 0
    with open(os.path.join(out, "expected_spm_unigram_small.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                continue
            ids = sp.encode(text)
            f.write(json.dumps({"text": text, "ids": ids, "decoded": sp.decode(ids),
                                "normalized": sp.normalize(text) if hasattr(sp, "normalize") else None},
                               ensure_ascii=False) + "\n")
            n += 1
    print(f"sentencepiece {spm.__version__}: {n} strings, vocab {sp.get_piece_size()}, spm_unigram_small, "
          f"charsmap {len(ns.precompiled_charsmap)} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default="tests/data/tokenizer/hard_strings.jsonl")
    ap.add_argument("--train-text", nargs="*", default=[])
    ap.add_argument("--spm", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--spm-unigram", action="store_true")
    ap.add_argument("--variants", default="")
    ap.add_argument("refs", nargs="*")
    a = ap.parse_args()
    with open(a.corpus, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    os.makedirs(a.out, exist_ok=True)
    lines = read_lines(a.train_text, texts)
    if a.spm:
        train_spm(lines, texts, a.out)
    if a.spm_unigram:
        train_spm_unigram(lines, texts, a.out)
    todo = []
    for name, make in () if a.no_train else (("unigram_small", train_unigram), ("o200k_small", train_o200k)):
        tok = make(lines)
        path = os.path.join(a.out, f"tokenizer_{name}.json")
        tok.save(path, pretty=False)
        todo.append((name, Tokenizer.from_file(path)))  # what the tests load
    if a.variants:
        todo.extend(llama2_variants(a.variants))
    for spec in a.refs:
        name, path = spec.split("=", 1)
        todo.append((name, Tokenizer.from_file(path)))
    for name, tok in todo:
        write_expected(tok, texts, os.path.join(a.out, f"expected_{name}.jsonl"))
        print(f"tokenizers {tokenizers.__version__}: {len(texts)} strings, vocab {tok.get_vocab_size()}, {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
