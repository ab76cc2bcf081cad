#!/usr/bin/env python3
"""Trains the demo model's byte-level BPE tokenizer with Hugging Face `tokenizers`.

  python3 tools/train/train_tokenizer.py --corpus .cache/corpus/train.txt --out OUT_DIR

Writes OUT_DIR/tokenizer.json and OUT_DIR/tokenizer_config.json:
  - pre-tokenizer: ByteLevel (GPT-2 regex, no prefix space), decoder: ByteLevel
  - special tokens: <|endoftext|> = 0 (BOS, EOS and padding), <|im_start|> = 1, <|im_end|> = 2
  - post-processor: ByteLevel offsets, then TemplateProcessing that puts <|endoftext|> first
  - tokenizer_config.json: add_bos_token true, add_eos_token false, a ChatML chat template
"""

from __future__ import annotations

import argparse
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

DOC_SEPARATOR = "<|endoftext|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def documents(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [d for d in text.split("\n" + DOC_SEPARATOR + "\n") if d.strip()]


def training_pieces(docs: list[str], paragraphs_per_piece: int = 64):
    """Yields pieces of about `paragraphs_per_piece` paragraphs that keep their blank-line
    separators, so that merges of newline runs are learned too."""
    for doc in docs:
        paras = doc.split("\n\n")
        for i in range(0, len(paras), paragraphs_per_piece):
            piece = "\n\n".join(paras[i:i + paragraphs_per_piece])
            if i + paragraphs_per_piece < len(paras):
                piece += "\n\n"
            else:
                piece += "\n"
            yield piece


def build(corpus: str, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    pieces = list(training_pieces(documents(corpus)))
    tok.train_from_iterator(pieces, trainer=trainer, length=len(pieces))
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=False, trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos}:1 $B:1",
            special_tokens=[(bos, tok.token_to_id(bos))],
        ),
    ])
    return tok


def tokenizer_config(tok: Tokenizer, max_length: int) -> dict:
    added = {}
    for text in SPECIAL_TOKENS:
        added[str(tok.token_to_id(text))] = {
            "content": text, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": SPECIAL_TOKENS[0],
        "eos_token": SPECIAL_TOKENS[0],
        "pad_token": SPECIAL_TOKENS[0],
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="train.txt from prepare_corpus.sh")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()

    tok = build(args.corpus, args.vocab_size)
    for i, text in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(text) != i:
            raise SystemExit(f"train_tokenizer: expected {text} at id {i}, found {tok.token_to_id(text)}")
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(tok, args.max_length), f, indent=2, ensure_ascii=False)
        f.write("\n")

    # Round trip and a look at how the text is cut.
    sample = "It is a truth universally acknowledged, that a single man\n\nCall me Ishmael."
    enc = tok.encode(sample)
    if enc.ids[0] != 0 or tok.decode(enc.ids, skip_special_tokens=True) != sample:
        raise SystemExit("train_tokenizer: round trip of the sample text failed")
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    n_chars = len(text)
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(documents(args.corpus), add_special_tokens=False))
    print(f"tokenizer: vocab {tok.get_vocab_size()}, {n_tokens} tokens in train.txt "
          f"({n_chars / n_tokens:.2f} characters per token)")
    print("sample:", [tok.id_to_token(i) for i in enc.ids])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
