#!/usr/bin/env python3
"""Random-weight reference fixtures for embedding models, and WordPiece tokenizer references.

Writes, into OUT/:
  bert_tiny/         a BertModel (2 layers, dim 32, 4 heads, GELU, post-LayerNorm, absolute and
                     token-type embeddings) with a WordPiece tokenizer.json (uncased, trained here on
                     a small corpus), sentence-transformers files (modules.json, 1_Pooling/config.json
                     with CLS pooling as bge-small-en-v1.5 has, 2_Normalize, sentence_bert_config.json)
                     and reference.json: for each text its ids, and the CLS and mean-pooled embeddings
                     (unnormalized, from model.double()), pooled by hand exactly as sentence-transformers
                     pools (mean: sum of the masked token embeddings / number of tokens).
  bert_tok_cased/    tokenizer.json (cased: no lowercasing, no accent stripping,
                     max_input_chars_per_word 16) and reference.json with ids for hard strings.
  bert_tiny/tokenizer_reference.json: the uncased tokenizer's ids for the same hard strings.
  qwen3_embed_tiny/  a Qwen3Model (no LM head, tensor names without the "model." prefix, as
                     Qwen3-Embedding checkpoints are saved) with modules.json and 1_Pooling/config.json
                     (last-token pooling) and reference.json: token id sequences (each ends with the
                     end-of-text id, as the real tokenizer appends it) and their last-token and mean
                     pooled embeddings of the final norm's output.

  --bench-shape DIR (stdlib only): a bge-small-en-v1.5-shaped BERT (vocab 30522, dim 384, 12 layers,
  12 heads, ffn 1536, 512 positions) with random bf16 weights, for throughput measurements; it
  copies bert_tiny's tokenizer files when they exist beside it.

Needs torch, transformers, tokenizers, safetensors and numpy (not sentence-transformers). Run:
  python3 tools/ref/make_encoder_fixtures.py --out tests/data/models
"""

import argparse
import json
import os
import platform
import shutil
import struct
import sys

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors; similar texts land close together.",
    "Café crème brûlée, naïve façade: Ångström units.",
    "中文字符和English混合 text",
    "unaffable unbelievably reconstruction",
    "e-mail: someone@example.com, phone +1 (555) 010-9999",
    "   leading and trailing spaces   ",
    "[MASK] tokens [SEP] inside text",
    "a",
    "Numbers 3.14159 and 2,718 and 1e-9",
    " ".join(["long input that runs past the position limit"] * 12),
]

HARD_STRINGS = TEXTS[:-1] + [
    "",
    " ",
    "\t\n\r",
    "Tabs\tand\nnewlines\r\nmixed",
    "ZERO\u200bWIDTH space and soft\u00adhyphen",
    "control\x00chars\x01here\x7f",
    "replacement \ufffd char",
    "İstanbul ΣΊΣΥΦΟΣ straße ǅ",
    "combining: e\u0301 a\u0308 n\u0303",
    "emoji 😀👍🏽 and symbols ©®™ €$£",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 120,
    "[CLS] [cls] [UNK] [PAD]",
    "punctuation!!! ¿qué? «quotes» “smart” — dash … ellipsis",
    "日本語のテキスト、한국어 텍스트",
    "𠀀𠀁 rare CJK extension B",
    "ﬁ ligature and ＡＢＣ fullwidth",
    "don't can't won't it's",
    "under_score and/slash and back\\slash",
]

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, hello there, hello again",
    "embeddings map text to vectors and similar texts land close together",
    "cafe creme brulee naive facade angstrom units",
    "unaffable unbelievable unbelievably reconstruction construct constructed",
    "someone at example dot com phone numbers and e-mail addresses",
    "leading and trailing spaces are removed by the tokenizer",
    "tokens inside text are matched as special tokens",
    "numbers such as 3.14159 and 2,718 and 1e-9 are split at punctuation",
    "long input that runs past the position limit is truncated",
    "the model reads words and pieces of words; pieces continue with two hashes",
    "istanbul sisyphus strasse quotes dash ellipsis question",
    "中 文 字 符 和 混 合 日 本 語 テ キ ス ト 한 국 어",
    "The Quick Brown Fox Hello World English Text Numbers ZERO WIDTH",
    "Café crème brûlée naïve façade Ångström straße Σ Ί Υ Φ Ο",
    "don ' t can ' t won ' t it ' s under _ score slash back \\ slash",
    "! ? , . ; : - ( ) [ ] { } @ + / \\ ' \" # $ % & * < = > ^ ` | ~ « » “ ” — … ¿ ¡ © ® ™ € £",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def log(*args):
    print(*args, flush=True)


# ----------------------------------------------------------------------------------------------
# Stdlib-only: a bge-small-shaped model with random bf16 weights


def write_safetensors_raw(path, tensors):
    """tensors: list of (name, dtype string, shape, bytes)."""
    header, offset = {}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in tensors:
            f.write(data)


def random_bf16(n, magnitude_byte=0x3D):
    """n random bf16 values of magnitude in [2^-5, 2^-3) with random signs (none zero)."""
    data = bytearray(os.urandom(2 * n))
    table = bytes((magnitude_byte | (b & 0x80)) for b in range(256))
    data[1::2] = bytes(data[1::2]).translate(table)
    return bytes(data)


def bf16_const(n, value):
    import array
    a = array.array("f", [value])
    b = a.tobytes()[2:4]  # little-endian: the high half of the f32 is the bf16 value
    return b * n


def make_bench_shape(out):
    os.makedirs(out, exist_ok=True)
    vocab, dim, layers, heads, ffn, pos = 30522, 384, 12, 12, 1536, 512
    cfg = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab, "hidden_size": dim,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
        "hidden_act": "gelu", "max_position_embeddings": pos, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
    }
    t = []

    def mat(name, rows, cols):
        t.append((name, "BF16", [rows, cols], random_bf16(rows * cols)))

    def vec(name, n, value=None):
        t.append((name, "BF16", [n], bf16_const(n, value) if value is not None else random_bf16(n)))

    mat("embeddings.word_embeddings.weight", vocab, dim)
    mat("embeddings.position_embeddings.weight", pos, dim)
    mat("embeddings.token_type_embeddings.weight", 2, dim)
    vec("embeddings.LayerNorm.weight", dim, 1.0)
    vec("embeddings.LayerNorm.bias", dim)
    for l in range(layers):
        p = f"encoder.layer.{l}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            mat(p + m + ".weight", dim, dim)
            vec(p + m + ".bias", dim)
        vec(p + "attention.output.LayerNorm.weight", dim, 1.0)
        vec(p + "attention.output.LayerNorm.bias", dim)
        mat(p + "intermediate.dense.weight", ffn, dim)
        vec(p + "intermediate.dense.bias", ffn)
        mat(p + "output.dense.weight", dim, ffn)
        vec(p + "output.dense.bias", dim)
        vec(p + "output.LayerNorm.weight", dim, 1.0)
        vec(p + "output.LayerNorm.bias", dim)
    write_safetensors_raw(os.path.join(out, "model.safetensors"), t)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "models", "bert_tiny")
    write_json(os.path.join(out, "sentence_bert_config.json"), {"max_seq_length": pos, "do_lower_case": False})
    for name in ("tokenizer.json", "modules.json"):
        if os.path.exists(os.path.join(here, name)):
            shutil.copy(os.path.join(here, name), out)
    if os.path.isdir(os.path.join(here, "1_Pooling")):
        shutil.copytree(os.path.join(here, "1_Pooling"), os.path.join(out, "1_Pooling"), dirs_exist_ok=True)
    log(f"wrote {out}")


# ----------------------------------------------------------------------------------------------
# Reference fixtures (torch, transformers, tokenizers)


def versions():
    import numpy as np
    import safetensors
    import tokenizers
    import torch
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__}


def train_wordpiece(lowercase, vocab_size, max_chars):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, decoders, trainers
    from tokenizers.models import WordPiece
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                        continuing_subword_prefix="##", min_frequency=1)
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    vocab = tok.get_vocab()
    tok.model = WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=max_chars)
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def tokenizer_reference(tok, strings):
    out = []
    for s in strings:
        with_special = tok.encode(s, add_special_tokens=True)
        plain = tok.encode(s, add_special_tokens=False)
        out.append({"text": s, "ids": with_special.ids, "tokens": with_special.tokens,
                    "ids_no_special": plain.ids, "normalized": tok.normalizer.normalize_str(s)})
    return out


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def init_random(model, seed, mat_gain, emb_std):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() == 1 and ("LayerNorm.weight" in name or "norm.weight" in name):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(emb_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(mat_gain / (p.shape[1] ** 0.5) * torch.randn(p.shape, generator=g))


def st_pool(hidden, mask, mode):
    """Pooling of one batch as sentence-transformers' Pooling module computes it."""
    import torch
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    if mode == "lasttoken":
        # right padding: the last position whose mask is 1
        idx = mask.sum(1) - 1
        return hidden[torch.arange(hidden.shape[0]), idx]
    raise ValueError(mode)


def cosine(a, b):
    import numpy as np
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def st_files(folder, dim, mode, normalize, max_seq):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(folder, "2_Normalize"), exist_ok=True)
        write_json(os.path.join(folder, "2_Normalize", "README"), "no parameters")
    write_json(os.path.join(folder, "modules.json"), modules)
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    write_json(os.path.join(folder, "1_Pooling", "config.json"), {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": mode == "lasttoken", "include_prompt": True})
    write_json(os.path.join(folder, "sentence_bert_config.json"), {"max_seq_length": max_seq, "do_lower_case": False})


def keep_only(folder, names):
    for f in os.listdir(folder):
        if f not in names:
            p = os.path.join(folder, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def make_bert(out, vers):
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel
    folder = os.path.join(out, "bert_tiny")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    tok = train_wordpiece(lowercase=True, vocab_size=400, max_chars=100)
    max_seq = 48
    tok.save(os.path.join(folder, "tokenizer.json"))
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, hidden_act="gelu", max_position_embeddings=64, type_vocab_size=2,
                     layer_norm_eps=1e-12, pad_token_id=0)
    try:
        model = BertModel(cfg, add_pooling_layer=False, attn_implementation="eager")
    except TypeError:
        cfg._attn_implementation = "eager"
        model = BertModel(cfg, add_pooling_layer=False)
    init_random(model, 2001, 2.0, 1.0)
    model.eval()
    model.save_pretrained(folder)
    keep_only(folder, {"config.json", "model.safetensors", "tokenizer.json"})
    write_json(os.path.join(folder, "tokenizer_config.json"),
               {"do_lower_case": True, "model_max_length": max_seq, "cls_token": "[CLS]", "sep_token": "[SEP]",
                "unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                "tokenizer_class": "BertTokenizer"})
    st_files(folder, 32, "cls", True, max_seq)

    tok.enable_truncation(max_seq)
    loaded = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    d64 = BertModel.from_pretrained(folder, attn_implementation="eager").double().eval()
    items, worst = [], 1.0
    for text in TEXTS:
        ids = tok.encode(text).ids
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        with torch.no_grad():
            h64 = d64(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x)).last_hidden_state
            h32 = loaded(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x)).last_hidden_state
        item = {"text": text, "ids": ids}
        for mode in ("cls", "mean"):
            v64 = st_pool(h64, mask, mode)[0].numpy()
            v32 = st_pool(h32, mask, mode)[0].double().numpy()
            worst = min(worst, cosine(v64, v32))
            item[mode] = v64.astype(np.float32).tolist()
        items.append(item)
    # A padded batch gives the same vectors (what sentence-transformers does with several texts).
    enc = tok.encode_batch(TEXTS[:4])
    width = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in enc])
    with torch.no_grad():
        hb = d64(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    for i in range(4):
        for mode in ("cls", "mean"):
            c = cosine(st_pool(hb, mask, mode)[i].numpy(), np.array(items[i][mode], dtype=np.float64))
            assert c > 0.999999, (i, mode, c)
    log(f"bert_tiny: f32 vs f64 worst cosine {worst:.9f}; lengths {[len(i['ids']) for i in items]}")
    assert len(items[-1]["ids"]) == max_seq
    write_json(os.path.join(folder, "reference.json"), {
        "pooling": "cls (1_Pooling/config.json), then Normalize; 'cls' and 'mean' hold unnormalized vectors",
        "reference": "transformers BertModel, model.double(), eager attention, one text per call, token_type_ids 0",
        "max_seq_length": max_seq, "f32_worst_cosine": worst, "versions": vers, "items": items})
    write_json(os.path.join(folder, "tokenizer_reference.json"), tokenizer_reference(tok_no_trunc(tok), HARD_STRINGS))
    return folder


def tok_no_trunc(tok):
    tok.no_truncation()
    return tok


def make_cased(out, vers):
    folder = os.path.join(out, "bert_tok_cased")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    tok = train_wordpiece(lowercase=False, vocab_size=500, max_chars=16)
    tok.save(os.path.join(folder, "tokenizer.json"))
    write_json(os.path.join(folder, "reference.json"), tokenizer_reference(tok, HARD_STRINGS))
    log(f"bert_tok_cased: vocab {tok.get_vocab_size()}")


def make_qwen3(out, vers):
    import numpy as np
    import torch
    from transformers import Qwen3Config, Qwen3Model
    folder = os.path.join(out, "qwen3_embed_tiny")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    vocab, eot = 256, 255
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, intermediate_size=64, max_position_embeddings=512,
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=eot, eos_token_id=eot)
    cfg.architectures = ["Qwen3Model"]
    try:
        model = Qwen3Model(cfg, attn_implementation="eager")
    except TypeError:
        cfg._attn_implementation = "eager"
        model = Qwen3Model(cfg)
    init_random(model, 2002, 2.0, 1.0)
    model.eval()
    model.save_pretrained(folder)
    keep_only(folder, {"config.json", "model.safetensors"})
    st_files(folder, 32, "lasttoken", True, 512)
    g = torch.Generator().manual_seed(2003)
    seqs = []
    for n in (1, 2, 3, 5, 8, 12, 17, 23, 31, 40, 64, 100):
        body = torch.randint(0, vocab - 1, (n,), generator=g).tolist()
        seqs.append(body + [eot])
    d64 = Qwen3Model.from_pretrained(folder, attn_implementation="eager").double().eval()
    f32 = Qwen3Model.from_pretrained(folder, attn_implementation="eager").eval()
    items, worst = [], 1.0
    for ids in seqs:
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        with torch.no_grad():
            h64 = d64(input_ids=x, attention_mask=mask).last_hidden_state
            h32 = f32(input_ids=x, attention_mask=mask).last_hidden_state
        item = {"ids": ids}
        for mode in ("lasttoken", "mean"):
            v64 = st_pool(h64, mask, mode)[0].numpy()
            worst = min(worst, cosine(v64, st_pool(h32, mask, mode)[0].double().numpy()))
            item[mode] = v64.astype(np.float32).tolist()
        items.append(item)
    log(f"qwen3_embed_tiny: f32 vs f64 worst cosine {worst:.9f}")
    write_json(os.path.join(folder, "reference.json"), {
        "pooling": "lasttoken (1_Pooling/config.json), then Normalize; vectors unnormalized",
        "reference": "transformers Qwen3Model, model.double(), eager attention, one sequence per call",
        "end_of_text_id": eot, "f32_worst_cosine": worst, "versions": vers, "items": items})
    return folder


def make_nomic(out, vers):
    """nomic_bert (nomic-embed-text-v1.5's architecture) has no transformers class (its modeling
    code is remote); this is an independent float64 forward written from nomic-ai's modeling file
    (NomicBertModel with prenorm false): word + token-type embeddings, LayerNorm; per layer fused
    Wqkv (no bias), rotary (GPT-NeoX halves, base rotary_emb_base) on q and k, softmax(q k^T /
    sqrt(d)) v, out_proj, x = norm1(x + a); m = fc2(fc11(x) * silu(fc12(x))), x = norm2(x + m)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    folder = os.path.join(out, "nomic_bert_tiny")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    src = os.path.join(out, "bert_tiny", "tokenizer.json")
    shutil.copy(src, folder)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(src)
    dim, layers, heads, ffn, vocab, max_seq = 32, 2, 4, 48, tok.get_vocab_size(), 48
    cfg = {"architectures": ["NomicBertModel"], "model_type": "nomic_bert", "n_embd": dim, "n_layer": layers,
           "n_head": heads, "n_inner": ffn, "n_positions": 8192, "vocab_size": vocab, "type_vocab_size": 2,
           "layer_norm_epsilon": 1e-12, "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0,
           "rotary_emb_interleaved": False, "rotary_scaling_factor": None, "max_trained_positions": 2048,
           "qkv_proj_bias": False, "mlp_fc1_bias": False, "mlp_fc2_bias": False, "activation_function": "swiglu",
           "prenorm": False, "causal": False, "pad_token_id": 0}
    write_json(os.path.join(folder, "config.json"), cfg)
    g = torch.Generator().manual_seed(2004)
    w = {}
    def mat(name, rows, cols, gain=2.0):
        w[name] = (gain / cols ** 0.5 * torch.randn(rows, cols, generator=g)).float()
    def ln(name):
        w[name + ".weight"] = (1.0 + 0.2 * torch.randn(dim, generator=g)).float()
        w[name + ".bias"] = (0.1 * torch.randn(dim, generator=g)).float()
    w["embeddings.word_embeddings.weight"] = torch.randn(vocab, dim, generator=g).float()
    w["embeddings.token_type_embeddings.weight"] = torch.randn(2, dim, generator=g).float()
    ln("emb_ln")
    for l in range(layers):
        p = f"encoder.layers.{l}."
        mat(p + "attn.Wqkv.weight", 3 * dim, dim)
        mat(p + "attn.out_proj.weight", dim, dim)
        mat(p + "mlp.fc11.weight", ffn, dim)
        mat(p + "mlp.fc12.weight", ffn, dim)
        mat(p + "mlp.fc2.weight", dim, ffn)
        ln(p + "norm1")
        ln(p + "norm2")
    save_file(w, os.path.join(folder, "model.safetensors"))
    st_files(folder, dim, "mean", True, max_seq)
    W = {k: v.double() for k, v in w.items()}
    hd = dim // heads

    def layer_norm(x, name):
        return torch.nn.functional.layer_norm(x, (dim,), W[name + ".weight"], W[name + ".bias"], 1e-12)

    def rope(x):  # x: [T, heads, hd]; NeoX halves
        T = x.shape[0]
        inv = 1.0 / (1000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        cos = torch.cat([f.cos(), f.cos()], -1)[:, None, :]
        sin = torch.cat([f.sin(), f.sin()], -1)[:, None, :]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(ids):
        T = len(ids)
        x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.token_type_embeddings.weight"][0]
        x = layer_norm(x, "emb_ln")
        for l in range(layers):
            p = f"encoder.layers.{l}."
            qkv = (x @ W[p + "attn.Wqkv.weight"].T).reshape(T, 3, heads, hd)
            q, k, v = rope(qkv[:, 0]), rope(qkv[:, 1]), qkv[:, 2]
            s = torch.einsum("ihd,jhd->hij", q, k) / hd ** 0.5
            a = torch.einsum("hij,jhd->ihd", torch.softmax(s, -1), v).reshape(T, dim)
            x = layer_norm(x + a @ W[p + "attn.out_proj.weight"].T, p + "norm1")
            up, gate = x @ W[p + "mlp.fc11.weight"].T, x @ W[p + "mlp.fc12.weight"].T
            m = (up * torch.nn.functional.silu(gate)) @ W[p + "mlp.fc2.weight"].T
            x = layer_norm(x + m, p + "norm2")
        return x

    tok.enable_truncation(max_seq)
    items = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        h = forward(ids)[None]
        mask = torch.ones(1, len(ids), dtype=torch.long)
        items.append({"text": text, "ids": ids, "mean": st_pool(h, mask, "mean")[0].float().tolist(),
                      "cls": st_pool(h, mask, "cls")[0].float().tolist()})
    write_json(os.path.join(folder, "reference.json"), {
        "pooling": "mean (1_Pooling/config.json), then Normalize; 'mean' and 'cls' hold unnormalized vectors",
        "reference": "an independent float64 PyTorch forward of NomicBertModel (prenorm false), see "
                     "tools/ref/make_encoder_fixtures.py make_nomic",
        "max_seq_length": max_seq, "versions": vers, "items": items})
    log(f"nomic_bert_tiny: lengths {[len(i['ids']) for i in items]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder that receives the fixture folders")
    ap.add_argument("--only", nargs="*", help="make_bert, make_cased, make_qwen3, make_nomic (default: all)")
    ap.add_argument("--bench-shape", help="write a bge-small-shaped random model here (stdlib only)")
    args = ap.parse_args()
    if args.bench_shape:
        make_bench_shape(args.bench_shape)
        return 0
    if not args.out:
        ap.error("--out or --bench-shape is required")
    import torch
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    vers = versions()
    log("versions:", json.dumps(vers))
    os.makedirs(args.out, exist_ok=True)
    failures = 0
    only = set(args.only or [])
    for fn in (make_bert, make_cased, make_qwen3, make_nomic):
        if only and fn.__name__ not in only:
            continue
        try:
            fn(args.out, vers)
        except Exception as e:  # keep going: the other fixtures are still useful
            import traceback
            traceback.print_exc()
            failures += 1
    for root, _, files in os.walk(args.out):
        for f in files:
            p = os.path.join(root, f)
            log(f"  {os.path.getsize(p):8d} {p}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
