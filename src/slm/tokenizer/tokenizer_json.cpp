// Tokenizer data from Hugging Face files: tokenizer.json (model, pre-tokenizer, normalizer,
// post-processor, added tokens) and tokenizer_config.json beside it (special tokens, add_bos_token,
// chat template).
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "slm/tokenizer/decoder.hpp"
#include "slm/tokenizer/normalizer.hpp"
#include "slm/tokenizer/pretokenizer.hpp"
#include "slm/tokenizer/special_tokens.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, "cannot open '{}'", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail(ErrorKind::io, "cannot read '{}'", path);
  return buffer.str();
}

json parse_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorKind::format, "expected JSON in '{}': {}", path, e.what());
  }
}

std::string type_of(const json& j) {
  if (!j.is_object()) return {};
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool bool_or(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Escapes ASCII punctuation so a literal string can be used as a regex.
std::string regex_literal(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// A regex line must not hold a newline, the separator of pattern lines; \n means the same.
std::string one_line(std::string regex) {
  std::string out;
  for (char c : regex) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct PreTokenizerSpec {
  std::vector<std::string> lines;
  bool add_prefix_space = false;
  bool byte_level = false;
};

void parse_pre_tokenizer(const json& j, const std::string& where, PreTokenizerSpec& spec) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) fail(ErrorKind::format, "{}: expected 'pretokenizers' array in a Sequence pre_tokenizer", where);
    for (const auto& item : *it) parse_pre_tokenizer(item, where, spec);
  } else if (type == "Split") {
    const json& pattern = j.value("pattern", json());
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      regex = regex_literal(pattern["String"].get<std::string>());
    } else {
      fail(ErrorKind::format, "{}: expected a Split pre_tokenizer with a Regex or String pattern", where);
    }
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    if (behavior != "Isolated") fail(ErrorKind::unsupported, "{}: Split behavior '{}' is not supported (only Isolated)", where, behavior);
    if (bool_or(j, "invert", false)) fail(ErrorKind::unsupported, "{}: Split with invert is not supported", where);
    spec.lines.push_back(one_line(regex));
  } else if (type == "ByteLevel") {
    spec.byte_level = true;
    if (bool_or(j, "add_prefix_space", true)) {
      if (!spec.lines.empty()) {
        fail(ErrorKind::unsupported, "{}: ByteLevel add_prefix_space after another split is not supported", where);
      }
      spec.add_prefix_space = true;
    }
    if (bool_or(j, "use_regex", true)) spec.lines.emplace_back(gpt2_pattern());
  } else if (type == "Digits") {
    spec.lines.emplace_back(bool_or(j, "individual_digits", false) ? "\\p{N}" : "\\p{N}+");
  } else {
    fail(ErrorKind::unsupported, "{}: pre_tokenizer type '{}' is not supported", where, type);
  }
}

std::string parse_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return {};
  const std::string type = type_of(j);
  if (type == "NFC") return "NFC";
  if (type == "Sequence") {
    const json& items = j.value("normalizers", json::array());
    if (items.empty()) return {};
    if (items.size() == 1) return parse_normalizer(items[0], where);
  }
  fail(ErrorKind::unsupported, "{}: normalizer '{}' is not supported (only NFC)", where, type.empty() ? j.dump() : type);
}

// A special token named in tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return std::nullopt;
}

struct PostProcessorSpec {
  std::vector<std::string> before;  // special tokens before the sequence
  std::vector<std::string> after;   // and after it
};

void parse_post_processor(const json& j, const std::string& where, PostProcessorSpec& spec) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& item : j.value("processors", json::array())) parse_post_processor(item, where, spec);
  } else if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    for (const auto& item : j.value("single", json::array())) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string id = item["SpecialToken"].value("id", std::string());
        (seen_sequence ? spec.after : spec.before).push_back(id);
      }
    }
  } else if (type == "ByteLevel") {
    // Offsets only.
  } else {
    fail(ErrorKind::unsupported, "{}: post_processor type '{}' is not supported", where, type);
  }
}


bool has_type(const json& j, std::string_view type) {
  if (!j.is_object()) return false;
  if (type_of(j) == type) return true;
  for (const char* key : {"pretokenizers", "normalizers", "decoders", "processors"}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) continue;
    for (const auto& item : *it) {
      if (has_type(item, type)) return true;
    }
  }
  return false;
}

std::string string_pattern(const json& j, const std::string& where, const std::string& what) {
  const json& pattern = j.value("pattern", json());
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) return pattern["String"].get<std::string>();
  fail(ErrorKind::unsupported, "{}: {} with a pattern other than a String ({}) is not supported", where, what, pattern.dump());
}

void add_line(std::string& spec, const std::string& line) {
  if (!spec.empty()) spec.push_back('\n');
  spec += line;
}

void parse_sp_normalizer(const json& j, const std::string& where, std::string& spec) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& item : j.value("normalizers", json::array())) parse_sp_normalizer(item, where, spec);
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    add_line(spec, type);
  } else if (type == "Lowercase") {
    add_line(spec, "lowercase");
  } else if (type == "Prepend") {
    add_line(spec, spec_line({"prepend", j.value("prepend", std::string())}));
  } else if (type == "Replace") {
    // One regex form is common (T5: runs of spaces become one): "C{2,}" replaced by C.
    const json& pattern = j.value("pattern", json());
    const std::string content = j.value("content", std::string());
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      const std::string regex = pattern["Regex"].get<std::string>();
      if (regex.size() == 5 && regex.substr(1) == "{2,}" && regex.substr(0, 1) == content && std::isalnum(uint8_t(content[0])) == 0 &&
          std::string_view("\\.^$|?*+()[]{}").find(content[0]) == std::string_view::npos) {
        add_line(spec, spec_line({"squeeze", content}));
        return;
      }
    }
    add_line(spec, spec_line({"replace", string_pattern(j, where, "a Replace normalizer"), content}));
  } else if (type == "Precompiled") {
    const json& charsmap = j.value("precompiled_charsmap", json());
    if (charsmap.is_string() && !charsmap.get<std::string>().empty()) {
      add_line(spec, spec_line({"precompiled", charsmap.get<std::string>()}));
    }
  } else {
    fail(ErrorKind::unsupported, "{}: normalizer '{}' is not supported for SentencePiece-style models", where,
         type.empty() ? j.dump() : type);
  }
}

std::string metaspace_scheme(const json& j) {
  if (auto it = j.find("prepend_scheme"); it != j.end() && it->is_string()) return it->get<std::string>();
  return bool_or(j, "add_prefix_space", true) ? "always" : "never";  // older files
}

void parse_sp_pre_tokenizer(const json& j, const std::string& where, std::string& spec) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& item : j.value("pretokenizers", json::array())) parse_sp_pre_tokenizer(item, where, spec);
  } else if (type == "Metaspace") {
    add_line(spec, spec_line({"metaspace", j.value("replacement", std::string("\xE2\x96\x81")), metaspace_scheme(j),
                              bool_or(j, "split", true) ? "split" : "whole"}));
  } else if (type == "WhitespaceSplit") {
    add_line(spec, "whitespace");
  } else if (type == "Split") {
    if (bool_or(j, "invert", false)) fail(ErrorKind::unsupported, "{}: Split with invert is not supported", where);
    const std::string text = string_pattern(j, where, "a Split pre-tokenizer of a SentencePiece-style model");
    const std::string behavior = j.value("behavior", std::string("Isolated"));
    const char* step = behavior == "MergedWithPrevious" ? "after" : behavior == "MergedWithNext" ? "before"
                       : behavior == "Isolated" ? "isolate" : nullptr;
    if (step == nullptr) fail(ErrorKind::unsupported, "{}: Split behavior '{}' is not supported", where, behavior);
    add_line(spec, spec_line({step, text}));
  } else {
    fail(ErrorKind::unsupported, "{}: pre_tokenizer type '{}' is not supported for SentencePiece-style models", where, type);
  }
}

void parse_sp_decoder(const json& j, const std::string& where, std::string& spec) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& item : j.value("decoders", json::array())) parse_sp_decoder(item, where, spec);
  } else if (type == "Replace") {
    add_line(spec, spec_line({"replace", string_pattern(j, where, "a Replace decoder"), j.value("content", std::string())}));
  } else if (type == "ByteFallback") {
    add_line(spec, "byte_fallback");
  } else if (type == "Fuse") {
    add_line(spec, "fuse");
  } else if (type == "Strip") {
    add_line(spec, spec_line({"strip", j.value("content", std::string(" ")), std::to_string(j.value("start", 0)),
                              std::to_string(j.value("stop", 0))}));
  } else if (type == "Metaspace") {
    add_line(spec, spec_line({"metaspace", j.value("replacement", std::string("\xE2\x96\x81")), metaspace_scheme(j)}));
  } else {
    fail(ErrorKind::unsupported, "{}: decoder type '{}' is not supported for SentencePiece-style models", where, type);
  }
}

void parse_sentencepiece_pipeline(const json& root, const std::string& where, TokenizerData& data) {
  parse_sp_normalizer(root.value("normalizer", json()), where, data.normalizer);
  parse_sp_pre_tokenizer(root.value("pre_tokenizer", json()), where, data.pre_split);
  parse_sp_decoder(root.value("decoder", json()), where, data.decoder);
  // Validate now, so a bad file fails when it is read.
  Normalizer check_normalizer(data.normalizer);
  PieceSplitter check_split(data.pre_split);
  Decoder check_decoder(data.decoder);
}

}  // namespace

TokenizerData Tokenizer::data_from_tokenizer_json(const std::string& path) {
  const json root = parse_json(path);
  if (!root.is_object()) fail(ErrorKind::format, "{}: expected a JSON object at the top level", path);
  TokenizerData data;

  // Model: byte-level BPE only.
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) fail(ErrorKind::format, "{}: expected a 'model' object", path);
  const json& model = *model_it;
  std::string model_type = type_of(model);
  if (model_type.empty() && model.contains("merges")) model_type = "BPE";
  if (model_type.empty() && model.contains("vocab") && model["vocab"].is_array()) model_type = "Unigram";
  if (model_type != "BPE" && model_type != "Unigram") {
    fail(ErrorKind::unsupported, "{}: model type '{}' is not supported (BPE and Unigram are)", path, model_type);
  }
  const bool unigram = model_type == "Unigram";
  // BPE is byte-level when a ByteLevel pre-tokenizer maps bytes to characters; otherwise it is
  // SentencePiece-style BPE over characters, with byte fallback.
  const bool sentencepiece = unigram || !has_type(root.value("pre_tokenizer", json()), "ByteLevel");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && it->is_string() && !it->get<std::string>().empty()) {
      fail(ErrorKind::unsupported, "{}: BPE with a {} is not supported", path, key);
    }
  }
  data.ignore_merges = bool_or(model, "ignore_merges", false);

  // Pre-tokenizer and normalizer.
  if (sentencepiece) {
    data.model = unigram ? "t5" : "llama";
    data.pre = "default";
    data.byte_fallback = bool_or(model, "byte_fallback", false);
    parse_sentencepiece_pipeline(root, path, data);
  } else {
    PreTokenizerSpec pre;
    parse_pre_tokenizer(root.value("pre_tokenizer", json()), path, pre);
    if (!pre.byte_level) {
      fail(ErrorKind::unsupported, "{}: expected a ByteLevel pre_tokenizer (byte-level BPE); other BPE kinds are not supported yet", path);
    }
    for (size_t i = 0; i < pre.lines.size(); ++i) {
      if (i > 0) data.pattern.push_back('\n');
      data.pattern += pre.lines[i];
    }
    if (data.pattern.empty()) data.pattern = "(?s:.+)";  // no split at all
    data.add_prefix_space = pre.add_prefix_space;
    data.normalizer = parse_normalizer(root.value("normalizer", json()), path);
    const PreTokenizerInfo* known = find_pre_tokenizer_by_pattern(data.pattern);
    data.pre = known != nullptr ? std::string(known->name) : std::string("default");
  }

  // Vocabulary.
  auto vocab_it = model.find("vocab");
  std::vector<std::pair<int64_t, std::string>> entries;
  std::vector<double> unigram_scores;
  int64_t max_id = -1;
  if (unigram) {  // [[piece, score], ...], ids in order
    if (vocab_it == model.end() || !vocab_it->is_array()) fail(ErrorKind::format, "{}: expected a 'model.vocab' array", path);
    if (vocab_it->size() >= (size_t(1) << 24)) fail(ErrorKind::format, "{}: {} tokens is too many", path, vocab_it->size());
    for (const auto& item : *vocab_it) {
      if (!item.is_array() || item.size() != 2 || !item[0].is_string() || !item[1].is_number()) {
        fail(ErrorKind::format, "{}: expected Unigram vocab entries [piece, score], found {}", path, item.dump());
      }
      entries.emplace_back(int64_t(entries.size()), item[0].get<std::string>());
      unigram_scores.push_back(item[1].get<double>());
    }
    max_id = int64_t(entries.size()) - 1;
  } else if (vocab_it == model.end() || !vocab_it->is_object()) {
    fail(ErrorKind::format, "{}: expected a 'model.vocab' object", path);
  }
  for (auto it = vocab_it->begin(); !unigram && it != vocab_it->end(); ++it) {
    if (!it.value().is_number_integer()) fail(ErrorKind::format, "{}: expected an integer id for token '{}'", path, it.key());
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t(1) << 24)) fail(ErrorKind::format, "{}: token '{}' has id {} outside 0..2^24", path, it.key(), id);
    entries.emplace_back(id, it.key());
    max_id = std::max(max_id, id);
  }
  struct Added {
    int64_t id;
    std::string content;
    bool special;
    TokenizerData::AddedTokenOptions options;
  };
  std::vector<Added> added;
  for (const auto& item : root.value("added_tokens", json::array())) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer() || !item.contains("content") ||
        !item["content"].is_string()) {
      fail(ErrorKind::format, "{}: expected added_tokens entries with an integer 'id' and a string 'content'", path);
    }
    Added a{item["id"].get<int64_t>(), item["content"].get<std::string>(), bool_or(item, "special", false), {}};
    if (a.id < 0 || a.id >= (int64_t(1) << 24)) fail(ErrorKind::format, "{}: added token '{}' has id {} outside 0..2^24", path, a.content, a.id);
    a.options = {int32_t(a.id), bool_or(item, "lstrip", false), bool_or(item, "rstrip", false), bool_or(item, "single_word", false),
                 sentencepiece && bool_or(item, "normalized", !a.special)};
    max_id = std::max(max_id, a.id);
    added.push_back(std::move(a));
  }
  const size_t n = size_t(max_id + 1);
  data.tokens.assign(n, std::string());
  data.types.assign(n, TokenType::unused);
  std::vector<uint8_t> filled(n, 0);
  for (auto& [id, text] : entries) {
    if (filled[id]) fail(ErrorKind::format, "{}: id {} is used by two tokens ('{}' and '{}')", path, id, data.tokens[id], text);
    filled[id] = 1;
    data.tokens[id] = std::move(text);
    data.types[id] = TokenType::normal;
  }
  for (auto& a : added) {
    data.tokens[a.id] = a.content;
    data.types[a.id] = a.special ? TokenType::control : TokenType::user_defined;
    filled[a.id] = 1;
    const auto& o = a.options;
    if (o.lstrip || o.rstrip || o.single_word || o.normalized) data.added_options.push_back(o);
  }
  if (sentencepiece) {
    for (size_t id = 0; id < n; ++id) {  // byte tokens, typed as llama.cpp's converter types them
      if (data.types[id] == TokenType::normal && byte_token_value(data.tokens[id]) >= 0) data.types[id] = TokenType::byte;
    }
  }
  if (unigram) {
    data.scores.assign(n, std::numeric_limits<double>::quiet_NaN());
    std::copy(unigram_scores.begin(), unigram_scores.end(), data.scores.begin());
  }
  for (size_t id = 0; id < n; ++id) {
    if (!filled[id]) data.tokens[id] = "[PAD" + std::to_string(id) + "]";
  }

  // Merges: "left right" strings or [left, right] pairs.
  auto merges_it = model.find("merges");
  if (unigram) {
    merges_it = model.end();
  } else if (merges_it == model.end() || !merges_it->is_array()) {
    fail(ErrorKind::format, "{}: expected a 'model.merges' array", path);
  } else {
    data.merges.reserve(merges_it->size());
  }
  for (const auto& m : unigram ? json::array() : *merges_it) {
    if (m.is_string()) {
      data.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      data.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      fail(ErrorKind::format, "{}: expected merge {} to be a string or a pair of strings, found {}", path, data.merges.size(), m.dump());
    }
  }

  // Special tokens: the post-processor adds them; tokenizer_config.json names them.
  std::unordered_map<std::string_view, int32_t> ids;
  for (size_t id = n; id-- > 0;) ids[data.tokens[id]] = int32_t(id);  // lowest id wins
  auto id_of = [&](const std::string& text) {
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };
  PostProcessorSpec post;
  parse_post_processor(root.value("post_processor", json()), path, post);
  if (post.before.size() > 1 || post.after.size() > 1) {
    fail(ErrorKind::unsupported, "{}: a post-processor adding more than one token before or after the text is not supported", path);
  }
  if (!post.before.empty()) {
    data.bos_id = id_of(post.before[0]);
    if (data.bos_id < 0) fail(ErrorKind::format, "{}: post_processor adds '{}', which is not a token", path, post.before[0]);
    data.add_bos = true;
  }
  if (!post.after.empty()) {
    data.eos_id = id_of(post.after[0]);
    if (data.eos_id < 0) fail(ErrorKind::format, "{}: post_processor adds '{}', which is not a token", path, post.after[0]);
    data.add_eos = true;
  }
  if (auto unk = model.find("unk_token"); unk != model.end() && unk->is_string()) data.unk_id = id_of(unk->get<std::string>());
  if (auto unk = model.find("unk_id"); unigram && unk != model.end() && unk->is_number_integer()) {
    const int64_t id = unk->get<int64_t>();
    if (id < 0 || id >= int64_t(n)) fail(ErrorKind::format, "{}: unk_id {} is outside the vocabulary of {} tokens", path, id, n);
    data.unk_id = int32_t(id);
  }

  const fs::path folder = fs::path(path).parent_path();
  const fs::path config_path = folder / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    const json config = parse_json(config_path.string());
    if (!config.is_object()) fail(ErrorKind::format, "{}: expected a JSON object", config_path.string());
    auto set_id = [&](const char* key, int32_t& id) {
      if (auto text = config_token(config, key)) {
        const int32_t found = id_of(*text);
        if (found >= 0) id = found;
      }
    };
    const int32_t template_bos = data.bos_id;
    const int32_t template_eos = data.eos_id;
    set_id("bos_token", data.bos_id);
    set_id("eos_token", data.eos_id);
    set_id("pad_token", data.pad_id);
    set_id("unk_token", data.unk_id);
    // The post-processor is what adds tokens; a tokenizer_config.json flag overrides it.
    if (auto it = config.find("add_bos_token"); it != config.end() && it->is_boolean()) data.add_bos = it->get<bool>();
    if (auto it = config.find("add_eos_token"); it != config.end() && it->is_boolean()) data.add_eos = it->get<bool>();
    if ((data.add_bos && template_bos >= 0 && data.bos_id != template_bos) ||
        (data.add_eos && template_eos >= 0 && data.eos_id != template_eos)) {
      fail(ErrorKind::unsupported, "{}: the post-processor adds a different token than tokenizer_config.json names", path);
    }
    if (auto it = config.find("chat_template"); it != config.end()) {
      if (it->is_string()) {
        data.chat_template = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": ..., "template": ...}]: the default one, else the first
        for (const auto& entry : *it) {
          if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string()) continue;
          if (data.chat_template.empty() || entry.value("name", std::string()) == "default") {
            data.chat_template = entry["template"].get<std::string>();
          }
        }
      }
    }
  }
  if (data.chat_template.empty() && fs::exists(folder / "chat_template.jinja")) {
    data.chat_template = read_file((folder / "chat_template.jinja").string());
  }
  if (data.add_bos && data.bos_id < 0) fail(ErrorKind::format, "{}: add_bos_token is set but no bos token is named", path);
  if (data.add_eos && data.eos_id < 0) fail(ErrorKind::format, "{}: add_eos_token is set but no eos token is named", path);
  add_end_of_generation_tokens(data);
  return data;
}

}  // namespace slm
