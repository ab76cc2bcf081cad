// Tokenizer data to and from GGUF metadata, under the keys llama.cpp reads and writes; and
// Tokenizer::load, which tells a GGUF file from a tokenizer.json or a model folder.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <filesystem>
#include <fstream>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/normalizer.hpp"
#include "slm/tokenizer/pretokenizer.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/tokenizer/special_tokens.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

namespace fs = std::filesystem;

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kTokenType = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kEot = "tokenizer.ggml.eot_token_id";
constexpr const char* kEom = "tokenizer.ggml.eom_token_id";
constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kAddEos = "tokenizer.ggml.add_eos_token";
constexpr const char* kChatTemplate = "tokenizer.chat_template";
// slm's own keys, written only where the data differs from the table entry of tokenizer.ggml.pre.
constexpr const char* kPrePattern = "tokenizer.slm.pre_pattern";
constexpr const char* kNormalizer = "tokenizer.slm.normalizer";
constexpr const char* kIgnoreMerges = "tokenizer.slm.ignore_merges";
constexpr const char* kAddPrefixSpace = "tokenizer.slm.add_prefix_space";
// SentencePiece-style models ("llama", "t5").
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kScores64 = "tokenizer.slm.scores_f64";
constexpr const char* kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
constexpr const char* kCharsmap = "tokenizer.ggml.precompiled_charsmap";
constexpr const char* kRemoveExtraSpaces = "tokenizer.ggml.remove_extra_whitespaces";
constexpr const char* kSplit = "tokenizer.slm.pre_split";
constexpr const char* kDecoder = "tokenizer.slm.decoder";
constexpr const char* kByteFallback = "tokenizer.slm.byte_fallback";
// Added-token options as pairs (id, bits: 1 lstrip, 2 rstrip, 4 single_word, 8 normalized).
constexpr const char* kAddedFlags = "tokenizer.slm.added_token_flags";

constexpr std::string_view kSpace = "\xE2\x96\x81";  // ▁

// What llama.cpp does for a SentencePiece model, given tokenizer.ggml.add_space_prefix: spaces
// become ▁, ▁ goes before the text, byte tokens decode to bytes, the first space is dropped.
std::string default_normalizer(bool add_space_prefix) {
  return (add_space_prefix ? "prepend\t" + std::string(kSpace) + "\n" : std::string()) + "replace\t \t" + std::string(kSpace);
}
std::string default_decoder(bool add_space_prefix) {
  return "replace\t" + std::string(kSpace) + "\t \nbyte_fallback\nfuse" + (add_space_prefix ? "\nstrip\t \t1\t0" : "");
}

bool puts_space_prefix(const TokenizerData& data) {
  if (Normalizer(data.normalizer).prepends(std::string(kSpace))) return true;
  for (const auto& fields : parse_spec_lines(data.pre_split)) {
    if (fields.size() == 4 && fields[0] == "metaspace" && fields[2] != "never") return true;
  }
  return false;
}

std::vector<int32_t> added_flags(const TokenizerData& data) {
  std::vector<int32_t> out;
  for (const auto& o : data.added_options) {
    const int32_t bits = (o.lstrip ? 1 : 0) | (o.rstrip ? 2 : 0) | (o.single_word ? 4 : 0) | (o.normalized ? 8 : 0);
    if (bits != 0) out.insert(out.end(), {o.id, bits});
  }
  return out;
}

void read_added_flags(const gguf::File& file, TokenizerData& data) {
  const gguf::Value* v = file.find(kAddedFlags);
  if (v == nullptr) return;
  const std::vector<int64_t> values = v->as_ints();
  if (values.size() % 2 != 0) fail(ErrorKind::format, "{}: expected (id, flags) pairs in {}", file.path(), kAddedFlags);
  for (size_t i = 0; i < values.size(); i += 2) {
    const int64_t id = values[i];
    const int64_t bits = values[i + 1];
    if (id < 0 || uint64_t(id) >= data.tokens.size() || bits < 0 || bits > 15) {
      fail(ErrorKind::format, "{}: {} entry ({}, {}) is out of range", file.path(), kAddedFlags, id, bits);
    }
    data.added_options.push_back({int32_t(id), (bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0, (bits & 8) != 0});
  }
}

// Scores that make score-ordered merging follow merge ranks: a token made by the merge of rank r
// scores -r; a longer token no merge makes scores below all of them.
std::vector<double> scores_from_merges(const TokenizerData& data) {
  std::unordered_map<std::string, int32_t> ids;
  ids.reserve(data.tokens.size() * 2);
  for (size_t id = data.tokens.size(); id-- > 0;) ids[data.tokens[id]] = int32_t(id);
  std::vector<double> scores(data.tokens.size(), std::numeric_limits<double>::quiet_NaN());
  std::string joined;
  for (size_t rank = 0; rank < data.merges.size(); ++rank) {
    const std::string& m = data.merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos) continue;
    joined.assign(m, 0, space).append(m, space + 1);
    auto it = ids.find(joined);
    if (it != ids.end() && std::isnan(scores[it->second])) scores[it->second] = -double(rank);
  }
  const double lowest = -double(data.merges.size()) - 1.0;
  for (size_t id = 0; id < scores.size(); ++id) {
    if (std::isnan(scores[id])) scores[id] = utf8::sequence_length(uint8_t(data.tokens[id].empty() ? 0 : data.tokens[id][0])) >= data.tokens[id].size() ? 0.0 : lowest;
  }
  return scores;
}

// A special token id; llama.cpp ignores ids outside the vocabulary, and so does slm.
int32_t special_id(const gguf::File& file, const char* key, size_t n_tokens) {
  const auto id = file.get_int(key);
  if (!id || *id < 0 || uint64_t(*id) >= n_tokens) return -1;
  return int32_t(*id);
}

}  // namespace

namespace {

void read_tokens_and_types(const gguf::File& file, TokenizerData& data) {
  const gguf::Value* tokens = file.find(kTokens);
  if (tokens == nullptr) fail(ErrorKind::not_found, "{}: no {} key", file.path(), kTokens);
  data.tokens = tokens->as_strings();
  const size_t n = data.tokens.size();
  if (n == 0) fail(ErrorKind::format, "{}: {} is empty", file.path(), kTokens);
  if (const gguf::Value* types = file.find(kTokenType)) {
    const std::vector<int64_t> values = types->as_ints();
    if (values.size() != n) {
      fail(ErrorKind::format, "{}: expected {} entries in {} (one per token), found {}", file.path(), n, kTokenType, values.size());
    }
    data.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (values[i] < 0 || values[i] > 6) fail(ErrorKind::format, "{}: token {} has type {}, expected 0..6", file.path(), i, values[i]);
      data.types.push_back(TokenType(values[i]));
    }
  } else {
    data.types.assign(n, TokenType::normal);
  }
}

void read_specials(const gguf::File& file, TokenizerData& data) {
  const size_t n = data.tokens.size();
  data.bos_id = special_id(file, kBos, n);
  data.eos_id = special_id(file, kEos, n);
  data.pad_id = special_id(file, kPad, n);
  data.unk_id = special_id(file, kUnk, n);
  data.chat_template = file.get_string(kChatTemplate).value_or("");
  for (const char* key : {kEot, kEom}) {
    const int32_t id = special_id(file, key, n);
    if (id >= 0) data.eog_ids.push_back(id);
  }
}

// "llama" (SentencePiece BPE by scores) and "t5" (Unigram), as llama.cpp reads them; slm's own
// keys, where present, describe the normalizer, splits and decoder exactly.
TokenizerData data_from_gguf_sentencepiece(const gguf::File& file, TokenizerData data) {
  data.pre = file.get_string(kPre).value_or("default");
  read_tokens_and_types(file, data);
  const size_t n = data.tokens.size();
  const gguf::Value* scores = file.find(kScores);
  if (scores == nullptr) fail(ErrorKind::not_found, "{}: no {} key (tokenizer model '{}' needs scores)", file.path(), kScores, data.model);
  if (const gguf::Value* exact = file.find(kScores64)) {
    for (const auto& item : exact->as_array().items) data.scores.push_back(item.as_float());
  } else {
    for (float f : scores->as_floats()) data.scores.push_back(double(f));
  }
  if (data.scores.size() != n) {
    fail(ErrorKind::format, "{}: expected {} entries in {} (one per token), found {}", file.path(), n, kScores, data.scores.size());
  }
  read_specials(file, data);
  const bool space_prefix = file.get_bool(kAddSpacePrefix).value_or(true);
  const auto normalizer = file.get_string(kNormalizer);
  if (normalizer) {
    data.normalizer = *normalizer;
  } else if (data.model == "llama") {
    data.normalizer = default_normalizer(space_prefix);
  } else {
    // A Unigram GGUF as llama.cpp's converter writes it: SentencePiece's character map, then its
    // whitespace rules; control, unused, byte and unknown pieces are never matched in text.
    std::string spec;
    if (const gguf::Value* charsmap = file.find(kCharsmap); charsmap != nullptr && !charsmap->as_array().items.empty()) {
      std::string blob;
      for (const auto& item : charsmap->as_array().items) blob.push_back(char(uint8_t(item.as_int())));
      spec = spec_line({"precompiled", base64_encode(blob)}) + "\n";
    }
    const bool merge = file.get_bool(kRemoveExtraSpaces).value_or(false);
    data.normalizer = spec + spec_line({"sentencepiece_spaces", space_prefix ? "1" : "0", merge ? "1" : "0"});
    for (size_t id = 0; id < n; ++id) {
      const TokenType t = data.types[id];
      if (t != TokenType::normal && t != TokenType::user_defined) data.scores[id] = std::numeric_limits<double>::quiet_NaN();
    }
  }
  data.pre_split = file.get_string(kSplit).value_or("");
  data.decoder = file.get_string(kDecoder).value_or(default_decoder(space_prefix));
  // SentencePiece falls back to bytes exactly when the vocabulary has byte pieces.
  const bool has_bytes = std::find(data.types.begin(), data.types.end(), TokenType::byte) != data.types.end();
  data.byte_fallback = file.get_bool(kByteFallback).value_or(data.model == "llama" || has_bytes);
  // llama.cpp's defaults: SentencePiece BPE adds BOS, T5's Unigram adds EOS.
  data.add_bos = file.get_bool(kAddBos).value_or(data.model == "llama") && data.bos_id >= 0;
  data.add_eos = file.get_bool(kAddEos).value_or(data.model == "t5") && data.eos_id >= 0;
  read_added_flags(file, data);
  add_end_of_generation_tokens(data);
  return data;
}

}  // namespace

TokenizerData Tokenizer::data_from_gguf(const gguf::File& file) {
  TokenizerData data;
  const auto model = file.get_string(kModel);
  if (!model) fail(ErrorKind::not_found, "{}: no {} key (the file has no tokenizer)", file.path(), kModel);
  if (*model != "gpt2" && *model != "llama" && *model != "t5") {
    fail(ErrorKind::unsupported, "{}: tokenizer model '{}' is not supported ('gpt2' byte-level BPE, 'llama' SentencePiece BPE, 't5' Unigram)",
         file.path(), *model);
  }
  data.model = *model;
  if (*model != "gpt2") return data_from_gguf_sentencepiece(file, std::move(data));
  data.pre = file.get_string(kPre).value_or("default");
  read_tokens_and_types(file, data);
  const size_t n = data.tokens.size();

  const gguf::Value* merges = file.find(kMerges);
  if (merges == nullptr) fail(ErrorKind::not_found, "{}: no {} key (byte-level BPE needs merges)", file.path(), kMerges);
  data.merges = merges->as_strings();

  data.bos_id = special_id(file, kBos, n);
  data.eos_id = special_id(file, kEos, n);
  data.pad_id = special_id(file, kPad, n);
  data.unk_id = special_id(file, kUnk, n);

  const PreTokenizerInfo* info = find_pre_tokenizer(data.pre);
  const auto pattern = file.get_string(kPrePattern);
  if (info == nullptr && !pattern) {
    std::string known;
    for (const auto& entry : known_pre_tokenizers()) known += (known.empty() ? "" : ", ") + std::string(entry.name);
    fail(ErrorKind::unsupported, "{}: pre-tokenizer '{}' is not supported (known: {})", file.path(), data.pre, known);
  }
  data.pattern = pattern.value_or("");
  data.normalizer = file.get_string(kNormalizer).value_or(info ? std::string(info->normalizer) : std::string());
  data.ignore_merges = file.get_bool(kIgnoreMerges).value_or(info ? info->ignore_merges : false);
  data.add_prefix_space = file.get_bool(kAddPrefixSpace).value_or(info ? info->add_prefix_space : false);
  data.add_bos = file.get_bool(kAddBos).value_or(info ? info->add_bos : false) && data.bos_id >= 0;
  data.add_eos = file.get_bool(kAddEos).value_or(false) && data.eos_id >= 0;
  data.chat_template = file.get_string(kChatTemplate).value_or("");

  for (const char* key : {kEot, kEom}) {
    const int32_t id = special_id(file, key, n);
    if (id >= 0) data.eog_ids.push_back(id);
  }
  read_added_flags(file, data);
  add_end_of_generation_tokens(data);
  return data;
}

namespace {

void write_gguf_sentencepiece(const TokenizerData& data, gguf::Writer& writer) {
  if (!data.types.empty() && data.types.size() != data.tokens.size()) {
    fail(ErrorKind::invalid_argument, "expected {} token types (one per token), found {}", data.tokens.size(), data.types.size());
  }
  std::vector<double> scores = data.scores;
  if (scores.empty()) {
    if (data.model != "llama" || data.merges.empty()) fail(ErrorKind::invalid_argument, "tokenizer model '{}' needs scores or merges", data.model);
    scores = scores_from_merges(data);
  }
  // Unused tokens appended after the scores (padding of the embedding) score lowest.
  double lowest = 0.0;
  for (double d : scores) lowest = std::isnan(d) ? lowest : std::min(lowest, d);
  while (scores.size() < data.tokens.size() && scores.size() < data.types.size() && data.types[scores.size()] == TokenType::unused) {
    scores.push_back(lowest - 1.0);
  }
  if (scores.size() != data.tokens.size()) {
    fail(ErrorKind::invalid_argument, "expected {} token scores (one per token), found {}", data.tokens.size(), scores.size());
  }
  writer.set(kModel, gguf::Value::of_string(data.model));
  writer.set(kPre, gguf::Value::of_string(data.pre.empty() ? "default" : data.pre));
  writer.set(kTokens, gguf::Value::of_strings(data.tokens));
  std::vector<float> scores32(scores.begin(), scores.end());
  writer.set(kScores, gguf::Value::of_f32s(scores32));
  // Unigram's choice among equal-looking paths depends on the exact sums: keep float64 scores too
  // when float32 loses digits.
  bool exact = true;
  for (size_t i = 0; i < scores.size() && exact; ++i) exact = std::isnan(scores[i]) || double(scores32[i]) == scores[i];
  if (!exact) {
    std::vector<gguf::Value> items;
    items.reserve(scores.size());
    for (double d : scores) items.push_back(gguf::Value::of_f64(d));
    writer.set(kScores64, gguf::Value::of_array(gguf::ValueType::f64, std::move(items)));
  }
  std::vector<int32_t> types(data.tokens.size(), int32_t(TokenType::normal));
  for (size_t i = 0; i < data.types.size(); ++i) types[i] = int32_t(data.types[i]);
  writer.set(kTokenType, gguf::Value::of_i32s(types));
  const std::pair<const char*, int32_t> ids[] = {{kBos, data.bos_id}, {kEos, data.eos_id}, {kPad, data.pad_id}, {kUnk, data.unk_id}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) writer.set(key, gguf::Value::of_u32(uint32_t(id)));
  }
  writer.set(kAddBos, gguf::Value::of_bool(data.add_bos));
  writer.set(kAddEos, gguf::Value::of_bool(data.add_eos));
  const bool space_prefix = puts_space_prefix(data);
  writer.set(kAddSpacePrefix, gguf::Value::of_bool(space_prefix));
  if (!data.chat_template.empty()) writer.set(kChatTemplate, gguf::Value::of_string(data.chat_template));
  // A Unigram file always names its normalizer: without it, readers take llama.cpp's rules.
  if (data.model == "t5" || data.normalizer != default_normalizer(space_prefix)) {
    writer.set(kNormalizer, gguf::Value::of_string(data.normalizer));
  }
  if (!data.pre_split.empty()) writer.set(kSplit, gguf::Value::of_string(data.pre_split));
  if (data.decoder != default_decoder(space_prefix)) writer.set(kDecoder, gguf::Value::of_string(data.decoder));
  const bool has_bytes = std::find(data.types.begin(), data.types.end(), TokenType::byte) != data.types.end();
  if (data.byte_fallback != (data.model == "llama" || has_bytes)) writer.set(kByteFallback, gguf::Value::of_bool(data.byte_fallback));
  if (const auto flags = added_flags(data); !flags.empty()) writer.set(kAddedFlags, gguf::Value::of_i32s(flags));
}

}  // namespace

void Tokenizer::write_gguf(const TokenizerData& data, gguf::Writer& writer) {
  if (data.model == "llama" || data.model == "t5") {
    write_gguf_sentencepiece(data, writer);
    return;
  }
  if (data.model != "gpt2") fail(ErrorKind::unsupported, "writing tokenizer model '{}' is not supported ('gpt2', 'llama', 't5')", data.model);
  const PreTokenizerInfo* info = find_pre_tokenizer(data.pre);
  if (info == nullptr && data.pattern.empty()) {
    fail(ErrorKind::invalid_argument, "pre-tokenizer '{}' is not in the table and no pattern is given", data.pre);
  }
  if (!data.types.empty() && data.types.size() != data.tokens.size()) {
    fail(ErrorKind::invalid_argument, "expected {} token types (one per token), found {}", data.tokens.size(), data.types.size());
  }
  writer.set(kModel, gguf::Value::of_string(data.model));
  writer.set(kPre, gguf::Value::of_string(data.pre));
  writer.set(kTokens, gguf::Value::of_strings(data.tokens));
  std::vector<int32_t> types(data.tokens.size(), int32_t(TokenType::normal));
  for (size_t i = 0; i < data.types.size(); ++i) types[i] = int32_t(data.types[i]);
  writer.set(kTokenType, gguf::Value::of_i32s(types));
  writer.set(kMerges, gguf::Value::of_strings(data.merges));
  const std::pair<const char*, int32_t> ids[] = {{kBos, data.bos_id}, {kEos, data.eos_id}, {kPad, data.pad_id}, {kUnk, data.unk_id}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) writer.set(key, gguf::Value::of_u32(uint32_t(id)));
  }
  writer.set(kAddBos, gguf::Value::of_bool(data.add_bos));
  writer.set(kAddEos, gguf::Value::of_bool(data.add_eos));
  if (!data.chat_template.empty()) writer.set(kChatTemplate, gguf::Value::of_string(data.chat_template));

  if (info == nullptr || (!data.pattern.empty() && data.pattern != info->pattern)) {
    writer.set(kPrePattern, gguf::Value::of_string(data.pattern));
  }
  if (info == nullptr || data.normalizer != info->normalizer) writer.set(kNormalizer, gguf::Value::of_string(data.normalizer));
  if (info == nullptr || data.ignore_merges != info->ignore_merges) writer.set(kIgnoreMerges, gguf::Value::of_bool(data.ignore_merges));
  if (info == nullptr || data.add_prefix_space != info->add_prefix_space) {
    writer.set(kAddPrefixSpace, gguf::Value::of_bool(data.add_prefix_space));
  }
  if (const auto flags = added_flags(data); !flags.empty()) writer.set(kAddedFlags, gguf::Value::of_i32s(flags));
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(ErrorKind::not_found, "no tokenizer at '{}': the path does not exist", path);
  if (fs::is_directory(status)) {
    const fs::path json = fs::path(path) / "tokenizer.json";
    if (!fs::exists(json)) fail(ErrorKind::not_found, "expected tokenizer.json in the folder '{}', found none", path);
    return Tokenizer(data_from_tokenizer_json(json.string()));
  }
  char magic[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(ErrorKind::io, "cannot open '{}'", path);
    in.read(magic, 4);
  }
  if (std::memcmp(magic, "GGUF", 4) == 0) {
    const gguf::File file = gguf::File::open(path);
    return Tokenizer(data_from_gguf(file));
  }
  return Tokenizer(data_from_tokenizer_json(path));
}

}  // namespace slm
