#include "slm/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "slm/tokenizer/added_tokens.hpp"
#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/decoder.hpp"
#include "slm/tokenizer/normalizer.hpp"
#include "slm/tokenizer/pretokenizer.hpp"
#include "slm/tokenizer/sentencepiece.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

struct Merge {
  int32_t rank;
  int32_t id;  // the token the pair merges into
};

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

struct PairEntry {
  int32_t rank;
  int32_t pos;
  int32_t left;
  int32_t right;
  int32_t merged;
  // std::push_heap keeps the largest on top: inverted so the lowest rank, then leftmost, wins.
  bool operator<(const PairEntry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct Symbol {
  int32_t id;  // -1 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

// Per-thread buffers reused across calls.
struct Scratch {
  std::vector<Symbol> symbols;
  std::vector<PairEntry> heap;
  std::vector<AddedTokenMatcher::Part> parts;
  std::vector<std::string_view> pieces;
  std::string prefixed;
  std::string normalized;
  std::string mapped;
  std::vector<AddedTokenMatcher::Part> normalized_parts;
  std::string split_scratch;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerData data;
  PreTokenizer pre;
  AddedTokenMatcher added;
  std::unordered_map<std::string_view, int32_t> ids;  // token text -> id (first of equal texts)
  std::unordered_map<uint64_t, Merge> merges;
  std::array<int32_t, 256> byte_ids{};
  std::vector<std::string> bytes;  // what each token decodes to
  std::vector<uint8_t> eog;
  bool nfc = false;
  // SentencePiece-style models ("llama", "t5").
  bool sentencepiece = false;
  Normalizer normalizer;
  PieceSplitter splitter;
  Decoder decoder;
  std::unique_ptr<SentencePieceBpe> sp_bpe;
  std::unique_ptr<Unigram> unigram;
  AddedTokenMatcher added_normalized;  // added tokens matched in the normalized text

  explicit Impl(TokenizerData d) : data(std::move(d)), pre(resolve_pattern(data), data.add_prefix_space) {
    sentencepiece = data.model != "gpt2";
    validate();
    build_vocab();
    if (sentencepiece) {
      build_sentencepiece();
    } else {
      build_merges();
      added = AddedTokenMatcher(data);
    }
    build_eog();
  }

  static bool is_normalized(const TokenizerData& d, std::vector<uint8_t>& flags) {
    flags.assign(d.tokens.size(), 0);
    bool any = false;
    for (const auto& o : d.added_options) {
      if (o.normalized && o.id >= 0 && size_t(o.id) < d.tokens.size()) flags[o.id] = 1, any = true;
    }
    return any;
  }

  void build_sentencepiece() {
    if (data.model == "llama") {
      sp_bpe = std::make_unique<SentencePieceBpe>(data, ids);
    } else {
      unigram = std::make_unique<Unigram>(data, ids);
    }
    std::vector<uint8_t> flags;
    if (is_normalized(data, flags)) {
      added = AddedTokenMatcher(data, [&](int32_t id) { return flags[id] == 0; }, nullptr);
      added_normalized = AddedTokenMatcher(data, [&](int32_t id) { return flags[id] != 0; },
                                           [&](int32_t id) { return normalizer.apply(data.tokens[id]); });
      // A normalized added token stands for its normalized text, also when decoding.
      for (size_t id = 0; id < flags.size(); ++id) {
        if (flags[id] != 0) bytes[id] = decoder.token_bytes(normalizer.apply(data.tokens[id]));
      }
    } else {
      added = AddedTokenMatcher(data);
    }
  }

  static std::string resolve_pattern(const TokenizerData& d) {
    if (d.model == "llama" || d.model == "t5") {
      if (!d.pattern.empty()) fail(ErrorKind::unsupported, "a pre-tokenizer regex with tokenizer model '{}' is not supported", d.model);
      return {};
    }
    if (d.model != "gpt2") {
      fail(ErrorKind::unsupported, "expected tokenizer model 'gpt2' (byte-level BPE), 'llama' (SentencePiece BPE) or 't5' (Unigram), found '{}'", d.model);
    }
    if (!d.pattern.empty()) return d.pattern;
    const PreTokenizerInfo* info = find_pre_tokenizer(d.pre);
    if (info == nullptr) {
      fail(ErrorKind::unsupported, "unknown pre-tokenizer '{}' and no pattern given", d.pre);
    }
    return std::string(info->pattern);
  }

  void validate() {
    if (data.types.empty()) data.types.assign(data.tokens.size(), TokenType::normal);
    if (data.types.size() != data.tokens.size()) {
      fail(ErrorKind::invalid_argument, "expected {} token types (one per token), found {}", data.tokens.size(),
           data.types.size());
    }
    if (sentencepiece) {
      normalizer = Normalizer(data.normalizer);
      splitter = PieceSplitter(data.pre_split);
      decoder = Decoder(data.decoder);
    } else if (data.normalizer == "NFC") {
      nfc = true;
    } else if (!data.normalizer.empty()) {
      fail(ErrorKind::unsupported, "expected normalizer '' or 'NFC', found '{}'", data.normalizer);
    }
    const auto n = int64_t(data.tokens.size());
    for (const auto& [name, id] : {std::pair{"bos", data.bos_id}, std::pair{"eos", data.eos_id},
                                   std::pair{"pad", data.pad_id}, std::pair{"unk", data.unk_id}}) {
      if (id < -1 || id >= n) fail(ErrorKind::invalid_argument, "{} id {} is outside the vocabulary of {} tokens", name, id, n);
    }
    for (int32_t id : data.eog_ids) {
      if (id < 0 || id >= n) fail(ErrorKind::invalid_argument, "end-of-generation id {} is outside the vocabulary of {} tokens", id, n);
    }
    if (data.add_bos && data.bos_id < 0) fail(ErrorKind::invalid_argument, "add_bos is set but there is no bos token");
    if (data.add_eos && data.eos_id < 0) fail(ErrorKind::invalid_argument, "add_eos is set but there is no eos token");
  }

  void build_vocab() {
    ids.reserve(data.tokens.size() * 2);
    bytes.resize(data.tokens.size());
    for (size_t i = 0; i < data.tokens.size(); ++i) {
      const std::string& text = data.tokens[i];
      ids.emplace(text, int32_t(i));
      if (sentencepiece) {
        bytes[i] = decoder.token_bytes(text);
        continue;
      }
      // Byte-level text maps back to bytes; a token with any other character stands for its own
      // UTF-8 text (added tokens such as "<|im_start|>" map either way to the same bytes).
      if (!byte_level::decode_append(bytes[i], text)) bytes[i] = text;
    }
    for (int b = 0; b < 256; ++b) {
      auto it = ids.find(byte_level::text_of(uint8_t(b)));
      byte_ids[b] = it == ids.end() ? -1 : it->second;
    }
  }

  int32_t lookup(std::string_view text) const {
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  }

  void build_merges() {
    merges.reserve(data.merges.size() * 2);
    std::string joined;
    for (size_t rank = 0; rank < data.merges.size(); ++rank) {
      const std::string& m = data.merges[rank];
      const size_t space = m.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= m.size() ||
          m.find(' ', space + 1) != std::string::npos) {
        fail(ErrorKind::format, "expected merge {} to be 'left right', found '{}'", rank, m);
      }
      const std::string_view left(m.data(), space);
      const std::string_view right(m.data() + space + 1, m.size() - space - 1);
      const int32_t l = lookup(left);
      const int32_t r = lookup(right);
      joined.assign(left).append(right);
      const int32_t merged = lookup(joined);
      if (l < 0 || r < 0 || merged < 0) {
        fail(ErrorKind::format, "merge {} '{}' references a token not in the vocabulary ('{}')", rank, m,
             l < 0 ? left : r < 0 ? right : std::string_view(joined));
      }
      merges.emplace(pair_key(l, r), Merge{int32_t(rank), merged});
    }
  }

  void build_eog() {
    eog.assign(data.tokens.size(), 0);
    if (data.eos_id >= 0 && std::find(data.eog_ids.begin(), data.eog_ids.end(), data.eos_id) == data.eog_ids.end()) {
      data.eog_ids.push_back(data.eos_id);
    }
    for (int32_t id : data.eog_ids) eog[id] = 1;
  }

  const Merge* find_merge(int32_t left, int32_t right) const {
    auto it = merges.find(pair_key(left, right));
    return it == merges.end() ? nullptr : &it->second;
  }

  void bpe(std::string_view piece, std::vector<int32_t>& out, Scratch& s) const {
    if (piece.size() == 1) {
      const int32_t id = byte_ids[static_cast<uint8_t>(piece[0])];
      if (id >= 0) out.push_back(id);
      return;
    }
    if (data.ignore_merges) {
      s.mapped.clear();
      byte_level::encode_append(s.mapped, piece);
      const int32_t id = lookup(s.mapped);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    auto& symbols = s.symbols;
    symbols.clear();
    for (char c : piece) {
      const int32_t id = byte_ids[static_cast<uint8_t>(c)];
      if (id < 0) continue;  // a byte with no token (incomplete vocabulary): dropped, as without unk
      const auto index = int32_t(symbols.size());
      symbols.push_back({id, index - 1, index + 1});
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;
    // A binary heap over the scratch vector, lowest rank (then leftmost) on top.
    auto& heap = s.heap;
    heap.clear();
    auto push_pair = [&](int32_t pos) {
      if (pos < 0) return;
      const int32_t next = symbols[pos].next;
      if (next < 0) return;
      const Merge* m = find_merge(symbols[pos].id, symbols[next].id);
      if (m == nullptr) return;
      heap.push_back({m->rank, pos, symbols[pos].id, symbols[next].id, m->id});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push_pair(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const PairEntry e = heap.back();
      heap.pop_back();
      Symbol& left = symbols[e.pos];
      if (left.id != e.left || left.next < 0) continue;  // stale: the pair changed since it was queued
      Symbol& right = symbols[left.next];
      if (right.id != e.right) continue;
      left.id = e.merged;
      right.id = -1;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].prev = e.pos;
      push_pair(left.prev);
      push_pair(e.pos);
    }
    for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
  }

  // Normalized text (between added tokens) through the split steps and the model.
  void encode_normalized(std::string_view text, bool at_start, std::vector<int32_t>& out, Scratch& s) const {
    if (splitter.empty()) {
      s.pieces.assign(1, text);
    } else {
      splitter.split(text, at_start, s.pieces, s.split_scratch);
    }
    for (std::string_view piece : s.pieces) {
      if (sp_bpe) {
        sp_bpe->encode(piece, out);
      } else {
        unigram->encode(piece, out);
      }
    }
  }

  void encode_sentencepiece(std::string_view text, bool at_start, bool parse_special, std::vector<int32_t>& out,
                            Scratch& s) const {
    if (text.empty()) return;
    const std::string_view normalized = normalizer.apply(text, s.normalized);
    if (added_normalized.empty()) {
      encode_normalized(normalized, at_start, out, s);
      return;
    }
    // The normalized text is held in s.normalized (or is `text`), which the parts point into.
    std::string owned(normalized);
    std::vector<AddedTokenMatcher::Part> parts;
    added_normalized.split(owned, parse_special, parts);
    for (const auto& part : parts) {
      if (part.token >= 0) {
        out.push_back(part.token);
      } else {
        encode_normalized(part.text, at_start && part.text.data() == owned.data(), out, s);
      }
    }
  }

  void encode_text(std::string_view text, std::vector<int32_t>& out, Scratch& s) const {
    if (nfc && !utf8::is_ascii(text)) {
      s.normalized = utf8::nfc(text);
      text = s.normalized;
    }
    pre.split(text, s.pieces, s.prefixed);
    for (std::string_view piece : s.pieces) bpe(piece, out, s);
  }
};

Tokenizer::Tokenizer(TokenizerData data) : impl_(std::make_unique<Impl>(std::move(data))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Impl& im = *impl_;
  Scratch& s = scratch();
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && im.data.add_bos) out.push_back(im.data.bos_id);
  if (im.sentencepiece) {
    std::vector<AddedTokenMatcher::Part>& parts = s.parts;
    im.added.split(text, parse_special, parts);
    for (const auto& part : parts) {
      if (part.token >= 0) {
        out.push_back(part.token);
      } else {
        im.encode_sentencepiece(part.text, part.text.data() == text.data(), parse_special, out, s);
      }
    }
  } else if (im.added.empty()) {
    im.encode_text(text, out, s);
  } else {
    std::vector<AddedTokenMatcher::Part>& parts = s.parts;
    im.added.split(text, parse_special, parts);
    for (const auto& part : parts) {
      if (part.token >= 0) {
        out.push_back(part.token);
      } else {
        im.encode_text(part.text, out, s);
      }
    }
  }
  if (add_special && im.data.add_eos) out.push_back(im.data.eos_id);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= impl_->bytes.size()) {
      fail(ErrorKind::out_of_range, "token id {} is outside the vocabulary of {} tokens", id, impl_->bytes.size());
    }
    if (skip_special && impl_->data.types[id] == TokenType::control) continue;
    if (first && impl_->decoder.first_differs()) {
      out.append(impl_->decoder.token_bytes(impl_->data.tokens[id], true));
    } else {
      out.append(impl_->bytes[id]);
    }
    first = false;
  }
  // Decoders that strip the leading space the normalizer put before the text.
  size_t strip = impl_->decoder.strip_leading();
  size_t start = 0;
  while (strip-- > 0 && start < out.size() && out[start] == ' ') ++start;
  out.erase(0, start);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->bytes.size()) {
    fail(ErrorKind::out_of_range, "token id {} is outside the vocabulary of {} tokens", id, impl_->bytes.size());
  }
  return impl_->bytes[id];
}

size_t Tokenizer::vocab_size() const { return impl_->data.tokens.size(); }

int32_t Tokenizer::token_id(std::string_view token_text) const { return impl_->lookup(token_text); }

bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && size_t(id) < impl_->eog.size() && impl_->eog[id] != 0; }

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->data.types.size() && impl_->data.types[id] == TokenType::control;
}

const TokenizerData& Tokenizer::data() const { return impl_->data; }

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_->is_control(id)) {
    tokenizer_->token_bytes(id);  // still reject ids outside the vocabulary
    return {};
  }
  pending_.append(tokenizer_->token_bytes(id));
  std::string out;
  const size_t used = utf8::append_complete(out, pending_);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8::to_valid(pending_);
  pending_.clear();
  return out;
}

}  // namespace slm
