#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "slm/model/model.hpp"
#include "slm/tasks/chunk.hpp"
#include "slm/tasks/pii.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"
#include "../common/models.hpp"

namespace fs = std::filesystem;
using namespace slm;
using namespace slm::tasks;

namespace {
const Tokenizer& demo_tokenizer() { return *slm_test::demo_model()->tokenizer(); }

std::string heldout(size_t bytes) {
  std::ifstream f(fs::path(SLM_SOURCE_DIR) / "models" / "demo" / "heldout.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str().substr(0, bytes);
  while (!s.empty() && (uint8_t(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty() && uint8_t(s.back()) >= 0xC0) s.pop_back();
  return s;
}

const std::string kCode = "```python\ndef area(r):\n    # the circle's area\n    return 3.14159 * r * r\n\nprint(area(2))\n```";

std::string markdown() {
  return "# Guide\n\nIntro paragraph about the guide. It has two sentences.\n\n## Install — über\n\n"
         "Run the installer. Then restart the machine! Does it work? Yes.\n\n" + kCode +
         "\n\n## Use\n\n### Details\n\nA long paragraph follows here with many words so that it needs more than one "
         "chunk when the limit is small, and it goes on and on about nothing in particular, café, naïve, "
         "façade, 🙂 and more words until the end.\n";
}

void check_chunks(const std::string& text, const std::vector<Chunk>& chunks, int64_t max) {
  const auto cps = code_point_bytes(text);
  ASSERT_FALSE(chunks.empty());
  for (const auto& c : chunks) {
    ASSERT_LE(c.byte_start, c.byte_end);
    ASSERT_LE(c.byte_end, text.size());
    EXPECT_EQ(cps[size_t(c.start)], c.byte_start);  // code point offsets agree with the byte offsets
    EXPECT_EQ(cps[size_t(c.end)], c.byte_end);
    const std::string slice = text.substr(c.byte_start, c.byte_end - c.byte_start);
    EXPECT_EQ(int64_t(demo_tokenizer().encode(slice, false, false).size()), c.tokens);
    EXPECT_LE(c.tokens, max) << slice;
    EXPECT_GT(c.tokens, 0);
  }
}
}  // namespace

TEST(Chunk, TokenWindowsCoverTheTextWithOverlap) {
  const std::string text = heldout(6000);
  ChunkOptions o;
  o.by = ChunkBy::tokens;
  o.max_tokens = 64;
  o.overlap = 16;
  const auto chunks = chunk_text(text, demo_tokenizer(), o);
  check_chunks(text, chunks, 64);
  EXPECT_EQ(chunks.front().byte_start, 0u);
  EXPECT_EQ(chunks.back().byte_end, text.size());
  for (size_t i = 1; i < chunks.size(); ++i) {
    EXPECT_LT(chunks[i].byte_start, chunks[i - 1].byte_end);  // overlapping neighbours
    EXPECT_GT(chunks[i].byte_start, chunks[i - 1].byte_start);
  }
  o.overlap = 0;
  const auto plain = chunk_text(text, demo_tokenizer(), o);
  for (size_t i = 1; i < plain.size(); ++i) EXPECT_EQ(plain[i].byte_start, plain[i - 1].byte_end);
  EXPECT_LT(plain.size(), chunks.size());
}

TEST(Chunk, StructureKeepsCodeBlocksAndSections) {
  const std::string text = markdown();
  const int64_t code_tokens = int64_t(demo_tokenizer().encode(kCode, false, false).size());
  for (int64_t max : {code_tokens, code_tokens + 7, int64_t(400)}) {
    ChunkOptions o;
    o.max_tokens = max;
    const auto chunks = chunk_text(text, demo_tokenizer(), o);
    check_chunks(text, chunks, max);
    // The code block (which fits) is inside exactly one chunk, whole.
    int holding = 0;
    for (const auto& c : chunks) {
      if (text.substr(c.byte_start, c.byte_end - c.byte_start).find(kCode) != std::string::npos) ++holding;
    }
    EXPECT_EQ(holding, 1) << max;
    if (max == 400) {
      // Headings start chunks: one per heading.
      ASSERT_EQ(chunks.size(), 4u);
      EXPECT_EQ(chunks[1].section, (std::vector<std::string>{"Guide", "Install — über"}));
      EXPECT_EQ(chunks[3].section, (std::vector<std::string>{"Guide", "Use", "Details"}));
    }
  }
}

TEST(Chunk, LongParagraphsSplitAtSentences) {
  const auto s = split_sentences("One. Two!  Three? \"Four.\" Five", 0, 31);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[3], (std::pair<size_t, size_t>{18, 25}));  // "Four." with its quotes
  const std::string text = heldout(20000);
  ChunkOptions o;
  o.max_tokens = 96;
  const auto chunks = chunk_text(text, demo_tokenizer(), o);
  check_chunks(text, chunks, 96);
}

TEST(Chunk, SemanticBreakpointsFollowTheEmbedding) {
  // A fake embedding with two topics: breakpoints must fall where the topic changes.
  const std::string text = "Cats purr. Cats nap. Cats hunt mice. Ships sail. Ships dock at ports. Ships carry goods.";
  EmbedFn embed = [](std::string_view s) {
    return s.find("Cat") != std::string_view::npos ? std::vector<float>{1.0f, 0.1f} : std::vector<float>{0.1f, 1.0f};
  };
  ChunkOptions o;
  o.by = ChunkBy::semantic;
  o.max_tokens = 200;
  o.percentile = 0.5;
  const auto chunks = chunk_text(text, demo_tokenizer(), o, embed);
  check_chunks(text, chunks, 200);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(text.substr(chunks[1].byte_start, chunks[1].byte_end - chunks[1].byte_start), "Ships sail. Ships dock at ports. Ships carry goods.");
  EXPECT_THROW(chunk_text(text, demo_tokenizer(), o), Error);  // no embedding
}

TEST(Chunk, RandomMarkdownNeverBreaksTheRules) {
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"# Title\n", "## Sub ü\n", "Some words here. ", "More text! ", "\n\n",
                                           "```\ncode line\n```\n", "Zoë’s café. ", "🙂 ", "- item\n", "\n"};
  for (int round = 0; round < 20; ++round) {
    std::string text;
    const int n = 20 + int(rng() % 60);
    for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    for (auto by : {ChunkBy::tokens, ChunkBy::structure}) {
      ChunkOptions o;
      o.by = by;
      o.max_tokens = 8 + int64_t(rng() % 40);
      o.overlap = int64_t(rng() % 4);
      const auto chunks = chunk_text(text, demo_tokenizer(), o);
      check_chunks(text, chunks, o.max_tokens);
    }
  }
}

TEST(Chunk, BadOptions) {
  ChunkOptions o;
  o.max_tokens = 0;
  EXPECT_THROW(chunk_text("x", demo_tokenizer(), o), Error);
  o.max_tokens = 10;
  o.overlap = 10;
  EXPECT_THROW(chunk_text("x", demo_tokenizer(), o), Error);
  EXPECT_THROW(parse_chunk_by("words"), Error);
}
