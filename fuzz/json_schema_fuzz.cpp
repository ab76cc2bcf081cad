// libFuzzer target: a JSON schema (the input up to the first NUL byte) is compiled into a token
// constraint; compiling either succeeds or throws slm::Error. The bytes after the NUL choose tokens
// among the allowed ones for a few steps: an allowed token is always accepted, a masked one always
// refused, and whenever the constraint says the text is complete, the text parses as JSON and
// validate_json finds no error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace {

slm::Tokenizer make_tokenizer() {
  slm::TokenizerData d;
  d.pre = "qwen2";
  for (int b = 0; b < 256; ++b) {
    d.tokens.emplace_back(slm::byte_level::text_of(uint8_t(b)));
    d.types.push_back(slm::TokenType::byte);
  }
  for (const char* m : {"\"}", "\",", "\":", " \"", "{\"", "[\"", "\"]", "true", "null", "false", "12", "ab", "\\n", "\": \"", "}]"}) {
    std::string text;
    for (const char* p = m; *p != '\0'; ++p) text += slm::byte_level::text_of(uint8_t(*p));
    d.tokens.push_back(text);
    d.types.push_back(slm::TokenType::normal);
  }
  d.tokens.emplace_back("<|end|>");
  d.types.push_back(slm::TokenType::control);
  d.eos_id = int32_t(d.tokens.size()) - 1;
  return slm::Tokenizer(std::move(d));
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static const slm::Tokenizer tok = make_tokenizer();
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const size_t nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view choices = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

  const auto schema = nlohmann::ordered_json::parse(schema_text, nullptr, false);
  if (schema.is_discarded()) return 0;
  const nlohmann::json plain = nlohmann::json::parse(schema.dump());
  std::shared_ptr<slm::TokenConstraint> c;
  try {
    c = slm::grammar::compile_json_schema(schema, tok);
  } catch (const slm::Error&) {
    return 0;
  }
  std::vector<uint8_t> allowed(tok.vocab_size());
  std::string text;
  for (size_t step = 0; step < 48 && step < choices.size(); ++step) {
    c->allowed_tokens(allowed);
    check(allowed[size_t(tok.data().eos_id)] == (c->complete() ? 1 : 0));
    if (c->complete()) {
      const auto value = nlohmann::json::parse(text, nullptr, false);
      check(!value.is_discarded());
      check(slm::grammar::validate_json(plain, value).empty());
    }
    std::vector<int32_t> options;
    for (size_t t = 0; t < allowed.size(); ++t) {
      if (allowed[t] && int32_t(t) != tok.data().eos_id) options.push_back(int32_t(t));
    }
    if (options.empty()) {
      check(c->complete());  // never a dead end
      break;
    }
    const uint8_t pick = uint8_t(choices[step]);
    // Now and then try a masked token: it must be refused and change nothing.
    if (pick % 7 == 0) {
      for (size_t t = 0; t < allowed.size(); ++t) {
        if (!allowed[t] && int32_t(t) != tok.data().eos_id) {
          bool refused = false;
          try {
            c->accept(int32_t(t));
          } catch (const slm::Error&) {
            refused = true;
          }
          check(refused);
          break;
        }
      }
    }
    const int32_t t = options[pick % options.size()];
    c->accept(t);
    text += tok.token_bytes(t);
  }
  return 0;
}
