#include "slm/tokenizer/pretokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "slm/tokenizer/utf8.hpp"
#include "slm/util/error.hpp"

namespace slm {

namespace {

// GPT-2's ByteLevel regex, as tokenizers' ByteLevel pre-tokenizer uses it.
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3's Split regex (numbers in groups of up to three digits).
constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's Split regex (every digit alone); Qwen2.5, Qwen3 and DeepSeek-R1-Distill-Qwen share it.
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// SmolLM2: a Digits pre-tokenizer with individual_digits, then GPT-2's ByteLevel regex.
constexpr std::string_view kSmollm =
    "\\p{N}\n"
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-4o's o200k_base regex (tiktoken; Phi-4-mini's tokenizer.json Split): letter runs split at
// case changes, contractions attached, numbers in groups of up to three, '/' kept after punctuation.
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::array<PreTokenizerInfo, 7> kTable = {{
    {"gpt-2", kGpt2, "", false, false, false},
    {"default", kGpt2, "", false, false, false},
    {"llama-bpe", kLlama3, "", true, false, true},
    {"qwen2", kQwen2, "NFC", false, false, false},
    {"deepseek-r1-qwen", kQwen2, "NFC", false, false, false},
    {"smollm", kSmollm, "", false, false, false},
    {"gpt-4o", kGpt4o, "", false, false, false},
}};

// Unicode White_Space, the set Oniguruma's \s and Rust's char::is_whitespace use. PCRE2's \s under
// UCP differs (it includes U+180E), so \s and \S are spelled out.
constexpr std::string_view kWhiteSpace =
    R"(\t-\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string spell_out_whitespace(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        if (in_class) {
          out.append(kWhiteSpace);
        } else {
          out.append("[").append(kWhiteSpace).append("]");
        }
        continue;
      }
      if (e == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpace).append("]");
        continue;
      }
      out.push_back('\\');
      out.push_back(e);
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

struct MatchContext {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  MatchContext() {
    stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchContext() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

// A match context with a large JIT stack, for the rare piece the default stack cannot handle.
pcre2_match_context* big_stack_context() {
  thread_local MatchContext ctx;
  return ctx.context;
}

struct MatchData {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  ~MatchData() { pcre2_match_data_free(data); }
};

}  // namespace

std::span<const PreTokenizerInfo> known_pre_tokenizers() { return kTable; }

std::string_view gpt2_pattern() { return kGpt2; }

const PreTokenizerInfo* find_pre_tokenizer(std::string_view name) {
  for (const auto& info : kTable) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const PreTokenizerInfo* find_pre_tokenizer_by_pattern(std::string_view pattern) {
  for (const auto& info : kTable) {
    if (info.pattern == pattern) return &info;
  }
  return nullptr;
}

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  std::string source;

  explicit Regex(std::string_view pattern) : source(pattern) {
    const std::string spelled = spell_out_whitespace(pattern);
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spelled.data()), spelled.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (code == nullptr) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error, message.data(), message.size());
      fail(ErrorKind::invalid_argument, "expected a valid pre-tokenizer regex, found '{}': {} at offset {}",
           source, reinterpret_cast<const char*>(message.data()), size_t(offset));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // failure is fine: the interpreter still works
  }
  ~Regex() { pcre2_code_free(code); }

  // Returns false when nothing more matches; throws when PCRE2 gives up.
  bool find(std::string_view subject, size_t start, pcre2_match_data* md, size_t& match_start,
            size_t& match_end) const {
    auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    int rc = pcre2_match(code, s, subject.size(), start, 0, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(code, s, subject.size(), start, 0, md, big_stack_context());
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(rc, message.data(), message.size());
      fail(ErrorKind::out_of_range, "pre-tokenizer regex gave up on a piece of {} bytes: {}", subject.size(),
           reinterpret_cast<const char*>(message.data()));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    match_start = ov[0];
    match_end = ov[1];
    return true;
  }

  void split(std::string_view piece, std::vector<std::string_view>& out, pcre2_match_data* md) const {
    size_t emitted = 0;
    size_t start = 0;
    size_t ms = 0;
    size_t me = 0;
    while (start < piece.size() && find(piece, start, md, ms, me)) {
      if (me == ms) {  // an empty match: move on by one character
        start = ms + utf8::sequence_length(static_cast<uint8_t>(piece[ms]));
        continue;
      }
      if (ms > emitted) out.push_back(piece.substr(emitted, ms - emitted));
      out.push_back(piece.substr(ms, me - ms));
      emitted = start = me;
    }
    if (emitted < piece.size()) out.push_back(piece.substr(emitted));
  }
};

PreTokenizer::PreTokenizer(std::string_view pattern, bool add_prefix_space) : add_prefix_space_(add_prefix_space) {
  size_t begin = 0;
  while (begin <= pattern.size()) {
    size_t end = pattern.find('\n', begin);
    if (end == std::string_view::npos) end = pattern.size();
    if (end > begin) regexes_.push_back(std::make_unique<Regex>(pattern.substr(begin, end - begin)));
    begin = end + 1;
  }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces, std::string& scratch) const {
  pieces.clear();
  if (add_prefix_space_ && !text.empty() && text.front() != ' ') {
    scratch.assign(" ");
    scratch.append(text);
    text = scratch;
  }
  if (text.empty()) return;
  pieces.push_back(text);
  if (regexes_.empty()) return;
  thread_local MatchData md;
  thread_local std::vector<std::string_view> next;
  for (const auto& regex : regexes_) {
    next.clear();
    for (std::string_view piece : pieces) regex->split(piece, next, md.data);
    pieces.swap(next);
  }
}

}  // namespace slm
