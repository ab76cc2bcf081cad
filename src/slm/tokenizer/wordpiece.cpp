#include "slm/tokenizer/wordpiece.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using json = nlohmann::json;

bool is_bert_whitespace(int32_t c) {
  // Unicode White_Space (the property Rust's char::is_whitespace tests).
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return true;
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_bert_control(int32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

bool is_bert_punctuation(int32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  }
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks BERT pads with spaces (not kana or hangul).
bool is_chinese_char(int32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Calls f(code_point) for each character of valid UTF-8.
template <typename F>
void for_each_code_point(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    const int32_t c = utf8::decode(s.substr(i), len);
    f(c);
    i += len;
  }
}

std::string nfd(std::string_view s) {
  if (utf8::is_ascii(s)) return std::string(s);
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                                          &result, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  if (n < 0) fail(ErrorKind::internal, "Unicode decomposition failed: {}", utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(result), size_t(n));
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, "cannot open {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(ErrorKind::format, "{}: expected JSON, found a parse error: {}", path, e.what());
  }
}

std::string tokenizer_json_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) return (fs::path(path) / "tokenizer.json").string();
  return path;
}

// Ids of a TemplateProcessing "single" template's special tokens before and after the sequence.
void template_ids(const json& post, WordPieceData& d) {
  const json& single = post.at("single");
  const json& specials = post.value("special_tokens", json::object());
  if (!single.is_array()) fail(ErrorKind::format, "tokenizer.json: post_processor.single: expected an array");
  bool after = false;
  for (const json& piece : single) {
    if (piece.contains("Sequence")) {
      after = true;
      continue;
    }
    if (!piece.contains("SpecialToken")) fail(ErrorKind::format, "tokenizer.json: post_processor.single: unexpected piece {}", piece.dump());
    const std::string name = piece["SpecialToken"].at("id").get<std::string>();
    auto it = specials.find(name);
    if (it == specials.end()) fail(ErrorKind::format, "tokenizer.json: post_processor: special token '{}' has no ids", name);
    for (const json& id : it->at("ids")) (after ? d.suffix_ids : d.prefix_ids).push_back(id.get<int32_t>());
  }
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(WordPieceData data) : data_(std::move(data)) {
  vocab_.reserve(data_.tokens.size());
  for (size_t i = 0; i < data_.tokens.size(); ++i) {
    if (!data_.tokens[i].empty()) vocab_.emplace(data_.tokens[i], int32_t(i));
  }
  unk_id_ = token_id(data_.unk_token);
  if (unk_id_ < 0) fail(ErrorKind::format, "WordPiece: the unknown token '{}' is not in the vocabulary", data_.unk_token);
  if (data_.max_input_chars_per_word <= 0) {
    fail(ErrorKind::format, "WordPiece: max_input_chars_per_word must be positive, found {}", data_.max_input_chars_per_word);
  }
  const auto n = int64_t(data_.tokens.size());
  auto check = [&](const std::vector<int32_t>& ids, const char* what) {
    for (int32_t id : ids) {
      if (id < 0 || id >= n) fail(ErrorKind::format, "WordPiece: {} id {} is outside the vocabulary of {}", what, id, n);
    }
  };
  check(data_.prefix_ids, "special");
  check(data_.suffix_ids, "special");
  check(data_.added_ids, "added token");
}

int32_t WordPieceTokenizer::token_id(std::string_view piece) const {
  auto it = vocab_.find(std::string(piece));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string& WordPieceTokenizer::token(int32_t id) const {
  if (id < 0 || size_t(id) >= data_.tokens.size()) {
    fail(ErrorKind::out_of_range, "token id {} is outside the vocabulary of {}", id, data_.tokens.size());
  }
  return data_.tokens[size_t(id)];
}

std::string WordPieceTokenizer::normalize(std::string_view raw) const {
  std::string valid;
  if (!utf8::is_valid(raw)) {
    valid = utf8::to_valid(raw);
    raw = valid;
  }
  std::string s;
  s.reserve(raw.size() + 8);
  for_each_code_point(raw, [&](int32_t c) {
    if (data_.clean_text) {
      if (c == 0 || c == 0xFFFD || is_bert_control(c)) return;
      if (is_bert_whitespace(c)) {
        s.push_back(' ');
        return;
      }
    }
    if (data_.handle_chinese_chars && is_chinese_char(c)) {
      s.push_back(' ');
      utf8::append(s, uint32_t(c));
      s.push_back(' ');
      return;
    }
    utf8::append(s, uint32_t(c));
  });
  if (!data_.strip_accents && !data_.lowercase) return s;
  if (data_.strip_accents) s = nfd(s);
  if (utf8::is_ascii(s)) {
    if (data_.lowercase) {
      for (char& ch : s) {
        if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
      }
    }
    return s;
  }
  std::string out;
  out.reserve(s.size());
  for_each_code_point(s, [&](int32_t c) {
    if (data_.strip_accents && utf8proc_category(c) == UTF8PROC_CATEGORY_MN) return;
    if (data_.lowercase) {
      if (c == 0x130) {  // the one character whose full lowercase mapping is two: i + combining dot
        out += "i\xCC\x87";
        return;
      }
      c = utf8proc_tolower(c);
    }
    utf8::append(out, uint32_t(c));
  });
  return out;
}

std::vector<std::string> WordPieceTokenizer::pre_tokenize(std::string_view s) const {
  std::vector<std::string> words;
  std::string current;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    const int32_t c = utf8::decode(s.substr(i), len);
    if (is_bert_whitespace(c)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    } else if (is_bert_punctuation(c)) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
      words.emplace_back(s.substr(i, len));
    } else {
      current.append(s.substr(i, len));
    }
    i += len;
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

void WordPieceTokenizer::word_pieces(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<size_t> bounds;  // byte offset of each character, then the end
  for (size_t i = 0; i < word.size();) {
    bounds.push_back(i);
    i += std::max<size_t>(1, utf8::sequence_length(uint8_t(word[i])));
  }
  const size_t n_chars = bounds.size();
  bounds.push_back(word.size());
  if (int64_t(n_chars) > data_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    return;
  }
  const size_t mark = out.size();
  std::string candidate;
  size_t start = 0;
  while (start < n_chars) {
    int32_t found = -1;
    size_t end = n_chars;
    for (; end > start; --end) {
      candidate.clear();
      if (start > 0) candidate = data_.continuing_prefix;
      candidate.append(word.substr(bounds[start], bounds[end] - bounds[start]));
      auto it = vocab_.find(candidate);
      if (it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {
      out.resize(mark);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

void WordPieceTokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  for (const std::string& word : pre_tokenize(normalize(text))) word_pieces(word, out);
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, bool add_special, size_t max_length) const {
  std::vector<int32_t> body;
  // Split at the earliest (then longest) occurrence of an added token. Each token's next occurrence
  // is remembered, so the text is scanned once per token, not once per match.
  std::vector<size_t> next(data_.added_ids.size(), 0);
  std::vector<bool> known(data_.added_ids.size(), false);
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    int32_t best_id = -1;
    for (size_t k = 0; k < data_.added_ids.size(); ++k) {
      const std::string& t = data_.tokens[size_t(data_.added_ids[k])];
      if (t.empty()) continue;
      if (!known[k] || (next[k] != std::string_view::npos && next[k] < pos)) {
        next[k] = text.find(t, pos);
        known[k] = true;
      }
      const size_t at = next[k];
      if (at == std::string_view::npos) continue;
      if (at < best || (at == best && t.size() > best_len)) {
        best = at;
        best_len = t.size();
        best_id = data_.added_ids[k];
      }
    }
    if (best_id < 0) {
      encode_text(text.substr(pos), body);
      break;
    }
    encode_text(text.substr(pos, best - pos), body);
    body.push_back(best_id);
    pos = best + best_len;
  }
  std::vector<int32_t> ids;
  if (add_special) {
    const size_t n_special = data_.prefix_ids.size() + data_.suffix_ids.size();
    if (max_length > 0 && max_length < n_special) {
      fail(ErrorKind::invalid_argument, "max_length {} cannot hold the {} special tokens", max_length, n_special);
    }
    if (max_length > 0 && body.size() + n_special > max_length) body.resize(max_length - n_special);
    ids = data_.prefix_ids;
    ids.insert(ids.end(), body.begin(), body.end());
    ids.insert(ids.end(), data_.suffix_ids.begin(), data_.suffix_ids.end());
  } else {
    if (max_length > 0 && body.size() > max_length) body.resize(max_length);
    ids = std::move(body);
  }
  return ids;
}

bool WordPieceTokenizer::is_wordpiece_json(const std::string& path) {
  const std::string file = tokenizer_json_path(path);
  if (!std::filesystem::is_regular_file(file)) return false;
  const json j = read_json_file(file);
  return j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("type", "") == "WordPiece";
}

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const std::string& path) {
  const std::string file = tokenizer_json_path(path);
  const json j = read_json_file(file);
  WordPieceData d;
  try {
    const json& model = j.at("model");
    if (model.value("type", "") != "WordPiece") {
      fail(ErrorKind::unsupported, "{}: expected a WordPiece model, found '{}'", file, model.value("type", ""));
    }
    d.unk_token = model.value("unk_token", "[UNK]");
    d.continuing_prefix = model.value("continuing_subword_prefix", "##");
    d.max_input_chars_per_word = model.value("max_input_chars_per_word", int64_t(100));
    int64_t max_id = -1;
    for (const auto& [piece, id] : model.at("vocab").items()) max_id = std::max(max_id, id.get<int64_t>());
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const json& t : j["added_tokens"]) max_id = std::max(max_id, t.at("id").get<int64_t>());
    }
    if (max_id < 0 || max_id >= (int64_t(1) << 24)) fail(ErrorKind::format, "{}: vocabulary ids out of range (largest {})", file, max_id);
    d.tokens.assign(size_t(max_id + 1), "");
    for (const auto& [piece, id] : model.at("vocab").items()) {
      if (id.get<int64_t>() < 0) fail(ErrorKind::format, "{}: negative id for '{}'", file, piece);
      d.tokens[size_t(id.get<int64_t>())] = piece;
    }
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const json& t : j["added_tokens"]) {
        const auto id = t.at("id").get<int32_t>();
        if (id < 0) fail(ErrorKind::format, "{}: negative added token id", file);
        d.tokens[size_t(id)] = t.at("content").get<std::string>();
        d.added_ids.push_back(id);
      }
    }
    const json& norm = j.value("normalizer", json());
    if (norm.is_null()) {
      d.clean_text = d.handle_chinese_chars = d.strip_accents = d.lowercase = false;
    } else if (norm.value("type", "") == "BertNormalizer") {
      d.clean_text = norm.value("clean_text", true);
      d.handle_chinese_chars = norm.value("handle_chinese_chars", true);
      d.lowercase = norm.value("lowercase", true);
      const json& strip = norm.value("strip_accents", json());
      d.strip_accents = strip.is_null() ? d.lowercase : strip.get<bool>();
    } else {
      fail(ErrorKind::unsupported, "{}: normalizer '{}' is not supported with WordPiece (BertNormalizer is)", file,
           norm.value("type", ""));
    }
    const json& pre = j.value("pre_tokenizer", json());
    if (!pre.is_null() && pre.value("type", "") != "BertPreTokenizer") {
      fail(ErrorKind::unsupported, "{}: pre_tokenizer '{}' is not supported with WordPiece (BertPreTokenizer is)", file,
           pre.value("type", ""));
    }
    const json& post = j.value("post_processor", json());
    if (!post.is_null()) {
      const std::string type = post.value("type", "");
      if (type == "TemplateProcessing") {
        template_ids(post, d);
      } else if (type == "BertProcessing" || type == "RobertaProcessing") {
        d.prefix_ids.push_back(post.at("cls").at(1).get<int32_t>());
        d.suffix_ids.push_back(post.at("sep").at(1).get<int32_t>());
      } else {
        fail(ErrorKind::unsupported, "{}: post_processor '{}' is not supported", file, type);
      }
    }
    const json& padding = j.value("padding", json());
    if (padding.is_object()) d.pad_id = padding.value("pad_id", -1);
  } catch (const json::exception& e) {
    fail(ErrorKind::format, "{}: unexpected WordPiece tokenizer layout: {}", file, e.what());
  }
  if (d.pad_id < 0) {
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (d.tokens[i] == "[PAD]") d.pad_id = int32_t(i);
    }
  }
  return WordPieceTokenizer(std::move(d));
}

WordPieceTokenizer WordPieceTokenizer::from_gguf(const gguf::File& file) {
  const std::string model = file.get_string("tokenizer.ggml.model").value_or("");
  if (model != "bert") fail(ErrorKind::unsupported, "GGUF tokenizer: expected model 'bert' (WordPiece), found '{}'", model);
  const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
  if (!tokens) fail(ErrorKind::not_found, "GGUF tokenizer: tokenizer.ggml.tokens is missing");
  const std::vector<std::string> stored = tokens->as_strings();
  std::vector<int64_t> types(stored.size(), 1);
  if (const gguf::Value* t = file.find("tokenizer.ggml.token_type")) types = t->as_ints();
  if (types.size() != stored.size()) {
    fail(ErrorKind::format, "GGUF tokenizer: {} token types for {} tokens", types.size(), stored.size());
  }
  WordPieceData d;
  d.tokens.reserve(stored.size());
  const std::string_view phantom = "\xE2\x96\x81";  // U+2581
  for (size_t i = 0; i < stored.size(); ++i) {
    const std::string& s = stored[i];
    if (types[i] == 3) {  // control: kept as is
      d.tokens.push_back(s);
      d.added_ids.push_back(int32_t(i));
    } else if (s.starts_with(phantom)) {
      d.tokens.push_back(s.substr(phantom.size()));
    } else {
      d.tokens.push_back("##" + s);
    }
  }
  auto id_of = [&](std::string_view key, std::string_view fallback_key, std::string_view text) -> int32_t {
    if (auto v = file.get_int(key)) return int32_t(*v);
    if (!fallback_key.empty()) {
      if (auto v = file.get_int(fallback_key)) return int32_t(*v);
    }
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (d.tokens[i] == text) return int32_t(i);
    }
    return -1;
  };
  const int32_t unk = id_of("tokenizer.ggml.unknown_token_id", "", "[UNK]");
  if (unk < 0 || size_t(unk) >= d.tokens.size()) fail(ErrorKind::format, "GGUF tokenizer: no unknown token");
  d.unk_token = d.tokens[size_t(unk)];
  const int32_t cls = id_of("tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id", "[CLS]");
  const int32_t sep = id_of("tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eos_token_id", "[SEP]");
  if (cls >= 0) d.prefix_ids.push_back(cls);
  if (sep >= 0) d.suffix_ids.push_back(sep);
  d.pad_id = id_of("tokenizer.ggml.padding_token_id", "", "[PAD]");
  return WordPieceTokenizer(std::move(d));
}

}  // namespace slm
