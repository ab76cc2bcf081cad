// Tokenizer data to and from GGUF metadata, under the keys llama.cpp reads and writes; and
// Tokenizer::load, which tells a GGUF file from a tokenizer.json or a model folder.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/pretokenizer.hpp"
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

// A special token id; llama.cpp ignores ids outside the vocabulary, and so does slm.
int32_t special_id(const gguf::File& file, const char* key, size_t n_tokens) {
  const auto id = file.get_int(key);
  if (!id || *id < 0 || uint64_t(*id) >= n_tokens) return -1;
  return int32_t(*id);
}

}  // namespace

TokenizerData Tokenizer::data_from_gguf(const gguf::File& file) {
  TokenizerData data;
  const auto model = file.get_string(kModel);
  if (!model) fail(ErrorKind::not_found, "{}: no {} key (the file has no tokenizer)", file.path(), kModel);
  if (*model != "gpt2") {
    fail(ErrorKind::unsupported, "{}: tokenizer model '{}' is not supported yet (only 'gpt2', byte-level BPE)", file.path(), *model);
  }
  data.model = *model;
  data.pre = file.get_string(kPre).value_or("default");

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
  add_end_of_generation_tokens(data);
  return data;
}

void Tokenizer::write_gguf(const TokenizerData& data, gguf::Writer& writer) {
  if (data.model != "gpt2") fail(ErrorKind::unsupported, "writing tokenizer model '{}' is not supported (only 'gpt2')", data.model);
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
